// The video with its detection overlay. The file comes from a signed, short-lived URL
// (POST /file-url): a <video> cannot send the bearer header, and the token must never be put in
// a URL. The overlay follows the frame actually shown: requestVideoFrameCallback's mediaTime,
// not the (coarser, clock-driven) currentTime, except right after a seek.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

import { api, API, errorMessage, isAbort } from '../api';
import type { ProbeInfo } from '../api';
import { WINDOW } from '../frames';
import type { FrameCache } from '../frames';
import { formatDuration } from '../format';
import { Alert } from './Alert';
import { drawOverlay, OverlayCanvas } from './Overlay';
import type { Filter, Shape } from './Overlay';

export interface PlayerControl {
  seekToFrame(index: number): void;
  step(delta: number): void;
  togglePlay(): void;
  /** The frame on screen (-1: not known yet). */
  frame(): number;
}

interface Props {
  videoId: string;
  probe: ProbeInfo;
  cache: FrameCache;
  filter: Filter;
  showBoxes: boolean;
  /** The video's zones and lines, drawn under the boxes when `showShapes`. */
  shapes?: readonly Shape[];
  showShapes?: boolean;
  /** The frame shown now (drawn, or estimated from the time when not loaded yet). */
  onPosition(frame: number): void;
  control: { current: PlayerControl | null };
  /** Shown under the picture, inside the player region (the timeline). */
  children?: ComponentChildren;
}

interface FileUrl {
  url: string;
  expires_at: string;
}

/** Ask for a fresh URL this long before the current one expires. */
const REFRESH_EARLY_MS = 120_000;
/** After a playback error, do not ask for a new URL again sooner than this. */
const ERROR_RETRY_MS = 10_000;

const NO_SHAPES: readonly Shape[] = [];

export function Player({ videoId, probe, cache, filter, showBoxes, shapes = NO_SHAPES, showShapes = true, onPosition, control, children }: Props) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [playing, setPlaying] = useState(false);
  const [rate, setRate] = useState(1);
  const positionText = useRef<HTMLSpanElement>(null);
  // The shape the browser shows (it applies the pixel aspect ratio; the probe's size does not).
  const [aspect, setAspect] = useState(probe.width / Math.max(1, probe.height));

  // What the drawing callbacks read: the latest props without re-subscribing each render.
  const live = useRef({ filter, showBoxes, shapes, showShapes, onPosition });
  live.current = { filter, showBoxes, shapes, showShapes, onPosition };
  /** The frame on screen, when its detections are loaded (-1: not known). */
  const shown = useRef(-1);
  /** Media time (s) of the frame shown; null right after a seek until a frame is presented. */
  const mediaTime = useRef<number | null>(null);
  /** A seek made without the frame's exact pts: redone once that frame's window arrives. */
  const pendingSeek = useRef<number | null>(null);

  const fps = probe.fps > 0 ? probe.fps : 25;
  const frameCount = cache.frameCount;

  const redraw = () => {
    const video = videoRef.current;
    const canvas = canvasRef.current;
    if (!video || !canvas) return;
    const time = mediaTime.current ?? video.currentTime;
    // Looked up even with the boxes off: the frame steps and the timeline use it.
    const found = cache.find(time * 1000 + 0.5);
    const now = live.current;
    drawOverlay(canvas, video, probe, now.showBoxes ? found : null, now.filter, now.showShapes ? now.shapes : NO_SHAPES);
    shown.current = found ? found.index : -1;
    const position = found ? found.index : Math.min(frameCount - 1, Math.floor(time * fps + 1e-6));
    live.current.onPosition(position);
    // Written straight into the DOM: re-rendering the player 60 times a second is not needed.
    if (positionText.current) {
      positionText.current.textContent = `Frame ${position} · ${formatDuration(time)} / ${formatDuration(probe.duration_s)}`;
    }
    const target = pendingSeek.current;
    if (target !== null && cache.frameAt(target)) {
      pendingSeek.current = null;
      if (found?.index !== target) seekToFrame(target);
    }
  };

  const seekToFrame = (index: number) => {
    const video = videoRef.current;
    if (!video) return;
    const i = Math.max(0, Math.min(frameCount - 1, index));
    const frame = cache.frameAt(i);
    const next = cache.frameAt(i + 1);
    // Half a frame past the frame's pts: clearly inside it, whatever the rounding.
    const half = frame && next ? (next.pts_ms - frame.pts_ms) / 2 : 500 / fps;
    const pts = frame ? frame.pts_ms : (i * 1000) / fps;
    pendingSeek.current = frame ? null : i;
    if (!frame) cache.ensure(Math.floor(i / WINDOW));
    mediaTime.current = null;
    video.currentTime = (pts + half) / 1000;
  };

  const currentFrame = () => {
    const video = videoRef.current;
    if (shown.current >= 0) return shown.current;
    return video ? Math.floor((mediaTime.current ?? video.currentTime) * fps + 1e-6) : 0;
  };

  control.current = {
    seekToFrame,
    frame: () => shown.current,
    step(delta: number) {
      const video = videoRef.current;
      if (!video) return;
      video.pause();
      seekToFrame(currentFrame() + delta);
    },
    togglePlay() {
      const video = videoRef.current;
      if (!video) return;
      if (video.paused || video.ended) {
        // A pause before playback starts rejects play() with AbortError: not an error.
        void video.play().catch((e) => !isAbort(e) && setError(errorMessage(e)));
      } else {
        video.pause();
      }
    },
  };

  // The signed file URL, renewed before it expires and after a playback error.
  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let due = false;
    let lastErrorFetch = 0;

    const apply = async (restore: boolean) => {
      const at = video.currentTime;
      const wasPlaying = !video.paused && !video.ended;
      let answer: FileUrl;
      try {
        answer = await api<FileUrl>(`${API}/videos/${videoId}/file-url`, { method: 'POST' });
      } catch (e) {
        if (!stopped) setError(errorMessage(e));
        return;
      }
      if (stopped) return;
      due = false;
      if (restore) {
        video.addEventListener(
          'loadedmetadata',
          () => {
            video.currentTime = at;
            if (wasPlaying) void video.play().catch(() => undefined);
          },
          { once: true },
        );
      }
      video.src = answer.url;
      const expires = Date.parse(answer.expires_at);
      const wait = Number.isFinite(expires) ? Math.max(10_000, expires - Date.now() - REFRESH_EARLY_MS) : 30 * 60_000;
      clearTimeout(timer);
      timer = setTimeout(() => {
        // Swapping the source mid-play stutters: while playing, wait for a pause (or an error).
        if (video.paused || video.ended) void apply(true);
        else due = true;
      }, Math.min(wait, 2 ** 31 - 1));
    };

    const onPause = () => {
      if (due) void apply(true);
    };
    const onError = () => {
      // Most likely the signed URL expired mid-play (range requests): get a new one, once in a while.
      if (Date.now() - lastErrorFetch < ERROR_RETRY_MS) {
        setError('the video cannot be played: ' + (video.error?.message || 'media error'));
        return;
      }
      lastErrorFetch = Date.now();
      void apply(true);
    };
    video.addEventListener('pause', onPause);
    video.addEventListener('error', onError);
    void apply(false);
    return () => {
      stopped = true;
      clearTimeout(timer);
      video.removeEventListener('pause', onPause);
      video.removeEventListener('error', onError);
      video.removeAttribute('src');
      video.load();
    };
  }, [videoId]);

  // Frame-accurate drawing: on each presented frame, after seeks, on resize, on new data.
  useEffect(() => {
    const video = videoRef.current;
    const canvas = canvasRef.current;
    if (!video || !canvas) return;
    let handle = 0;
    const hasRvfc = 'requestVideoFrameCallback' in video;
    const onFrame = (_now: number, meta: VideoFrameCallbackMetadata) => {
      mediaTime.current = meta.mediaTime;
      redraw();
      handle = video.requestVideoFrameCallback(onFrame);
    };
    if (hasRvfc) handle = video.requestVideoFrameCallback(onFrame);

    const onSeeking = () => {
      mediaTime.current = null;
    };
    const onSeeked = () => {
      // The frame sought is decided by currentTime until a frame callback reports what is shown.
      mediaTime.current = null;
      redraw();
    };
    const onTime = () => {
      if (!hasRvfc) {
        mediaTime.current = null;
        redraw();
      }
    };
    const onMetadata = () => {
      if (video.videoWidth > 0 && video.videoHeight > 0) setAspect(video.videoWidth / video.videoHeight);
    };
    const onPlay = () => setPlaying(true);
    const onPause = () => {
      setPlaying(false);
      redraw();
    };
    const events: [string, () => void][] = [
      ['seeking', onSeeking],
      ['seeked', onSeeked],
      ['timeupdate', onTime],
      ['play', onPlay],
      ['pause', onPause],
      ['ended', onPause],
      ['loadeddata', onSeeked],
      ['loadedmetadata', onMetadata],
    ];
    for (const [name, fn] of events) video.addEventListener(name, fn);
    const resize = new ResizeObserver(() => redraw());
    resize.observe(canvas);
    const unsubscribe = cache.onLoad(() => redraw());
    redraw();
    return () => {
      if (hasRvfc) video.cancelVideoFrameCallback(handle);
      for (const [name, fn] of events) video.removeEventListener(name, fn);
      resize.disconnect();
      unsubscribe();
    };
  }, [cache]);

  // Filters changed: redraw the same frame at once.
  useEffect(() => redraw(), [filter, showBoxes, shapes, showShapes]);

  useEffect(() => {
    if (videoRef.current) videoRef.current.playbackRate = rate;
  }, [rate]);

  const onKeyDown = (event: KeyboardEvent) => {
    const target = event.target as HTMLElement;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target.closest('input, select, textarea')) return;
    const key = event.key;
    if (key === ',' || key === 'ArrowLeft') {
      event.preventDefault();
      control.current?.step(-1);
    } else if (key === '.' || key === 'ArrowRight') {
      event.preventDefault();
      control.current?.step(1);
    } else if (key === ' ' || key === 'k') {
      // Space on a focused button presses that button.
      if (target.tagName === 'BUTTON') return;
      event.preventDefault();
      control.current?.togglePlay();
    }
  };

  return (
    <div
      class="player"
      role="group"
      aria-label="Player: space plays or pauses, comma and period (or the arrow keys) step one frame"
      tabIndex={0}
      onKeyDown={onKeyDown}
      data-testid="player"
    >
      <div
        class="stage"
        // The picture's shape, at most 70% of the window's height (so no letterboxing here).
        style={{ aspectRatio: String(aspect), maxWidth: `calc(70vh * ${aspect})` }}
        onClick={() => control.current?.togglePlay()}>
        <video ref={videoRef} preload="auto" playsInline data-testid="video" />
        <OverlayCanvas canvasRef={canvasRef} />
      </div>
      <div class="controls">
        <button type="button" class="button secondary small" onClick={() => control.current?.step(-1)} aria-label="Previous frame">
          ◀︎ Frame
        </button>
        <button type="button" class="button primary small play" onClick={() => control.current?.togglePlay()} data-testid="play">
          {playing ? 'Pause' : 'Play'}
        </button>
        <button type="button" class="button secondary small" onClick={() => control.current?.step(1)} aria-label="Next frame">
          Frame ▶︎
        </button>
        <label class="rate">
          <span>Speed</span>
          <select value={String(rate)} onChange={(e) => setRate(Number(e.currentTarget.value))}>
            {[0.25, 0.5, 1, 1.5, 2].map((r) => (
              <option key={r} value={String(r)}>
                {r}×
              </option>
            ))}
          </select>
        </label>
        <span class="position" ref={positionText} data-testid="position" />
      </div>
      {children}
      {error && <Alert>{error}</Alert>}
    </div>
  );
}

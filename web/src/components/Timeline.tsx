// The timeline under the player: one lane per class, a block wherever that class was seen with a
// score at or above the threshold (block k covers frames [k*B, (k+1)*B)), a marker at the
// playhead. Click or drag seeks; it is a slider for keyboards and screen readers. The track's
// full width maps linearly onto frames [0, frame_count). Under the lanes, one row per track
// (the longest 50 until asked for all): a bar from its first to its last frame, ticks where it
// crossed a counting line; a row is a button that seeks to the track's first frame.
import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';

import type { LineResult, Timeline as TimelineData, TrackSummary } from '../api';
import { labelColor } from '../format';
import type { Filter } from './Overlay';

interface Props {
  data: TimelineData | null;
  frameCount: number;
  fps: number;
  filter: Filter;
  onSeek(frame: number): void;
  /** Set by the timeline: moves the marker (called on every frame shown). */
  position: { current: ((frame: number) => void) | null };
  /** The result's tracks (null: not loaded). */
  tracks?: TrackSummary[] | null;
  /** The result's lines, for their crossings. */
  lines?: LineResult[] | null;
  /** Shown where the track rows go while there are none (loading, too large to load). */
  tracksNote?: ComponentChildren;
}

/** Track rows shown until "show all" is pressed. */
export const TRACK_ROWS = 50;
const NO_LINES: LineResult[] = [];

const LANE_H = 14;
const GAP = 2;

export function Timeline({ data, frameCount, fps, filter, onSeek, position, tracks, lines, tracksNote }: Props) {
  const track = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const marker = useRef<HTMLDivElement>(null);
  const rowsMarker = useRef<HTMLDivElement>(null);
  const current = useRef(0);
  const lanes = data?.lanes ?? [];
  const count = data?.frame_count || frameCount;

  const draw = () => {
    const c = canvas.current;
    if (!c) return;
    const width = c.clientWidth;
    const height = c.clientHeight;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.max(1, Math.round(width * dpr));
    c.height = Math.max(1, Math.round(height * dpr));
    const ctx = c.getContext('2d');
    if (!ctx || count <= 0) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const block = data?.block_frames || 1;
    const perFrame = width / count;
    lanes.forEach((lane, i) => {
      const y = GAP + i * (LANE_H + GAP);
      const hidden = filter.hidden.has(lane.label);
      ctx.fillStyle = labelColor(lane.label);
      ctx.globalAlpha = hidden ? 0.18 : 1;
      for (const [k, maxScore] of lane.blocks) {
        if (maxScore < filter.threshold) continue;
        const x = k * block * perFrame;
        const w = Math.max(1, Math.min(block, count - k * block) * perFrame);
        ctx.fillRect(x, y, w, LANE_H);
      }
    });
    ctx.globalAlpha = 1;
  };

  useEffect(() => {
    draw();
    const observer = new ResizeObserver(() => draw());
    if (canvas.current) observer.observe(canvas.current);
    return () => observer.disconnect();
  }, [data, filter, count]);

  // The marker moves without re-rendering: straight style and ARIA updates.
  useEffect(() => {
    position.current = (frame: number) => {
      if (frame === current.current && marker.current?.style.left && (!rowsMarker.current || rowsMarker.current.style.left)) return;
      current.current = frame;
      const left = `${((frame + 0.5) / Math.max(1, count)) * 100}%`;
      if (marker.current) marker.current.style.left = left;
      if (rowsMarker.current) rowsMarker.current.style.left = left;
      const t = track.current;
      if (t) {
        t.setAttribute('aria-valuenow', String(frame));
        t.setAttribute('aria-valuetext', `Frame ${frame} of ${count}, ${(frame / (fps || 25)).toFixed(2)} s`);
      }
    };
    position.current(current.current);
    return () => {
      position.current = null;
    };
  }, [count, fps]);

  const frameAt = (clientX: number) => {
    const rect = track.current!.getBoundingClientRect();
    const x = Math.min(Math.max(0, clientX - rect.left), rect.width - 0.001);
    return Math.min(count - 1, Math.floor((x / rect.width) * count));
  };

  const onPointerDown = (e: PointerEvent) => {
    if (e.button !== 0) return;
    track.current?.setPointerCapture(e.pointerId);
    track.current?.focus();
    onSeek(frameAt(e.clientX));
  };
  // Dragging: at most one seek per animation frame.
  const dragTo = useRef<number | null>(null);
  const onPointerMove = (e: PointerEvent) => {
    if (!track.current?.hasPointerCapture(e.pointerId)) return;
    if (dragTo.current === null) {
      requestAnimationFrame(() => {
        if (dragTo.current !== null) onSeek(dragTo.current);
        dragTo.current = null;
      });
    }
    dragTo.current = frameAt(e.clientX);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const big = Math.max(1, data?.block_frames ?? Math.round(fps || 25));
    const to = { Home: 0, End: count - 1, PageUp: current.current - big, PageDown: current.current + big }[e.key];
    if (to === undefined) return; // arrows, comma and period: the player steps one frame
    e.preventDefault();
    e.stopPropagation();
    onSeek(Math.max(0, Math.min(count - 1, to)));
  };

  const height = Math.max(1, lanes.length) * (LANE_H + GAP) + GAP;
  return (
    <div class="timeline">
      <ul class="lanes" aria-hidden="true">
        {lanes.map((lane) => (
          <li key={lane.label} class={filter.hidden.has(lane.label) ? 'dim' : ''} style={{ height: `${LANE_H + GAP}px` }}>
            <span class="swatch" style={{ background: labelColor(lane.label) }} />
            {lane.label}
          </li>
        ))}
      </ul>
      <div
        ref={track}
        class="track"
        role="slider"
        tabIndex={0}
        aria-label="Timeline"
        aria-valuemin={0}
        aria-valuemax={Math.max(0, count - 1)}
        aria-valuenow={0}
        data-testid="timeline"
        data-frame-count={count}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onKeyDown={onKeyDown}
      >
        <canvas ref={canvas} style={{ height: `${height}px` }} />
        <div ref={marker} class="marker" />
        {lanes.length === 0 && <span class="track-empty">No detections</span>}
      </div>
      {tracks && tracks.length > 0 ? (
        <TrackRows
          tracks={tracks}
          lines={lines ?? NO_LINES}
          count={count}
          filter={filter}
          onSeek={onSeek}
          marker={rowsMarker}
          place={() => position.current?.(current.current)}
        />
      ) : (
        tracksNote && <div class="track-rows-head muted">{tracksNote}</div>
      )}
    </div>
  );
}

interface Crossing {
  frame: number;
  line: string;
  direction: 'in' | 'out';
}

interface RowsProps {
  tracks: TrackSummary[];
  lines: LineResult[];
  count: number;
  filter: Filter;
  onSeek(frame: number): void;
  marker: { current: HTMLDivElement | null };
  /** Puts the marker at the frame shown (after the rows mount or change). */
  place(): void;
}

function TrackRows({ tracks, lines, count, filter, onSeek, marker, place }: RowsProps) {
  const [all, setAll] = useState(false);
  const crossings = useMemo(() => {
    const byTrack = new Map<number, Crossing[]>();
    for (const line of lines) {
      for (const e of line.events ?? []) {
        let list = byTrack.get(e.track_id);
        if (!list) byTrack.set(e.track_id, (list = []));
        list.push({ frame: e.frame, line: line.name, direction: e.direction });
      }
    }
    return byTrack;
  }, [lines]);
  const visible = useMemo(() => tracks.filter((t) => !filter.hidden.has(t.label)), [tracks, filter.hidden]);
  const rows = useMemo(() => {
    const span = (t: TrackSummary) => t.last_frame - t.first_frame;
    const chosen = all || visible.length <= TRACK_ROWS ? visible : [...visible].sort((a, b) => span(b) - span(a) || a.id - b.id).slice(0, TRACK_ROWS);
    return [...chosen].sort((a, b) => a.first_frame - b.first_frame || a.id - b.id);
  }, [visible, all]);

  // A fresh marker element (the rows appeared, or their number changed) gets its place at once.
  useEffect(() => {
    if (marker.current) marker.current.style.left = '';
    place();
  }, [rows.length > 0]);

  const pct = (frame: number) => `${(Math.min(Math.max(0, frame), count) / Math.max(1, count)) * 100}%`;
  const hiddenCount = tracks.length - visible.length;
  return (
    <>
      <div class="track-rows-head">
        <span class="muted" data-testid="tracks-shown">
          {rows.length < visible.length
            ? `Tracks: the ${rows.length} longest of ${visible.length}`
            : `Tracks: ${visible.length}`}
          {hiddenCount > 0 ? ` (${hiddenCount} of hidden classes)` : ''}
        </span>
        {visible.length > TRACK_ROWS && (
          <button type="button" class="button link" onClick={() => setAll(!all)} data-testid="tracks-show-all" aria-expanded={all}>
            {all ? `Show the longest ${TRACK_ROWS}` : `Show all ${visible.length}`}
          </button>
        )}
      </div>
      {rows.length > 0 && (
        <div class="track-rows">
        <ol class="track-list" aria-label="Tracks" data-testid="track-rows">
          {rows.map((t) => {
            const marks = crossings.get(t.id) ?? [];
            const name = `${t.label} #${t.id}`;
            const span = `frames ${t.first_frame} to ${t.last_frame}, ${t.dwell_s.toFixed(1)} s`;
            const crossed = marks.length ? `, ${marks.length} line crossing${marks.length === 1 ? '' : 's'}` : '';
            return (
              <li key={t.id}>
                <button
                  type="button"
                  class="track-row"
                  aria-label={`${name}, ${span}${crossed}: go to frame ${t.first_frame}`}
                  title={`${name}: ${span}${crossed}`}
                  onClick={() => onSeek(t.first_frame)}
                  data-testid="track-row"
                  data-track-id={t.id}
                  data-first-frame={t.first_frame}
                >
                  <span class="track-name">
                    <span class="swatch" style={{ background: labelColor(t.label) }} />
                    {name}
                  </span>
                  <span class="track-lane" aria-hidden="true">
                    <span
                      class="track-bar"
                      style={{
                        left: pct(t.first_frame),
                        width: `${((t.last_frame - t.first_frame + 1) / Math.max(1, count)) * 100}%`,
                        background: labelColor(t.label),
                      }}
                    />
                    {marks.map((m, k) => (
                      <span
                        key={k}
                        class={`tick ${m.direction}`}
                        style={{ left: pct(m.frame + 0.5) }}
                        title={`${m.line}: ${m.direction} at frame ${m.frame}`}
                        data-line={m.line}
                        data-direction={m.direction}
                        data-frame={m.frame}
                      />
                    ))}
                  </span>
                </button>
              </li>
            );
          })}
        </ol>
        <div ref={marker} class="marker rows-marker" aria-hidden="true" />
        </div>
      )}
    </>
  );
}

// The timeline under the player: one lane per class, a block wherever that class was seen with a
// score at or above the threshold (block k covers frames [k*B, (k+1)*B)), a marker at the
// playhead. Click or drag seeks; it is a slider for keyboards and screen readers. The track's
// full width maps linearly onto frames [0, frame_count).
import { useEffect, useRef } from 'preact/hooks';

import type { Timeline as TimelineData } from '../api';
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
}

const LANE_H = 14;
const GAP = 2;

export function Timeline({ data, frameCount, fps, filter, onSeek, position }: Props) {
  const track = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const marker = useRef<HTMLDivElement>(null);
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
      if (frame === current.current && marker.current?.style.left) return;
      current.current = frame;
      if (marker.current) marker.current.style.left = `${((frame + 0.5) / Math.max(1, count)) * 100}%`;
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
    </div>
  );
}

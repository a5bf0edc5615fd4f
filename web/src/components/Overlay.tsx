// Drawing a frame's boxes on the canvas that lies exactly over the <video>. The canvas has the
// video element's CSS box; the picture inside it is letterboxed (object-fit: contain), so the
// boxes (in the probe's displayed-frame pixels: video.width × video.height) are scaled into the
// picture's rectangle, not the element's. Under the boxes: the video's zones and counting lines,
// in the same units.
import type { RefObject } from 'preact';

import type { Frame, LineOption, ZoneOption } from '../api';
import { labelColor, textOn } from '../format';

export interface Filter {
  hidden: ReadonlySet<string>;
  threshold: number;
}

/** Where the picture lies inside a box of `boxW`×`boxH` CSS pixels (object-fit: contain). */
export function contentRect(boxW: number, boxH: number, pictureW: number, pictureH: number) {
  if (pictureW <= 0 || pictureH <= 0) return { x: 0, y: 0, width: boxW, height: boxH };
  const scale = Math.min(boxW / pictureW, boxH / pictureH);
  const width = pictureW * scale;
  const height = pictureH * scale;
  return { x: (boxW - width) / 2, y: (boxH - height) / 2, width, height };
}

/** Sizes the canvas's backing store to its CSS size × devicePixelRatio; its CSS size. */
function fit(canvas: HTMLCanvasElement): { width: number; height: number; dpr: number } {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(width * dpr));
  const h = Math.max(1, Math.round(height * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  return { width, height, dpr };
}

/** A zone or line of the video's options, in the displayed frame's pixels, with its name. */
export type Shape =
  | { kind: 'zone'; name: string; points: [number, number][] }
  | { kind: 'line'; name: string; start: [number, number]; end: [number, number] };

/**
 * The zones and lines of a video's options in pixels of its `width`×`height` displayed frame
 * (normalized ones scaled), unnamed ones called zone-1, line-1, … by position as the server
 * names them.
 */
export function resolveShapes(
  options: { zones?: ZoneOption[] | null; lines?: LineOption[] | null },
  width: number,
  height: number,
): Shape[] {
  const px = (p: [number, number], normalized?: boolean): [number, number] =>
    normalized ? [p[0] * width, p[1] * height] : [p[0], p[1]];
  const shapes: Shape[] = [];
  (options.zones ?? []).forEach((z, i) => {
    if (!Array.isArray(z?.points) || z.points.length < 3) return;
    shapes.push({ kind: 'zone', name: z.name || `zone-${i + 1}`, points: z.points.map((p) => px(p, z.normalized)) });
  });
  (options.lines ?? []).forEach((l, i) => {
    if (!Array.isArray(l?.start) || !Array.isArray(l?.end)) return;
    shapes.push({ kind: 'line', name: l.name || `line-${i + 1}`, start: px(l.start, l.normalized), end: px(l.end, l.normalized) });
  });
  return shapes;
}

const SHAPE_COLOR = '#ffffff';
const SHAPE_HALO = 'rgba(0, 0, 0, 0.6)';

/** A name on a dark chip at (x, y), kept inside the canvas. */
function chip(ctx: CanvasRenderingContext2D, text: string, x: number, y: number, width: number, height: number) {
  const tw = ctx.measureText(text).width + 8;
  const th = 16;
  const tx = Math.min(Math.max(0, x), Math.max(0, width - tw));
  const ty = Math.min(Math.max(0, y), Math.max(0, height - th));
  ctx.fillStyle = 'rgba(17, 24, 39, 0.75)';
  ctx.fillRect(tx, ty, tw, th);
  ctx.fillStyle = SHAPE_COLOR;
  ctx.fillText(text, tx + 4, ty + 2);
}

/** A stroke with a dark halo under it, readable on light and dark pictures alike. */
function haloStroke(ctx: CanvasRenderingContext2D, width: number) {
  ctx.strokeStyle = SHAPE_HALO;
  ctx.lineWidth = width + 2;
  ctx.stroke();
  ctx.strokeStyle = SHAPE_COLOR;
  ctx.lineWidth = width;
  ctx.stroke();
}

/** Zones (a translucent polygon) and lines (with an arrow to the side crossed `in`). */
function drawShapes(
  ctx: CanvasRenderingContext2D,
  shapes: readonly Shape[],
  map: (p: [number, number]) => [number, number],
  width: number,
  height: number,
) {
  ctx.save();
  ctx.lineJoin = 'round';
  ctx.lineCap = 'round';
  for (const s of shapes) {
    if (s.kind === 'zone') {
      const pts = s.points.map(map);
      ctx.beginPath();
      pts.forEach(([x, y], k) => (k === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
      ctx.closePath();
      ctx.fillStyle = 'rgba(255, 255, 255, 0.12)';
      ctx.fill();
      haloStroke(ctx, 2);
      // The name at the topmost corner.
      const top = pts.reduce((a, b) => (b[1] < a[1] || (b[1] === a[1] && b[0] < a[0]) ? b : a));
      chip(ctx, s.name, top[0] + 4, top[1] + 4, width, height);
    } else {
      const [x1, y1] = map(s.start);
      const [x2, y2] = map(s.end);
      ctx.beginPath();
      ctx.moveTo(x1, y1);
      ctx.lineTo(x2, y2);
      haloStroke(ctx, 3);
      const length = Math.hypot(x2 - x1, y2 - y1);
      if (length < 1) continue;
      // Walking from start to end, `in` is crossing to the right-hand side; with y pointing
      // down that side lies along (-dy, dx).
      const nx = -(y2 - y1) / length;
      const ny = (x2 - x1) / length;
      const mx = (x1 + x2) / 2;
      const my = (y1 + y2) / 2;
      const reach = Math.min(28, Math.max(12, length / 4));
      const tipX = mx + nx * reach;
      const tipY = my + ny * reach;
      ctx.beginPath();
      ctx.moveTo(mx, my);
      ctx.lineTo(tipX, tipY);
      haloStroke(ctx, 2);
      // The arrowhead: two short strokes back from the tip.
      const head = 7;
      const bx = tipX - nx * head;
      const by = tipY - ny * head;
      ctx.beginPath();
      ctx.moveTo(bx + ny * head * 0.6, by - nx * head * 0.6);
      ctx.lineTo(tipX, tipY);
      ctx.lineTo(bx - ny * head * 0.6, by + nx * head * 0.6);
      haloStroke(ctx, 2);
      chip(ctx, 'in', tipX + nx * 12 - 8, tipY + ny * 12 - 8, width, height);
      // The name next to the start.
      chip(ctx, s.name, x1 + 4, y1 + 4, width, height);
    }
  }
  ctx.restore();
}

/**
 * Draws `frame`'s detections that pass `filter` (nothing for null), predicted boxes dashed,
 * over the zones and lines in `shapes`, and records what was drawn in `data-frame` /
 * `data-boxes` / `data-predicted` / `data-shapes` (the e2e test reads them). Returns the
 * number of boxes.
 */
export function drawOverlay(
  canvas: HTMLCanvasElement,
  video: HTMLVideoElement,
  probe: { width: number; height: number },
  frame: Frame | null,
  filter: Filter,
  shapes: readonly Shape[] = [],
): number {
  const { width, height, dpr } = fit(canvas);
  const ctx = canvas.getContext('2d');
  if (!ctx) return 0;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  let drawn = 0;
  let predicted = 0;
  // The browser's picture size carries the pixel aspect ratio; the probe's, the box units.
  const pictureW = video.videoWidth || probe.width;
  const pictureH = video.videoHeight || probe.height;
  const rect = contentRect(width, height, pictureW, pictureH);
  const sx = probe.width > 0 ? rect.width / probe.width : 1;
  const sy = probe.height > 0 ? rect.height / probe.height : 1;
  ctx.font = '600 12px system-ui, sans-serif';
  ctx.textBaseline = 'top';
  if (shapes.length > 0) {
    drawShapes(ctx, shapes, ([x, y]) => [rect.x + x * sx, rect.y + y * sy], width, height);
  }
  if (frame) {
    ctx.lineWidth = 3;
    ctx.lineJoin = 'miter';
    for (const d of frame.detections) {
      if (filter.hidden.has(d.label) || d.score < filter.threshold) continue;
      const [x1, y1, x2, y2] = d.box;
      const x = rect.x + x1 * sx;
      const y = rect.y + y1 * sy;
      const w = (x2 - x1) * sx;
      const h = (y2 - y1) * sy;
      const color = labelColor(d.label);
      ctx.strokeStyle = color;
      // A predicted box (carried by its track on a frame the detector skipped) is dashed.
      if (d.predicted) {
        ctx.setLineDash([6, 4]);
        predicted++;
      }
      ctx.strokeRect(x, y, w, h);
      if (d.predicted) ctx.setLineDash([]);
      // The label sits on the box's top edge, above it when there is room, else inside.
      // The track id tells one object from another of its class across frames.
      const text = `${d.label}${d.track_id != null ? ` #${d.track_id}` : ''} ${d.score.toFixed(2)}`;
      const tw = ctx.measureText(text).width + 8;
      const th = 16;
      const ty = y - th >= 0 ? y - th : y;
      const tx = Math.min(Math.max(0, x - 1.5), Math.max(0, width - tw));
      ctx.fillStyle = color;
      ctx.fillRect(tx, ty, tw, th);
      ctx.fillStyle = textOn(color);
      ctx.fillText(text, tx + 4, ty + 2);
      drawn++;
    }
  }
  canvas.dataset.frame = String(frame ? frame.index : -1);
  canvas.dataset.boxes = String(drawn);
  canvas.dataset.predicted = String(predicted);
  canvas.dataset.shapes = String(shapes.length);
  return drawn;
}

/** The canvas itself: decorative for assistive technology (the summary lists what was found). */
export function OverlayCanvas({ canvasRef }: { canvasRef: RefObject<HTMLCanvasElement | null> }) {
  return <canvas ref={canvasRef} class="overlay" data-testid="overlay" data-frame="-1" data-boxes="0" data-predicted="0" data-shapes="0" aria-hidden="true" />;
}

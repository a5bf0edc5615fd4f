// Drawing a frame's boxes on the canvas that lies exactly over the <video>. The canvas has the
// video element's CSS box; the picture inside it is letterboxed (object-fit: contain), so the
// boxes (in the probe's displayed-frame pixels: video.width × video.height) are scaled into the
// picture's rectangle, not the element's.
import type { RefObject } from 'preact';

import type { Frame } from '../api';
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

/**
 * Draws `frame`'s detections that pass `filter` (nothing for null) and records what was drawn
 * in `data-frame` / `data-boxes` (the e2e test reads them). Returns the number of boxes.
 */
export function drawOverlay(
  canvas: HTMLCanvasElement,
  video: HTMLVideoElement,
  probe: { width: number; height: number },
  frame: Frame | null,
  filter: Filter,
): number {
  const { width, height, dpr } = fit(canvas);
  const ctx = canvas.getContext('2d');
  if (!ctx) return 0;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  let drawn = 0;
  if (frame) {
    // The browser's picture size carries the pixel aspect ratio; the probe's, the box units.
    const pictureW = video.videoWidth || probe.width;
    const pictureH = video.videoHeight || probe.height;
    const rect = contentRect(width, height, pictureW, pictureH);
    const sx = rect.width / probe.width;
    const sy = rect.height / probe.height;
    ctx.lineWidth = 3;
    ctx.lineJoin = 'miter';
    ctx.font = '600 12px system-ui, sans-serif';
    ctx.textBaseline = 'top';
    for (const d of frame.detections) {
      if (filter.hidden.has(d.label) || d.score < filter.threshold) continue;
      const [x1, y1, x2, y2] = d.box;
      const x = rect.x + x1 * sx;
      const y = rect.y + y1 * sy;
      const w = (x2 - x1) * sx;
      const h = (y2 - y1) * sy;
      const color = labelColor(d.label);
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);
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
  return drawn;
}

/** The canvas itself: decorative for assistive technology (the summary lists what was found). */
export function OverlayCanvas({ canvasRef }: { canvasRef: RefObject<HTMLCanvasElement | null> }) {
  return <canvas ref={canvasRef} class="overlay" data-testid="overlay" data-frame="-1" data-boxes="0" aria-hidden="true" />;
}

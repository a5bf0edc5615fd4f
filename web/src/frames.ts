// Detections by frame range: windows of WINDOW frames fetched from /videos/<id>/frames around
// the playhead (and the next one ahead), at most MAX_WINDOWS kept. The whole result of a long
// video would be far too big to fetch at once.
import { api, API } from './api';
import type { Frame, FramesPage } from './api';

export const WINDOW = 300;
const MAX_WINDOWS = 10;
/** After a failed fetch, a window is not asked for again before this long. */
const RETRY_MS = 2000;

interface Slot {
  frames: Frame[] | null;
  used: number;
  failedAt?: number;
}

export class FrameCache {
  private readonly slots = new Map<number, Slot>();
  private readonly listeners = new Set<() => void>();
  private clock = 0;
  /** The last fetch error, for the page to show. */
  error: string | null = null;

  constructor(
    private readonly videoId: string,
    readonly frameCount: number,
    readonly fps: number,
  ) {}

  /** Called whenever a window arrives. */
  onLoad(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get frameMs(): number {
    return this.fps > 0 ? 1000 / this.fps : 40;
  }

  private windows(): number {
    return Math.max(1, Math.ceil(this.frameCount / WINDOW));
  }

  /** Starts fetching window `w` unless it is here, on its way, or failed a moment ago. */
  ensure(w: number): void {
    if (w < 0 || w >= this.windows()) return;
    const slot = this.slots.get(w);
    if (slot) {
      slot.used = ++this.clock;
      if (!slot.failedAt || Date.now() - slot.failedAt < RETRY_MS) return;
    }
    const fresh: Slot = { frames: null, used: ++this.clock };
    this.slots.set(w, fresh);
    const from = w * WINDOW;
    const to = Math.min(from + WINDOW, this.frameCount);
    api<FramesPage>(`${API}/videos/${this.videoId}/frames?from=${from}&to=${to}`)
      .then((page) => {
        fresh.frames = [...page.frames].sort((a, b) => a.pts_ms - b.pts_ms);
        this.error = null;
        this.evict(w);
        for (const listener of this.listeners) listener();
      })
      .catch((e: unknown) => {
        fresh.failedAt = Date.now();
        this.error = e instanceof Error ? e.message : String(e);
        for (const listener of this.listeners) listener();
      });
  }

  private evict(keep: number): void {
    while (this.slots.size > MAX_WINDOWS) {
      let oldest = -1;
      let oldestUse = Infinity;
      for (const [w, slot] of this.slots) {
        if (Math.abs(w - keep) > 1 && slot.used < oldestUse) {
          oldest = w;
          oldestUse = slot.used;
        }
      }
      if (oldest < 0) return;
      this.slots.delete(oldest);
    }
  }

  private loaded(w: number): Frame[] | null {
    return this.slots.get(w)?.frames ?? null;
  }

  /** Frame `index` if its window is here. */
  frameAt(index: number): Frame | null {
    const frames = this.loaded(Math.floor(index / WINDOW));
    if (!frames) return null;
    // Frames are in presentation order and mostly all present: look where it should be first.
    const guess = frames[index % WINDOW];
    if (guess?.index === index) return guess;
    return frames.find((f) => f.index === index) ?? null;
  }

  /** Whether window of frame `index` is here. */
  has(index: number): boolean {
    return this.loaded(Math.floor(index / WINDOW)) !== null;
  }

  /**
   * The frame shown at `ms` (media time in milliseconds): the one whose pts is the greatest
   * ≤ ms. Null while the windows that decide it are not here yet (they are then fetched).
   */
  find(ms: number): Frame | null {
    if (this.frameCount <= 0) return null;
    const estimate = Math.min(this.frameCount - 1, Math.max(0, Math.floor(ms / this.frameMs)));
    const w = Math.floor(estimate / WINDOW);
    this.ensure(w);
    this.ensure(w + 1); // prefetch what plays next
    if (estimate % WINDOW < 30) this.ensure(w - 1);
    return this.search(w, ms, 0);
  }

  private search(w: number, ms: number, depth: number): Frame | null {
    const frames = this.loaded(w);
    if (!frames || depth > 2) return null;
    if (frames.length === 0 || ms < frames[0].pts_ms) {
      // Before this window's first frame: the answer is in an earlier window.
      if (w === 0) return null;
      this.ensure(w - 1);
      return this.search(w - 1, ms, depth + 1);
    }
    let lo = 0;
    let hi = frames.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (frames[mid].pts_ms <= ms) lo = mid;
      else hi = mid - 1;
    }
    const found = frames[lo];
    if (lo < frames.length - 1 || w === this.windows() - 1) return found;
    // The last frame of its window: a frame of the next window may come first.
    const next = this.loaded(w + 1);
    if (next) {
      if (next.length > 0 && next[0].pts_ms <= ms) return this.search(w + 1, ms, depth + 1);
      return found;
    }
    this.ensure(w + 1);
    // The next frame is at least about a frame's duration later.
    return ms - found.pts_ms < this.frameMs * 0.9 ? found : null;
  }
}

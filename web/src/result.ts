// What the review needs from the full result (GET /videos/<id>/result) beside the frames: the
// tracks, and the zones' and lines' events. The document holds every frame first, hundreds of
// megabytes for a long video, so it is read as a stream and the `frames` array is dropped as
// its bytes arrive: only the few kilobytes around it are kept and parsed.
import { API, request } from './api';
import type { LineResult, TrackSummary, ZoneResult } from './api';

/** Results up to this size are read without asking; larger ones wait for a click. */
export const AUTO_BYTES = 64 * 1_000_000;

export interface ResultExtras {
  tracks: TrackSummary[];
  zones: ZoneResult[];
  lines: LineResult[];
}

/** Thrown (before the body is read) when the result is larger than the limit asked for. */
export class TooLarge extends Error {
  constructor(readonly bytes: number) {
    super(`the result is ${bytes} bytes`);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const FRAMES = [0x66, 0x72, 0x61, 0x6d, 0x65, 0x73]; // "frames"

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * A JSON document's bytes with the contents of its top-level `frames` array left out (it
 * becomes `[]`). Works on bytes: every structural character of JSON is ASCII, and no byte of
 * a multi-byte UTF-8 character is.
 */
export class FramesDropper {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private skipping = false;
  /** The top-level string being read (a key, most likely): its first bytes, or null. */
  private key: number[] | null = null;
  /** 1: the key `frames` was just read; 2: and its colon. */
  private expect = 0;
  private readonly parts: Uint8Array[] = [];

  push(chunk: Uint8Array): void {
    let keepFrom = this.skipping ? -1 : 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) {
          this.inString = false;
          if (this.key) {
            const k = this.key;
            this.expect = k.length === FRAMES.length && k.every((b, j) => b === FRAMES[j]) ? 1 : 0;
            this.key = null;
          }
        } else if (this.key && this.key.length <= FRAMES.length) this.key.push(c);
        continue;
      }
      if (isSpace(c)) continue;
      if (c === QUOTE) {
        this.inString = true;
        this.key = this.depth === 1 && !this.skipping ? [] : null;
        this.expect = 0;
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        if (c === OPEN_ARRAY && this.depth === 1 && this.expect === 2 && !this.skipping) {
          // Keep up to the `[`, drop what follows up to its `]`.
          this.parts.push(chunk.slice(keepFrom, i + 1));
          keepFrom = -1;
          this.skipping = true;
        }
        this.depth++;
        this.expect = 0;
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        this.depth--;
        if (this.skipping && this.depth === 1) {
          this.skipping = false;
          keepFrom = i;
        }
        this.expect = 0;
      } else if (c === COLON && this.expect === 1) {
        this.expect = 2;
      } else {
        this.expect = 0;
      }
    }
    if (keepFrom >= 0 && keepFrom < chunk.length) this.parts.push(chunk.slice(keepFrom));
  }

  /** What was kept, as text. */
  text(): string {
    const length = this.parts.reduce((n, p) => n + p.length, 0);
    const all = new Uint8Array(length);
    let at = 0;
    for (const p of this.parts) {
      all.set(p, at);
      at += p.length;
    }
    return new TextDecoder().decode(all);
  }
}

/**
 * The video's tracks, zones and lines from its result. Throws TooLarge, before reading the
 * body, when the server says it is bigger than `maxBytes`.
 */
export async function loadResultExtras(videoId: string, maxBytes: number, signal?: AbortSignal): Promise<ResultExtras> {
  const response = await request(`${API}/videos/${videoId}/result`, { signal });
  const length = Number(response.headers.get('Content-Length'));
  if (Number.isFinite(length) && length > maxBytes) {
    void response.body?.cancel().catch(() => undefined);
    throw new TooLarge(length);
  }
  const dropper = new FramesDropper();
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      dropper.push(value);
    }
  } else {
    dropper.push(new Uint8Array(await response.arrayBuffer()));
  }
  const doc = JSON.parse(dropper.text()) as Partial<ResultExtras>;
  return { tracks: doc.tracks ?? [], zones: doc.zones ?? [], lines: doc.lines ?? [] };
}

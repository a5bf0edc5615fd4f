// Server-sent events over fetch(): EventSource cannot send an Authorization header, and the
// token must not go into a URL. Parses text/event-stream itself and reconnects with back-off.
import { ApiError, errorFrom, isAbort } from './api';
import { expireSession, getToken } from './auth';

export interface SseHandlers {
  /** One complete event: its name (`message` when the stream gave none) and its data. */
  onEvent(name: string, data: string): void;
  /** The stream is open (after each (re)connect). */
  onOpen?(): void;
  /** The stream failed or ended; it reconnects after `retryMs` unless `fatal`. */
  onDrop?(info: { error?: ApiError; retryMs: number; fatal: boolean }): void;
}

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;

/** Splits a text/event-stream into events; feed it decoded text as it comes. */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private afterCR = false;
  constructor(private readonly emit: (name: string, data: string) => void) {}

  push(text: string): void {
    // A CR that ended the previous chunk may be the first half of a CRLF.
    if (this.afterCR && text.startsWith('\n')) text = text.slice(1);
    this.afterCR = false;
    this.buffer += text;
    let start = 0;
    for (;;) {
      const lf = this.buffer.indexOf('\n', start);
      const cr = this.buffer.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        end = cr;
        if (cr === this.buffer.length - 1) this.afterCR = true;
        next = this.buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      // A blank line ends the event; one with no data is not dispatched (as in the spec).
      if (this.data.length > 0) this.emit(this.event || 'message', this.data.join('\n'));
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return; // a comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    // `id` and `retry` are not used: every (re)connect starts with the current state.
  }
}

/**
 * Follows the event stream at `path` until the returned function is called. Reconnects when the
 * stream ends or fails, waiting 1 s, 2 s, 4 s, … up to 30 s (the wait starts over once a
 * connection has delivered an event). 401 ends the session; 403 and 404 stop for good.
 */
export function followEvents(path: string, handlers: SseHandlers): () => void {
  let stopped = false;
  let controller: AbortController | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let delay = MIN_DELAY_MS;

  const retry = (error?: ApiError, atLeastMs = 0) => {
    if (stopped) return;
    const wait = Math.max(delay, atLeastMs);
    handlers.onDrop?.({ error, retryMs: wait, fatal: false });
    delay = Math.min(delay * 2, MAX_DELAY_MS);
    timer = setTimeout(connect, wait);
  };

  const connect = async () => {
    if (stopped) return;
    const token = getToken();
    if (!token) {
      expireSession();
      return;
    }
    controller = new AbortController();
    let response: Response;
    try {
      response = await fetch(path, {
        headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}` },
        signal: controller.signal,
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (error) {
      if (!isAbort(error)) retry(new ApiError(0, 'network_error', 'cannot reach the server'));
      return;
    }
    if (!response.ok || !response.body) {
      const error = await errorFrom(response);
      if (response.status === 401) {
        stopped = true;
        expireSession();
        handlers.onDrop?.({ error, retryMs: 0, fatal: true });
      } else if (response.status === 403 || response.status === 404 || response.status === 405) {
        stopped = true;
        handlers.onDrop?.({ error, retryMs: 0, fatal: true });
      } else {
        // 429 too_many_streams (and 5xx): wait at least what the server asks.
        const after = Number(response.headers.get('Retry-After'));
        retry(error, Number.isFinite(after) && after > 0 ? after * 1000 : 0);
      }
      return;
    }
    handlers.onOpen?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser((name, data) => {
      delay = MIN_DELAY_MS;
      if (!stopped) handlers.onEvent(name, data);
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch (error) {
      if (isAbort(error) || stopped) return;
    }
    // The server closed the stream (a final state, a restart): come back unless stopped.
    retry();
  };

  void connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
  };
}

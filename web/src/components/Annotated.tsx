// The video's annotated MP4 (every frame with its boxes drawn, made on the server): asked for
// with POST /annotated, followed with GET /annotated once a second while queued or running, and
// once made, saved through a signed link (POST /file-url?file=annotated): a plain <a download>
// cannot send the bearer header, and the token must never be put in a URL.
import { useEffect, useRef, useState } from 'preact/hooks';

import { api, API, ApiError, errorMessage, isAbort } from '../api';
import type { AnnotationView, FileUrl } from '../api';
import { formatBytes } from '../format';
import { Alert } from './Alert';

/** How often the status is asked for while the file is being made. */
const POLL_MS = 1000;
/** After a failed status request, wait this long before the next one. */
const POLL_ERROR_MS = 5000;
/** A link older than this is replaced (links live an hour at most). */
const LINK_MAX_AGE_MS = 50 * 60_000;
/** A link this close to its expiry counts as expired. */
const LINK_EARLY_MS = 60_000;

interface Link {
  url: string;
  /** When it was fetched (ms). */
  at: number;
  /** When it stops opening the file (ms). */
  expires: number;
}

const pending = (view: AnnotationView | null) => view?.status === 'queued' || view?.status === 'running';

/** When `link` should be replaced: 50 min after it was fetched, or a minute before it expires. */
const staleAt = (link: Link) => Math.min(link.at + LINK_MAX_AGE_MS, link.expires - LINK_EARLY_MS);

export function Annotated({ videoId, stem }: { videoId: string; stem: string }) {
  const [view, setView] = useState<AnnotationView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [link, setLink] = useState<Link | null>(null);
  const [linkFailed, setLinkFailed] = useState(false);
  const linkRef = useRef<Link | null>(null);
  const mounted = useRef(true);
  const anchor = useRef<HTMLAnchorElement>(null);
  const relay = useRef(false);
  const path = `${API}/videos/${videoId}/annotated`;

  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  // The status on load, then once a second while it is queued or running; stopped on unmount.
  const status = view?.status;
  useEffect(() => {
    if (view !== null && !pending(view)) return;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const next = await api<AnnotationView>(path, { signal: abort.signal });
        if (abort.signal.aborted) return;
        setError(null);
        setView(next);
        // A new status re-runs this effect; the same one polls again from here.
        if (pending(next) && next.status === status) timer = setTimeout(poll, POLL_MS);
      } catch (e) {
        if (isAbort(e) || abort.signal.aborted) return;
        setError(errorMessage(e));
        // The video is gone (404) or the session ended (401): nothing more to follow.
        if (e instanceof ApiError && (e.status === 404 || e.status === 401)) return;
        timer = setTimeout(poll, POLL_ERROR_MS);
      }
    };
    // The first status at once; later ones (after a POST changed the view) a second later.
    timer = setTimeout(poll, view === null ? 0 : POLL_MS);
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [videoId, status]);

  /** A fresh signed link to the file (also kept in a ref: a click handler reads it at once). */
  const fetchLink = async (): Promise<Link | null> => {
    setLinkFailed(false);
    try {
      const answer = await api<FileUrl>(`${API}/videos/${videoId}/file-url?file=annotated`, { method: 'POST' });
      const at = Date.now();
      const expires = Date.parse(answer.expires_at);
      const fresh = { url: answer.url, at, expires: Number.isFinite(expires) ? expires : at + LINK_MAX_AGE_MS };
      if (!mounted.current) return null;
      linkRef.current = fresh;
      setLink(fresh);
      return fresh;
    } catch (e) {
      if (mounted.current) {
        setError(errorMessage(e));
        setLinkFailed(true);
      }
      return null;
    }
  };

  // Once made: a link, replaced before it gets old (a timer in a background tab may fire late:
  // a click checks again).
  const made = status === 'succeeded';
  useEffect(() => {
    if (!made) {
      linkRef.current = null;
      setLink(null);
      return;
    }
    if (!link) {
      void fetchLink();
      return;
    }
    const timer = setTimeout(() => void fetchLink(), Math.max(10_000, staleAt(link) - Date.now()));
    return () => clearTimeout(timer);
  }, [made, link]);

  const make = async () => {
    setBusy(true);
    setError(null);
    try {
      const next = await api<AnnotationView>(path, { method: 'POST' });
      if (mounted.current) setView(next);
    } catch (e) {
      if (mounted.current) setError(errorMessage(e));
    } finally {
      if (mounted.current) setBusy(false);
    }
  };

  const onClick = async (e: MouseEvent) => {
    const current = linkRef.current;
    // The click this handler makes itself goes through with the link it just got.
    if (relay.current || (current && Date.now() < staleAt(current))) {
      relay.current = false;
      return;
    }
    // Expired (or about to): get a new link, then save through it.
    e.preventDefault();
    const fresh = await fetchLink();
    const a = anchor.current;
    if (!fresh || !a) return;
    a.href = fresh.url;
    relay.current = true;
    a.click();
  };

  const name = `${stem}.annotated.mp4`;
  const percent = view ? Math.max(0, Math.min(100, view.percent)) : 0;
  return (
    <div class="annotated" data-testid="annotated" data-status={view?.status ?? 'loading'}>
      <h3 id={`annotated-title-${videoId}`}>Annotated MP4</h3>
      {view === null && !error && <p class="muted small">Loading…</p>}
      {view?.status === 'absent' && (
        <>
          <p class="help">The video with its boxes drawn in, to play anywhere.</p>
          <button type="button" class="button secondary" disabled={busy} onClick={make} data-testid="make-annotated">
            {busy ? 'Asking…' : 'Make annotated MP4'}
          </button>
        </>
      )}
      {pending(view) && view && (
        <>
          <progress
            max={100}
            value={percent}
            aria-labelledby={`annotated-title-${videoId}`}
            data-testid="annotated-progress"
          />
          <p class="small" data-testid="annotated-state">
            {view.status === 'queued' ? 'Waiting to start… ' : 'Drawing boxes… '}
            {Math.floor(percent)}%
            {view.frames_total > 0 && (
              <span class="muted">
                {' '}
                ({view.frames_done} of {view.frames_total} frames)
              </span>
            )}
          </p>
        </>
      )}
      {made && view && link && (
        <p class="annotated-file">
          <a
            ref={anchor}
            class="button secondary"
            href={link.url}
            download={name}
            onClick={onClick}
            data-testid="download-annotated"
            data-size-bytes={view.size_bytes}
          >
            Download annotated MP4
          </a>{' '}
          <span class="muted small" data-testid="annotated-size" data-bytes={view.size_bytes} title={`${view.size_bytes ?? '?'} bytes`}>
            {name}, {formatBytes(view.size_bytes)}
          </span>
        </p>
      )}
      {made && !link && !linkFailed && <p class="muted small">Preparing the download link…</p>}
      {made && !link && linkFailed && (
        <button type="button" class="button secondary" onClick={() => void fetchLink()} data-testid="annotated-link-retry">
          Get the download link again
        </button>
      )}
      {view?.status === 'failed' && (
        <>
          <Alert testid="annotated-error">Making the annotated MP4 failed: {view.error || 'no reason was recorded.'}</Alert>
          <button type="button" class="button secondary" disabled={busy} onClick={make} data-testid="retry-annotated">
            {busy ? 'Asking…' : 'Try again'}
          </button>
        </>
      )}
      {error && <Alert>{error}</Alert>}
    </div>
  );
}

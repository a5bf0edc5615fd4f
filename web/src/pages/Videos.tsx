// `/`: the caller's videos (every user's for admins), newest first, with live status and
// progress from ONE event stream for the whole list, and the upload panel.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

import { api, API, errorMessage, FINAL, STATUSES } from '../api';
import type { StateEvent, User, Video, VideoList } from '../api';
import { followEvents } from '../sse';
import { formatBytes, formatDate, formatDuration, formatFps } from '../format';
import { Link, useTitle } from '../router';
import { Alert } from '../components/Alert';
import { Dialog } from '../components/Dialog';
import { StatusBadge } from '../components/StatusBadge';
import { Upload } from '../components/Upload';

const PAGE = 20;
/** When the list stream is not available, poll this often while a video is still running. */
const POLL_MS = 3000;

type Live = 'connecting' | 'stream' | 'polling' | 'reconnecting';

export function VideosPage({ user }: { user: User }) {
  useTitle('Videos');
  const admin = user.role === 'admin';
  const [status, setStatus] = useState('');
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<VideoList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState<Live>('connecting');
  const [deleting, setDeleting] = useState<Video | null>(null);
  const [notice, setNotice] = useState('');
  const request = useRef(0);
  const pageRef = useRef(page);
  pageRef.current = page;
  const query = useRef({ status, offset });
  query.current = { status, offset };

  const load = useCallback(async () => {
    const ticket = ++request.current;
    const params = new URLSearchParams({ limit: String(PAGE), offset: String(query.current.offset) });
    if (query.current.status) params.set('status', query.current.status);
    if (admin) params.set('all', 'true');
    try {
      const list = await api<VideoList>(`${API}/videos?${params}`);
      // An older answer arriving after a newer one is dropped.
      if (ticket !== request.current) return;
      setPage(list);
      setError(null);
    } catch (e) {
      if (ticket === request.current) setError(errorMessage(e));
    }
  }, [admin]);

  useEffect(() => {
    void load();
  }, [status, offset, load]);

  // Re-fetches asked for by the stream come in bursts: one fetch per burst.
  const reloadTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const reloadSoon = useCallback(() => {
    clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(() => void load(), 150);
  }, [load]);

  // One stream for the whole list: each state event updates its row in place.
  useEffect(() => {
    const stop = followEvents(`${API}/videos/events${admin ? '?all=true' : ''}`, {
      onOpen: () => setLive('stream'),
      onEvent: (name, data) => {
        if (name === 'resync') {
          reloadSoon();
          return;
        }
        if (name !== 'state') return;
        let event: StateEvent;
        try {
          event = JSON.parse(data) as StateEvent;
        } catch {
          return;
        }
        const current = pageRef.current;
        const row = current?.videos.find((v) => v.id === event.id);
        if (row) {
          const filtered = query.current.status && query.current.status !== event.status;
          setPage((p) =>
            p && {
              ...p,
              videos: p.videos.map((v) =>
                v.id === event.id
                  ? { ...v, status: event.status, progress: event.progress, error: event.error, warnings: event.warnings, updated_at: event.updated_at }
                  : v,
              ),
            },
          );
          // A row that no longer matches the status filter leaves at the next fetch.
          if (filtered) reloadSoon();
        } else if (event.status === 'queued' && query.current.offset === 0) {
          // A new video (another tab, the CLI): it belongs at the top of the first page.
          reloadSoon();
        }
      },
      onDrop: ({ fatal }) => {
        // No list stream on this server (an older one): fall back to polling.
        setLive(fatal ? 'polling' : 'reconnecting');
        // Whatever changed while the stream was down is fetched again on reconnect.
        if (!fatal) reloadSoon();
      },
    });
    return () => {
      stop();
      clearTimeout(reloadTimer.current);
    };
  }, [admin, reloadSoon]);

  const running = page?.videos.some((v) => !FINAL.includes(v.status)) ?? false;
  useEffect(() => {
    if (live !== 'polling' || !running) return;
    const timer = setInterval(() => void load(), POLL_MS);
    return () => clearInterval(timer);
  }, [live, running, load]);

  const onUploaded = useCallback(
    (video: Video) => {
      setNotice(`${video.filename} uploaded`);
      if (query.current.offset === 0) void load();
    },
    [load],
  );

  const remove = async () => {
    if (!deleting) return;
    await api(`${API}/videos/${deleting.id}`, { method: 'DELETE' });
    setNotice(`${deleting.filename} deleted`);
    // The last row of a later page: go back one page.
    if (page && page.videos.length === 1 && offset > 0) setOffset(Math.max(0, offset - PAGE));
    else void load();
  };

  const total = page?.total ?? 0;
  const liveText = {
    connecting: 'Connecting…',
    stream: 'Live',
    polling: 'Updating every few seconds',
    reconnecting: 'Reconnecting…',
  }[live];

  return (
    <>
      <div class="page-head">
        <h1>Videos</h1>
        <span class={`live live-${live}`} data-testid="live" data-live={live}>
          {liveText}
        </span>
      </div>
      <p class="sr-only" role="status" aria-live="polite">
        {notice}
      </p>

      <Upload onUploaded={onUploaded} />

      <section class="card" aria-labelledby="videos-list-title">
        <div class="toolbar">
          <h2 id="videos-list-title">{admin ? 'All videos' : 'Your videos'}</h2>
          <div class="field inline">
            <label for="status-filter">Status</label>
            <select
              id="status-filter"
              value={status}
              data-testid="status-filter"
              onChange={(e) => {
                setStatus(e.currentTarget.value);
                setOffset(0);
              }}
            >
              <option value="">All</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </div>
        </div>
        {error && <Alert>{error}</Alert>}
        {page && page.videos.length === 0 && (
          <p class="empty">{status ? `No ${status} videos.` : 'No videos yet: upload one above.'}</p>
        )}
        {page && page.videos.length > 0 && (
          <div class="table-wrap">
            <table class="videos" data-testid="videos-table">
              <caption class="sr-only">
                {admin ? 'All videos' : 'Your videos'}, newest first
              </caption>
              <thead>
                <tr>
                  <th scope="col">File</th>
                  {admin && <th scope="col">Owner</th>}
                  <th scope="col">Status</th>
                  <th scope="col">Progress</th>
                  <th scope="col" class="num">
                    Duration
                  </th>
                  <th scope="col" class="num">
                    Size
                  </th>
                  <th scope="col" class="num">
                    Frames/s
                  </th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.videos.map((v) => (
                  <tr key={v.id} data-video-id={v.id} data-status={v.status}>
                    <td data-label="File" class="file-cell">
                      <Link href={`/videos/${v.id}`}>{v.filename}</Link>
                      {v.status === 'failed' && v.error && <div class="error-text small">{v.error}</div>}
                    </td>
                    {admin && <td data-label="Owner">{v.owner}</td>}
                    <td data-label="Status">
                      <StatusBadge status={v.status} />
                    </td>
                    <td data-label="Progress">
                      <div class="progress-cell">
                        <progress
                          max={100}
                          value={v.progress.percent}
                          aria-label={`Progress of ${v.filename}`}
                          data-testid="progress"
                        />
                        <span class="small">{Math.round(v.progress.percent)}%</span>
                      </div>
                    </td>
                    <td data-label="Duration" class="num">
                      {formatDuration(v.video?.duration_s)}
                    </td>
                    <td data-label="Size" class="num">
                      {formatBytes(v.size_bytes)}
                    </td>
                    <td data-label="Frames/s" class="num">
                      {formatFps(v.video?.fps)}
                    </td>
                    <td data-label="Created">
                      <time dateTime={v.created_at}>{formatDate(v.created_at)}</time>
                    </td>
                    <td class="actions-cell">
                      <button type="button" class="button danger small" onClick={() => setDeleting(v)} data-testid="delete">
                        Delete<span class="sr-only"> {v.filename}</span>
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {page && total > 0 && (
          <nav class="pager" aria-label="Pages">
            <button type="button" class="button secondary" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
              Previous
            </button>
            <span>
              {offset + 1}–{offset + page.videos.length} of {total}
            </span>
            <button
              type="button"
              class="button secondary"
              disabled={page.next_offset == null}
              onClick={() => page.next_offset != null && setOffset(page.next_offset)}
            >
              Next
            </button>
          </nav>
        )}
      </section>

      <Dialog
        open={deleting !== null}
        title="Delete this video?"
        confirmLabel="Delete"
        danger
        onConfirm={remove}
        onClose={() => setDeleting(null)}
        testid="delete-dialog"
      >
        <p>
          <strong>{deleting?.filename}</strong> will be deleted with its result; a running detection is
          stopped. This cannot be undone.
        </p>
      </Dialog>
    </>
  );
}

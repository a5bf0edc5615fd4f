// `/videos/<id>`: a video's status, followed live while it runs; once it succeeded, the review:
// the player with its overlay, class and score filters, the timeline, the summary, downloads.
import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';

import { api, API, errorMessage, FINAL, isAbort, request } from '../api';
import type { LineResult, StateEvent, Summary, Timeline as TimelineData, User, Video, ZoneResult } from '../api';
import { followEvents } from '../sse';
import { FrameCache } from '../frames';
import { formatBytes, formatDate, formatDuration, formatFps, labelColor } from '../format';
import { AUTO_BYTES, loadResultExtras, TooLarge } from '../result';
import type { ResultExtras } from '../result';
import { Link, navigate, useTitle } from '../router';
import { Alert } from '../components/Alert';
import { Annotated } from '../components/Annotated';
import { Dialog } from '../components/Dialog';
import { resolveShapes } from '../components/Overlay';
import { Player } from '../components/Player';
import type { PlayerControl } from '../components/Player';
import { StatusBadge } from '../components/StatusBadge';
import { Timeline } from '../components/Timeline';

export function VideoPage({ id }: { id: string; user: User }) {
  const [video, setVideo] = useState<Video | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [deleting, setDeleting] = useState(false);
  useTitle(video ? video.filename : 'Video');

  const load = async () => {
    try {
      setVideo(await api<Video>(`${API}/videos/${id}`));
      setError(null);
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  useEffect(() => {
    void load();
  }, [id]);

  // While it runs: its own event stream (it ends after a final state). Once final, the view is
  // fetched again for what only it carries (the summary).
  const running = video !== null && !FINAL.includes(video.status);
  useEffect(() => {
    if (!running) return;
    const stop = followEvents(`${API}/videos/${id}/events`, {
      onEvent: (name, data) => {
        if (name !== 'state') return;
        let event: StateEvent;
        try {
          event = JSON.parse(data) as StateEvent;
        } catch {
          return;
        }
        setVideo((v) => v && { ...v, status: event.status, progress: event.progress, error: event.error, warnings: event.warnings });
        if (FINAL.includes(event.status)) {
          stop();
          void load();
        }
      },
      onDrop: ({ fatal, error: e }) => {
        if (fatal && e) setError(e.message);
      },
    });
    return stop;
  }, [id, running]);

  const remove = async () => {
    await api(`${API}/videos/${id}`, { method: 'DELETE' });
    navigate('/');
  };

  if (!video) {
    return (
      <>
        <h1>Video</h1>
        {error ? <Alert>{error}</Alert> : <p role="status">Loading…</p>}
        <p>
          <Link href="/">Back to videos</Link>
        </p>
      </>
    );
  }

  return (
    <>
      <nav aria-label="Breadcrumb" class="breadcrumb">
        <Link href="/">Videos</Link> <span aria-hidden="true">›</span> <span aria-current="page">{video.filename}</span>
      </nav>
      <div class="page-head">
        <h1 class="filename">{video.filename}</h1>
        <StatusBadge status={video.status} />
        <button type="button" class="button danger" onClick={() => setDeleting(true)} data-testid="delete-video">
          Delete
        </button>
      </div>
      {error && <Alert>{error}</Alert>}
      <p class="meta muted">
        {video.video ? `${video.video.width}×${video.video.height}, ${formatFps(video.video.fps)} frames/s, ` : ''}
        {formatDuration(video.video?.duration_s)}, {formatBytes(video.size_bytes)} · uploaded {formatDate(video.created_at)}
        {video.owner ? ` by ${video.owner}` : ''}
      </p>

      {running && (
        <section class="card" aria-labelledby="progress-title">
          <h2 id="progress-title">Processing</h2>
          <progress max={100} value={video.progress.percent} aria-labelledby="progress-title" data-testid="progress" />
          <p role="status">
            {video.status}: {video.progress.frames_done} of {video.progress.frames_total || '?'} frames
            {video.progress.chunks_total ? `, ${video.progress.chunks_done} of ${video.progress.chunks_total} chunks` : ''} (
            {video.progress.percent.toFixed(1)}%)
          </p>
        </section>
      )}
      {(video.status === 'failed' || video.status === 'cancelled') && (
        <section class="card notice-error">
          <h2>{video.status === 'failed' ? 'Processing failed' : 'Processing was cancelled'}</h2>
          <p>{video.error ?? 'No reason was recorded.'}</p>
        </section>
      )}
      {video.status === 'succeeded' && video.video && <Review video={video} />}
      {video.warnings.length > 0 && video.status !== 'succeeded' && <Warnings warnings={video.warnings} />}

      <Dialog
        open={deleting}
        title="Delete this video?"
        confirmLabel="Delete"
        danger
        onConfirm={remove}
        onClose={() => setDeleting(false)}
        testid="delete-dialog"
      >
        <p>
          <strong>{video.filename}</strong> will be deleted with its result. This cannot be undone.
        </p>
      </Dialog>
    </>
  );
}

function Warnings({ warnings }: { warnings: string[] }) {
  return (
    <section class="card" aria-labelledby="warnings-title">
      <h2 id="warnings-title">Warnings</h2>
      <ul class="warnings">
        {warnings.map((w, i) => (
          <li key={i}>{w}</li>
        ))}
      </ul>
    </section>
  );
}

function Review({ video }: { video: Video }) {
  const probe = video.video!;
  const summary = video.summary;
  const [timeline, setTimeline] = useState<TimelineData | null>(null);
  const [timelineError, setTimelineError] = useState<string | null>(null);
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const [threshold, setThreshold] = useState(0);
  const [showBoxes, setShowBoxes] = useState(true);
  const [showShapes, setShowShapes] = useState(true);
  const [framesError, setFramesError] = useState<string | null>(null);
  const control = useRef<PlayerControl | null>(null);
  const position = useRef<((frame: number) => void) | null>(null);

  const frameCount = timeline?.frame_count || probe.frame_count;
  const cache = useMemo(() => new FrameCache(video.id, probe.frame_count, probe.fps), [video.id]);
  const filter = useMemo(() => ({ hidden, threshold }), [hidden, threshold]);
  // The zones and lines of the options, in the displayed frame's pixels.
  const shapes = useMemo(() => resolveShapes(video.options, probe.width, probe.height), [video.options, probe.width, probe.height]);
  const extras = useResultExtras(video);

  useEffect(() => cache.onLoad(() => setFramesError(cache.error)), [cache]);

  useEffect(() => {
    let live = true;
    api<TimelineData>(`${API}/videos/${video.id}/timeline`)
      .then((t) => live && setTimeline(t))
      .catch((e) => live && setTimelineError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, [video.id]);

  const classes = summary?.classes ?? timeline?.lanes.map((l) => ({ label: l.label, class_id: l.class_id, objects: 0, frames: 0 })) ?? [];
  const mostAtOnce = summary?.classes.some((c) => c.most_at_once != null) ?? false;
  const toggle = (label: string, on: boolean) => {
    const next = new Set(hidden);
    if (on) next.delete(label);
    else next.add(label);
    setHidden(next);
  };

  return (
    <div class="review">
      <div class="review-main">
        <Player
          videoId={video.id}
          probe={probe}
          cache={cache}
          filter={filter}
          showBoxes={showBoxes}
          shapes={shapes}
          showShapes={showShapes}
          control={control}
          onPosition={(frame) => position.current?.(frame)}
        >
          <Timeline
            data={timeline}
            frameCount={frameCount}
            fps={timeline?.fps || probe.fps}
            filter={filter}
            position={position}
            onSeek={(frame) => control.current?.seekToFrame(frame)}
            tracks={extras.result?.tracks}
            lines={extras.result?.lines}
            tracksNote={extras.note}
          />
        </Player>
        {timelineError && <Alert>Timeline: {timelineError}</Alert>}
        {framesError && <Alert>Detections: {framesError}</Alert>}
      </div>

      <aside class="review-side">
        <section class="card" aria-labelledby="filters-title">
          <h2 id="filters-title">Show</h2>
          <label class="check">
            <input type="checkbox" checked={showBoxes} onChange={(e) => setShowBoxes(e.currentTarget.checked)} data-testid="overlay-toggle" />
            Show boxes
          </label>
          {shapes.length > 0 && (
            <label class="check">
              <input type="checkbox" checked={showShapes} onChange={(e) => setShowShapes(e.currentTarget.checked)} data-testid="shapes-toggle" />
              Zones &amp; lines
            </label>
          )}
          <div class="field">
            <label for="score-slider">
              Minimum score: <output for="score-slider">{threshold.toFixed(2)}</output>
            </label>
            <input
              id="score-slider"
              type="range"
              min={0}
              max={1}
              step={0.05}
              value={threshold}
              onInput={(e) => setThreshold(Number(e.currentTarget.value))}
              data-testid="score-slider"
            />
          </div>
          <fieldset class="class-toggles">
            <legend>Classes</legend>
            {classes.length === 0 && <p class="muted">Nothing was detected.</p>}
            {classes.map((c) => (
              <label class="check" key={c.label}>
                <input
                  type="checkbox"
                  checked={!hidden.has(c.label)}
                  onChange={(e) => toggle(c.label, e.currentTarget.checked)}
                  data-testid={`class-toggle-${c.label}`}
                  data-color={labelColor(c.label)}
                />
                <span class="swatch" style={{ background: labelColor(c.label) }} aria-hidden="true" />
                {c.label}
                {c.objects > 0 && <span class="muted small"> ({c.objects})</span>}
              </label>
            ))}
            {classes.length > 1 && (
              <div class="actions left">
                <button type="button" class="button link" onClick={() => setHidden(new Set())}>
                  All
                </button>
                <button type="button" class="button link" onClick={() => setHidden(new Set(classes.map((c) => c.label)))}>
                  None
                </button>
              </div>
            )}
          </fieldset>
        </section>

        {summary && (
          <section class="card" aria-labelledby="summary-title" data-testid="summary">
            <h2 id="summary-title">Summary</h2>
            <dl class="facts">
              <dt>Frames processed</dt>
              <dd>{summary.frames_processed}</dd>
              <dt>Skipped frames</dt>
              <dd>{summary.frames_skipped ?? 0}</dd>
              {summary.tracks != null && (
                <>
                  <dt>Different objects</dt>
                  <dd data-testid="tracks-total">{summary.tracks}</dd>
                </>
              )}
              {sampled(video) && (
                <>
                  <dt>Frames detected</dt>
                  <dd data-testid="frames-detected">
                    {summary.frames_detected ?? summary.frames_processed}
                    <span class="muted small"> ({samplingText(video)})</span>
                  </dd>
                  {summary.device_seconds_per_video_hour != null && (
                    <>
                      <dt>Device-seconds per video hour</dt>
                      <dd data-testid="device-seconds-per-hour" title={`${(summary.device_seconds ?? 0).toFixed(1)} device-seconds for this video`}>
                        {formatSeconds(summary.device_seconds_per_video_hour)}
                      </dd>
                    </>
                  )}
                </>
              )}
              <dt>Duration</dt>
              <dd>{formatDuration(summary.video_duration_s)}</dd>
              {summary.wall_time_s != null && (
                <>
                  <dt>Processing time</dt>
                  <dd>{formatDuration(summary.wall_time_s)}</dd>
                </>
              )}
              {summary.most_persons && (
                <>
                  <dt>Most persons at once</dt>
                  <dd>
                    <button
                      type="button"
                      class="button link"
                      data-testid="most-persons"
                      onClick={() => control.current?.seekToFrame(summary.most_persons!.index)}
                    >
                      {summary.most_persons.count} in frame {summary.most_persons.index}
                    </button>
                  </dd>
                </>
              )}
            </dl>
            {summary.classes.length > 0 && (
              <table class="classes compact">
                <caption class="sr-only">Detections, frames, different objects (tracks) and the most at once per class</caption>
                <thead>
                  <tr>
                    <th scope="col">Class</th>
                    <th scope="col" class="num">
                      Objects
                    </th>
                    <th scope="col" class="num">
                      Frames
                    </th>
                    {summary.tracks != null && (
                      <th scope="col" class="num">
                        Tracks
                      </th>
                    )}
                    {mostAtOnce && (
                      <th scope="col" class="num">
                        Most at once
                      </th>
                    )}
                  </tr>
                </thead>
                <tbody>
                  {summary.classes.map((c) => (
                    <tr key={c.label}>
                      <th scope="row">
                        <span class="class-name">
                          <span class="swatch" style={{ background: labelColor(c.label) }} aria-hidden="true" />
                          {c.label}
                        </span>
                      </th>
                      <td class="num">{c.objects}</td>
                      <td class="num">{c.frames}</td>
                      {summary.tracks != null && <td class="num">{c.tracks ?? 0}</td>}
                      {mostAtOnce && (
                        <td class="num">
                          {c.most_at_once ? (
                            <button
                              type="button"
                              class="button link"
                              aria-label={`${c.most_at_once} at once, in frame ${c.most_at_once_frame ?? 0}: go to that frame`}
                              title={`Frame ${c.most_at_once_frame ?? 0}`}
                              data-testid={`most-at-once-${c.label}`}
                              onClick={() => control.current?.seekToFrame(c.most_at_once_frame ?? 0)}
                            >
                              {c.most_at_once}
                            </button>
                          ) : (
                            0
                          )}
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <ZoneTable zones={zonesOf(summary, extras.result)} />
            <LineTable lines={linesOf(summary, extras.result)} />
          </section>
        )}

        {video.warnings.length > 0 && <Warnings warnings={video.warnings} />}

        <Downloads video={video} />
      </aside>
    </div>
  );
}

/** Whether the detector skipped frames (`stride` above 1, or keyframes only). */
function sampled(video: Video): boolean {
  const s = video.summary;
  return (
    (video.options.stride ?? 1) > 1 ||
    !!video.options.keyframes_only ||
    (s?.frames_detected != null && s.frames_detected > 0 && s.frames_detected < s.frames_processed)
  );
}

function samplingText(video: Video): string {
  if (video.options.keyframes_only) return 'keyframes only';
  const stride = video.options.stride ?? 1;
  if (stride > 1) return `every ${stride} frames`;
  return `of ${video.summary?.frames_processed ?? 0}`;
}

function formatSeconds(seconds: number): string {
  return `${seconds.toFixed(seconds < 10 ? 2 : seconds < 100 ? 1 : 0)} s`;
}

const zonesOf = (summary: Summary, result: ResultExtras | null): ZoneResult[] => (summary.zones?.length ? summary.zones : (result?.zones ?? []));
const linesOf = (summary: Summary, result: ResultExtras | null): LineResult[] => (summary.lines?.length ? summary.lines : (result?.lines ?? []));

/** A count of a zone or a line, and its testid. */
interface Column<Row> {
  label: string;
  testid: string;
  value: (row: Row) => number;
}

/**
 * One table of shapes (zones or lines): a group per shape with its counts, then the same counts
 * per class. `relation` reads the per-class rows to a screen reader ("person in door").
 */
function ShapeCounts<Count, Shape extends { name: string; by_class: (Count & { label: string })[] }>(props: {
  title: string;
  kind: 'zone' | 'line';
  relation: string;
  shapes: Shape[];
  columns: [Column<Shape>, Column<Shape>];
  classColumns: [(c: Count) => number, (c: Count) => number];
}) {
  const { title, kind, relation, shapes, columns, classColumns } = props;
  if (shapes.length === 0) return null;
  const titleId = `${kind}s-title`;
  return (
    <>
      <h3 class="summary-sub" id={titleId}>
        {title}
      </h3>
      <table class="classes compact grouped" aria-labelledby={titleId} data-testid={`${kind}s`}>
        <thead>
          <tr>
            <th scope="col">{kind === 'zone' ? 'Zone' : 'Line'}</th>
            {columns.map((c) => (
              <th key={c.label} scope="col" class="num">
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        {shapes.map((shape) => (
          <tbody key={shape.name} data-testid={kind} {...{ [`data-${kind}`]: shape.name }}>
            <tr class="group">
              <th scope="row">{shape.name}</th>
              {columns.map((c) => (
                <td key={c.testid} class="num" data-testid={c.testid}>
                  {c.value(shape)}
                </td>
              ))}
            </tr>
            {shape.by_class.map((c) => (
              <tr key={c.label} class="sub" data-class={c.label}>
                <th scope="row">
                  <span class="class-name">
                    <span class="swatch" style={{ background: labelColor(c.label) }} aria-hidden="true" />
                    {c.label}
                  </span>
                  <span class="sr-only">
                    {' '}
                    {relation} {shape.name}
                  </span>
                </th>
                {classColumns.map((value, i) => (
                  <td key={i} class="num">
                    {value(c)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        ))}
      </table>
    </>
  );
}

/** Per zone: visits and different tracks, then the same per class. */
const ZoneTable = ({ zones }: { zones: ZoneResult[] }) => (
  <ShapeCounts
    title="Zones"
    kind="zone"
    relation="in"
    shapes={zones}
    columns={[
      { label: 'Visits', testid: 'zone-visits', value: (z) => z.visits },
      { label: 'Tracks', testid: 'zone-tracks', value: (z) => z.tracks },
    ]}
    classColumns={[(c: ZoneResult['by_class'][number]) => c.visits, (c: ZoneResult['by_class'][number]) => c.tracks]}
  />
);

/** Per line: crossings in and out, then the same per class. */
const LineTable = ({ lines }: { lines: LineResult[] }) => (
  <ShapeCounts
    title="Lines"
    kind="line"
    relation="across"
    shapes={lines}
    columns={[
      { label: 'In', testid: 'line-in', value: (l) => l.in },
      { label: 'Out', testid: 'line-out', value: (l) => l.out },
    ]}
    classColumns={[(c: LineResult['by_class'][number]) => c.in, (c: LineResult['by_class'][number]) => c.out]}
  />
);

/**
 * The result's tracks and the zones' and lines' events, fetched once when the summary says
 * there are any: on its own when the result is at most AUTO_BYTES, else after a click (the
 * note offers it). `note` says what is happening while there is no result.
 */
function useResultExtras(video: Video) {
  const summary = video.summary;
  const wanted = (summary?.tracks ?? 0) > 0 || (summary?.lines?.length ?? 0) > 0 || (summary?.zones?.length ?? 0) > 0;
  const [result, setResult] = useState<ResultExtras | null>(null);
  const [state, setState] = useState<{ kind: 'idle' | 'loading' | 'large' | 'error'; bytes?: number; message?: string }>({ kind: 'idle' });
  /** A result above AUTO_BYTES is read once asked for; `attempt` counts retries after errors. */
  const [anySize, setAnySize] = useState(false);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    if (!wanted) return;
    const abort = new AbortController();
    setState({ kind: 'loading' });
    loadResultExtras(video.id, anySize ? Infinity : AUTO_BYTES, abort.signal)
      .then((r) => {
        setResult(r);
        setState({ kind: 'idle' });
      })
      .catch((e: unknown) => {
        if (abort.signal.aborted || isAbort(e)) return;
        if (e instanceof TooLarge) setState({ kind: 'large', bytes: e.bytes });
        else setState({ kind: 'error', message: errorMessage(e) });
      });
    return () => abort.abort();
  }, [video.id, wanted, anySize, attempt]);

  let note: ComponentChildren = null;
  if (state.kind === 'loading') note = <span role="status">Loading the tracks…</span>;
  else if (state.kind === 'large' || state.kind === 'error')
    note = (
      <>
        <span>
          {state.kind === 'large'
            ? `The tracks are in the full result (${formatBytes(state.bytes)}).`
            : `The tracks could not be loaded: ${state.message}`}
        </span>{' '}
        <button
          type="button"
          class="button link"
          onClick={() => (state.kind === 'large' ? setAnySize(true) : setAttempt((n) => n + 1))}
          data-testid="load-tracks"
        >
          {state.kind === 'large' ? 'Load them' : 'Try again'}
        </button>
      </>
    );
  return { result, note };
}

function Downloads({ video }: { video: Video }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const base = video.filename.replace(/\.[^.]+$/, '') || video.id;
  const formats = [
    { format: 'json', label: 'Result (JSON)', name: `${base}.json` },
    { format: 'coco', label: 'COCO (JSON)', name: `${base}.coco.json` },
    { format: 'csv', label: 'CSV', name: `${base}.csv` },
  ];

  // The result needs the bearer header, so a plain link cannot fetch it: fetch, then hand the
  // browser a blob: URL to save.
  const download = async (format: string, name: string) => {
    setBusy(format);
    setError(null);
    try {
      const response = await request(`${API}/videos/${video.id}/result?format=${format}`, {
        headers: { Accept: format === 'csv' ? 'text/csv' : 'application/json' },
      });
      const url = URL.createObjectURL(await response.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(null);
    }
  };

  return (
    <section class="card" aria-labelledby="downloads-title">
      <h2 id="downloads-title">Download</h2>
      <div class="actions left wrap">
        {formats.map((f) => (
          <button
            key={f.format}
            type="button"
            class="button secondary"
            disabled={busy !== null}
            onClick={() => download(f.format, f.name)}
            data-testid={`download-${f.format}`}
          >
            {busy === f.format ? 'Preparing…' : f.label}
          </button>
        ))}
      </div>
      {error && <Alert>{error}</Alert>}
      <Annotated videoId={video.id} stem={base} />
    </section>
  );
}

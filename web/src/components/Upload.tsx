// The upload panel: drop zone + file input, the processing options, and one row per file with
// its upload progress. XMLHttpRequest rather than fetch(): only XHR reports upload progress.
// Files go one after the other (the server also limits uploads per user).
import { useEffect, useId, useRef, useState } from 'preact/hooks';

import { api, API, errorMessage } from '../api';
import type { Model, Video } from '../api';
import { expireSession, getToken } from '../auth';
import { formatBytes } from '../format';
import { Link } from '../router';
import { ClassPicker } from './ClassPicker';

interface Options {
  model: string;
  classes: string[];
  scoreThreshold: string;
  chunkSize: string;
  /** Make the annotated MP4 as soon as detection succeeds. */
  annotate: boolean;
}

interface Item {
  key: number;
  file: File;
  options: Options;
  state: 'waiting' | 'uploading' | 'processing' | 'done' | 'failed' | 'cancelled';
  /** 0..1 of the bytes sent. */
  sent: number;
  error?: string;
  video?: Video;
}

/** How to stop the uploads in flight, by item key. */
const aborts = new Map<number, () => void>();

function formData(file: File, options: Options): FormData {
  const form = new FormData();
  // Empty fields are absent for the server; only what was set is sent.
  if (options.model) form.append('model', options.model);
  if (options.chunkSize.trim()) form.append('chunk_size', options.chunkSize.trim());
  if (options.scoreThreshold.trim()) form.append('score_threshold', options.scoreThreshold.trim());
  // One comma-separated field: the server takes at most 32 multipart fields in all.
  if (options.classes.length) form.append('classes', options.classes.join(','));
  if (options.annotate) form.append('annotate', 'true');
  form.append('file', file, file.name);
  return form;
}

/** POST /api/v1/videos as multipart; `onSent` gets 0..1 of the bytes sent. */
function send(item: Item, onSent: (fraction: number) => void, onAllSent: () => void): Promise<Video> {
  return new Promise((resolve, reject) => {
    const token = getToken();
    if (!token) {
      expireSession();
      reject(new Error('your session has ended; log in again'));
      return;
    }
    const xhr = new XMLHttpRequest();
    aborts.set(item.key, () => xhr.abort());
    const settle = () => aborts.delete(item.key);
    xhr.addEventListener('loadend', settle);
    xhr.open('POST', `${API}/videos`);
    xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => e.lengthComputable && onSent(e.loaded / e.total);
    xhr.upload.onload = onAllSent;
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body as Video);
        return;
      }
      if (xhr.status === 401) expireSession();
      const message = (body as { message?: unknown } | null)?.message;
      reject(new Error(typeof message === 'string' && message ? message : `${xhr.status} ${xhr.statusText || 'error'}`));
    };
    xhr.onerror = () =>
      // The server may answer 413 and close before the browser has sent everything: XHR then
      // reports a network error with no status.
      reject(new Error('the upload was cut off: the connection failed or the file is larger than the server accepts'));
    xhr.onabort = () => reject(new DOMException('cancelled', 'AbortError'));
    xhr.send(formData(item.file, item.options));
  });
}

export function Upload({ onUploaded }: { onUploaded(video: Video): void }) {
  const id = useId();
  const [models, setModels] = useState<Model[] | null>(null);
  const [modelsFailed, setModelsFailed] = useState(false);
  const [options, setOptions] = useState<Options>({ model: '', classes: [], scoreThreshold: '', chunkSize: '', annotate: false });
  const [items, setItems] = useState<Item[]>([]);
  const [dragging, setDragging] = useState(false);
  const nextKey = useRef(1);
  const input = useRef<HTMLInputElement>(null);
  const itemsRef = useRef(items);
  itemsRef.current = items;

  useEffect(() => {
    let live = true;
    api<Model[] | { models?: Model[] }>(`${API}/models`)
      .then((answer) => {
        const list = Array.isArray(answer) ? answer : (answer?.models ?? []);
        if (live) setModels(list.filter((m) => typeof m?.name === 'string'));
      })
      .catch(() => live && setModelsFailed(true));
    return () => {
      live = false;
      // Leaving the page stops what is still being sent.
      for (const item of itemsRef.current) aborts.get(item.key)?.();
    };
  }, []);

  const update = (key: number, change: Partial<Item>) =>
    setItems((list) => list.map((item) => (item.key === key ? { ...item, ...change } : item)));

  // One upload at a time: start the next waiting file when none is being sent.
  useEffect(() => {
    if (items.some((item) => item.state === 'uploading' || item.state === 'processing')) return;
    const next = items.find((item) => item.state === 'waiting');
    if (!next) return;
    update(next.key, { state: 'uploading', sent: 0 });
    send(
      next,
      (sent) => update(next.key, { sent }),
      () => update(next.key, { state: 'processing', sent: 1 }),
    )
      .then((video) => {
        update(next.key, { state: 'done', video });
        onUploaded(video);
      })
      .catch((e) => {
        const cancelled = e instanceof DOMException && e.name === 'AbortError';
        update(next.key, { state: cancelled ? 'cancelled' : 'failed', error: cancelled ? undefined : errorMessage(e) });
      });
  }, [items]);

  const add = (files: FileList | File[] | null) => {
    if (!files) return;
    const added = Array.from(files).map((file) => ({ key: nextKey.current++, file, options, state: 'waiting' as const, sent: 0 }));
    if (added.length) setItems((list) => [...list, ...added]);
  };

  // The server lists its default first (and may flag it).
  const defaultModel = models?.find((m) => m.default) ?? models?.[0];
  const model = models?.find((m) => m.name === options.model) ?? defaultModel;
  const labels = model?.labels ?? [];

  return (
    <section class="card upload" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Upload videos</h2>
      <div
        class={`dropzone${dragging ? ' dragging' : ''}`}
        data-testid="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          add(e.dataTransfer?.files ?? null);
        }}
      >
        <p>Drop video files here, or</p>
        <label class="button primary file-button" for={`${id}-file`}>
          Choose videos
        </label>
        <input
          ref={input}
          id={`${id}-file`}
          class="file-input"
          type="file"
          accept="video/*,.mkv,.ts,.flv,.mxf,.y4m,.ivf,.ogv"
          multiple
          data-testid="file-input"
          onChange={(e) => {
            add(e.currentTarget.files);
            e.currentTarget.value = '';
          }}
        />
        <p class="help">The options below apply to the files you add next.</p>
      </div>

      <details class="options">
        <summary>Processing options</summary>
        <div class="options-grid">
          <div class="field">
            <label for={`${id}-model`}>Model</label>
            {modelsFailed || (models && models.length === 0) ? (
              <input
                id={`${id}-model`}
                value={options.model}
                placeholder="coco-centernet"
                aria-describedby={`${id}-model-help`}
                onInput={(e) => setOptions({ ...options, model: e.currentTarget.value.trim() })}
              />
            ) : (
              <select
                id={`${id}-model`}
                value={options.model}
                aria-describedby={`${id}-model-help`}
                onChange={(e) => setOptions({ ...options, model: e.currentTarget.value, classes: [] })}
              >
                <option value="">Server default{defaultModel ? ` (${defaultModel.name})` : ''}</option>
                {(models ?? []).map((m) => (
                  <option key={m.name} value={m.name}>
                    {m.name}
                    {m.live === false ? ' (no detector running)' : ''}
                  </option>
                ))}
              </select>
            )}
            <p class="help" id={`${id}-model-help`}>
              A model the detectors serve; empty: the server's default.
            </p>
          </div>
          <div class="field">
            <label for={`${id}-score`}>Score threshold</label>
            <input
              id={`${id}-score`}
              type="number"
              min={0}
              max={1}
              step={0.05}
              inputMode="decimal"
              value={options.scoreThreshold}
              placeholder="0.3"
              aria-describedby={`${id}-score-help`}
              onInput={(e) => setOptions({ ...options, scoreThreshold: e.currentTarget.value })}
            />
            <p class="help" id={`${id}-score-help`}>
              0 to 1: the lowest score kept. Empty: the model's own (0.3 for coco-centernet).
            </p>
          </div>
          <div class="field">
            <label for={`${id}-chunk`}>Chunk size (frames)</label>
            <input
              id={`${id}-chunk`}
              type="number"
              min={1}
              max={10000}
              step={1}
              inputMode="numeric"
              value={options.chunkSize}
              placeholder="64"
              aria-describedby={`${id}-chunk-help`}
              onInput={(e) => setOptions({ ...options, chunkSize: e.currentTarget.value })}
            />
            <p class="help" id={`${id}-chunk-help`}>
              1 to 10000 frames per chunk. Empty: the server's default (64, or about 4 s of detector work).
            </p>
          </div>
        </div>
        <div class="field">
          <label class="check">
            <input
              type="checkbox"
              checked={options.annotate}
              aria-describedby={`${id}-annotate-help`}
              onChange={(e) => setOptions({ ...options, annotate: e.currentTarget.checked })}
              data-testid="option-annotate"
            />
            Also make the annotated MP4
          </label>
          <p class="help" id={`${id}-annotate-help`}>
            The video with its boxes drawn in, made as soon as detection succeeds (else on request, from the video's page).
          </p>
        </div>
        {labels.length > 0 ? (
          <ClassPicker labels={labels} value={options.classes} onChange={(classes) => setOptions({ ...options, classes })} />
        ) : (
          <div class="field">
            <label for={`${id}-classes`}>Classes</label>
            <input
              id={`${id}-classes`}
              value={options.classes.join(', ')}
              placeholder="person, car"
              aria-describedby={`${id}-classes-help`}
              onInput={(e) =>
                setOptions({
                  ...options,
                  classes: e.currentTarget.value
                    .split(',')
                    .map((c) => c.trim())
                    .filter(Boolean),
                })
              }
            />
            <p class="help" id={`${id}-classes-help`}>
              Comma-separated labels to keep; empty keeps every class.
            </p>
          </div>
        )}
      </details>

      {items.length > 0 && (
        <>
          <ul class="uploads" aria-label="Uploads" data-testid="uploads">
            {items.map((item) => (
              <li key={item.key} class={`upload-item upload-${item.state}`} data-testid="upload-item" data-state={item.state}>
                <div class="upload-head">
                  <span class="upload-name">{item.file.name}</span>
                  <span class="muted">{formatBytes(item.file.size)}</span>
                </div>
                {item.state !== 'failed' && item.state !== 'cancelled' && (
                  <progress max={100} value={Math.round(item.sent * 100)} aria-label={`Upload of ${item.file.name}`} />
                )}
                <div class="upload-status">
                  {item.state === 'waiting' && <span class="muted">Waiting</span>}
                  {item.state === 'uploading' && <span>Uploading… {Math.round(item.sent * 100)}%</span>}
                  {item.state === 'processing' && <span>Checking the video…</span>}
                  {item.state === 'done' && item.video && (
                    <span>
                      Uploaded and {item.video.status}.{' '}
                      <Link href={`/videos/${item.video.id}`} data-testid="upload-link">
                        Open<span class="sr-only"> {item.file.name}</span>
                      </Link>
                    </span>
                  )}
                  {item.state === 'cancelled' && <span class="muted">Cancelled</span>}
                  {item.state === 'failed' && (
                    <span class="error-text" role="alert">
                      {item.error}
                    </span>
                  )}
                  {(item.state === 'uploading' || item.state === 'waiting') && (
                    <button
                      type="button"
                      class="button link"
                      onClick={() => {
                        const abort = aborts.get(item.key);
                        if (abort) abort();
                        else update(item.key, { state: 'cancelled' });
                      }}
                    >
                      Cancel<span class="sr-only"> {item.file.name}</span>
                    </button>
                  )}
                </div>
              </li>
            ))}
          </ul>
          {items.some((i) => i.state === 'done' || i.state === 'failed' || i.state === 'cancelled') && (
            <button
              type="button"
              class="button secondary"
              onClick={() => setItems((list) => list.filter((i) => !['done', 'failed', 'cancelled'].includes(i.state)))}
            >
              Clear finished
            </button>
          )}
        </>
      )}
    </section>
  );
}

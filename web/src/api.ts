// Every call to /api/v1 goes through here: the bearer header, JSON bodies, the API's error
// bodies ({code, message}) turned into ApiError, and a 401 ending the session.
import { expireSession, getToken } from './auth';
import type { User } from './auth';

export const API = '/api/v1';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The message to show for any error (the API's own message when it gave one). */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

/** The ApiError for a response that is not 2xx. */
export async function errorFrom(response: Response): Promise<ApiError> {
  let code = 'http_' + response.status;
  let message = `${response.status} ${response.statusText || 'error'}`;
  try {
    const body = (await response.json()) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') code = body.code;
    if (typeof body.message === 'string' && body.message) message = body.message;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(response.status, code, message);
}

export interface RequestOptions {
  method?: string;
  /** A plain object is sent as JSON; FormData and URLSearchParams as they are. */
  body?: unknown;
  signal?: AbortSignal;
  /** Send the bearer token (default true). */
  auth?: boolean;
  headers?: Record<string, string>;
}

/** The raw response of an API call that answered 2xx; throws ApiError otherwise. */
export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
  const auth = options.auth ?? true;
  if (auth) {
    const token = getToken();
    if (!token) {
      expireSession();
      throw new ApiError(401, 'missing_token', 'your session has ended; log in again');
    }
    headers.Authorization = `Bearer ${token}`;
  }
  let body: BodyInit | undefined;
  if (options.body instanceof FormData || options.body instanceof URLSearchParams) {
    body = options.body;
  } else if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(path.startsWith('/') ? path : `${API}/${path}`, {
      method: options.method ?? 'GET',
      headers,
      body,
      signal: options.signal,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, 'network_error', 'cannot reach the server; check your connection');
  }
  if (response.ok) return response;
  const error = await errorFrom(response);
  // A token the API no longer takes (expired, revoked, user disabled): log in again.
  if (response.status === 401 && auth) expireSession();
  throw error;
}

/** An API call's JSON answer (undefined for 204). */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await request(path, options);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

// --- the API's shapes --------------------------------------------------------------------------

export const STATUSES = [
  'queued',
  'splitting',
  'detecting',
  'merging',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type VideoStatus = (typeof STATUSES)[number];
export const FINAL: readonly VideoStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface Progress {
  frames_done: number;
  frames_total: number;
  chunks_done: number;
  chunks_total: number;
  percent: number;
}

export interface ProbeInfo {
  container?: string;
  codec?: string;
  width: number;
  height: number;
  rotation?: number;
  fps: number;
  frame_count: number;
  duration_s: number;
}

export interface ClassSummary {
  label: string;
  class_id: number;
  objects: number;
  frames: number;
  /** Different objects (tracks) of this class. */
  tracks?: number;
  /** The most detections of the class in one frame, and the first frame with that many. */
  most_at_once?: number;
  most_at_once_frame?: number;
}

/** Per class within a zone: different tracks and visits. */
export interface ZoneClass {
  label: string;
  class_id: number;
  tracks: number;
  visits: number;
}

/** One track's stay in a zone. */
export interface ZoneVisit {
  track_id: number;
  label: string;
  class_id: number;
  entry_frame: number;
  exit_frame: number;
  entry_ms: number;
  exit_ms: number;
  dwell_s: number;
  /** It left the zone before the video ended. */
  left: boolean;
}

/** What a zone saw (`events` only in the result, not in the summary). */
export interface ZoneResult {
  name: string;
  tracks: number;
  visits: number;
  by_class: ZoneClass[];
  events?: ZoneVisit[];
}

export interface LineClass {
  label: string;
  class_id: number;
  in: number;
  out: number;
}

/** One track crossing a line. */
export interface LineCrossing {
  track_id: number;
  label: string;
  class_id: number;
  frame: number;
  ms: number;
  direction: 'in' | 'out';
}

/** What a line saw (`events` only in the result, not in the summary). */
export interface LineResult {
  name: string;
  in: number;
  out: number;
  by_class: LineClass[];
  events?: LineCrossing[];
}

/** One object followed across frames (the result's `tracks`). */
export interface TrackSummary {
  id: number;
  label: string;
  class_id: number;
  first_frame: number;
  last_frame: number;
  first_ms: number;
  last_ms: number;
  dwell_s: number;
  /** Frames it was detected in. */
  frames: number;
  mean_score: number;
  /** Its box centres as [frame, x, y], thinned along the track. */
  path?: [number, number, number][];
}

export interface Summary {
  frames_processed: number;
  frames_skipped?: number;
  video_duration_s: number;
  wall_time_s?: number;
  frames_per_second?: number;
  chunks?: number;
  classes: ClassSummary[];
  top_classes?: string[];
  most_persons?: { index: number; count: number } | null;
  /** Different objects followed across the video. */
  tracks?: number;
  /** Frames the detector ran on (fewer than processed with `stride` or `keyframes_only`). */
  frames_detected?: number;
  /** The detector's device time for this video, and per hour of video. */
  device_seconds?: number;
  device_seconds_per_video_hour?: number;
  zones?: ZoneResult[];
  lines?: LineResult[];
}

/** Which point of a box stands for the object in a zone. */
export type Anchor = 'bottom_center' | 'center';

/** A zone as given in the options: pixels of the displayed frame, or 0..1 when normalized. */
export interface ZoneOption {
  name?: string | null;
  points: [number, number][];
  normalized?: boolean;
  anchor?: Anchor;
}

/** A counting line as given in the options; walking start → end, `in` is crossing to the right. */
export interface LineOption {
  name?: string | null;
  start: [number, number];
  end: [number, number];
  normalized?: boolean;
  anchor?: Anchor;
}

export interface Video {
  id: string;
  owner: string;
  filename: string;
  size_bytes: number;
  content_type?: string | null;
  status: VideoStatus;
  options: {
    model?: string | null;
    chunk_size?: number | null;
    score_threshold?: number | null;
    classes?: string[] | null;
    /** The annotated MP4 is made as soon as detection succeeds. */
    annotate?: boolean | null;
    track?: boolean | null;
    zones?: ZoneOption[] | null;
    lines?: LineOption[] | null;
    /** Every Nth frame is detected (the others get their tracks' predicted boxes). */
    stride?: number | null;
    /** Only keyframes are detected. */
    keyframes_only?: boolean | null;
  };
  video?: ProbeInfo | null;
  progress: Progress;
  error?: string;
  warnings: string[];
  created_at: string;
  updated_at: string;
  finished_at?: string;
  summary?: Summary;
}

export interface VideoList {
  videos: Video[];
  total: number;
  limit: number;
  offset: number;
  next_offset?: number;
}

/** The data of an `event: state` on the event streams. */
export interface StateEvent {
  id: string;
  status: VideoStatus;
  progress: Progress;
  error?: string;
  warnings: string[];
  updated_at: string;
}

export interface Model {
  name: string;
  /** Empty while no detector of the model is running. */
  labels: string[];
  default?: boolean;
  /** A detector announced it lately. */
  live?: boolean;
}

export interface Detection {
  label: string;
  class_id: number;
  score: number;
  box: [number, number, number, number];
  /** The object it belongs to across frames (absent: in no confirmed track, or tracking off). */
  track_id?: number;
  /** Not detected but carried by its track on a frame the detector skipped. */
  predicted?: boolean;
}

export interface Frame {
  index: number;
  pts_ms: number;
  detections: Detection[];
  /** The detector did not run on this frame: its boxes are predicted. */
  predicted?: boolean;
}

export interface FramesPage {
  frame_count: number;
  from: number;
  to: number;
  frames: Frame[];
}

export interface Timeline {
  frame_count: number;
  block_frames: number;
  fps: number;
  lanes: { label: string; class_id: number; blocks: [number, number][] }[];
}

/** GET/POST /videos/{id}/annotated: how far the annotated MP4 is. */
export interface AnnotationView {
  status: 'absent' | 'queued' | 'running' | 'succeeded' | 'failed';
  frames_done: number;
  frames_total: number;
  /** 0..100. */
  percent: number;
  error?: string;
  size_bytes?: number;
  /** The file's path (bearer header), once made. */
  file?: string;
}

/** POST /videos/{id}/file-url: a signed link that needs no header. */
export interface FileUrl {
  url: string;
  expires_at: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
}

export type { User };

//! The result backend: Celery's Redis layout for task results, plus Argus's own keys for chunk
//! results, chords, video state and task starts. `redis://…` in production, `memory://`
//! embedded; both behave the same (expiry included), so the task code does not know which it
//! runs on.
//!
//! Keys (Redis):
//! - `celery-task-meta-<task id>`: a task's result as Celery writes it (status, result,
//!   traceback, children, date_done, task_id), SET with a one-day expiry and PUBLISHed on the
//!   same name: Python's `AsyncResult.get()` waits on that channel. A ready state (SUCCESS,
//!   FAILURE, REVOKED) is final: a check-and-set script refuses to replace it.
//! - `argus:chord:<chord>:done` / `…:framecount`: the finished chunk indices, and the frames in
//!   them. A set, not a counter: a chunk delivered twice is counted once; the frame count grows
//!   only when a chunk is new, so that each completion costs O(1) whatever the chord's size.
//! - `argus:chord:<chord>:fired`: SET NX by the task that sends the chord's body.
//!   Chord keys are deleted after the merge (but `fired`), and expire anyway.
//!
//! Chunk results themselves are not here: they grow with the video, so they live in storage
//! (`argus_common::storage`) until the merge; no value here grows with a video's length but the
//! Celery result of `process_video`, which the merge caps.
//! - `argus:video:<video>`: the video's state (JSON), changed only by a check-and-set under
//!   [`argus_common::state::check_transition`]; each change is PUBLISHed on `argus:video:<video>:events`
//!   and `argus:videos`. A deleted video's key holds a tombstone (`deleted`) for a week: no late
//!   task of one of its runs brings the state back.
//! - `argus:detector:fps`: the detectors' speed per chunk, a moving average (the processor sizes
//!   chunks from it).
//! - `argus:starts:<task id>:<retries>`: how often a delivery of that task was started and did
//!   not finish (the worker caps it: a message that kills its worker goes to the DLQ).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use argus_common::state::{check_transition, VideoState};

/// A day, as Celery keeps results.
const RESULT_TTL_S: u64 = 86_400;
/// Chunk results and chord sets outlive any sane video's processing.
const WORK_TTL_S: u64 = 7 * 86_400;
/// What a deleted video's state key holds for [`WORK_TTL_S`] (not JSON: never read as a
/// state): no late task of a run of that video can bring its state back.
const TOMBSTONE: &str = "deleted";
/// Check-and-set attempts before a state update gives up (only contention makes it retry).
const CAS_ATTEMPTS: usize = 64;

/// Replaces a Celery result unless it is in a ready state (checked on the status, which
/// Celery and Argus both write first, without decoding a possibly large document).
const STORE_RESULT: &str = r#"
local old = redis.call('GET', KEYS[1])
if old then
  local status = string.match(old, '^{%s*"status"%s*:%s*"(%u+)"')
  if status == nil then
    local ok, doc = pcall(cjson.decode, old)
    if ok and type(doc) == 'table' then status = doc['status'] end
  end
  if status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"#;

/// Adds chunk ARGV[1] to the chord's done set KEYS[1]; when it is new, adds its ARGV[2] frames
/// to KEYS[2]. Returns the chunks done and their frames. O(1), whatever the chord's size.
const CHORD_DONE: &str = r#"
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('INCRBY', KEYS[2], ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {redis.call('SCARD', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0')}
"#;

/// Blends ARGV[1] into the moving average at KEYS[1] (weight ARGV[2]), expiring in ARGV[3] s.
const BLEND: &str = r#"
local old = tonumber(redis.call('GET', KEYS[1]))
local new = tonumber(ARGV[1])
if old then new = old + (new - old) * tonumber(ARGV[2]) end
redis.call('SET', KEYS[1], tostring(new), 'EX', tonumber(ARGV[3]))
return tostring(new)
"#;

/// Where detectors record how many frames per second a chunk of theirs goes at (a moving
/// average over every detector), for the processor's chunk-size rule.
const SPEED_KEY: &str = "argus:detector:fps";
/// Weight of each new chunk in that average.
const SPEED_WEIGHT: f64 = 0.1;

/// Sets KEYS[1] to ARGV[2] only if it still holds ARGV[1] ('' = absent), then publishes it
/// on the channels ARGV[4..].
const COMPARE_AND_SET: &str = r#"
local old = redis.call('GET', KEYS[1])
if (old or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
for i = 4, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[2]) end
return 1
"#;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unsupported result backend URL '{0}' (redis://… or memory://)")]
    Url(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{0}: too much contention")]
    Contention(String),
}

/// How far a chord is: distinct chunks done, and the frames in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordProgress {
    pub chunks: u64,
    pub frames: u64,
}

/// Celery task states that Argus writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Started,
    Retry,
    Success,
    Failure,
    Revoked,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Started => "STARTED",
            TaskStatus::Retry => "RETRY",
            TaskStatus::Success => "SUCCESS",
            TaskStatus::Failure => "FAILURE",
            TaskStatus::Revoked => "REVOKED",
        }
    }

    /// Celery's READY_STATES: final.
    pub fn is_ready(self) -> bool {
        matches!(
            self,
            TaskStatus::Success | TaskStatus::Failure | TaskStatus::Revoked
        )
    }
}

/// A Celery exception document (`exc_type`, `exc_message`, `exc_module`), what Python's
/// `AsyncResult.get()` raises from.
pub fn celery_exception(exc_type: &str, module: &str, message: &str) -> Value {
    serde_json::json!({"exc_type": exc_type, "exc_message": [message], "exc_module": module})
}

#[derive(Clone)]
pub enum Backend {
    Redis {
        conn: redis::aio::ConnectionManager,
        /// For subscriptions, which need a connection of their own.
        client: redis::Client,
    },
    Memory(Arc<Memory>),
}

enum Stored {
    Text(String),
    /// A chord's done chunks and the frames in them.
    Chord(std::collections::HashSet<u32>, u64),
}

/// The embedded store: what Redis holds, in this process, with the same expiries.
#[derive(Default)]
pub struct Memory {
    entries: Mutex<MemoryEntries>,
    events: Mutex<HashMap<String, broadcast::Sender<String>>>,
}

#[derive(Default)]
struct MemoryEntries {
    map: HashMap<String, (Stored, Instant)>,
    last_sweep: Option<Instant>,
}

impl MemoryEntries {
    fn live(&mut self, key: &str) -> Option<&mut Stored> {
        let now = Instant::now();
        if self
            .map
            .get(key)
            .is_some_and(|(_, expires)| *expires <= now)
        {
            self.map.remove(key);
        }
        self.map.get_mut(key).map(|(v, _)| v)
    }

    fn put(&mut self, key: &str, value: Stored, ttl_s: u64) {
        let now = Instant::now();
        // Sweep expired entries now and then, so an idle key does not live for ever.
        if self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60))
        {
            self.map.retain(|_, (_, expires)| *expires > now);
            self.last_sweep = Some(now);
        }
        self.map
            .insert(key.to_string(), (value, now + Duration::from_secs(ttl_s)));
    }

    fn text(&mut self, key: &str) -> Option<String> {
        match self.live(key) {
            Some(Stored::Text(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

impl Memory {
    fn publish(&self, channel: &str, message: &str) {
        if let Some(tx) = self.events.lock().expect("not poisoned").get(channel) {
            let _ = tx.send(message.to_string()); // no subscriber: dropped, as in Redis
        }
    }

    /// Forgets `channel` once its last subscriber has gone.
    fn unsubscribed(&self, channel: &str) {
        let mut events = self.events.lock().expect("not poisoned");
        if events
            .get(channel)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            events.remove(channel);
        }
    }

    /// Subscriptions open now, on every channel.
    pub fn subscribers(&self) -> usize {
        let events = self.events.lock().expect("not poisoned");
        events.values().map(|tx| tx.receiver_count()).sum()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, MemoryEntries> {
        self.entries.lock().expect("not poisoned")
    }
}

/// A chord's done set and frame count.
fn chord_keys(chord_id: &str) -> (String, String) {
    (
        format!("argus:chord:{chord_id}:done"),
        format!("argus:chord:{chord_id}:framecount"),
    )
}

fn run_key(task_id: &str) -> String {
    format!("argus:run:{task_id}")
}

fn state_key(video_id: &str) -> String {
    format!("argus:video:{video_id}")
}

impl Backend {
    /// `redis://host:port/db` (reconnects by itself) or `memory://`.
    pub async fn connect(url: &str) -> Result<Backend, BackendError> {
        if url.starts_with("memory://") {
            Ok(Backend::Memory(Arc::default()))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            let client = redis::Client::open(url)?;
            let conn = client.get_connection_manager().await?;
            Ok(Backend::Redis { conn, client })
        } else {
            Err(BackendError::Url(url.to_string()))
        }
    }

    /// Whether the backend answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), BackendError> {
        if let Backend::Redis { conn, .. } = self {
            redis::cmd("PING")
                .query_async::<String>(&mut conn.clone())
                .await?;
        }
        Ok(())
    }

    /// Writes a task's result in Celery's layout and publishes it. Returns false, writing
    /// nothing, when the task is already in a ready state (SUCCESS, FAILURE, REVOKED): a
    /// redelivered duplicate, a late merge or a late failure never turns it back.
    pub async fn store_result(
        &self,
        task_id: &str,
        status: TaskStatus,
        result: &Value,
        traceback: Option<String>,
    ) -> Result<bool, BackendError> {
        let raw = serde_json::to_string(result).expect("JSON values serialize");
        self.store_result_raw(task_id, status, &raw, traceback)
            .await
    }

    /// [`Backend::store_result`] with the result already serialized (a video's result can be
    /// large: it is serialized once).
    pub async fn store_result_raw(
        &self,
        task_id: &str,
        status: TaskStatus,
        result_json: &str,
        traceback: Option<String>,
    ) -> Result<bool, BackendError> {
        let key = format!("celery-task-meta-{task_id}");
        // Status first: the script reads it without decoding the document.
        let meta = format!(
            r#"{{"status": "{}", "result": {}, "traceback": {}, "children": [], "date_done": {}, "task_id": {}}}"#,
            status.as_str(),
            result_json,
            serde_json::to_string(&traceback).expect("strings serialize"),
            serde_json::to_string(&Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true))
                .expect("strings serialize"),
            serde_json::to_string(task_id).expect("strings serialize"),
        );
        match self {
            Backend::Redis { conn, .. } => {
                let applied: i64 = redis::Script::new(STORE_RESULT)
                    .key(&key)
                    .arg(&meta)
                    .arg(RESULT_TTL_S)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(applied == 1)
            }
            Backend::Memory(m) => {
                {
                    let mut entries = m.entries();
                    if let Some(old) = entries.text(&key) {
                        let old: Value = serde_json::from_str(&old).unwrap_or(Value::Null);
                        if matches!(
                            old["status"].as_str(),
                            Some("SUCCESS" | "FAILURE" | "REVOKED")
                        ) {
                            return Ok(false);
                        }
                    }
                    entries.put(&key, Stored::Text(meta.clone()), RESULT_TTL_S);
                }
                m.publish(&key, &meta);
                Ok(true)
            }
        }
    }

    /// A task's Celery result document, if any.
    pub async fn get_result(&self, task_id: &str) -> Result<Option<Value>, BackendError> {
        let key = format!("celery-task-meta-{task_id}");
        self.get_json(&key).await
    }

    /// Records chunk `chunk` (of `frames` frames) of the chord as done; returns how many
    /// distinct chunks, and frames in them, are done. Idempotent: a chunk counts once. O(1).
    pub async fn chord_done(
        &self,
        chord_id: &str,
        chunk: u32,
        frames: u64,
    ) -> Result<ChordProgress, BackendError> {
        let (done_key, frames_key) = chord_keys(chord_id);
        match self {
            Backend::Redis { conn, .. } => {
                let (chunks, frames): (u64, u64) = redis::Script::new(CHORD_DONE)
                    .key(&done_key)
                    .key(&frames_key)
                    .arg(chunk)
                    .arg(frames)
                    .arg(WORK_TTL_S)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(ChordProgress { chunks, frames })
            }
            Backend::Memory(m) => {
                let mut entries = m.entries();
                let (mut set, mut total) = match entries.map.remove(&done_key) {
                    Some((Stored::Chord(set, total), expires)) if expires > Instant::now() => {
                        (set, total)
                    }
                    _ => Default::default(),
                };
                if set.insert(chunk) {
                    total += frames;
                }
                let progress = ChordProgress {
                    chunks: set.len() as u64,
                    frames: total,
                };
                entries.put(&done_key, Stored::Chord(set, total), WORK_TTL_S);
                Ok(progress)
            }
        }
    }

    /// Blends one chunk's speed (frames per second of the chunk's wall time, on its detector)
    /// into the detectors' moving average; forgotten a day after the last chunk.
    pub async fn record_detector_speed(&self, fps: f64) -> Result<(), BackendError> {
        if !fps.is_finite() || fps <= 0.0 {
            return Ok(());
        }
        match self {
            Backend::Redis { conn, .. } => {
                let _: String = redis::Script::new(BLEND)
                    .key(SPEED_KEY)
                    .arg(fps)
                    .arg(SPEED_WEIGHT)
                    .arg(RESULT_TTL_S)
                    .invoke_async(&mut conn.clone())
                    .await?;
            }
            Backend::Memory(m) => {
                let mut entries = m.entries();
                let old = entries.text(SPEED_KEY).and_then(|t| t.parse::<f64>().ok());
                let new = old.map_or(fps, |old| old + (fps - old) * SPEED_WEIGHT);
                entries.put(SPEED_KEY, Stored::Text(new.to_string()), RESULT_TTL_S);
            }
        }
        Ok(())
    }

    /// The detectors' recent speed per chunk (frames per second), if any chunk was detected in
    /// the last day.
    pub async fn detector_speed(&self) -> Result<Option<f64>, BackendError> {
        Ok(self
            .get_text(SPEED_KEY)
            .await?
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0))
    }

    /// True for the first `owner` to claim `key`, and again for that same owner (a retry of
    /// the claiming task may redo what it claimed); false for everyone else.
    pub async fn claim(&self, key: &str, owner: &str) -> Result<bool, BackendError> {
        match self {
            Backend::Redis { conn, .. } => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(owner)
                    .arg("NX")
                    .arg("EX")
                    .arg(WORK_TTL_S)
                    .query_async(&mut conn.clone())
                    .await?;
                if set.is_some() {
                    return Ok(true);
                }
                let holder: Option<String> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(holder.as_deref() == Some(owner))
            }
            Backend::Memory(m) => {
                let mut entries = m.entries();
                match entries.text(key) {
                    Some(holder) => Ok(holder == owner),
                    None => {
                        entries.put(key, Stored::Text(owner.to_string()), WORK_TTL_S);
                        Ok(true)
                    }
                }
            }
        }
    }

    /// Deletes a finished run's chord keys (its `fired` mark stays until it expires, so a
    /// late duplicate cannot fire the chord again).
    pub async fn clean_run(&self, chord_id: &str) -> Result<(), BackendError> {
        let (done, frames) = chord_keys(chord_id);
        self.delete(&[done, frames]).await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
        match self {
            Backend::Redis { conn, .. } => {
                for batch in keys.chunks(512) {
                    redis::cmd("DEL")
                        .arg(batch)
                        .query_async::<i64>(&mut conn.clone())
                        .await?;
                }
            }
            Backend::Memory(m) => {
                let mut entries = m.entries();
                for key in keys {
                    entries.map.remove(key);
                }
            }
        }
        Ok(())
    }

    /// Changes a video's state atomically: `change` gets the current state and returns the
    /// next one (or `None`: no change). The next state must pass
    /// [`check_transition`] against the state it was computed from, and is written only if
    /// that state is still the current one (else `change` runs again on the newer state).
    /// Returns the state written, or `None` when nothing was (declined or refused).
    pub async fn update_state(
        &self,
        video_id: &str,
        mut change: impl FnMut(Option<&VideoState>) -> Option<VideoState>,
    ) -> Result<Option<VideoState>, BackendError> {
        let key = state_key(video_id);
        let events = format!("{key}:events");
        for _ in 0..CAS_ATTEMPTS {
            let raw = self.get_text(&key).await?;
            if raw.as_deref() == Some(TOMBSTONE) {
                tracing::debug!(video_id, "state change refused: the video was deleted");
                return Ok(None);
            }
            let old: Option<VideoState> = match &raw {
                None => None,
                Some(s) => Some(serde_json::from_str(s).map_err(|e| BackendError::Corrupt {
                    key: key.clone(),
                    reason: e.to_string(),
                })?),
            };
            let Some(mut new) = change(old.as_ref()) else {
                return Ok(None);
            };
            if let Err(why) = check_transition(old.as_ref(), &new) {
                tracing::debug!(video_id, why, "state change refused");
                return Ok(None);
            }
            new.updated_at = Utc::now();
            let json = serde_json::to_string(&new).expect("states serialize");
            let expected = raw.as_deref().unwrap_or("");
            let written = match self {
                Backend::Redis { conn, .. } => {
                    let applied: i64 = redis::Script::new(COMPARE_AND_SET)
                        .key(&key)
                        .arg(expected)
                        .arg(&json)
                        .arg(WORK_TTL_S)
                        .arg(&events)
                        .arg("argus:videos")
                        .invoke_async(&mut conn.clone())
                        .await?;
                    applied == 1
                }
                Backend::Memory(m) => {
                    let written = {
                        let mut entries = m.entries();
                        if entries.text(&key).as_deref().unwrap_or("") == expected {
                            entries.put(&key, Stored::Text(json.clone()), WORK_TTL_S);
                            true
                        } else {
                            false
                        }
                    };
                    if written {
                        m.publish(&events, &json);
                        m.publish("argus:videos", &json);
                    }
                    written
                }
            };
            if written {
                // A new run: remember whose it is, so that revoking its task id (remote
                // control) can find the video.
                if let Some(run) = new.task_id.as_deref() {
                    if old.as_ref().and_then(|o| o.task_id.as_deref()) != Some(run) {
                        self.set(&run_key(run), video_id, WORK_TTL_S).await?;
                    }
                }
                return Ok(Some(new));
            }
        }
        Err(BackendError::Contention(format!(
            "state of video {video_id}"
        )))
    }

    pub async fn get_state(&self, video_id: &str) -> Result<Option<VideoState>, BackendError> {
        let key = state_key(video_id);
        match self.get_text(&key).await? {
            None => Ok(None),
            Some(s) if s == TOMBSTONE => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| BackendError::Corrupt {
                    key,
                    reason: e.to_string(),
                }),
        }
    }

    /// The video whose run `task_id` (a `process_video` task id) is or was.
    pub async fn video_of_run(&self, task_id: &str) -> Result<Option<String>, BackendError> {
        self.get_text(&run_key(task_id)).await
    }

    /// Deletes a video's state (the video itself is gone), leaving a tombstone that refuses
    /// every later change: a task of one of its runs still queued or running cannot bring the
    /// state back. [`Backend::get_state`] reads it as no state.
    pub async fn delete_state(&self, video_id: &str) -> Result<(), BackendError> {
        self.set(&state_key(video_id), TOMBSTONE, WORK_TTL_S).await
    }

    /// Whether the video was deleted (its tombstone stands).
    pub async fn is_deleted(&self, video_id: &str) -> Result<bool, BackendError> {
        Ok(self.get_text(&state_key(video_id)).await?.as_deref() == Some(TOMBSTONE))
    }

    /// Counts one more start of delivery `retries` of task `task_id`; returns the count.
    pub async fn count_start(&self, task_id: &str, retries: u32) -> Result<u64, BackendError> {
        let key = format!("argus:starts:{task_id}:{retries}");
        match self {
            Backend::Redis { conn, .. } => {
                let (n, _): (u64, i64) = redis::pipe()
                    .atomic()
                    .incr(&key, 1)
                    .expire(&key, RESULT_TTL_S as i64)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(n)
            }
            Backend::Memory(m) => {
                let mut entries = m.entries();
                let n = entries
                    .text(&key)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                entries.put(&key, Stored::Text(n.to_string()), RESULT_TTL_S);
                Ok(n)
            }
        }
    }

    /// How often delivery `retries` of task `task_id` was started without finishing so far.
    pub async fn starts(&self, task_id: &str, retries: u32) -> Result<u64, BackendError> {
        let key = format!("argus:starts:{task_id}:{retries}");
        Ok(self
            .get_text(&key)
            .await?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// Forgets the starts of a delivery that finished (however it ended).
    pub async fn clear_starts(&self, task_id: &str, retries: u32) -> Result<(), BackendError> {
        self.delete(&[format!("argus:starts:{task_id}:{retries}")])
            .await
    }

    /// Live state changes of one video (`Some(id)`) or of all videos (`None`), as JSON.
    pub async fn subscribe_states(
        &self,
        video_id: Option<&str>,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, BackendError> {
        let channel = match video_id {
            Some(id) => format!("argus:video:{id}:events"),
            None => "argus:videos".to_string(),
        };
        self.subscribe(&channel).await
    }

    /// Messages published on `channel`. Each call holds a subscription of its own (on Redis a
    /// connection): it ends, connection closed, as soon as the receiver is dropped, whether a
    /// message comes or not. A server subscribes once and fans out in process.
    pub async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, BackendError> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        match self {
            Backend::Memory(m) => {
                let mut sub = m
                    .events
                    .lock()
                    .expect("not poisoned")
                    .entry(channel.to_string())
                    .or_insert_with(|| broadcast::channel(256).0)
                    .subscribe();
                let memory = Arc::clone(m);
                let channel = channel.to_string();
                tokio::spawn(async move {
                    loop {
                        let message = tokio::select! {
                            message = sub.recv() => message,
                            _ = tx.closed() => break,
                        };
                        match message {
                            Ok(msg) => {
                                if tx.send(msg).await.is_err() {
                                    break;
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => break,
                        }
                    }
                    drop(sub);
                    memory.unsubscribed(&channel);
                });
            }
            Backend::Redis { client, .. } => {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                tokio::spawn(async move {
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let message = tokio::select! {
                            message = messages.next() => message,
                            _ = tx.closed() => break,
                        };
                        let Some(message) = message else { break };
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        if tx.send(payload).await.is_err() {
                            break;
                        }
                    }
                    // Dropping the stream closes the connection.
                });
            }
        }
        Ok(rx)
    }

    async fn set(&self, key: &str, value: &str, ttl_s: u64) -> Result<(), BackendError> {
        match self {
            Backend::Redis { conn, .. } => {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("EX")
                    .arg(ttl_s)
                    .query_async::<()>(&mut conn.clone())
                    .await?;
            }
            Backend::Memory(m) => m.entries().put(key, Stored::Text(value.into()), ttl_s),
        }
        Ok(())
    }

    async fn get_text(&self, key: &str) -> Result<Option<String>, BackendError> {
        Ok(match self {
            Backend::Redis { conn, .. } => {
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn.clone())
                    .await?
            }
            Backend::Memory(m) => m.entries().text(key),
        })
    }

    async fn get_json(&self, key: &str) -> Result<Option<Value>, BackendError> {
        self.get_text(key)
            .await?
            .map(|s| {
                serde_json::from_str(&s).map_err(|e| BackendError::Corrupt {
                    key: key.to_string(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_entries_expire() {
        let mut entries = MemoryEntries::default();
        entries.put("a", Stored::Text("x".into()), 0);
        entries.put("b", Stored::Text("y".into()), 60);
        assert_eq!(entries.text("a"), None, "expired at once");
        assert_eq!(entries.text("b").as_deref(), Some("y"));
        // A sweep removes expired keys nobody reads again.
        entries.put("c", Stored::Text("z".into()), 0);
        entries.last_sweep = Some(Instant::now() - Duration::from_secs(120));
        entries.put("d", Stored::Text("w".into()), 60);
        assert!(!entries.map.contains_key("c"));
    }
}

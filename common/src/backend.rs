//! The result backend: Celery's Redis layout for task results, plus Argus's own keys for chunk
//! results, chords and video state. `redis://…` in production, `memory://` embedded; both
//! behave the same, so the task code does not know which it runs on.
//!
//! Keys (Redis):
//! - `celery-task-meta-<task id>`: a task's result as Celery writes it (status, result,
//!   traceback, children, date_done, task_id), SET with a one-day expiry and PUBLISHed on the
//!   same name: Python's `AsyncResult.get()` waits on that channel.
//! - `argus:chunk:<video>:<chunk>`: a chunk's frames (JSON). Rewriting it is harmless.
//! - `argus:chord:<chord>:done`: the set of finished chunk indices (and `…:frames`, their frame
//!   counts). A set, not a counter: a chunk delivered twice is counted once.
//! - `argus:chord:<chord>:fired`: SET NX by the task that sends the chord's body: it fires
//!   once (the merge's task id is the chord id, so even a resent body is one task).
//! - `argus:video:<video>`: the video's state (JSON); each change is PUBLISHed on
//!   `argus:video:<video>:events` and `argus:videos`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::state::VideoState;

/// A day, as Celery keeps results.
const RESULT_TTL_S: u64 = 86_400;
/// Chunk results and chord sets outlive any sane video's processing.
const WORK_TTL_S: u64 = 7 * 86_400;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unsupported result backend URL '{0}' (redis://… or memory://)")]
    Url(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
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

/// The embedded store: what Redis holds, in this process.
#[derive(Default)]
pub struct Memory {
    values: Mutex<HashMap<String, String>>,
    sets: Mutex<HashMap<String, HashSet<String>>>,
    events: Mutex<HashMap<String, broadcast::Sender<String>>>,
}

impl Memory {
    fn publish(&self, channel: &str, message: &str) {
        if let Some(tx) = self.events.lock().expect("not poisoned").get(channel) {
            let _ = tx.send(message.to_string()); // no subscriber: dropped, as in Redis
        }
    }
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

    /// Writes a task's result in Celery's layout and publishes it. A task that already
    /// SUCCEEDED is not overwritten (a redelivered duplicate must not turn it back).
    pub async fn store_result(
        &self,
        task_id: &str,
        status: TaskStatus,
        result: Value,
        traceback: Option<String>,
    ) -> Result<(), BackendError> {
        let key = format!("celery-task-meta-{task_id}");
        if status != TaskStatus::Success {
            if let Some(old) = self.get_result(task_id).await? {
                if old["status"] == "SUCCESS" {
                    return Ok(());
                }
            }
        }
        let meta = json!({
            "status": status,
            "result": result,
            "traceback": traceback,
            "children": [],
            "date_done": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            "task_id": task_id,
        })
        .to_string();
        self.set_and_publish(&key, &meta, RESULT_TTL_S, &[&key])
            .await
    }

    /// A task's Celery result document, if any.
    pub async fn get_result(&self, task_id: &str) -> Result<Option<Value>, BackendError> {
        let key = format!("celery-task-meta-{task_id}");
        self.get_json(&key).await
    }

    pub async fn put_chunk(
        &self,
        video_id: &str,
        chunk: u32,
        frames: &Value,
    ) -> Result<(), BackendError> {
        let key = format!("argus:chunk:{video_id}:{chunk}");
        self.set_and_publish(&key, &frames.to_string(), WORK_TTL_S, &[])
            .await
    }

    pub async fn get_chunk(
        &self,
        video_id: &str,
        chunk: u32,
    ) -> Result<Option<Value>, BackendError> {
        self.get_json(&format!("argus:chunk:{video_id}:{chunk}"))
            .await
    }

    /// Records chunk `chunk` (of `frames` frames) of the chord as done; returns how many
    /// distinct chunks, and frames in them, are done. Idempotent: a chunk counts once.
    pub async fn chord_done(
        &self,
        chord_id: &str,
        chunk: u32,
        frames: u64,
    ) -> Result<ChordProgress, BackendError> {
        let done_key = format!("argus:chord:{chord_id}:done");
        let frames_key = format!("argus:chord:{chord_id}:frames");
        match self {
            Backend::Redis { conn, .. } => {
                let (_, _, chunks, counts, _, _): (i64, i64, u64, Vec<u64>, i64, i64) =
                    redis::pipe()
                        .sadd(&done_key, chunk)
                        .hset(&frames_key, chunk, frames)
                        .scard(&done_key)
                        .hvals(&frames_key)
                        .expire(&done_key, WORK_TTL_S as i64)
                        .expire(&frames_key, WORK_TTL_S as i64)
                        .query_async(&mut conn.clone())
                        .await?;
                Ok(ChordProgress {
                    chunks,
                    frames: counts.iter().sum(),
                })
            }
            Backend::Memory(m) => {
                let mut sets = m.sets.lock().expect("not poisoned");
                let set = sets.entry(done_key).or_default();
                set.insert(format!("{chunk}:{frames}"));
                let frames = set
                    .iter()
                    .filter_map(|e| e.split_once(':')?.1.parse::<u64>().ok())
                    .sum();
                Ok(ChordProgress {
                    chunks: set.len() as u64,
                    frames,
                })
            }
        }
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
                let mut values = m.values.lock().expect("not poisoned");
                let holder = values
                    .entry(key.to_string())
                    .or_insert_with(|| owner.to_string());
                Ok(holder == owner)
            }
        }
    }

    pub async fn set_state(&self, state: &VideoState) -> Result<(), BackendError> {
        let key = format!("argus:video:{}", state.video_id);
        let events = format!("{key}:events");
        let json = serde_json::to_string(state).expect("states serialize");
        self.set_and_publish(&key, &json, WORK_TTL_S, &[&events, "argus:videos"])
            .await
    }

    pub async fn get_state(&self, video_id: &str) -> Result<Option<VideoState>, BackendError> {
        let key = format!("argus:video:{video_id}");
        match self.get_json(&key).await? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| BackendError::Corrupt {
                    key,
                    reason: e.to_string(),
                }),
        }
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
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        match self {
            Backend::Memory(m) => {
                let mut sub = m
                    .events
                    .lock()
                    .expect("not poisoned")
                    .entry(channel)
                    .or_insert_with(|| broadcast::channel(256).0)
                    .subscribe();
                tokio::spawn(async move {
                    while let Ok(msg) = sub.recv().await {
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Backend::Redis { client, .. } => {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                tokio::spawn(async move {
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        if tx.send(payload).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
        Ok(rx)
    }

    async fn set_and_publish(
        &self,
        key: &str,
        value: &str,
        ttl_s: u64,
        channels: &[&str],
    ) -> Result<(), BackendError> {
        match self {
            Backend::Redis { conn, .. } => {
                let mut pipe = redis::pipe();
                pipe.set_ex(key, value, ttl_s).ignore();
                for channel in channels {
                    pipe.publish(*channel, value).ignore();
                }
                pipe.query_async::<()>(&mut conn.clone()).await?;
            }
            Backend::Memory(m) => {
                m.values
                    .lock()
                    .expect("not poisoned")
                    .insert(key.to_string(), value.to_string());
                for channel in channels {
                    m.publish(channel, value);
                }
            }
        }
        Ok(())
    }

    async fn get_json(&self, key: &str) -> Result<Option<Value>, BackendError> {
        let raw: Option<String> = match self {
            Backend::Redis { conn, .. } => {
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn.clone())
                    .await?
            }
            Backend::Memory(m) => m.values.lock().expect("not poisoned").get(key).cloned(),
        };
        raw.map(|s| {
            serde_json::from_str(&s).map_err(|e| BackendError::Corrupt {
                key: key.to_string(),
                reason: e.to_string(),
            })
        })
        .transpose()
    }
}

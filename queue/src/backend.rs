//! The result backend: Celery's Redis layout for task results, the worker runtime's own
//! bookkeeping, and the few atomic primitives an application builds its state on. `redis://…`
//! in production, `memory://` embedded; both behave the same (expiry included), so the task
//! code does not know which it runs on.
//!
//! Keys (Redis) the runtime writes:
//! - `celery-task-meta-<task id>`: a task's result as Celery writes it (status, result,
//!   traceback, children, date_done, task_id), SET with a one-day expiry and PUBLISHed on the
//!   same name: Python's `AsyncResult.get()` waits on that channel. A ready state (SUCCESS,
//!   FAILURE, REVOKED) is final: a check-and-set script refuses to replace it.
//! - `argus:starts:<task id>:<retries>`: how often a delivery of that task was started and did
//!   not finish (the worker caps it: a message that kills its worker goes to the DLQ).
//!
//! The primitives ([`Backend::compare_and_set`], [`Backend::add_counted`], [`Backend::blend`],
//! [`Backend::claim`], plain get/set/delete and [`Backend::subscribe`]) know no key of the
//! application's: the video pipeline's keys (a video's state, a chord's done set) are
//! `argus_pipeline::store`'s and `argus_pipeline::chord`'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::tls::Tls;

/// A day, as Celery keeps results.
const RESULT_TTL_S: u64 = 86_400;

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

/// Adds member ARGV[1] to the set KEYS[1]; when it is new, adds ARGV[2] to the count KEYS[2].
/// Returns the set's size and the count. O(1), whatever the set's size.
const ADD_COUNTED: &str = r#"
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

// Cloned into every task's context: the larger variant is a Redis connection manager and
// client (a few hundred bytes), not worth a heap hop on every command.
#[allow(clippy::large_enum_variant)]
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
    /// A set of members and a count (see [`Backend::add_counted`]).
    Counted(std::collections::HashSet<u32>, u64),
    /// Members, each until its own expiry (see [`Backend::present`]).
    Presence(HashMap<String, Instant>),
}

/// Adds ARGV[1] to the roster KEYS[1] for ARGV[2] seconds, by Redis's own clock (the members'
/// processes may disagree on the time), dropping those expired; the roster lives at least
/// ARGV[2] seconds more (never less than a longer-lived member needs; `EXPIRE … GT` is Redis 7).
const PRESENT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"#;

/// The members of the roster KEYS[1] not expired, by Redis's clock.
const PRESENT_MEMBERS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"#;

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

impl Backend {
    /// `redis://host:port/db` (reconnects by itself) or `memory://`.
    pub async fn connect(url: &str) -> Result<Backend, BackendError> {
        Self::connect_tls(url, &Tls::none()).await
    }

    /// [`Backend::connect`], with these certificates for `rediss://`.
    pub async fn connect_tls(url: &str, tls: &Tls) -> Result<Backend, BackendError> {
        tls.warn_if_plain(url, "result backend");
        if url.starts_with("memory://") {
            Ok(Backend::Memory(Arc::default()))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            let client = if url.starts_with("rediss://") {
                redis::Client::build_with_tls(url, tls.redis())?
            } else {
                redis::Client::open(url)?
            };
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

    /// Adds `member` to the set at `set_key` and, when it is new, `amount` to the count at
    /// `count_key`; returns the set's size and the count. Idempotent per member, O(1). Both
    /// keys expire `ttl_s` after the last addition.
    pub async fn add_counted(
        &self,
        set_key: &str,
        count_key: &str,
        member: u32,
        amount: u64,
        ttl_s: u64,
    ) -> Result<(u64, u64), BackendError> {
        match self {
            Backend::Redis { conn, .. } => Ok(redis::Script::new(ADD_COUNTED)
                .key(set_key)
                .key(count_key)
                .arg(member)
                .arg(amount)
                .arg(ttl_s)
                .invoke_async(&mut conn.clone())
                .await?),
            Backend::Memory(m) => {
                // One entry holds both (the count key is never read on its own here).
                let mut entries = m.entries();
                let (mut set, mut total) = match entries.map.remove(set_key) {
                    Some((Stored::Counted(set, total), expires)) if expires > Instant::now() => {
                        (set, total)
                    }
                    _ => Default::default(),
                };
                if set.insert(member) {
                    total += amount;
                }
                let sizes = (set.len() as u64, total);
                entries.put(set_key, Stored::Counted(set, total), ttl_s);
                Ok(sizes)
            }
        }
    }

    /// Blends `sample` into the moving average at `key` (each new sample weighs `weight`);
    /// forgotten `ttl_s` after the last sample.
    pub async fn blend(
        &self,
        key: &str,
        sample: f64,
        weight: f64,
        ttl_s: u64,
    ) -> Result<(), BackendError> {
        if !sample.is_finite() {
            return Ok(());
        }
        match self {
            Backend::Redis { conn, .. } => {
                let _: String = redis::Script::new(BLEND)
                    .key(key)
                    .arg(sample)
                    .arg(weight)
                    .arg(ttl_s)
                    .invoke_async(&mut conn.clone())
                    .await?;
            }
            Backend::Memory(m) => {
                let mut entries = m.entries();
                let old = entries.text(key).and_then(|t| t.parse::<f64>().ok());
                let new = old.map_or(sample, |old| old + (sample - old) * weight);
                entries.put(key, Stored::Text(new.to_string()), ttl_s);
            }
        }
        Ok(())
    }

    /// True for the first `owner` to claim `key`, and again for that same owner (a retry of
    /// the claiming task may redo what it claimed); false for everyone else.
    /// The claim expires after `ttl_s`.
    pub async fn claim(&self, key: &str, owner: &str, ttl_s: u64) -> Result<bool, BackendError> {
        match self {
            Backend::Redis { conn, .. } => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(owner)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_s)
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
                        entries.put(key, Stored::Text(owner.to_string()), ttl_s);
                        Ok(true)
                    }
                }
            }
        }
    }

    /// Deletes `keys`.
    pub async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
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

    /// Sets `key` to `value` (expiring in `ttl_s`) only if it still holds `expected` (`None`:
    /// absent), then publishes `value` on each of `channels`; false when the key had changed.
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        ttl_s: u64,
        channels: &[&str],
    ) -> Result<bool, BackendError> {
        let expected = expected.unwrap_or("");
        match self {
            Backend::Redis { conn, .. } => {
                let cas = redis::Script::new(COMPARE_AND_SET);
                let mut script = cas.key(key);
                script.arg(expected).arg(value).arg(ttl_s);
                for channel in channels {
                    script.arg(*channel);
                }
                let applied: i64 = script.invoke_async(&mut conn.clone()).await?;
                Ok(applied == 1)
            }
            Backend::Memory(m) => {
                {
                    let mut entries = m.entries();
                    if entries.text(key).as_deref().unwrap_or("") != expected {
                        return Ok(false);
                    }
                    entries.put(key, Stored::Text(value.to_string()), ttl_s);
                }
                for channel in channels {
                    m.publish(channel, value);
                }
                Ok(true)
            }
        }
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

    /// Sets `key` to `value`, expiring in `ttl_s`.
    pub async fn set(&self, key: &str, value: &str, ttl_s: u64) -> Result<(), BackendError> {
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

    /// Marks `member` present in the roster at `key` for `ttl_s` (renewed by calling again);
    /// the roster itself lasts as long as its latest member. Each member expires on its own:
    /// a roster of the detectors alive, each renewing its own entry.
    pub async fn present(&self, key: &str, member: &str, ttl_s: u64) -> Result<(), BackendError> {
        match self {
            Backend::Redis { conn, .. } => {
                let _: i64 = redis::Script::new(PRESENT)
                    .key(key)
                    .arg(member)
                    .arg(ttl_s)
                    .invoke_async(&mut conn.clone())
                    .await?;
            }
            Backend::Memory(m) => {
                let mut entries = m.entries();
                let mut roster = match entries.map.remove(key) {
                    Some((Stored::Presence(r), expires)) if expires > Instant::now() => r,
                    _ => HashMap::new(),
                };
                let now = Instant::now();
                roster.retain(|_, until| *until > now);
                let until = now + Duration::from_secs(ttl_s);
                roster.insert(member.to_string(), until);
                let last = roster.values().max().copied().unwrap_or(until);
                let ttl = last.saturating_duration_since(now).as_secs().max(1);
                entries.put(key, Stored::Presence(roster), ttl);
            }
        }
        Ok(())
    }

    /// The members present in the roster at `key` now, sorted.
    pub async fn present_members(&self, key: &str) -> Result<Vec<String>, BackendError> {
        Ok(match self {
            Backend::Redis { conn, .. } => {
                let mut members: Vec<String> = redis::Script::new(PRESENT_MEMBERS)
                    .key(key)
                    .invoke_async(&mut conn.clone())
                    .await?;
                members.sort();
                members
            }
            Backend::Memory(m) => {
                let now = Instant::now();
                let mut members: Vec<String> = match m.entries().live(key) {
                    Some(Stored::Presence(r)) => r
                        .iter()
                        .filter(|(_, until)| **until > now)
                        .map(|(member, _)| member.clone())
                        .collect(),
                    _ => Vec::new(),
                };
                members.sort();
                members
            }
        })
    }

    /// The text at `key`, if any.
    pub async fn get_text(&self, key: &str) -> Result<Option<String>, BackendError> {
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
    #[tokio::test]
    async fn a_roster_holds_each_member_until_its_own_expiry() {
        let b = super::Backend::connect("memory://").await.unwrap();
        b.present("roster", "a", 1).await.unwrap();
        b.present("roster", "b", 60).await.unwrap();
        b.present("roster", "a", 1).await.unwrap(); // renewed, not doubled
        assert_eq!(b.present_members("roster").await.unwrap(), ["a", "b"]);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(b.present_members("roster").await.unwrap(), ["b"]);
        assert!(b.present_members("other").await.unwrap().is_empty());
    }

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

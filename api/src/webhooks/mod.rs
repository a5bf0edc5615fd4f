//! Signed webhooks: when a video's run ends (succeeded, failed, cancelled) and the video has a
//! callback URL (its upload's `callback_url`, else its owner's default), the API POSTs the
//! video as `GET /api/v1/videos/{id}` shows it, summary and links included, signed with the
//! owner's secret ([`sign`]).
//!
//! - **Once per run.** The replica whose status write moves the record to its final status
//!   records the notification (a unique row per run and event) and queues its first attempt.
//! - **Attempts** are tasks `argus.deliver_webhook` on the broker's `webhooks` queue, which
//!   every API replica consumes. Each attempt is claimed in the database first, so a
//!   redelivered message or a second replica never sends it again; a delivered notification
//!   is never sent again. A failed attempt (no answer, or not 2xx) queues the next through the
//!   broker's delay queues, waiting 10 s, 20 s, 40 s … (at most 17 min), until
//!   `ARGUS_WEBHOOK_ATTEMPTS` have been made. A message lost with a broker is found by the
//!   sweep ([`store::overdue`]) and queued again.
//! - **Targets** are checked ([`target`]): no redirects are followed, and non-public addresses
//!   are refused unless `ARGUS_WEBHOOK_ALLOW` lists them.
//! - **The log**: `GET /api/v1/videos/{id}/webhooks` lists each notification and attempt.

pub mod routes;
pub mod sign;
pub mod store;
pub mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_common::state::VideoState;
use argus_common::storage::Storage;
use argus_queue::broker::Broker;
use argus_queue::message::{TaskMessage, TaskPayload};
use argus_queue::worker::{TaskContext, TaskError, TaskOutput};
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::videos::records::VideoRecord;
use store::{AttemptLog, NewDelivery, Next};
use target::AllowList;

/// The queue the attempts travel on.
pub const WEBHOOK_QUEUE: &str = "webhooks";
/// The task of one attempt.
pub const DELIVER_WEBHOOK: &str = "argus.deliver_webhook";
/// Longest wait between two attempts (the broker's longest delay step).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1024);
/// How often the sweep looks for lost attempts, and how overdue one must be to count as lost.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const LOST_AFTER: Duration = Duration::from_secs(300);
/// How far back the sweep looks for final videos never announced.
const MISSED_WITHIN: Duration = Duration::from_secs(86_400);
/// The most of a receiver's error message kept in the log.
const ERROR_CHARS: usize = 300;

/// Webhook settings (`ARGUS_WEBHOOK_*`).
#[derive(clap::Args, Clone, Debug)]
pub struct WebhookArgs {
    /// Non-public addresses callbacks may go to (IP addresses or CIDR blocks, comma-separated),
    /// e.g. a receiver inside the cluster. Loopback, link-local, private and reserved ranges
    /// are refused otherwise.
    #[arg(
        long = "webhook-allow",
        env = "ARGUS_WEBHOOK_ALLOW",
        value_delimiter = ','
    )]
    pub allow: Vec<String>,
    /// Attempts per notification before it is given up (1..=20).
    #[arg(long = "webhook-attempts", env = "ARGUS_WEBHOOK_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: u32,
    /// Seconds before the second attempt; doubled for each next one (at most 1024).
    #[arg(long = "webhook-retry-delay", env = "ARGUS_WEBHOOK_RETRY_DELAY_S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub retry_delay: u64,
    /// Seconds a receiver has to answer an attempt.
    #[arg(long = "webhook-timeout", env = "ARGUS_WEBHOOK_TIMEOUT_S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout: u64,
    /// The API's address as receivers reach it (e.g. `https://argus.example.com`): makes the
    /// links in notifications absolute. Unset: they are paths.
    #[arg(long = "public-url", env = "ARGUS_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl WebhookArgs {
    /// The allow list and public URL can be read.
    pub fn validate(&self) -> Result<(), String> {
        AllowList::parse(&self.allow)?;
        public_url(self.public_url.as_deref()).map(|_| ())
    }
}

/// `ARGUS_PUBLIC_URL` without its trailing slash; `None` when unset.
fn public_url(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => {
            let url = url::Url::parse(raw)
                .map_err(|e| format!("ARGUS_PUBLIC_URL {raw:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("ARGUS_PUBLIC_URL {raw:?} is not an http(s) URL"));
            }
            Ok(Some(url.as_str().trim_end_matches('/').to_string()))
        }
    }
}

impl Default for WebhookArgs {
    fn default() -> Self {
        WebhookArgs {
            allow: Vec::new(),
            attempts: 8,
            retry_delay: 10,
            timeout: 10,
            public_url: None,
        }
    }
}

/// What recording and delivering notifications needs. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    pub allow: AllowList,
    attempts: u32,
    retry_delay: Duration,
    timeout: Duration,
    public_url: Option<String>,
    broker: Broker,
    storage: Storage,
}

/// One attempt's message.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeliverWebhook {
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
}

impl TaskPayload for DeliverWebhook {
    const NAME: &'static str = DELIVER_WEBHOOK;
    const ARGS: &'static [&'static str] = &["delivery_id", "attempt"];
}

impl Webhooks {
    pub fn new(args: &WebhookArgs, broker: Broker, storage: Storage) -> Result<Webhooks, String> {
        let public_url = public_url(args.public_url.as_deref())?;
        Ok(Webhooks {
            allow: AllowList::parse(&args.allow)?,
            attempts: args.attempts,
            retry_delay: Duration::from_secs(args.retry_delay),
            timeout: Duration::from_secs(args.timeout),
            public_url,
            broker,
            storage,
        })
    }

    /// Called once the record of a video moved to final status `state` (by the write that moved
    /// it): records its notification, if it has a callback URL, and queues the first attempt
    /// without waiting for the broker (the listener must not stall on it). A failure here is
    /// repaired by the sweep: a final video with a callback URL and no notification for its run
    /// is announced then, and a notification whose message was lost is queued again.
    pub async fn on_final(&self, db: &Db, state: &VideoState) {
        if let Err(e) = self.announce(db, &state.video_id, Some(state)).await {
            tracing::warn!(video_id = %state.video_id, error = %e, "cannot record a webhook notification");
        }
    }

    /// Records video `video_id`'s notification for its current run (`live`: its final state,
    /// when known; else the record's) and queues its first attempt.
    async fn announce(
        &self,
        db: &Db,
        video_id: &str,
        live: Option<&VideoState>,
    ) -> anyhow::Result<()> {
        let Some(record) = crate::videos::records::get(db, video_id).await? else {
            return self.announce_collection(db, video_id, live).await;
        };
        // The URL given at upload, or the owner's default then: a default set later does not
        // reach back to videos already uploaded.
        let Some(url) = record.callback_url.clone() else {
            return Ok(());
        };
        let status = match live {
            Some(state) => state.status,
            None => match argus_common::state::VideoStatus::parse(&record.status) {
                Some(status) if status.is_final() => status,
                _ => return Ok(()),
            },
        };
        let event = format!("video.{}", status.as_str());
        let body = self.body(&record, live, status, &event).await?;
        // The record's run: the write that made it final filled it in.
        let run_id = record
            .task_id
            .clone()
            .or_else(|| live.and_then(|s| s.task_id.clone()))
            .unwrap_or_default();
        self.record_delivery(
            db,
            &record.id,
            &record.owner_id,
            &run_id,
            &event,
            &url,
            &body,
        )
        .await
    }

    /// [`Self::announce`] for a photo collection: `collection.<status>` with the collection as
    /// `GET /api/v1/collections/{id}` shows it.
    async fn announce_collection(
        &self,
        db: &Db,
        id: &str,
        live: Option<&VideoState>,
    ) -> anyhow::Result<()> {
        let Some(record) = crate::collections::records::get(db, id).await? else {
            return Ok(());
        };
        let Some(url) = record.callback_url.clone() else {
            return Ok(());
        };
        let mut view = crate::collections::view(&record, live);
        if !view.status.is_final() {
            return Ok(());
        }
        if view.status == argus_common::state::VideoStatus::Succeeded {
            let path = self
                .storage
                .collection_dir(&record.id)?
                .join("summary.json");
            if let Ok(bytes) = tokio::fs::read(path).await {
                view.summary = serde_json::from_slice(&bytes).ok();
            }
        }
        let event = format!("collection.{}", view.status.as_str());
        let mut collection = serde_json::to_value(&view)?;
        self.absolute_links(&mut collection);
        let body =
            serde_json::to_string(&serde_json::json!({"event": event, "collection": collection}))?;
        let run_id = record
            .task_id
            .clone()
            .or_else(|| live.and_then(|s| s.task_id.clone()))
            .unwrap_or_default();
        self.record_delivery(
            db,
            &record.id,
            &record.owner_id,
            &run_id,
            &event,
            &url,
            &body,
        )
        .await
    }

    /// Records a notification (once per job, run and event) and queues its first attempt
    /// without waiting for the broker.
    #[allow(clippy::too_many_arguments)]
    async fn record_delivery(
        &self,
        db: &Db,
        job_id: &str,
        owner_id: &str,
        run_id: &str,
        event: &str,
        url: &str,
        body: &str,
    ) -> anyhow::Result<()> {
        let id = uuid::Uuid::new_v4().to_string();
        let created = store::create(
            db,
            &NewDelivery {
                id: &id,
                job_id,
                owner_id,
                run_id,
                event,
                url,
                body,
            },
        )
        .await?;
        if created {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.queue_attempt(&id, 1, Duration::ZERO).await {
                    tracing::warn!(delivery_id = id, error = %e, "cannot queue a webhook attempt; the sweep will");
                }
            });
        }
        Ok(())
    }

    /// The notification: the event, and the video as `GET /api/v1/videos/{id}` shows it.
    async fn body(
        &self,
        record: &VideoRecord,
        live: Option<&VideoState>,
        status: argus_common::state::VideoStatus,
        event: &str,
    ) -> anyhow::Result<String> {
        let mut view = crate::videos::view(record, live);
        if status == argus_common::state::VideoStatus::Succeeded {
            let (storage, id) = (self.storage.clone(), record.id.clone());
            if let Ok(Ok(head)) =
                tokio::task::spawn_blocking(move || crate::videos::frames::read_head(&storage, &id))
                    .await
            {
                view.summary = Some(head.summary);
            }
        }
        let mut video = serde_json::to_value(&view)?;
        self.absolute_links(&mut video);
        Ok(serde_json::to_string(&serde_json::json!({
            "event": event,
            "video": video,
        }))?)
    }

    /// The `links` of a video or collection made absolute with `ARGUS_PUBLIC_URL`, when set.
    fn absolute_links(&self, object: &mut serde_json::Value) {
        if let (Some(base), Some(links)) = (&self.public_url, object["links"].as_object_mut()) {
            for link in links.values_mut() {
                if let Some(path) = link.as_str() {
                    *link = format!("{base}{path}").into();
                }
            }
        }
    }

    async fn queue_attempt(&self, id: &str, attempt: i64, delay: Duration) -> anyhow::Result<()> {
        let message = TaskMessage::new(&DeliverWebhook {
            delivery_id: id.to_string(),
            attempt,
        });
        self.broker
            .send_later(WEBHOOK_QUEUE, &message, delay)
            .await?;
        Ok(())
    }

    /// The wait before attempt `attempt` (2, 3, …): the retry delay, doubled each time.
    fn delay_before(&self, attempt: i64) -> Duration {
        let doublings = (attempt - 2).clamp(0, 16) as u32;
        (self.retry_delay * 2u32.pow(doublings)).min(MAX_RETRY_DELAY)
    }

    /// Makes attempt `attempt` of delivery `id`, if it can claim it.
    pub async fn deliver(&self, db: &Db, id: &str, attempt: i64) -> anyhow::Result<()> {
        if attempt > self.attempts as i64 {
            return Ok(()); // past the limit (a duplicate, or a sweep of the last attempt)
        }
        let Some(claimed) = store::claim(db, id, attempt).await? else {
            return Ok(()); // delivered, given up, or this attempt made elsewhere
        };
        let secret = store::user_webhook(db, &claimed.owner_id).await?.secret;
        let started_at = crate::db::now_text();
        let started = Instant::now();
        let outcome = self.post(&claimed, id, &secret).await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (status_code, error, retry) = match &outcome {
            Outcome::Answered(code) if (200..300).contains(code) => {
                (Some(*code as i64), None, false)
            }
            Outcome::Answered(code) => (
                Some(*code as i64),
                Some(format!("the receiver answered {code}")),
                true,
            ),
            Outcome::Unreachable(e) => (None, Some(e.clone()), true),
            Outcome::Refused(e) => (None, Some(e.clone()), false),
        };
        let error: Option<String> = error.map(|e| e.chars().take(ERROR_CHARS).collect());
        let log = AttemptLog {
            started_at: &started_at,
            duration_ms,
            status_code,
            error: error.as_deref(),
        };
        if error.is_none() {
            finish_firmly(db, id, attempt, &log, Next::Delivered).await?;
            tracing::info!(delivery_id = id, attempt, "webhook delivered");
        } else if retry && attempt < self.attempts as i64 {
            let delay = self.delay_before(attempt + 1);
            let due = chrono::Utc::now() + chrono::Duration::from_std(delay)?;
            let due = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            finish_firmly(db, id, attempt, &log, Next::RetryAt(&due)).await?;
            tracing::info!(delivery_id = id, attempt, error = ?error, ?delay, "webhook attempt failed; retrying");
            self.queue_attempt(id, attempt + 1, delay).await?;
        } else {
            finish_firmly(db, id, attempt, &log, Next::Failed).await?;
            tracing::warn!(delivery_id = id, attempt, error = ?error, "webhook given up");
        }
        Ok(())
    }

    /// One POST: to an address checked now, not following redirects, within the timeout.
    async fn post(&self, claimed: &store::Claimed, id: &str, secret: &str) -> Outcome {
        let url = match target::parse(&claimed.url) {
            Ok(url) => url,
            Err(e) => return Outcome::Refused(e),
        };
        let addrs = match target::resolve(&url, &self.allow).await {
            Ok(addrs) => addrs,
            Err(e) if e.starts_with("cannot resolve") || e.starts_with("resolving") => {
                return Outcome::Unreachable(e)
            }
            Err(e) => return Outcome::Refused(format!("refused: {e}")),
        };
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("argus-webhooks/", env!("CARGO_PKG_VERSION")))
            // No proxy from the environment: it would connect to an address never checked.
            .no_proxy();
        if let Some(url::Host::Domain(name)) = url.host() {
            // Connect to the address that was checked, not to a second lookup's answer.
            client = client.resolve_to_addrs(name, &addrs);
        }
        let client = match client.build() {
            Ok(client) => client,
            Err(e) => return Outcome::Unreachable(e.to_string()),
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign::signature(secret, timestamp, claimed.body.as_bytes());
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-argus-event", &claimed.event)
            .header("x-argus-delivery", id)
            .header("x-argus-timestamp", timestamp.to_string())
            .header("x-argus-signature", signature)
            .body(claimed.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => Outcome::Answered(response.status().as_u16()),
            // Without the URL: its query string may hold the receiver's token.
            Err(e) => Outcome::Unreachable(error_chain(&e.without_url())),
        }
    }

    /// Announces final videos whose notification was never recorded (the replica that recorded
    /// their end failed, or died, before it could), and queues again the attempts whose
    /// messages were lost. Returns how many of either.
    pub async fn sweep(&self, db: &Db) -> anyhow::Result<usize> {
        let ago = |d: Duration| -> anyhow::Result<String> {
            Ok((chrono::Utc::now() - chrono::Duration::from_std(d)?)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        let missed = store::unannounced(db, &ago(SWEEP_EVERY)?, &ago(MISSED_WITHIN)?).await?;
        for video_id in &missed {
            self.announce(db, video_id, None).await?;
        }
        let lost = store::overdue(db, &ago(LOST_AFTER)?, &crate::db::now_text()).await?;
        for (id, attempt) in &lost {
            self.queue_attempt(id, *attempt, Duration::ZERO).await?;
        }
        Ok(missed.len() + lost.len())
    }
}

/// [`store::finish`], tried again a few times: after a receiver's 2xx, a lost write would let
/// the sweep make the attempt again.
async fn finish_firmly(
    db: &Db,
    id: &str,
    attempt: i64,
    log: &AttemptLog<'_>,
    next: Next<'_>,
) -> Result<(), sqlx::Error> {
    let mut wait = Duration::from_millis(200);
    for _ in 0..4 {
        match store::finish(db, id, attempt, log, next).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(delivery_id = id, attempt, error = %e, "cannot record a webhook attempt; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    store::finish(db, id, attempt, log, next).await
}

enum Outcome {
    Answered(u16),
    /// No answer: worth another attempt.
    Unreachable(String),
    /// Never to be sent: the target is not allowed.
    Refused(String),
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `argus.deliver_webhook` task: makes the attempt; a database or broker error is
/// transient (the task is retried, and the claim keeps a second run from sending twice).
pub async fn deliver_task(ctx: TaskContext, webhooks: Arc<Webhooks>, db: Db) -> TaskOutput {
    let p: DeliverWebhook = ctx.message.payload().map_err(TaskError::permanent)?;
    webhooks
        .deliver(&db, &p.delivery_id, p.attempt)
        .await
        .map_err(TaskError::transient)?;
    Ok(None)
}

/// Consumes the `webhooks` queue and sweeps for lost attempts until `closing`.
pub async fn run(
    webhooks: Arc<Webhooks>,
    db: Db,
    backend: argus_queue::backend::Backend,
    closing: tokio::sync::watch::Receiver<bool>,
) {
    let options = argus_queue::worker::WorkerOptions {
        concurrency: 4,
        max_retries: 5,
        node_name: argus_queue::events::node_name(
            argus_queue::worker::DEFAULT_NODE_NAME,
            "webhooks",
        ),
        ..Default::default()
    };
    let worker = argus_queue::worker::Worker::new(webhooks.broker.clone(), backend, options).task(
        DELIVER_WEBHOOK,
        {
            let (webhooks, db) = (Arc::clone(&webhooks), db.clone());
            move |ctx| deliver_task(ctx, Arc::clone(&webhooks), db.clone())
        },
    );
    let sweeper = {
        let mut closing = closing.clone();
        async move {
            loop {
                tokio::select! {
                    _ = closing.changed() => return,
                    _ = tokio::time::sleep(SWEEP_EVERY) => {}
                }
                match webhooks.sweep(&db).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(deliveries = n, "webhook attempts queued again"),
                    Err(e) => tracing::warn!(error = %e, "webhook sweep skipped"),
                }
            }
        }
    };
    tokio::join!(worker.run(&[WEBHOOK_QUEUE], closing), sweeper);
}

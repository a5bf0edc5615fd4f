//! The webhook tables: users' default URL and secret, one row per notification, one per
//! attempt. Every state change is a conditional UPDATE, so that of two replicas (or a
//! redelivered message and its original) only one claims an attempt.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::sign::new_secret;
use crate::db::{now_text, Db};

/// A user's webhook settings.
pub struct UserWebhook {
    pub url: Option<String>,
    pub secret: String,
}

/// The user's default URL and secret; the secret is made on first use.
pub async fn user_webhook(db: &Db, user_id: &str) -> Result<UserWebhook, sqlx::Error> {
    loop {
        let row = sqlx::query("SELECT webhook_url, webhook_secret FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(db.pool())
            .await?;
        let url: Option<String> = row.try_get(0)?;
        if let Some(secret) = row.try_get::<Option<String>, _>(1)? {
            return Ok(UserWebhook { url, secret });
        }
        // Only if still unset: two first uses at once agree on one secret.
        sqlx::query(
            "UPDATE users SET webhook_secret = $1 WHERE id = $2 AND webhook_secret IS NULL",
        )
        .bind(new_secret())
        .bind(user_id)
        .execute(db.pool())
        .await?;
    }
}

/// A user's default callback URL.
pub async fn user_default_url(db: &Db, user_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT webhook_url FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?
        .map_or(Ok(None), |row| row.try_get(0))
}

pub async fn set_user_url(db: &Db, user_id: &str, url: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET webhook_url = $1, updated_at = $2 WHERE id = $3")
        .bind(url)
        .bind(now_text())
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn rotate_secret(db: &Db, user_id: &str) -> Result<String, sqlx::Error> {
    let secret = new_secret();
    sqlx::query("UPDATE users SET webhook_secret = $1, updated_at = $2 WHERE id = $3")
        .bind(&secret)
        .bind(now_text())
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(secret)
}

/// A notification to record.
pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub job_id: &'a str,
    pub owner_id: &'a str,
    pub run_id: &'a str,
    pub event: &'a str,
    pub url: &'a str,
    pub body: &'a str,
}

/// Records a notification, due now; `false` when this run's was recorded already.
pub async fn create(db: &Db, d: &NewDelivery<'_>) -> Result<bool, sqlx::Error> {
    let now = now_text();
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (id, job_id, owner_id, run_id, event, url, body, status, \
         attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8, $8) \
         ON CONFLICT (job_id, run_id, event) DO NOTHING",
    )
    .bind(d.id)
    .bind(d.job_id)
    .bind(d.owner_id)
    .bind(d.run_id)
    .bind(d.event)
    .bind(d.url)
    .bind(d.body)
    .bind(&now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An attempt this process has claimed.
pub struct Claimed {
    pub owner_id: String,
    pub event: String,
    pub url: String,
    pub body: String,
}

/// Claims attempt `attempt` (1, 2, …): only while the delivery is pending with `attempt - 1`
/// made. `None`: delivered, given up, or that attempt claimed elsewhere.
pub async fn claim(db: &Db, id: &str, attempt: i64) -> Result<Option<Claimed>, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'sending', attempts = $1, updated_at = $2 \
         WHERE id = $3 AND status = 'pending' AND attempts = $4",
    )
    .bind(attempt)
    .bind(now_text())
    .bind(id)
    .bind(attempt - 1)
    .execute(db.pool())
    .await?;
    if claimed.rows_affected() != 1 {
        return Ok(None);
    }
    let row =
        sqlx::query("SELECT owner_id, event, url, body FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(db.pool())
            .await?;
    Ok(Some(Claimed {
        owner_id: row.try_get(0)?,
        event: row.try_get(1)?,
        url: row.try_get(2)?,
        body: row.try_get(3)?,
    }))
}

/// What an attempt saw.
pub struct AttemptLog<'a> {
    pub started_at: &'a str,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<&'a str>,
}

/// How a delivery goes on after an attempt.
#[derive(Clone, Copy)]
pub enum Next<'a> {
    Delivered,
    /// Pending again, the next attempt due at this RFC 3339 time.
    RetryAt(&'a str),
    Failed,
}

/// Logs attempt `attempt` and moves the delivery on.
pub async fn finish(
    db: &Db,
    id: &str,
    attempt: i64,
    log: &AttemptLog<'_>,
    next: Next<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, \
         status_code, error) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (delivery_id, attempt) DO NOTHING",
    )
    .bind(id)
    .bind(attempt)
    .bind(log.started_at)
    .bind(log.duration_ms)
    .bind(log.status_code)
    .bind(log.error)
    .execute(db.pool())
    .await?;
    let (status, next_at) = match next {
        Next::Delivered => ("delivered", None),
        Next::RetryAt(at) => ("pending", Some(at)),
        Next::Failed => ("failed", None),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, updated_at = $3 \
         WHERE id = $4 AND status = 'sending' AND attempts = $5",
    )
    .bind(status)
    .bind(next_at)
    .bind(now_text())
    .bind(id)
    .bind(attempt)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Final videos with a callback URL, finished between `since` and `before`, with no
/// notification for their run: ids, at most 100.
pub async fn unannounced(db: &Db, before: &str, since: &str) -> Result<Vec<String>, sqlx::Error> {
    // Videos and collections alike (the same columns).
    let rows = sqlx::query(
        "SELECT id FROM (\
           SELECT v.id, v.finished_at FROM videos v WHERE v.callback_url IS NOT NULL \
           AND v.status IN ('succeeded', 'failed', 'cancelled') \
           AND v.finished_at < $1 AND v.finished_at > $2 \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                           WHERE d.job_id = v.id AND d.run_id = COALESCE(v.task_id, '')) \
           UNION ALL \
           SELECT c.id, c.finished_at FROM collections c WHERE c.callback_url IS NOT NULL \
           AND c.status IN ('succeeded', 'failed', 'cancelled') \
           AND c.finished_at < $1 AND c.finished_at > $2 \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                           WHERE d.job_id = c.id AND d.run_id = COALESCE(c.task_id, ''))\
         ) AS missed ORDER BY finished_at LIMIT 100",
    )
    .bind(before)
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// Deliveries whose next attempt is overdue by the cutoff (its message lost: a broker that
/// restarted, a send that failed), and attempts stuck in `sending` since the cutoff (a replica
/// that died mid-attempt) made pending again: `(id, next attempt)`. Each is taken by moving
/// its due time to `now`, so that of several replicas sweeping at once one queues it.
pub async fn overdue(db: &Db, cutoff: &str, now: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = updated_at \
         WHERE status = 'sending' AND updated_at < $1",
    )
    .bind(cutoff)
    .execute(db.pool())
    .await?;
    let rows = sqlx::query(
        "SELECT id, attempts FROM webhook_deliveries WHERE status = 'pending' \
         AND next_attempt_at < $1 ORDER BY next_attempt_at LIMIT 100",
    )
    .bind(cutoff)
    .fetch_all(db.pool())
    .await?;
    let mut taken = Vec::new();
    for r in rows {
        let (id, attempts): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
        let took = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1 \
             WHERE id = $2 AND status = 'pending' AND attempts = $3 AND next_attempt_at < $4",
        )
        .bind(now)
        .bind(&id)
        .bind(attempts)
        .bind(cutoff)
        .execute(db.pool())
        .await?;
        if took.rows_affected() == 1 {
            taken.push((id, attempts + 1));
        }
    }
    Ok(taken)
}

/// One attempt, as the delivery log shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: i64,
    /// The receiver's HTTP status; absent when none came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One notification and its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Also sent as `X-Argus-Delivery`: the same on every attempt.
    pub id: String,
    /// `video.succeeded`, `video.failed` or `video.cancelled`.
    pub event: String,
    /// The run it announces (the `process_video` task id).
    pub run_id: String,
    pub url: String,
    /// `pending`, `sending`, `delivered` or `failed` (given up).
    pub status: String,
    /// When the next attempt is due, while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub attempts: Vec<AttemptView>,
}

/// A job's notifications, oldest first, with their attempts.
pub async fn list(db: &Db, job_id: &str) -> Result<Vec<DeliveryView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event, run_id, url, status, next_attempt_at, created_at \
         FROM webhook_deliveries WHERE job_id = $1 ORDER BY created_at, id",
    )
    .bind(job_id)
    .fetch_all(db.pool())
    .await?;
    let mut views = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get(0)?;
        let status: String = r.try_get(4)?;
        let attempts = sqlx::query(
            "SELECT attempt, started_at, duration_ms, status_code, error FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(&id)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|a| {
            Ok(AttemptView {
                attempt: a.try_get(0)?,
                started_at: a.try_get(1)?,
                duration_ms: a.try_get(2)?,
                status_code: a.try_get(3)?,
                error: a.try_get(4)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        views.push(DeliveryView {
            next_attempt_at: if status == "pending" {
                r.try_get(5)?
            } else {
                None
            },
            id,
            event: r.try_get(1)?,
            run_id: r.try_get(2)?,
            url: r.try_get(3)?,
            status,
            created_at: r.try_get(6)?,
            attempts,
        });
    }
    Ok(views)
}

/// A job's notifications go with it.
pub async fn delete_job(db: &Db, job_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE job_id = $1)",
    )
    .bind(job_id)
    .execute(db.pool())
    .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE job_id = $1")
        .bind(job_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

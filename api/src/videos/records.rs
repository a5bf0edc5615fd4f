//! Video records in SQL: who owns which video, what was uploaded, with which options, and the
//! last status known (the result backend holds the live state; its copy here outlives the
//! backend's one-week expiry and feeds the metrics). Portable SQL, as in [`crate::db`].

use argus_common::state::VideoStatus;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{now_text, Db};

/// Every status a record can hold, in lifecycle order.
pub const STATUSES: &[&str] = &[
    "queued",
    "splitting",
    "detecting",
    "merging",
    "succeeded",
    "failed",
    "cancelled",
];

/// One row of `videos`, with its owner's name.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoRecord {
    pub id: String,
    pub owner_id: String,
    pub owner: String,
    pub filename: String,
    pub size_bytes: i64,
    pub content_type: Option<String>,
    pub status: String,
    pub task_id: Option<String>,
    /// `VideoOptions` as JSON.
    pub options: String,
    /// `VideoInfo` (the probe's) as JSON.
    pub video_info: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Where its end is announced (`callback_url`); `None`: the owner's default, if any.
    pub callback_url: Option<String>,
}

const COLUMNS: &str = "v.id, v.owner_id, u.username, v.filename, v.size_bytes, v.content_type, \
                       v.status, v.task_id, v.options, v.video_info, v.error, v.created_at, \
                       v.updated_at, v.finished_at, v.callback_url";

impl VideoRecord {
    /// What the probe found (`video_info`), as JSON; `None` when absent or unreadable.
    pub fn probe(&self) -> Option<serde_json::Value> {
        self.video_info
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }

    /// The video's frame count as probed (0 when unknown).
    pub fn frame_count(&self) -> u64 {
        self.probe()
            .and_then(|v| v["frame_count"].as_u64())
            .unwrap_or(0)
    }

    fn from_row(row: &AnyRow) -> Result<VideoRecord, sqlx::Error> {
        Ok(VideoRecord {
            id: row.try_get(0)?,
            owner_id: row.try_get(1)?,
            owner: row.try_get(2)?,
            filename: row.try_get(3)?,
            size_bytes: row.try_get(4)?,
            content_type: row.try_get(5)?,
            status: row.try_get(6)?,
            task_id: row.try_get(7)?,
            options: row.try_get(8)?,
            video_info: row.try_get(9)?,
            error: row.try_get(10)?,
            created_at: row.try_get(11)?,
            updated_at: row.try_get(12)?,
            finished_at: row.try_get(13)?,
            callback_url: row.try_get(14)?,
        })
    }
}

/// A new record, as an upload creates it.
pub struct NewVideo<'a> {
    pub id: &'a str,
    pub owner_id: &'a str,
    pub filename: &'a str,
    pub size_bytes: u64,
    pub content_type: Option<&'a str>,
    pub task_id: &'a str,
    pub options: &'a str,
    pub video_info: &'a str,
    pub callback_url: Option<&'a str>,
}

/// Inserts a `queued` record; returns its creation time.
pub async fn insert(db: &Db, video: &NewVideo<'_>) -> Result<String, sqlx::Error> {
    let now = now_text();
    sqlx::query(
        "INSERT INTO videos (id, owner_id, filename, size_bytes, content_type, status, task_id, \
         options, video_info, error, created_at, updated_at, finished_at, callback_url) \
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, NULL, $9, $9, NULL, $10)",
    )
    .bind(video.id)
    .bind(video.owner_id)
    .bind(video.filename)
    .bind(i64::try_from(video.size_bytes).unwrap_or(i64::MAX))
    .bind(video.content_type)
    .bind(video.task_id)
    .bind(video.options)
    .bind(video.video_info)
    .bind(&now)
    .bind(video.callback_url)
    .execute(db.pool())
    .await?;
    Ok(now)
}

pub async fn get(db: &Db, id: &str) -> Result<Option<VideoRecord>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM videos v JOIN users u ON u.id = v.owner_id WHERE v.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .map(|row| VideoRecord::from_row(&row))
    .transpose()
}

/// What to list.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Only this owner's videos; every owner's when `None` (admins).
    pub owner_id: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// A page of records, newest first (ties broken by id, so pages never overlap), and how many
/// match in all.
pub async fn list(
    db: &Db,
    filter: &Filter<'_>,
    limit: u32,
    offset: u64,
) -> Result<(Vec<VideoRecord>, i64), sqlx::Error> {
    let mut conditions = Vec::new();
    let mut values: Vec<&str> = Vec::new();
    if let Some(owner) = filter.owner_id {
        values.push(owner);
        conditions.push(format!("v.owner_id = ${}", values.len()));
    }
    if let Some(status) = filter.status {
        values.push(status);
        conditions.push(format!("v.status = ${}", values.len()));
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let count_sql = format!("SELECT COUNT(*) FROM videos v {clause}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    for value in &values {
        count = count.bind(*value);
    }
    let total = count.fetch_one(db.pool()).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM videos v JOIN users u ON u.id = v.owner_id {clause} \
         ORDER BY v.created_at DESC, v.id DESC LIMIT ${} OFFSET ${}",
        values.len() + 1,
        values.len() + 2
    );
    let mut query = sqlx::query(&sql);
    for value in &values {
        query = query.bind(*value);
    }
    let rows = query
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(db.pool())
        .await?;
    let records = rows
        .iter()
        .map(VideoRecord::from_row)
        .collect::<Result<_, _>>()?;
    Ok((records, total))
}

/// How a run stands, as the result backend last said.
#[derive(Debug)]
pub struct StatusUpdate<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub task_id: Option<&'a str>,
    pub error: Option<&'a str>,
    /// When it ended (RFC 3339), for a final status.
    pub finished_at: Option<&'a str>,
}

/// Records a status when it differs from the stored one (progress within a status writes
/// nothing). Returns whether the row changed.
pub async fn record_status(db: &Db, update: &StatusUpdate<'_>) -> Result<bool, sqlx::Error> {
    record_status_in(db, "videos", update).await
}

/// [`record_status`] on table `table`: `videos` or `collections` (the same columns).
pub async fn record_status_in(
    db: &Db,
    table: &'static str,
    update: &StatusUpdate<'_>,
) -> Result<bool, sqlx::Error> {
    debug_assert!(matches!(table, "videos" | "collections"));
    // Read first: most state changes are progress within `detecting`, and a read does not
    // take SQLite's write lock.
    let stored: Option<(String, Option<String>)> = sqlx::query(&format!(
        "SELECT status, task_id FROM {table} WHERE id = $1"
    ))
    .bind(update.id)
    .fetch_optional(db.pool())
    .await?
    .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?)))
    .transpose()?;
    let Some((status, task_id)) = stored else {
        return Ok(false);
    };
    let same_run = update.task_id.is_none() || task_id.as_deref() == update.task_id;
    // Within a run the record only moves forward: a read-repair that read an older state
    // lands after the listener recorded a newer one, and must not undo it.
    if same_run && !moves_forward(&status, update.status) {
        return Ok(false);
    }
    // Against the status read: of two writers racing, the one that read a stale row writes
    // nothing.
    let changed = sqlx::query(&format!(
        "UPDATE {table} SET status = $1, task_id = COALESCE($2, task_id), error = $3, \
         finished_at = $4, updated_at = $5 WHERE id = $6 AND status = $7"
    ))
    .bind(update.status)
    .bind(update.task_id)
    .bind(update.error)
    .bind(update.finished_at)
    .bind(now_text())
    .bind(update.id)
    .bind(&status)
    .execute(db.pool())
    .await?;
    Ok(changed.rows_affected() > 0)
}

/// Whether a run's record may go from status `from` to `to`: forward only, and never out of a
/// final status. An unknown stored status may be replaced.
fn moves_forward(from: &str, to: &str) -> bool {
    match (VideoStatus::parse(from), VideoStatus::parse(to)) {
        (Some(from), Some(to)) => !from.is_final() && to > from,
        (None, _) => true,
        (_, None) => false,
    }
}

/// Records that are not final and were last changed before `cutoff` (RFC 3339), oldest first:
/// `(id, task_id, status)`, for the reaper.
pub async fn unfinished_since(
    db: &Db,
    cutoff: &str,
    limit: i64,
) -> Result<Vec<(String, Option<String>, String)>, sqlx::Error> {
    sqlx::query(
        "SELECT id, task_id, status FROM videos \
         WHERE status IN ('queued', 'splitting', 'detecting', 'merging') AND updated_at < $1 \
         ORDER BY updated_at LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
    .collect()
}

/// Deletes a record; false when there was none.
pub async fn delete(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM videos WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Videos per stored status.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query("SELECT status, COUNT(*) FROM videos GROUP BY status")
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::moves_forward;

    #[test]
    fn a_runs_record_only_moves_forward() {
        assert!(moves_forward("queued", "detecting"));
        assert!(moves_forward("detecting", "succeeded"));
        assert!(moves_forward("merging", "failed"));
        // A read-repair that read an older state, landing after the listener.
        assert!(!moves_forward("detecting", "splitting"));
        assert!(!moves_forward("succeeded", "merging"));
        assert!(!moves_forward("detecting", "detecting"));
        // Final is final within a run.
        assert!(!moves_forward("cancelled", "failed"));
        assert!(!moves_forward("failed", "succeeded"));
        // Nonsense on either side.
        assert!(moves_forward("???", "queued"));
        assert!(!moves_forward("queued", "???"));
    }
}

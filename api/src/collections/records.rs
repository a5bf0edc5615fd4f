//! Collection records in SQL: who owns which collection, what came in, with which options, and
//! the last status known (the result backend holds the live state). Portable SQL.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{now_text, Db};

#[derive(Clone, Debug, PartialEq)]
pub struct CollectionRecord {
    pub id: String,
    pub owner_id: String,
    pub owner: String,
    pub status: String,
    pub task_id: Option<String>,
    /// `CollectionOptions` as JSON.
    pub options: String,
    pub photos: i64,
    pub refused: i64,
    pub size_bytes: i64,
    pub error: Option<String>,
    pub callback_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

const COLUMNS: &str = "c.id, c.owner_id, u.username, c.status, c.task_id, c.options, c.photos, \
                       c.refused, c.size_bytes, c.error, c.callback_url, c.created_at, \
                       c.updated_at, c.finished_at";

impl CollectionRecord {
    fn from_row(row: &AnyRow) -> Result<CollectionRecord, sqlx::Error> {
        Ok(CollectionRecord {
            id: row.try_get(0)?,
            owner_id: row.try_get(1)?,
            owner: row.try_get(2)?,
            status: row.try_get(3)?,
            task_id: row.try_get(4)?,
            options: row.try_get(5)?,
            photos: row.try_get(6)?,
            refused: row.try_get(7)?,
            size_bytes: row.try_get(8)?,
            error: row.try_get(9)?,
            callback_url: row.try_get(10)?,
            created_at: row.try_get(11)?,
            updated_at: row.try_get(12)?,
            finished_at: row.try_get(13)?,
        })
    }
}

pub struct NewCollection<'a> {
    pub id: &'a str,
    pub owner_id: &'a str,
    pub task_id: &'a str,
    pub options: &'a str,
    pub photos: u64,
    pub refused: u64,
    pub size_bytes: u64,
    pub callback_url: Option<&'a str>,
}

pub async fn insert(db: &Db, c: &NewCollection<'_>) -> Result<(), sqlx::Error> {
    let now = now_text();
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO collections (id, owner_id, status, task_id, options, photos, refused, \
         size_bytes, error, callback_url, created_at, updated_at, finished_at) \
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, NULL, $8, $9, $9, NULL)",
    )
    .bind(c.id)
    .bind(c.owner_id)
    .bind(c.task_id)
    .bind(c.options)
    .bind(int(c.photos))
    .bind(int(c.refused))
    .bind(int(c.size_bytes))
    .bind(c.callback_url)
    .bind(&now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<CollectionRecord>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM collections c JOIN users u ON u.id = c.owner_id WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .map(|row| CollectionRecord::from_row(&row))
    .transpose()
}

/// One owner's collections (every owner's when `None`), newest first, and how many there are.
pub async fn list(
    db: &Db,
    owner_id: Option<&str>,
    limit: u32,
    offset: u64,
) -> Result<(Vec<CollectionRecord>, i64), sqlx::Error> {
    let clause = if owner_id.is_some() {
        "WHERE c.owner_id = $1"
    } else {
        "WHERE $1 = $1"
    };
    let owner = owner_id.unwrap_or("");
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM collections c {clause}"))
        .bind(owner)
        .fetch_one(db.pool())
        .await?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM collections c JOIN users u ON u.id = c.owner_id {clause} \
         ORDER BY c.created_at DESC, c.id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(owner)
    .bind(i64::from(limit))
    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
    .fetch_all(db.pool())
    .await?;
    let records = rows
        .iter()
        .map(CollectionRecord::from_row)
        .collect::<Result<_, _>>()?;
    Ok((records, total))
}

pub async fn delete(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM collections WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

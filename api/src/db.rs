//! The SQL database: SQLite under the storage dir (embedded default) or PostgreSQL (clusters).
//!
//! One code path for both through sqlx's `Any` driver: queries use `$1` placeholders (which both
//! backends read) and only TEXT and BIGINT columns, so the same SQL runs everywhere. Migrations
//! are SQL files under `api/migrations/`, compiled into the binary and applied at start;
//! sqlx records them in `_sqlx_migrations` and, on PostgreSQL, takes an advisory lock, so replicas
//! starting together apply them once.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};

use crate::config::redact_url;

/// The migrations, oldest first: (version, description, SQL). Append only; never edit one that
/// has shipped (sqlx refuses to start on a changed checksum).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "identity",
        include_str!("../migrations/0001_identity.sql"),
    ),
    (2, "videos", include_str!("../migrations/0002_videos.sql")),
    (
        3,
        "token generation",
        include_str!("../migrations/0003_token_generation.sql"),
    ),
    (
        4,
        "webhooks",
        include_str!("../migrations/0004_webhooks.sql"),
    ),
    (
        5,
        "collections",
        include_str!("../migrations/0005_collections.sql"),
    ),
];

/// Which server is behind the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the directory of the SQLite database {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A pool of connections to the users and videos database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects and applies the migrations: what every role that touches the database does first.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Connects without migrating. A SQLite file (and its directory) is created when missing.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        install_default_drivers();
        let backend = backend_of(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            // SQLite has one writer anyway; PostgreSQL connections are a server-side resource.
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            // A request waiting for a connection fails fast (503) instead of hanging.
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers do not block the writer; wait for locks instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|source| DbError::Connect {
                url: redact_url(&url),
                source,
            })?;
        Ok(Db { pool, backend })
    }

    /// Applies the migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = Migrator::new(Embedded).await?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// A round trip to the server (readiness).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for the connections to close (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl(redact_url(url)))
    }
}

/// Creates the directory of a SQLite file and asks sqlx to create the file (`mode=rwc`).
fn prepare_sqlite(url: &str) -> Result<String, DbError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        return Err(DbError::UnsupportedUrl(format!(
            "{url} (an in-memory database would lose every user at restart)"
        )));
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    Ok(match query {
        Some(q) if q.split('&').any(|kv| kv.starts_with("mode=")) => url.to_string(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    })
}

/// The migrations compiled into the binary, as a sqlx migration source.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Now, as stored in the database: RFC 3339 UTC with a fixed width, so text order is time order.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_their_file() {
        let dir = std::env::temp_dir().join(format!("argus-db-{}", uuid::Uuid::new_v4()));
        let file = dir.join("sub/argus.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(prepare_sqlite(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.join("sub").is_dir());
        assert_eq!(
            prepare_sqlite(&format!("{url}?mode=ro")).unwrap(),
            format!("{url}?mode=ro")
        );
        std::fs::remove_dir_all(dir).unwrap();
        assert!(prepare_sqlite("sqlite::memory:").is_err());
        assert!(matches!(
            backend_of("mysql://x"),
            Err(DbError::UnsupportedUrl(_))
        ));
    }

    #[tokio::test]
    async fn migrations_apply_once_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("argus-db-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", dir.join("argus.db").display());
        let db = Db::open(&url).await.unwrap();
        // A second start finds them applied and does nothing.
        db.migrate().await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(
            tables,
            [
                "collections",
                "users",
                "videos",
                "webhook_attempts",
                "webhook_deliveries"
            ]
        );
        db.ping().await.unwrap();
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}

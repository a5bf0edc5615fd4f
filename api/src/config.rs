//! Configuration of the API server: one clap [`Args`] struct whose every flag is also an
//! `ARGUS_*` environment variable, so that `argus-api`, a later `argus serve` (which flattens it)
//! and the tests configure the same thing the same way.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;

use crate::StartupError;

/// Default listen address (DESIGN.md).
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default token lifetime in seconds.
pub const DEFAULT_JWT_TTL: u64 = 3600;
/// HS256 keys shorter than the hash output (32 bytes) weaken the MAC: refuse them.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Seconds a graceful shutdown waits for requests in flight.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 30;

/// A value that must never reach a log line: `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call sites are where a secret is actually used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Secret, Infallible> {
        Ok(Secret(s.to_string()))
    }
}

/// The API server's settings.
///
/// Admin bootstrap (`ARGUS_ADMIN_USER` + `ARGUS_ADMIN_PASSWORD`): at every start, when no user of
/// that name exists it is created as an admin. When it exists it is left as it is: its password
/// is never overwritten (a warning says so when the given password does not match), and a
/// disabled or non-admin user of that name stays so. Change passwords through the users API.
#[derive(Clone, Debug, Args)]
// The doc comment above is for rustdoc; the binary that flattens this names itself.
#[command(about = None, long_about = None)]
pub struct ApiConfig {
    /// Address the API listens on (host:port).
    #[arg(long = "bind", env = "ARGUS_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,

    /// Root of the mounted storage; the default SQLite database lives here.
    #[arg(
        long = "storage-dir",
        env = "ARGUS_STORAGE_DIR",
        default_value = "./data"
    )]
    pub storage_dir: PathBuf,

    /// `sqlite://PATH` or `postgres://USER:PASS@HOST/DB` [default: sqlite://<storage-dir>/argus.db]
    #[arg(
        long = "database-url",
        env = "ARGUS_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<Secret>,

    /// HS256 signing secret, at least 32 bytes (required; prefer the environment variable).
    #[arg(long = "jwt-secret", env = "ARGUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of an access token in seconds.
    #[arg(long = "jwt-ttl", env = "ARGUS_JWT_TTL", default_value_t = DEFAULT_JWT_TTL,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub jwt_ttl: u64,

    /// Name of the first admin, created at start when missing (never overwritten).
    #[arg(long = "admin-user", env = "ARGUS_ADMIN_USER")]
    pub admin_user: Option<String>,

    /// Password of that admin, used only when the user is created.
    #[arg(
        long = "admin-password",
        env = "ARGUS_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<Secret>,

    /// HTTP worker threads [default: one per CPU core].
    #[arg(long = "api-workers", env = "ARGUS_API_WORKERS")]
    pub workers: Option<usize>,

    /// Seconds a graceful shutdown (SIGTERM, Ctrl-C) waits for requests in flight.
    #[arg(long = "shutdown-timeout", env = "ARGUS_SHUTDOWN_TIMEOUT",
          default_value_t = DEFAULT_SHUTDOWN_TIMEOUT)]
    pub shutdown_timeout: u64,
}

impl ApiConfig {
    /// The defaults of every flag, for callers that do not go through clap (tests, `argus
    /// serve` building it by hand). Reads no environment variable.
    pub fn new(storage_dir: impl Into<PathBuf>, jwt_secret: Option<Secret>) -> ApiConfig {
        ApiConfig {
            bind: DEFAULT_BIND.to_string(),
            storage_dir: storage_dir.into(),
            database_url: None,
            jwt_secret,
            jwt_ttl: DEFAULT_JWT_TTL,
            admin_user: None,
            admin_password: None,
            workers: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// `ARGUS_DATABASE_URL`, else the SQLite file under the storage dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.expose().trim().is_empty() => url.expose().trim().to_string(),
            _ => format!("sqlite://{}", self.storage_dir.join("argus.db").display()),
        }
    }

    /// The signing secret, checked: present and long enough.
    pub fn checked_jwt_secret(&self) -> Result<&Secret, StartupError> {
        let secret = self
            .jwt_secret
            .as_ref()
            .filter(|s| !s.expose().is_empty())
            .ok_or(StartupError::MissingJwtSecret)?;
        let len = secret.expose().len();
        if len < MIN_JWT_SECRET_BYTES {
            return Err(StartupError::JwtSecretTooShort { len });
        }
        Ok(secret)
    }

    /// Everything that can be checked before touching the network or the database.
    pub fn validate(&self) -> Result<(), StartupError> {
        self.checked_jwt_secret()?;
        match (&self.admin_user, &self.admin_password) {
            (Some(_), None) | (None, Some(_)) => Err(StartupError::AdminPair),
            _ => Ok(()),
        }
    }
}

/// A database URL fit for a log line: the password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let mut config = ApiConfig::new("/data", Some(Secret::new("s".repeat(40))));
        config.admin_password = Some(Secret::new("hunter2hunter2"));
        config.database_url = Some(Secret::new("postgres://argus:pw@db/argus"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("sssss"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains(":pw@"), "{printed}");
    }

    #[test]
    fn default_database_is_sqlite_under_storage() {
        let config = ApiConfig::new("/srv/argus", None);
        assert_eq!(config.database_url(), "sqlite:///srv/argus/argus.db");
    }

    #[test]
    fn secret_checks() {
        let config = ApiConfig::new("/d", None);
        assert!(matches!(
            config.validate(),
            Err(StartupError::MissingJwtSecret)
        ));
        let config = ApiConfig::new("/d", Some(Secret::new("x".repeat(31))));
        assert!(matches!(
            config.validate(),
            Err(StartupError::JwtSecretTooShort { len: 31 })
        ));
        let mut config = ApiConfig::new("/d", Some(Secret::new("x".repeat(32))));
        assert!(config.validate().is_ok());
        config.admin_user = Some("root".into());
        assert!(matches!(config.validate(), Err(StartupError::AdminPair)));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://argus:s3cret@db:5432/argus?sslmode=require"),
            "postgres://argus:***@db:5432/argus?sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite:///data/argus.db"),
            "sqlite:///data/argus.db"
        );
    }
}

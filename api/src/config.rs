//! Configuration of the API server: one clap [`Args`] struct whose every flag is also an
//! `ARGUS_*` environment variable, so that `argus-api`, a later `argus serve` (which flattens it)
//! and the tests configure the same thing the same way.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use argus_common::Limits;
use clap::Args;

use crate::password::DEFAULT_HASH_QUEUE;
use crate::throttle::{parse_trusted_proxies, DEFAULT_ADDRESS_ATTEMPTS, DEFAULT_USER_ATTEMPTS};
use crate::StartupError;

/// Default listen address (docs/architecture.md).
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default token lifetime in seconds.
pub const DEFAULT_JWT_TTL: u64 = 3600;
/// HS256 keys shorter than the hash output (32 bytes) weaken the MAC: refuse them.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Seconds a graceful shutdown waits for requests in flight.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 30;
/// Broker and result backend of the embedded mode (docs/architecture.md).
pub const DEFAULT_QUEUE_URL: &str = "memory://";
/// Largest upload: 2 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 2 << 30;
/// Uploads received at once; more get 429.
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 8;
/// One user's share of them: four users (or a trickling client and three others) fill them.
pub const DEFAULT_MAX_UPLOADS_PER_USER: usize = 2;
/// The upload rate window, in seconds (a silent window is too slow).
pub const DEFAULT_UPLOAD_IDLE_TIMEOUT: u64 = 60;
/// Bytes per second an upload must average over each window: a slow mobile link still makes
/// it, a client that trickles to hold a slot does not.
pub const DEFAULT_UPLOAD_MIN_RATE: u64 = 16 * 1024;
/// Longest a whole upload may take: 2 GiB at ~1.2 MB/s.
pub const DEFAULT_UPLOAD_TIMEOUT: u64 = 1800;
/// The model detectors serve unless told otherwise.
pub const DEFAULT_SERVED_MODELS: &str = "coco-centernet";
/// Seconds between keepalive comments on a video's event stream.
pub const DEFAULT_SSE_KEEPALIVE: u64 = 15;
/// Seconds between the reaper's rounds (see `videos::reaper`).
pub const DEFAULT_REAPER_INTERVAL: u64 = 60;
/// A record not final and unchanged for this long is checked against the result backend: well
/// past the moment between an upload's record and its state.
pub const DEFAULT_REAP_AFTER: u64 = 120;
/// Event streams one user may hold open at once (a browser tab or two per video watched).
pub const DEFAULT_MAX_STREAMS_PER_USER: usize = 16;

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
/// disabled or non-admin user of that name stays so. Change passwords through the API
/// (`PUT /api/v1/auth/password`, `PUT /api/v1/users/{name}/password`) or `argus user passwd`.
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

    /// Seconds the server keeps serving after SIGTERM with `/readyz` answering 503, before it
    /// stops taking connections: time for the load balancer (a Kubernetes Service's endpoints)
    /// to stop sending it requests. 0: stop at once.
    #[arg(long = "shutdown-delay", env = "ARGUS_SHUTDOWN_DELAY_S", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub shutdown_delay: u64,

    /// Where `process_video` is sent: `amqp://…` (RabbitMQ), `redis://…`, or `memory://` (only
    /// useful with workers in this process: `argus serve`).
    #[arg(long = "broker-url", env = "ARGUS_BROKER_URL", default_value = DEFAULT_QUEUE_URL,
          hide_env_values = true)]
    pub broker_url: Secret,

    /// Where video states and results live: `redis://…` or `memory://` (in-process only).
    #[arg(long = "result-backend", env = "ARGUS_RESULT_BACKEND", default_value = DEFAULT_QUEUE_URL,
          hide_env_values = true)]
    pub result_backend: Secret,

    /// Largest upload in bytes; a larger one is refused (413) as soon as it is seen to be.
    #[arg(long = "max-upload-bytes", env = "ARGUS_MAX_UPLOAD_BYTES",
          default_value_t = DEFAULT_MAX_UPLOAD_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_upload_bytes: u64,

    /// Uploads received at once; one more is refused with 429 and `Retry-After`.
    #[arg(long = "max-concurrent-uploads", env = "ARGUS_MAX_CONCURRENT_UPLOADS",
          default_value_t = DEFAULT_MAX_CONCURRENT_UPLOADS)]
    pub max_concurrent_uploads: usize,

    /// Uploads one user may have in progress at once (their share of the concurrent uploads).
    #[arg(long = "max-uploads-per-user", env = "ARGUS_MAX_UPLOADS_PER_USER",
          default_value_t = DEFAULT_MAX_UPLOADS_PER_USER,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_uploads_per_user: usize,

    /// Seconds of the upload rate window: an upload body must bring ARGUS_UPLOAD_MIN_RATE bytes/s
    /// over each such window (nothing for a whole window is refused too), else 408.
    #[arg(long = "upload-idle-timeout", env = "ARGUS_UPLOAD_IDLE_TIMEOUT_S",
          default_value_t = DEFAULT_UPLOAD_IDLE_TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub upload_idle_timeout: u64,

    /// Least bytes per second an upload must average over each rate window (0: any rate).
    #[arg(long = "upload-min-rate", env = "ARGUS_UPLOAD_MIN_RATE",
          default_value_t = DEFAULT_UPLOAD_MIN_RATE,
          value_parser = clap::value_parser!(u64).range(0..=1 << 40))]
    pub upload_min_rate: u64,

    /// Seconds a whole upload may take to arrive, else 408.
    #[arg(long = "upload-timeout", env = "ARGUS_UPLOAD_TIMEOUT_S",
          default_value_t = DEFAULT_UPLOAD_TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
    pub upload_timeout: u64,

    /// The models the detectors serve (comma-separated); an upload naming another is refused.
    #[arg(long = "served-models", env = "ARGUS_SERVED_MODELS", value_delimiter = ',',
          default_value = DEFAULT_SERVED_MODELS)]
    pub served_models: Vec<String>,

    /// The model of uploads that name none, listed first by `GET /models`; unset: the first of
    /// ARGUS_SERVED_MODELS. The same as the processors' and detectors'.
    #[arg(long = "default-model", env = "ARGUS_DEFAULT_MODEL")]
    pub default_model: Option<String>,

    /// Seconds between keepalive comments on a video's event stream (SSE).
    #[arg(long = "sse-keepalive", env = "ARGUS_SSE_KEEPALIVE_S",
          default_value_t = DEFAULT_SSE_KEEPALIVE,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sse_keepalive: u64,

    /// Seconds between reaper rounds: runs whose bookkeeping the result backend lost (a Redis
    /// restarted without persistence) are failed with the reason instead of waiting for ever.
    #[arg(long = "reaper-interval", env = "ARGUS_REAPER_INTERVAL_S",
          default_value_t = DEFAULT_REAPER_INTERVAL,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub reaper_interval: u64,

    /// A video not final whose record has not changed for this many seconds is checked by the
    /// reaper (a younger one may be between its record and its state).
    #[arg(long = "reap-after", env = "ARGUS_REAP_AFTER_S",
          default_value_t = DEFAULT_REAP_AFTER,
          value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    pub reap_after: u64,

    /// Failed logins a username is allowed; each further one blocks it for a back-off that
    /// doubles (1 s, 2 s, … 300 s), answered 429. Per API replica.
    #[arg(long = "login-attempts", env = "ARGUS_LOGIN_ATTEMPTS",
          default_value_t = DEFAULT_USER_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_attempts: u32,

    /// Failed logins a client address is allowed (whatever the names), then the same back-off.
    #[arg(long = "login-address-attempts", env = "ARGUS_LOGIN_ADDRESS_ATTEMPTS",
          default_value_t = DEFAULT_ADDRESS_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_address_attempts: u32,

    /// Proxies (IP addresses or CIDR blocks, comma-separated) whose `X-Forwarded-For` names the
    /// client for login throttling; unset, the peer address is the client.
    #[arg(
        long = "trusted-proxies",
        env = "ARGUS_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,

    /// Password hashes that may wait while 4 run; one more is refused with 429 `hashing_busy`.
    #[arg(long = "hash-queue", env = "ARGUS_HASH_QUEUE", default_value_t = DEFAULT_HASH_QUEUE)]
    pub hash_queue: usize,
    /// Event streams (SSE) one user may hold open at once; one more is refused with 429.
    #[arg(long = "max-streams-per-user", env = "ARGUS_MAX_STREAMS_PER_USER",
          default_value_t = DEFAULT_MAX_STREAMS_PER_USER,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_streams_per_user: usize,

    /// Address for `/metrics`, `/healthz` and `/readyz` off the public port (e.g.
    /// `0.0.0.0:9100`); when set, the public port no longer serves `/metrics` or `/readyz`.
    /// Empty: both stay on the public port.
    #[arg(long = "metrics-bind", env = "ARGUS_METRICS_BIND", default_value = "")]
    pub metrics_bind: String,

    /// What an upload may be: checked by probing it before it is queued.
    #[command(flatten)]
    pub limits: Limits,

    /// Certificates for `amqps://` and `rediss://`.
    #[command(flatten)]
    pub tls: argus_queue::tls::TlsArgs,

    /// Photo collections' limits (`ARGUS_MAX_COLLECTION_*`, `ARGUS_MAX_PHOTO_BYTES`).
    #[command(flatten)]
    pub collections: crate::collections::CollectionArgs,

    /// Signed webhooks (`ARGUS_WEBHOOK_*`, `ARGUS_PUBLIC_URL`).
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookArgs,
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
            shutdown_delay: 0,
            broker_url: Secret::new(DEFAULT_QUEUE_URL),
            result_backend: Secret::new(DEFAULT_QUEUE_URL),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_concurrent_uploads: DEFAULT_MAX_CONCURRENT_UPLOADS,
            max_uploads_per_user: DEFAULT_MAX_UPLOADS_PER_USER,
            upload_idle_timeout: DEFAULT_UPLOAD_IDLE_TIMEOUT,
            upload_min_rate: DEFAULT_UPLOAD_MIN_RATE,
            upload_timeout: DEFAULT_UPLOAD_TIMEOUT,
            served_models: vec![DEFAULT_SERVED_MODELS.to_string()],
            default_model: None,
            sse_keepalive: DEFAULT_SSE_KEEPALIVE,
            reaper_interval: DEFAULT_REAPER_INTERVAL,
            reap_after: DEFAULT_REAP_AFTER,
            login_attempts: DEFAULT_USER_ATTEMPTS,
            login_address_attempts: DEFAULT_ADDRESS_ATTEMPTS,
            trusted_proxies: Vec::new(),
            hash_queue: DEFAULT_HASH_QUEUE,
            max_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            metrics_bind: String::new(),
            limits: Limits::default(),
            tls: argus_queue::tls::TlsArgs::default(),
            webhooks: crate::webhooks::WebhookArgs::default(),
            collections: crate::collections::CollectionArgs::default(),
        }
    }

    /// The served models, trimmed, without empty entries, the default first.
    pub fn served_models(&self) -> Vec<String> {
        let mut models: Vec<String> = self
            .served_models
            .iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        let default = self.default_model();
        if let Some(i) = models.iter().position(|m| *m == default) {
            let m = models.remove(i);
            models.insert(0, m);
        }
        models
    }

    /// The default model ([`argus_pipeline::tasks::resolve_default_model`]).
    pub fn default_model(&self) -> String {
        argus_pipeline::tasks::resolve_default_model(
            self.default_model.as_deref(),
            &self.served_models,
            None,
        )
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
        self.webhooks.validate().map_err(StartupError::Config)?;
        if let (Some(_), None) | (None, Some(_)) = (&self.admin_user, &self.admin_password) {
            return Err(StartupError::AdminPair);
        }
        if self.served_models().is_empty() {
            return Err(StartupError::Config(
                "ARGUS_SERVED_MODELS lists no model".to_string(),
            ));
        }
        argus_pipeline::tasks::resolve_served_models(&self.served_models, &self.default_model())
            .map_err(StartupError::Config)?;
        if self.max_concurrent_uploads == 0 {
            return Err(StartupError::Config(
                "ARGUS_MAX_CONCURRENT_UPLOADS must be at least 1".to_string(),
            ));
        }
        parse_trusted_proxies(&self.trusted_proxies).map_err(StartupError::Config)?;
        Ok(())
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
        config.broker_url = Secret::new("amqp://argus:brokerpw@mq/%2f");
        let printed = format!("{config:?}");
        assert!(!printed.contains("brokerpw"), "{printed}");
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
        config.admin_user = None;
        config.served_models = vec![" ".into()];
        assert!(matches!(config.validate(), Err(StartupError::Config(_))));
        config.served_models = vec!["m".into()];
        config.default_model = Some("n".into());
        assert!(config.validate().is_err(), "a default that is not served");
        config.default_model = None;
        config.trusted_proxies = vec!["10.0.0.0/8".into(), "proxy.local".into()];
        assert!(matches!(config.validate(), Err(StartupError::Config(_))));
    }

    #[test]
    fn video_settings_parse_from_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            api: ApiConfig,
        }
        let cli = Cli::try_parse_from([
            "argus-api",
            "--served-models",
            "coco-centernet, yolo",
            "--max-upload-bytes",
            "1000",
            "--max-frames",
            "50",
        ])
        .unwrap();
        assert_eq!(cli.api.served_models(), ["coco-centernet", "yolo"]);
        let mut api = cli.api.clone();
        api.default_model = Some("yolo".into());
        assert_eq!(
            api.served_models(),
            ["yolo", "coco-centernet"],
            "the default first"
        );
        assert_eq!(cli.api.max_upload_bytes, 1000);
        assert_eq!(cli.api.limits.max_frames, 50);
        assert!(Cli::try_parse_from(["argus-api", "--max-upload-bytes", "0"]).is_err());
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

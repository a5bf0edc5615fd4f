//! Test harness: the real server (`argus_api::Api`, the same code `argus-api` runs) on a free
//! loopback port in a thread of its own, on SQLite in a temp dir or on a database of its own in
//! the shared test PostgreSQL; a `reqwest` client talks to it over HTTP like any client.

#![allow(dead_code)]

/// Runs an `async fn(Backend)` test once on SQLite and once on PostgreSQL.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use argus_api::health::ReadinessCheck;
use argus_api::{Api, ApiConfig, Secret};
use argus_queue::backend::Backend as ResultBackend;
use argus_queue::broker::Broker;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const SECRET: &str = "test-secret-that-is-long-enough-0123456789";
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "argus-api-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration a test server starts with: a random port, one worker, the test secret,
/// the test admin, and the database of `backend`.
pub async fn config(backend: Backend, storage: &TempDir) -> ApiConfig {
    let mut config = ApiConfig::new(&storage.0, Some(Secret::new(SECRET)));
    config.bind = "127.0.0.1:0".to_string();
    config.workers = Some(2);
    config.shutdown_timeout = 1;
    config.admin_user = Some(ADMIN.to_string());
    config.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    if backend == Backend::Postgres {
        let url = argus_testkit::PgServer::shared().fresh_database().await;
        config.database_url = Some(Secret::new(url));
    }
    config
}

/// A running server and a client for it. Stops the server on drop.
pub struct TestApi {
    pub base: String,
    /// `http://` + the `ARGUS_METRICS_BIND` address, when the config set one.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    pub config: ApiConfig,
    handle: actix_web::dev::ServerHandle,
    /// Stops the server as SIGTERM does (`drain`) or at once (`stop`).
    pub stopper: argus_api::server::Stopper,
    thread: Option<JoinHandle<()>>,
    _storage: Option<TempDir>,
}

impl TestApi {
    pub async fn start(backend: Backend) -> TestApi {
        let storage = TempDir::new("storage");
        let config = config(backend, &storage).await;
        let mut api = TestApi::start_with(config, Vec::new())
            .await
            .expect("the test server starts");
        // The backend is the one asked for: SQLite writes its file under the storage dir.
        let sqlite_file = storage.0.join("argus.db").exists();
        assert_eq!(sqlite_file, backend == Backend::Sqlite, "{backend:?}");
        api._storage = Some(storage);
        api
    }

    /// [`TestApi::start`] with the configuration changed by `tune` first.
    pub async fn start_tuned(backend: Backend, tune: impl FnOnce(&mut ApiConfig)) -> TestApi {
        let storage = TempDir::new("storage");
        let mut config = config(backend, &storage).await;
        tune(&mut config);
        let mut api = TestApi::start_with(config, Vec::new())
            .await
            .expect("the test server starts");
        api._storage = Some(storage);
        api
    }

    /// Starts a server with `config` (and extra readiness checks) in a thread with its own actix
    /// runtime, as `argus-api` would run it.
    pub async fn start_with(
        config: ApiConfig,
        checks: Vec<Box<dyn ReadinessCheck>>,
    ) -> Result<TestApi, argus_api::StartupError> {
        TestApi::start_full(config, checks, None).await
    }

    /// Starts a server on a broker and result backend of the test's (`memory://` ones shared
    /// with workers the test runs), as `argus serve` does.
    pub async fn start_with_queue(
        config: ApiConfig,
        broker: Broker,
        backend: ResultBackend,
    ) -> Result<TestApi, argus_api::StartupError> {
        TestApi::start_full(config, Vec::new(), Some((broker, backend))).await
    }

    async fn start_full(
        config: ApiConfig,
        checks: Vec<Box<dyn ReadinessCheck>>,
        queue: Option<(Broker, ResultBackend)>,
    ) -> Result<TestApi, argus_api::StartupError> {
        let (tx, rx) = mpsc::channel();
        let server_config = config.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let started = async {
                    let mut api = match queue {
                        Some((broker, backend)) => {
                            Api::init_with_queue(server_config, broker, backend).await?
                        }
                        None => Api::init(server_config).await?,
                    };
                    for check in checks {
                        api = api.with_check(BoxedCheck(check));
                    }
                    api.start()
                };
                match started.await {
                    Ok(server) => {
                        tx.send(Ok((
                            server.addr(),
                            server.metrics_addr(),
                            server.handle(),
                            server.stopper(),
                        )))
                        .unwrap();
                        server.run().await.expect("server ran");
                    }
                    Err(e) => tx.send(Err(e)).unwrap(),
                }
            })
        });
        let (addr, metrics_addr, handle, stopper) =
            tokio::task::spawn_blocking(move || rx.recv().expect("server thread"))
                .await
                .unwrap()?;
        Ok(TestApi {
            base: format!("http://{addr}"),
            metrics_base: metrics_addr.map(|a| format!("http://{a}")),
            client: reqwest::Client::new(),
            config,
            handle,
            stopper,
            thread: Some(thread),
            _storage: None,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with an optional bearer token.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends and reads status and JSON body (Null when the body is not JSON).
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = builder.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path, token)).await
    }

    /// Logs in with a form (the OAuth2 password flow); the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .send(
                self.request(Method::POST, "/api/v1/auth/token", None)
                    .form(&[("username", username), ("password", password)]),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login as {username}: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    pub async fn create_user(
        &self,
        token: &str,
        username: &str,
        password: &str,
        role: &str,
    ) -> (StatusCode, Value) {
        self.send(
            self.request(Method::POST, "/api/v1/users", Some(token))
                .json(&json!({
                    "username": username, "password": password, "role": role
                })),
        )
        .await
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        // Not graceful: the client's idle keep-alive connections would hold a graceful stop.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct BoxedCheck(Box<dyn ReadinessCheck>);

impl ReadinessCheck for BoxedCheck {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        self.0.check()
    }
}

/// Asserts an error answer: status, JSON `{"code", "message"}` with a non-empty message.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(body["code"], code, "code of {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message of {body}"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "exactly code and message: {body}"
    );
}

/// An event stream (`GET /api/v1/videos/{id}/events`) read with reqwest, block by block.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// How long a stream may stay silent before a test gives up on it.
pub const STREAM_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl EventStream {
    pub async fn open(api: &TestApi, id: &str, token: &str) -> EventStream {
        let response = api
            .request(
                Method::GET,
                &format!("/api/v1/videos/{id}/events"),
                Some(token),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next block (an event or a comment), `None` once the stream ended.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block = self.buffer[..end].to_string();
                self.buffer.drain(..end + 2);
                return Some(block);
            }
            let chunk = tokio::time::timeout(STREAM_WAIT, self.response.chunk())
                .await
                .expect("an event or the end within the wait")
                .expect("the stream reads");
            match chunk {
                Some(chunk) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                None => {
                    assert!(self.buffer.is_empty(), "a partial event: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// The next state event (keepalives skipped, counted in `keepalives`).
    pub async fn state(&mut self, keepalives: &mut usize) -> Option<Value> {
        loop {
            let block = self.next().await?;
            if block == ": keepalive" {
                *keepalives += 1;
                continue;
            }
            let data = block
                .strip_prefix("event: state\ndata: ")
                .unwrap_or_else(|| panic!("an event: {block:?}"));
            return Some(serde_json::from_str(data).unwrap());
        }
    }
}

/// The sample video (carphone, 120 frames).
pub fn carphone() -> Vec<u8> {
    let path: PathBuf = argus_common::paths::media_dir().join("carphone_pristine.mp4");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/setup.sh installs the sample media)",
            path.display()
        )
    })
}

/// Uploads the sample video as `token`'s; its id and run (task id).
pub async fn upload(api: &TestApi, token: &str) -> (String, String) {
    let (status, video) = api
        .send(
            api.request(Method::POST, "/api/v1/videos?filename=c.mp4", Some(token))
                .header(reqwest::header::CONTENT_TYPE, "video/mp4")
                .body(carphone()),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    (
        video["id"].as_str().unwrap().to_string(),
        video["task_id"].as_str().unwrap().to_string(),
    )
}

/// Moves a video's state on as a worker would.
pub async fn moves_on(backend: &ResultBackend, id: &str, status: argus_common::state::VideoStatus) {
    let written = argus_pipeline::store::update_state(backend, id, |old| {
        let mut s = old?.clone();
        s.status = status;
        Some(s)
    })
    .await
    .unwrap();
    assert!(written.is_some(), "{id} moved to {status:?}");
}

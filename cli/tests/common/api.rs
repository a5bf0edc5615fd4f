//! The argus-api binary as a cluster runs it: on the tests' RabbitMQ and Redis, ready when its
//! `/readyz` says so, logged in as its admin.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argus_testkit::{RabbitServer, RedisServer};
use serde_json::Value;

use super::workers::{binary, wait_exit};

pub const ADMIN_PASSWORD: &str = "correct-horse-battery";

pub struct ApiProcess {
    child: Child,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl ApiProcess {
    /// Starts argus-api over `storage` (SQLite there, or `database` when given) and logs in.
    pub async fn start(
        rabbit: &RabbitServer,
        redis: &RedisServer,
        storage: &Path,
        database: Option<&str>,
    ) -> ApiProcess {
        let port = argus_testkit::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(binary("argus-api"));
        if let Some(database) = database {
            command.env("ARGUS_DATABASE_URL", database);
        }
        let child = command
            .env("ARGUS_BIND", format!("127.0.0.1:{port}"))
            .env("ARGUS_BROKER_URL", rabbit.url())
            .env("ARGUS_RESULT_BACKEND", redis.url())
            .env("ARGUS_STORAGE_DIR", storage)
            .env(
                "ARGUS_JWT_SECRET",
                "a-secret-of-more-than-thirty-two-bytes!",
            )
            .env("ARGUS_ADMIN_USER", "admin")
            .env("ARGUS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start argus-api");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while !http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "argus-api not ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let token: Value = http
            .post(format!("{url}/api/v1/auth/token"))
            .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_string();
        ApiProcess {
            child,
            url,
            token,
            http,
        }
    }

    /// SIGTERM, as Kubernetes stops it: it must drain and exit 0.
    pub fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_exit(&mut self.child, Duration::from_secs(30))
            .expect("argus-api stops on SIGTERM");
        assert!(status.success(), "argus-api exit: {status}");
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

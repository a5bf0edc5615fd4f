//! `argus user add|passwd|list` against the database of a running `argus-api` (the sibling
//! binary, on SQLite in a scratch storage dir): a password set from the command line ends the
//! user's tokens on the server at their next request.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::scratch;
use common::workers::binary;
use serde_json::Value;

const SECRET: &str = "cli-test-secret-that-is-long-enough-0123";

/// A command without the caller's ARGUS_* variables.
fn clean(path: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(path);
    for (key, _) in std::env::vars() {
        if key.starts_with("ARGUS_") {
            command.env_remove(key);
        }
    }
    command
}

/// `argus user ARGS` on the storage dir, the password in ARGUS_PASSWORD.
fn user(storage: &Path, password: &str, args: &[&str]) -> Output {
    clean(env!("CARGO_BIN_EXE_argus"))
        .arg("user")
        .args(args)
        .arg("--storage-dir")
        .arg(storage)
        .env("ARGUS_PASSWORD", password)
        .output()
        .expect("run argus user")
}

struct Api(Child);

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn login(http: &reqwest::blocking::Client, base: &str, name: &str, password: &str) -> (u16, Value) {
    let response = http
        .post(format!("{base}/api/v1/auth/token"))
        .form(&[("username", name), ("password", password)])
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

fn me(http: &reqwest::blocking::Client, base: &str, token: &str) -> (u16, Value) {
    let response = http
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(token)
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

#[test]
fn passwd_sets_the_password_and_ends_the_users_tokens() {
    let storage = scratch("user-passwd");
    let _ = std::fs::remove_dir_all(&storage);
    let out = user(&storage, "first-password", &["add", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = argus_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _api = Api(clean(binary("argus-api"))
        .env("ARGUS_STORAGE_DIR", &storage)
        .env("ARGUS_BIND", format!("127.0.0.1:{port}"))
        .env("ARGUS_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start argus-api"));
    let http = reqwest::blocking::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "argus-api did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (status, body) = login(&http, &base, "alice", "first-password");
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(me(&http, &base, &token).0, 200);

    let out = user(&storage, "second-password", &["passwd", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("password of alice set"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let (status, body) = me(&http, &base, &token);
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    assert_eq!(login(&http, &base, "alice", "first-password").0, 401);
    let (status, body) = login(&http, &base, "alice", "second-password");
    assert_eq!(status, 200, "{body}");

    // Refusals: exit status 2 and a message, nothing changed.
    for (password, name, expected) in [
        ("third-password", "nobody", "no user named \"nobody\""),
        ("short", "alice", "at least 8 characters"),
    ] {
        let out = user(&storage, password, &["passwd", name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    assert_eq!(login(&http, &base, "alice", "second-password").0, 200);
    let _ = std::fs::remove_dir_all(&storage);
}

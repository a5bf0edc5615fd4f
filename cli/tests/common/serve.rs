//! `argus serve` as a child process on a free loopback port, for black-box tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scratch;

pub const PASSWORD: &str = "correct-horse-battery";

pub struct Server {
    pub child: Child,
    pub url: String,
    pub storage: PathBuf,
}

impl Server {
    /// Starts `argus serve` on a free port and waits until it answers.
    pub fn start(tag: &str) -> Server {
        Server::start_with(tag, &[])
    }

    /// [`Server::start`] with more environment variables.
    pub fn start_with(tag: &str, env: &[(&str, &str)]) -> Server {
        let storage = scratch(tag);
        let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
            .arg("serve")
            .envs(env.iter().copied())
            .env("ARGUS_STORAGE_DIR", &storage)
            .env("ARGUS_BIND", "127.0.0.1:0")
            .env("ARGUS_ADMIN_USER", "admin")
            .env("ARGUS_ADMIN_PASSWORD", PASSWORD)
            .env("ARGUS_DEVICE", "cpu")
            .env("ARGUS_CHUNK_SIZE", "32")
            // One inference thread: tests of this binary run side by side on 2 cores, and
            // libtorch's OpenMP collapses when its threads share cores with other work.
            .env("ARGUS_TORCH_THREADS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start argus serve");
        // It prints its address once listening.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server {
            child,
            url,
            storage,
        }
    }

    pub fn token(&self, http: &reqwest::blocking::Client) -> String {
        let answer: Value = http
            .post(format!("{}/api/v1/auth/token", self.url))
            .form(&[("username", "admin"), ("password", PASSWORD)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["access_token"].as_str().unwrap().to_string()
    }

    /// SIGTERM: finishes what it holds and exits 0.
    pub fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "argus serve exit: {status}");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

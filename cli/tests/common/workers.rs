//! Worker processes for the distributed tests: the sibling binaries started against real
//! RabbitMQ and Redis servers, stopped as Kubernetes stops them (SIGTERM) or killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argus_testkit::{RabbitServer, RedisServer};

/// A sibling binary of `argus` in the same build (scripts/test.sh builds the workspace).
pub fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_argus")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} missing: cargo build --workspace",
        path.display()
    );
    path
}

pub struct Workers(pub Vec<Child>);

/// Starts worker binary `name` against these servers and storage.
pub fn spawn_worker(
    name: &str,
    rabbit: &RabbitServer,
    redis: &RedisServer,
    storage: &Path,
    chunk_size: u32,
) -> Child {
    spawn_worker_with(name, rabbit, redis, storage, chunk_size, &[])
}

pub fn spawn_worker_with(
    name: &str,
    rabbit: &RabbitServer,
    redis: &RedisServer,
    storage: &Path,
    chunk_size: u32,
    env: &[(&str, &str)],
) -> Child {
    Command::new(binary(name))
        .envs(env.iter().copied())
        .env("ARGUS_BROKER_URL", rabbit.url())
        .env("ARGUS_RESULT_BACKEND", redis.url())
        .env("ARGUS_STORAGE_DIR", storage)
        .env("ARGUS_CHUNK_SIZE", chunk_size.to_string())
        .env("ARGUS_DEVICE", "cpu")
        .env("ARGUS_TORCH_THREADS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start worker")
}

impl Workers {
    /// One processor (index 0) and `detectors` detectors.
    pub fn start(
        rabbit: &RabbitServer,
        redis: &RedisServer,
        storage: &Path,
        detectors: usize,
        chunk_size: u32,
    ) -> Workers {
        Self::start_with(rabbit, redis, storage, detectors, chunk_size, &[])
    }

    pub fn start_with(
        rabbit: &RabbitServer,
        redis: &RedisServer,
        storage: &Path,
        detectors: usize,
        chunk_size: u32,
        env: &[(&str, &str)],
    ) -> Workers {
        let spawn = |name| spawn_worker_with(name, rabbit, redis, storage, chunk_size, env);
        let mut children = vec![spawn("argus-processor")];
        children.extend((0..detectors).map(|_| spawn("argus-detector")));
        Workers(children)
    }

    /// SIGTERM: each must finish its tasks in hand and exit 0.
    pub fn stop(mut self) {
        for child in &self.0 {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        for child in self.0.iter_mut() {
            let status =
                wait_exit(child, Duration::from_secs(30)).expect("worker stops on SIGTERM");
            assert!(status.success(), "worker exit: {status}");
        }
        self.0.clear();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in self.0.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

pub fn store_video(storage: &Path, source: &Path) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let dir = storage.join("videos");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source, dir.join(format!("{id}.mp4"))).unwrap();
    id
}

/// The venv's Python (Celery, Flower, prometheus-client).
pub fn python() -> PathBuf {
    std::env::var("ARGUS_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .unwrap_or_else(|_| argus_common::paths::argus_home().join("venv/bin/python"))
}

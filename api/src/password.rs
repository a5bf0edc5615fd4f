//! Password hashing: argon2id with the crate's defaults (OWASP's m = 19 MiB, t = 2, p = 1),
//! PHC strings in the database.
//!
//! Hashing is slow and memory-hungry on purpose, so a [`Hasher`] runs it on tokio's blocking
//! pool (never on an HTTP worker thread), [`CONCURRENT_HASHES`] at a time, with a bounded queue
//! behind them: once `queue` callers wait, the next one gets [`PasswordError::Busy`] at once
//! (429) instead of a place in a line that a burst of logins could grow without end.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// Hashes at once; each holds ~19 MiB while it runs.
pub const CONCURRENT_HASHES: usize = 4;
/// Hashes that may wait for one of those by default (`ARGUS_HASH_QUEUE`).
pub const DEFAULT_HASH_QUEUE: usize = 32;

/// Verified against when the user does not exist, so that a wrong name takes as long as a wrong
/// password (no user enumeration through timing).
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_now("not a password of anyone").expect("argon2 with default params"));

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password hashing task failed: {0}")]
    Task(String),
    #[error("too many passwords are being checked; retry in a moment")]
    Busy,
}

/// Runs argon2 at most [`CONCURRENT_HASHES`] at a time with at most `queue` more waiting.
/// Cheap to clone (clones share the limits).
#[derive(Clone, Debug)]
pub struct Hasher {
    /// Running plus waiting: a permit is taken without waiting, or the caller is told Busy.
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher::new(DEFAULT_HASH_QUEUE)
    }
}

impl Hasher {
    pub fn new(queue: usize) -> Hasher {
        Hasher {
            admitted: Arc::new(Semaphore::new(CONCURRENT_HASHES + queue)),
            running: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
        }
    }

    /// Computes the dummy hash now, so that the first login of an unknown user does not pay for
    /// it (which would tell that the user is unknown).
    pub async fn warm_up(&self) -> Result<(), PasswordError> {
        self.run(|| {
            LazyLock::force(&DUMMY_HASH);
            Ok(())
        })
        .await
    }

    /// The argon2id PHC string of `password`, with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_now(&password)).await
    }

    /// Whether `password` matches the PHC string `hash`; `None` checks against a dummy hash and
    /// returns false, in the same time.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        self.run(move || {
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
            let parsed =
                PasswordHash::new(&hash).map_err(|e| PasswordError::Hash(e.to_string()))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy)?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|e| PasswordError::Task(e.to_string()))?;
        // The permits go with the work: a client that hangs up does not free a slot while its
        // hash still runs on the blocking pool.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            work()
        })
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))?
    }
}

fn hash_now(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_salts_differ() {
        let hasher = Hasher::default();
        let a = hasher.hash("correct horse".into()).await.unwrap();
        let b = hasher.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "fresh salt each time");
        assert!(hasher
            .verify("correct horse".into(), Some(a.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify("correct horsE".into(), Some(a))
            .await
            .unwrap());
        assert!(!hasher
            .verify("not a password of anyone".into(), None)
            .await
            .unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = Hasher::new(1);
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("correct horse".into()).await })
            })
            .collect();
        let mut busy = 0;
        let mut done = 0;
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => done += 1,
                Err(PasswordError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        // Four run and one waits; the others are turned away without waiting.
        assert!(done > CONCURRENT_HASHES, "{done} done, {busy} busy");
        assert!(busy > 0, "{done} done, {busy} busy");
        // The queue empties: a later call goes through.
        hasher.hash("correct horse".into()).await.unwrap();
    }
}

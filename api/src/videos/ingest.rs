//! What one upload may cost the server: its bytes, its time and its slot.
//!
//! - Every byte of the request body counts, option fields and multipart framing included:
//!   [`Metered`] wraps the body before anything parses it, so a body of a million small fields
//!   is refused as soon as it passes the limit, like a large file. Bytes outside a multipart
//!   body's file part have a small limit of their own: the multipart parser holds a part's
//!   headers (and a preamble's line) in memory until they end, so a "header" as long as the
//!   upload limit would otherwise sit in the server's memory.
//! - Time: the body must keep up at least `ARGUS_UPLOAD_MIN_RATE` bytes/s over every window of
//!   `ARGUS_UPLOAD_IDLE_TIMEOUT_S` (so silence for a whole window is refused too), and the
//!   whole upload must be in before `ARGUS_UPLOAD_TIMEOUT_S`: a trickling client cannot hold a
//!   slot for ever.
//! - Slots: at most `ARGUS_MAX_CONCURRENT_UPLOADS` uploads at once, and at most
//!   `ARGUS_MAX_UPLOADS_PER_USER` of them one user's, so one user cannot lock everyone else
//!   out with 429.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use bytes::Bytes;
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{ApiError, ErrorCode};

/// What a client waits before retrying when its upload slots are taken.
const RETRY_AFTER_S: u64 = 2;

/// The limits of one upload, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct IngestLimits {
    /// Largest request body, everything in it included.
    pub max_body_bytes: u64,
    /// Most bytes of the body outside its file (multipart framing, part headers, options),
    /// counting what the parser may hold before it hands the file's bytes on; `None` for a
    /// raw body, which is all file.
    pub max_outside_file: Option<u64>,
    /// The rate window: the body must bring `min_rate × window` bytes in each.
    pub window: Duration,
    /// Bytes per second, averaged over each window.
    pub min_rate: u64,
    /// Longest a whole upload may take to arrive.
    pub deadline: Duration,
}

/// The budget of one request body, shared by the body's [`Metered`] stream and the handler.
pub struct Budget {
    limits: IngestLimits,
    started: Instant,
    state: Mutex<Meter>,
}

struct Meter {
    total: u64,
    /// Bytes handed to the file so far.
    file: u64,
    window_start: Instant,
    window_bytes: u64,
    /// Why the body was cut off, once it was: the handler answers with this.
    refusal: Option<ApiError>,
}

impl Budget {
    pub fn new(limits: IngestLimits) -> Arc<Budget> {
        let now = Instant::now();
        Arc::new(Budget {
            limits,
            started: now,
            state: Mutex::new(Meter {
                total: 0,
                file: 0,
                window_start: now,
                window_bytes: 0,
                refusal: None,
            }),
        })
    }

    /// Counts `n` bytes that just arrived; the refusal when they break a limit.
    fn count(&self, n: u64) -> Result<(), ApiError> {
        let mut m = self.state.lock().expect("not poisoned");
        if let Some(refusal) = &m.refusal {
            return Err(refusal.clone());
        }
        m.total += n;
        m.window_bytes += n;
        let outside = m.total - m.file.min(m.total);
        let refusal = if m.total > self.limits.max_body_bytes {
            Some(ApiError::payload_too_large(self.limits.max_body_bytes))
        } else if let Some(max) = self.limits.max_outside_file.filter(|&max| outside > max) {
            Some(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!(
                    "the multipart body holds more than {max} bytes outside its `file` part \
                     (boundaries, part headers, options)"
                ),
            ))
        } else {
            // This chunk's bytes count for the window that may just have ended: they were on
            // their way during it.
            self.judge_time(&mut m, Instant::now())
        };
        match refusal {
            Some(refusal) => {
                m.refusal = Some(refusal.clone());
                Err(refusal)
            }
            None => Ok(()),
        }
    }

    /// The refusal, if at `now` the upload is past its deadline or the window that ended was
    /// too slow; a window that brought enough is closed and the next one begins.
    fn judge_time(&self, m: &mut Meter, now: Instant) -> Option<ApiError> {
        if self.deadline().is_some_and(|d| now >= d) {
            return Some(self.too_late());
        }
        if now.duration_since(m.window_start) >= self.limits.window {
            let need = self
                .limits
                .min_rate
                .saturating_mul(self.limits.window.as_secs().max(1));
            if m.window_bytes < need {
                return Some(self.too_slow());
            }
            m.window_start = now;
            m.window_bytes = 0;
        }
        None
    }

    fn deadline(&self) -> Option<Instant> {
        self.started.checked_add(self.limits.deadline)
    }

    /// How long the next read may wait before the time is judged again: to the end of the
    /// current rate window or to the deadline, whichever is first.
    fn wait_limit(&self) -> Duration {
        let m = self.state.lock().expect("not poisoned");
        let now = Instant::now();
        let window_left = (m.window_start + self.limits.window).saturating_duration_since(now);
        match self.deadline() {
            Some(deadline) => window_left.min(deadline.saturating_duration_since(now)),
            None => window_left,
        }
    }

    /// Counts `n` bytes of the body that went to the file.
    pub fn to_file(&self, n: u64) {
        self.state.lock().expect("not poisoned").file += n;
    }

    /// The refusal recorded by the body stream, if it cut the body off.
    pub fn refusal(&self) -> Option<ApiError> {
        self.state.lock().expect("not poisoned").refusal.clone()
    }

    /// Bytes of the body received so far.
    pub fn received(&self) -> u64 {
        self.state.lock().expect("not poisoned").total
    }

    fn too_slow(&self) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the body came slower than {} bytes/s over {} s (ARGUS_UPLOAD_MIN_RATE, \
                 ARGUS_UPLOAD_IDLE_TIMEOUT_S)",
                self.limits.min_rate,
                self.limits.window.as_secs()
            ),
        )
    }

    fn too_late(&self) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the upload took longer than {} s (ARGUS_UPLOAD_TIMEOUT_S)",
                self.limits.deadline.as_secs()
            ),
        )
    }

    /// The next item of a body stream (the payload, the multipart parts, a part's bytes),
    /// waiting no longer than the budget allows; a body error becomes the budget's refusal
    /// when it was the budget that cut the body off.
    pub async fn next<S, T, E>(&self, stream: &mut S) -> Result<Option<T>, ApiError>
    where
        S: Stream<Item = Result<T, E>> + Unpin,
        E: Into<ApiError>,
    {
        use futures::StreamExt;
        loop {
            match tokio::time::timeout(self.wait_limit(), stream.next()).await {
                // Nothing came before a window's end or the deadline: judge the time so far.
                // A window that brought enough (a fast upload whose next read is merely still
                // on its way) is closed and the wait goes on. Dropping `next()` loses nothing.
                Err(_) => {
                    let mut m = self.state.lock().expect("not poisoned");
                    if let Some(refusal) = m.refusal.clone() {
                        return Err(refusal);
                    }
                    if let Some(refusal) = self.judge_time(&mut m, Instant::now()) {
                        m.refusal = Some(refusal.clone());
                        return Err(refusal);
                    }
                }
                Ok(None) => return Ok(None),
                Ok(Some(Ok(item))) => return Ok(Some(item)),
                Ok(Some(Err(e))) => return Err(self.refusal().unwrap_or_else(|| e.into())),
            }
        }
    }
}

/// A request body counted against its [`Budget`]: past a limit it ends with an error (and the
/// budget holds the refusal to answer with).
pub struct Metered<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S> Metered<S> {
    pub fn new(inner: S, budget: Arc<Budget>) -> Metered<S> {
        Metered { inner, budget }
    }
}

impl<S> Stream for Metered<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.budget.refusal().is_some() {
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => match self.budget.count(bytes.len() as u64) {
                Ok(()) => Poll::Ready(Some(Ok(bytes))),
                Err(_) => Poll::Ready(Some(Err(PayloadError::Overflow))),
            },
            other => other,
        }
    }
}

/// The upload slots: a total, and a share per user.
pub struct UploadSlots {
    total: Arc<Semaphore>,
    per_user: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One upload's slot; given back when dropped.
pub struct Slot {
    _total: OwnedSemaphorePermit,
    user: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().expect("not poisoned");
        if let Some(n) = held.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.user);
            }
        }
    }
}

impl UploadSlots {
    pub fn new(total: usize, per_user: usize) -> UploadSlots {
        UploadSlots {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_user: per_user.max(1),
            held: Arc::default(),
        }
    }

    /// A slot for `user`, or 429 when the user's share or every slot is taken.
    pub fn acquire(&self, user: &str) -> Result<Slot, ApiError> {
        let mut held = self.held.lock().expect("not poisoned");
        let mine = held.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyUploads,
                format!(
                    "you have {mine} uploads in progress, the most one user may have \
                     (ARGUS_MAX_UPLOADS_PER_USER); retry when one has finished"
                ),
            )
            .retry_after(RETRY_AFTER_S));
        }
        let permit = self.total.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyUploads,
                "too many uploads in progress; retry later",
            )
            .retry_after(RETRY_AFTER_S)
        })?;
        *held.entry(user.to_string()).or_insert(0) += 1;
        Ok(Slot {
            _total: permit,
            user: user.to_string(),
            held: Arc::clone(&self.held),
        })
    }

    /// Uploads in progress (for the metrics and tests).
    pub fn in_use(&self) -> usize {
        self.held.lock().expect("not poisoned").values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IngestLimits {
        IngestLimits {
            max_body_bytes: 100,
            max_outside_file: Some(50),
            window: Duration::from_secs(60),
            min_rate: 1,
            deadline: Duration::from_secs(3600),
        }
    }

    #[test]
    fn every_byte_counts_and_a_refusal_sticks() {
        let budget = Budget::new(limits());
        assert!(budget.count(50).is_ok());
        budget.to_file(50);
        assert!(budget.count(50).is_ok());
        let refusal = budget.count(1).unwrap_err();
        assert_eq!(refusal.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(budget.count(0).unwrap_err().code, refusal.code);
        assert_eq!(budget.received(), 101);

        // Outside the file: 51 bytes of headers that never end.
        let budget = Budget::new(limits());
        assert!(budget.count(50).is_ok());
        let refusal = budget.count(1).unwrap_err();
        assert_eq!(refusal.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(refusal.message.contains("outside its `file` part"));
    }

    #[test]
    fn slots_are_shared_out_per_user() {
        let slots = UploadSlots::new(3, 2);
        let a1 = slots.acquire("alice").unwrap();
        let _a2 = slots.acquire("alice").unwrap();
        let refused = slots.acquire("alice").err().expect("alice's share is used");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.message.contains("ARGUS_MAX_UPLOADS_PER_USER"));
        let _b1 = slots.acquire("bob").unwrap();
        // Every slot is taken now, whoever asks.
        assert!(slots.acquire("carol").is_err());
        drop(a1);
        assert_eq!(slots.in_use(), 2);
        let _c1 = slots.acquire("carol").unwrap();
        assert_eq!(slots.in_use(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_or_slow_body_is_refused_at_the_end_of_its_window() {
        let budget = Budget::new(IngestLimits {
            max_body_bytes: u64::MAX,
            max_outside_file: None,
            window: Duration::from_secs(10),
            min_rate: 100,
            deadline: Duration::from_secs(25),
        });
        // Silence: the read gives up at the end of the window.
        let mut silent = futures::stream::pending::<Result<Bytes, ApiError>>();
        let err = budget.next(&mut silent).await.unwrap_err();
        assert_eq!(err.status, StatusCode::REQUEST_TIMEOUT);
        assert!(
            err.message.contains("ARGUS_UPLOAD_MIN_RATE"),
            "{}",
            err.message
        );

        // Fast, across many windows, each read arriving just after a window's end: never
        // refused (the window is judged on what it brought, not on the wait).
        let budget = Budget::new(IngestLimits {
            max_body_bytes: u64::MAX,
            max_outside_file: None,
            window: Duration::from_secs(1),
            min_rate: 100,
            deadline: Duration::from_secs(3600),
        });
        let mut fast = Box::pin(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            Some((Ok::<_, ApiError>(Bytes::from(vec![0u8; 1000])), ()))
        }));
        for _ in 0..20 {
            let chunk = budget.next(&mut fast).await.expect("fast enough").unwrap();
            budget.count(chunk.len() as u64).expect("fast enough");
        }

        // A trickle: 10 bytes in a 10 s window that needs 1000.
        let budget = Budget::new(IngestLimits {
            max_body_bytes: u64::MAX,
            max_outside_file: None,
            window: Duration::from_secs(10),
            min_rate: 100,
            deadline: Duration::from_secs(25),
        });
        assert!(budget.count(10).is_ok());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            budget.count(1).unwrap_err().status,
            StatusCode::REQUEST_TIMEOUT
        );

        // Fast enough every window, but past the deadline.
        let budget = Budget::new(IngestLimits {
            max_body_bytes: u64::MAX,
            max_outside_file: None,
            window: Duration::from_secs(10),
            min_rate: 100,
            deadline: Duration::from_secs(25),
        });
        for _ in 0..2 {
            budget.count(5000).unwrap();
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        budget.count(5000).unwrap();
        let err = budget.next(&mut silent).await.unwrap_err();
        assert!(
            err.message.contains("ARGUS_UPLOAD_TIMEOUT_S"),
            "{}",
            err.message
        );
    }
}

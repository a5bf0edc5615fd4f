//! Where a video's state lives: its keys in the result backend, and the one guarded update
//! every transition goes through ([`update_state`], called by [`crate::run`] only; everyone
//! else reads through [`RunStore`]).
//!
//! Keys (Redis):
//! - `argus:video:<video>`: the video's state (JSON), changed only by a check-and-set under
//!   [`check_transition`]; each change is PUBLISHed on `argus:video:<video>:events` and
//!   `argus:videos`. A deleted video's key holds a tombstone (`deleted`) for a week: no late
//!   task of one of its runs brings the state back.
//! - `argus:run:<task id>`: the video of run `<task id>` (remote control revokes by task id).
//! - `argus:detector:fps`: the detectors' speed per chunk, a moving average (the processor sizes
//!   chunks from it).

use argus_common::state::{check_transition, VideoState};
use argus_queue::backend::{Backend, BackendError};
use chrono::Utc;

/// A run's keys (and chunk results, in storage) outlive any sane video's processing.
pub const WORK_TTL_S: u64 = 7 * 86_400;
/// What a deleted video's state key holds for [`WORK_TTL_S`] (not JSON: never read as a
/// state): no late task of a run of that video can bring its state back.
const TOMBSTONE: &str = "deleted";
/// Check-and-set attempts before a state update gives up (only contention makes it retry).
const CAS_ATTEMPTS: usize = 64;
/// Where detectors record how many frames per second a chunk of theirs goes at.
const SPEED_KEY: &str = "argus:detector:fps";
/// Weight of each new chunk in that average.
const SPEED_WEIGHT: f64 = 0.1;
/// A day: a speed measured longer ago says little about today's detectors.
const SPEED_TTL_S: u64 = 86_400;
/// Every state change, of every video.
const ALL_VIDEOS: &str = "argus:videos";

fn state_key(video_id: &str) -> String {
    format!("argus:video:{video_id}")
}

fn run_key(task_id: &str) -> String {
    format!("argus:run:{task_id}")
}

/// The pipeline's reads and writes of a video's state, on the result backend.
#[allow(async_fn_in_trait)] // implemented by `Backend` alone, and called on it directly
pub trait RunStore {
    /// The video's state; `None` when it has none or was deleted.
    async fn get_state(&self, video_id: &str) -> Result<Option<VideoState>, BackendError>;

    /// The video whose run `task_id` (a `process_video` task id) is or was.
    async fn video_of_run(&self, task_id: &str) -> Result<Option<String>, BackendError>;

    /// Deletes a video's state (the video itself is gone), leaving a tombstone that refuses
    /// every later change: a task of one of its runs still queued or running cannot bring the
    /// state back. [`RunStore::get_state`] reads it as no state.
    async fn delete_state(&self, video_id: &str) -> Result<(), BackendError>;

    /// Whether the video was deleted (its tombstone stands).
    async fn is_deleted(&self, video_id: &str) -> Result<bool, BackendError>;

    /// Live state changes of one video (`Some(id)`) or of all videos (`None`), as JSON.
    async fn subscribe_states(
        &self,
        video_id: Option<&str>,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, BackendError>;

    /// Blends one chunk's speed (frames per second of the chunk's wall time, on its detector)
    /// into the detectors' moving average.
    async fn record_detector_speed(&self, fps: f64) -> Result<(), BackendError>;

    /// The detectors' recent speed per chunk (frames per second), if any chunk was detected
    /// in the last day.
    async fn detector_speed(&self) -> Result<Option<f64>, BackendError>;
}

impl RunStore for Backend {
    async fn get_state(&self, video_id: &str) -> Result<Option<VideoState>, BackendError> {
        let key = state_key(video_id);
        match self.get_text(&key).await? {
            None => Ok(None),
            Some(s) if s == TOMBSTONE => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| BackendError::Corrupt {
                    key,
                    reason: e.to_string(),
                }),
        }
    }

    async fn video_of_run(&self, task_id: &str) -> Result<Option<String>, BackendError> {
        self.get_text(&run_key(task_id)).await
    }

    async fn delete_state(&self, video_id: &str) -> Result<(), BackendError> {
        self.set(&state_key(video_id), TOMBSTONE, WORK_TTL_S).await
    }

    async fn is_deleted(&self, video_id: &str) -> Result<bool, BackendError> {
        Ok(self.get_text(&state_key(video_id)).await?.as_deref() == Some(TOMBSTONE))
    }

    async fn subscribe_states(
        &self,
        video_id: Option<&str>,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, BackendError> {
        match video_id {
            Some(id) => self.subscribe(&format!("{}:events", state_key(id))).await,
            None => self.subscribe(ALL_VIDEOS).await,
        }
    }

    async fn record_detector_speed(&self, fps: f64) -> Result<(), BackendError> {
        if !fps.is_finite() || fps <= 0.0 {
            return Ok(());
        }
        self.blend(SPEED_KEY, fps, SPEED_WEIGHT, SPEED_TTL_S).await
    }

    async fn detector_speed(&self) -> Result<Option<f64>, BackendError> {
        Ok(self
            .get_text(SPEED_KEY)
            .await?
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0))
    }
}

/// Changes a video's state atomically: `change` gets the current state and returns the next
/// one (or `None`: no change). The next state must pass [`check_transition`] against the state
/// it was computed from, and is written only if that state is still the current one (else
/// `change` runs again on the newer state). Returns the state written, or `None` when nothing
/// was (declined, refused, or the video was deleted). Only [`crate::run`] calls it in Argus
/// (tests standing in for a worker call it too).
pub async fn update_state(
    backend: &Backend,
    video_id: &str,
    mut change: impl FnMut(Option<&VideoState>) -> Option<VideoState>,
) -> Result<Option<VideoState>, BackendError> {
    let key = state_key(video_id);
    let events = format!("{key}:events");
    for _ in 0..CAS_ATTEMPTS {
        let raw = backend.get_text(&key).await?;
        if raw.as_deref() == Some(TOMBSTONE) {
            tracing::debug!(video_id, "state change refused: the video was deleted");
            return Ok(None);
        }
        let old: Option<VideoState> = match &raw {
            None => None,
            Some(s) => Some(serde_json::from_str(s).map_err(|e| BackendError::Corrupt {
                key: key.clone(),
                reason: e.to_string(),
            })?),
        };
        let Some(mut new) = change(old.as_ref()) else {
            return Ok(None);
        };
        if let Err(why) = check_transition(old.as_ref(), &new) {
            tracing::debug!(video_id, why, "state change refused");
            return Ok(None);
        }
        new.updated_at = Utc::now();
        let json = serde_json::to_string(&new).expect("states serialize");
        let written = backend
            .compare_and_set(
                &key,
                raw.as_deref(),
                &json,
                WORK_TTL_S,
                &[&events, ALL_VIDEOS],
            )
            .await?;
        if written {
            // A new run: remember whose it is, so that revoking its task id (remote
            // control) can find the video.
            if let Some(run) = new.task_id.as_deref() {
                if old.as_ref().and_then(|o| o.task_id.as_deref()) != Some(run) {
                    backend.set(&run_key(run), video_id, WORK_TTL_S).await?;
                }
            }
            return Ok(Some(new));
        }
    }
    Err(BackendError::Contention(format!(
        "state of video {video_id}"
    )))
}

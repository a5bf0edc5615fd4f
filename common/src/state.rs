//! A video's lifecycle: `queued → splitting → detecting → merging → succeeded`, or `failed`
//! (with a reason) or `cancelled`; and the rules every change of it obeys, whoever writes it
//! ([`check_transition`]): a run's terminal state is final, its status and progress only move
//! forward, and a run may not write over another's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a video is in its lifecycle (declared in lifecycle order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum VideoStatus {
    Queued,
    Splitting,
    Detecting,
    Merging,
    Succeeded,
    Failed,
    Cancelled,
}

impl VideoStatus {
    /// No further change happens to a video in this state (until a new run starts).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            VideoStatus::Succeeded | VideoStatus::Failed | VideoStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Queued => "queued",
            VideoStatus::Splitting => "splitting",
            VideoStatus::Detecting => "detecting",
            VideoStatus::Merging => "merging",
            VideoStatus::Succeeded => "succeeded",
            VideoStatus::Failed => "failed",
            VideoStatus::Cancelled => "cancelled",
        }
    }

    /// A status as [`VideoStatus::as_str`] writes it; `None` for anything else.
    pub fn parse(s: &str) -> Option<VideoStatus> {
        [
            VideoStatus::Queued,
            VideoStatus::Splitting,
            VideoStatus::Detecting,
            VideoStatus::Merging,
            VideoStatus::Succeeded,
            VideoStatus::Failed,
            VideoStatus::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoState {
    pub video_id: String,
    pub status: VideoStatus,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Frames detected so far (decoded frames: skipped ones are not counted).
    pub frames_done: u64,
    pub frames_total: u64,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// What went wrong without failing it (frames that could not be decoded, a truncated file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The run: the `process_video` task id, under which the video's Celery result is stored.
    pub task_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl VideoState {
    pub fn queued(video_id: &str, task_id: Option<String>) -> VideoState {
        let now = Utc::now();
        VideoState {
            video_id: video_id.to_string(),
            status: VideoStatus::Queued,
            chunks_done: 0,
            chunks_total: 0,
            frames_done: 0,
            frames_total: 0,
            error: None,
            warnings: Vec::new(),
            task_id,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether this state belongs to run `task_id` (a state without a run belongs to any).
    pub fn is_run(&self, task_id: &str) -> bool {
        self.task_id.as_deref().is_none_or(|t| t == task_id)
    }
}

/// Whether `new` may replace `old`; the reason when not. Within a run: a terminal state is
/// final, the status never goes back, and progress never shrinks. A new run (another task id)
/// may only start, as `queued` or `splitting`, once the previous run has ended.
pub fn check_transition(old: Option<&VideoState>, new: &VideoState) -> Result<(), String> {
    let Some(old) = old else { return Ok(()) };
    let same_run = match (&old.task_id, &new.task_id) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    if !same_run {
        return if !old.status.is_final() {
            Err(format!(
                "video {} is in run {} ({}); run {} must wait for it to end",
                old.video_id,
                old.task_id.as_deref().unwrap_or("?"),
                old.status.as_str(),
                new.task_id.as_deref().unwrap_or("?")
            ))
        } else if new.status > VideoStatus::Splitting {
            Err(format!(
                "run {} of video {} has not started",
                new.task_id.as_deref().unwrap_or("?"),
                old.video_id
            ))
        } else {
            Ok(())
        };
    }
    if old.status.is_final() {
        return Err(format!(
            "video {} is already {}",
            old.video_id,
            old.status.as_str()
        ));
    }
    if new.status < old.status {
        return Err(format!(
            "video {} cannot go back from {} to {}",
            old.video_id,
            old.status.as_str(),
            new.status.as_str()
        ));
    }
    if new.chunks_done < old.chunks_done || new.frames_done < old.frames_done {
        return Err(format!(
            "video {}: progress only moves forward",
            old.video_id
        ));
    }
    Ok(())
}

/// `text` with every absolute path in it cut to its file name: what a user may be shown of a
/// worker's error or warning (`cannot open /data/videos/<id>.mp4 as a video: …` becomes
/// `cannot open <id>.mp4 as a video: …`). Where the server keeps its files is its own business.
pub fn without_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        // A path starts at a '/' that opens a word (not `a/b`, not the `//` of a URL).
        let opens_word = previous
            .is_none_or(|p| p.is_whitespace() || matches!(p, '\'' | '"' | '(' | '[' | '<' | '='));
        if c == '/' && opens_word {
            let end = rest
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, '\'' | '"' | ')' | ']' | '>' | ',' | ';')
                })
                .unwrap_or(rest.len());
            let token = &rest[..end];
            // Punctuation that ends a sentence or a message part is not the path's.
            let path = token.trim_end_matches([':', '.']);
            let name = path.rsplit('/').find(|part| !part.is_empty());
            if path[1..].contains('/') {
                if let Some(name) = name {
                    out.push_str(name);
                    out.push_str(&token[path.len()..]);
                    previous = token.chars().last();
                    rest = &rest[end..];
                    continue;
                }
            }
        }
        out.push(c);
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(run: &str, status: VideoStatus, chunks_done: u64) -> VideoState {
        let mut s = VideoState::queued("v", Some(run.into()));
        s.status = status;
        s.chunks_done = chunks_done;
        s
    }

    #[test]
    fn within_a_run_states_only_move_forward_and_end_once() {
        use VideoStatus::*;
        let ok = |a: &VideoState, b: &VideoState| check_transition(Some(a), b).is_ok();
        assert!(check_transition(None, &state("r", Detecting, 0)).is_ok());
        assert!(ok(&state("r", Queued, 0), &state("r", Splitting, 0)));
        assert!(ok(&state("r", Detecting, 1), &state("r", Detecting, 2)));
        assert!(ok(&state("r", Detecting, 2), &state("r", Cancelled, 2)));
        assert!(!ok(&state("r", Detecting, 2), &state("r", Detecting, 1)));
        assert!(!ok(&state("r", Merging, 2), &state("r", Detecting, 2)));
        for end in [Succeeded, Failed, Cancelled] {
            for next in [Detecting, Succeeded, Failed, Cancelled] {
                assert!(!ok(&state("r", end, 2), &state("r", next, 2)), "{end:?}");
            }
        }
    }

    #[test]
    fn runs_do_not_write_over_each_other() {
        use VideoStatus::*;
        let ok = |a: &VideoState, b: &VideoState| check_transition(Some(a), b).is_ok();
        // A new run starts once the last one has ended, and only from its beginning.
        assert!(ok(&state("a", Succeeded, 4), &state("b", Queued, 0)));
        assert!(ok(&state("a", Cancelled, 1), &state("b", Splitting, 0)));
        assert!(!ok(&state("a", Succeeded, 4), &state("b", Detecting, 1)));
        // Never over a run in progress, and a stale run's late updates are refused.
        assert!(!ok(&state("a", Detecting, 1), &state("b", Splitting, 0)));
        assert!(!ok(&state("b", Detecting, 0), &state("a", Detecting, 3)));
    }

    #[test]
    fn paths_are_cut_to_file_names() {
        let cases = [
            (
                "cannot open /data/videos/7d0f.mp4 as a video: Invalid data found",
                "cannot open 7d0f.mp4 as a video: Invalid data found",
            ),
            (
                "/srv/argus/videos/a.mkv: cannot decode h264: bad",
                "a.mkv: cannot decode h264: bad",
            ),
            (
                "cannot write '/tmp/x/y/results/r.json'.",
                "cannot write 'r.json'.",
            ),
            ("(/a/b/c) and /d/e/", "(c) and e"),
            // Not paths: fractions, URLs, a lone slash, words with a slash inside.
            (
                "1/2 frames, see http://example.org/a/b, either/or, /",
                "1/2 frames, see http://example.org/a/b, either/or, /",
            ),
            (
                "remux: ffmpeg -i IN -c copy OUT.mp4",
                "remux: ffmpeg -i IN -c copy OUT.mp4",
            ),
            ("", ""),
            ("é /x/ü.mp4 ok", "é ü.mp4 ok"),
        ];
        for (text, shown) in cases {
            assert_eq!(without_paths(text), shown, "{text}");
        }
    }
}

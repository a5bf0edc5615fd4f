//! A video's tracks as the merge writes them: ByteTrack ([`argus_track`]) fed the frames in
//! order, each detection given its `track_id`, and each track's summary collected as it goes
//! (first and last frame, time and box, frames seen, mean score, the label it carried most,
//! a path of at most [`PATH_POINTS`] centres).
//!
//! Tracking happens here, over the ordered frames of the whole video, and not per chunk: the
//! chunks are detected in parallel, but the merge sees every frame once and in order, so the
//! tracks are the same whatever the chunk size (the chunk-invariance tests hold it) and there
//! is nothing to stitch. It costs the merge a few microseconds per frame.

use std::collections::{BTreeMap, HashMap};

use argus_common::video::TrackSummary;
use argus_common::{BoundingBox, FrameDetections};
use argus_track::{ByteTrack, TrackerParams};

/// Most centres a track's path keeps.
pub const PATH_POINTS: usize = 64;

/// The tracker and the tracks' summaries so far.
pub struct Tracks {
    tracker: ByteTrack,
    open: HashMap<u64, Building>,
}

struct Building {
    labels: BTreeMap<u32, (String, u64)>,
    first_frame: u64,
    last_frame: u64,
    first_ms: f64,
    last_ms: f64,
    frames: u64,
    score_sum: f64,
    first_box: BoundingBox,
    last_box: BoundingBox,
    path: Vec<(u64, f32, f32)>,
    /// Every `step`-th detection goes on the path; doubled each time the path is thinned.
    step: u64,
}

impl Tracks {
    pub fn new(params: TrackerParams) -> Tracks {
        Tracks {
            tracker: ByteTrack::new(params),
            open: HashMap::new(),
        }
    }

    /// The next frame: its detections get their track ids.
    pub fn frame(&mut self, frame: &mut FrameDetections) {
        let boxes: Vec<[f32; 4]> = frame.detections.iter().map(|d| d.bbox.into()).collect();
        let scores: Vec<f32> = frame.detections.iter().map(|d| d.score).collect();
        let ids = self.tracker.update(&boxes, &scores);
        for (d, id) in frame.detections.iter_mut().zip(ids) {
            d.track_id = id;
            let Some(id) = id else { continue };
            let b = self.open.entry(id).or_insert_with(|| Building {
                labels: BTreeMap::new(),
                first_frame: frame.index,
                last_frame: frame.index,
                first_ms: frame.pts_ms,
                last_ms: frame.pts_ms,
                frames: 0,
                score_sum: 0.0,
                first_box: d.bbox,
                last_box: d.bbox,
                path: Vec::new(),
                step: 1,
            });
            b.labels
                .entry(d.class_id)
                .or_insert_with(|| (d.label.clone(), 0))
                .1 += 1;
            if b.frames % b.step == 0 {
                let c = &d.bbox;
                b.path
                    .push((frame.index, (c.x1 + c.x2) / 2.0, (c.y1 + c.y2) / 2.0));
                if b.path.len() > PATH_POINTS {
                    // Every other point, and half as many from now on: even along the track.
                    let mut k = 0;
                    b.path.retain(|_| {
                        k += 1;
                        k % 2 == 1
                    });
                    b.step *= 2;
                }
            }
            b.frames += 1;
            b.score_sum += d.score as f64;
            b.last_frame = frame.index;
            b.last_ms = frame.pts_ms;
            b.last_box = d.bbox;
        }
    }

    /// A frame that could not be decoded: time goes on for the tracker.
    pub fn gap(&mut self) {
        self.tracker.update(&[], &[]);
    }

    /// Every track's summary, by id.
    pub fn finish(self) -> Vec<TrackSummary> {
        let mut tracks: Vec<TrackSummary> = self
            .open
            .into_iter()
            .map(|(id, b)| {
                // The most frequent label; the lowest class id among equals.
                let (class_id, (label, _)) = b
                    .labels
                    .into_iter()
                    .max_by(|(ca, (_, na)), (cb, (_, nb))| na.cmp(nb).then(cb.cmp(ca)))
                    .expect("a track has a detection");
                TrackSummary {
                    id,
                    label,
                    class_id,
                    first_frame: b.first_frame,
                    last_frame: b.last_frame,
                    first_ms: b.first_ms,
                    last_ms: b.last_ms,
                    dwell_s: ((b.last_ms - b.first_ms) / 1000.0).max(0.0),
                    frames: b.frames,
                    mean_score: (b.score_sum / b.frames as f64) as f32,
                    first_box: b.first_box,
                    last_box: b.last_box,
                    path: b.path,
                }
            })
            .collect();
        tracks.sort_unstable_by_key(|t| t.id);
        tracks
    }
}

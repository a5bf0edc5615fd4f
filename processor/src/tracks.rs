//! A video's tracks as the merge writes them: ByteTrack ([`argus_track`]) fed the frames in
//! order, each detection given its `track_id`, each track's summary collected as it goes
//! (first and last frame, time and box, frames seen, mean score, the label it carried most,
//! a path of at most [`PATH_POINTS`] centres), and the zones and lines counted over them
//! ([`Regions`]).
//!
//! Tracking happens here, over the ordered frames of the whole video, and not per chunk: the
//! chunks are detected in parallel, but the merge sees every frame once and in order, so the
//! tracks are the same whatever the chunk size (the chunk-invariance tests hold it) and there
//! is nothing to stitch. It costs the merge a few microseconds per frame.
//!
//! Frames the detector passed over (`stride`, `keyframes_only`) wait here until the next
//! detected frame: a track found on both sides of them gets a box in each, interpolated
//! between its two detections and marked `predicted`. The tracker itself only sees detected
//! frames (its lost buffer and motion model count detected frames; the caller sets its frame
//! rate to match).

use std::collections::{BTreeMap, HashMap};

use argus_common::video::TrackSummary;
use argus_common::zones::{LineResult, ZoneResult};
use argus_common::{BoundingBox, Detection, FrameDetections};
use argus_pipeline::tasks::Sampling;
use argus_track::{ByteTrack, TrackerParams};

use crate::zones::Regions;

/// Most centres a track's path keeps.
pub const PATH_POINTS: usize = 64;

/// The tracker and the tracks' summaries so far.
pub struct Tracks {
    tracker: ByteTrack,
    open: HashMap<u64, Building>,
    regions: Option<Regions>,
    /// Frames passed over since the last detected frame, waiting for the next one.
    pending: Vec<FrameDetections>,
    /// The last detected frame's index and its tracked detections, by track.
    last_detected: Option<(u64, HashMap<u64, Detection>)>,
    sampling: Sampling,
}

/// What tracking a video found.
pub struct Tracked {
    pub tracks: Vec<TrackSummary>,
    pub zones: Vec<ZoneResult>,
    pub lines: Vec<LineResult>,
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
    /// The sum of its faces' embeddings (face models only).
    embedding_sum: Option<Vec<f64>>,
}

impl Tracks {
    /// A tracker for a video whose frames are detected as `sampling` says; its `params`'
    /// frame rate is taken per detected frame ([`Tracks::params`]).
    pub fn new(params: TrackerParams, sampling: Sampling, regions: Option<Regions>) -> Tracks {
        Tracks {
            sampling,
            tracker: ByteTrack::new(params),
            open: HashMap::new(),
            regions: regions.filter(|r| !r.is_empty()),
            pending: Vec::new(),
            last_detected: None,
        }
    }

    /// The next frame. Frames are handed back in order into `ready` as they are settled: a
    /// detected frame with its track ids, and the passed-over frames before it with their
    /// tracks' predicted boxes.
    pub fn push(&mut self, mut frame: FrameDetections, ready: &mut Vec<FrameDetections>) {
        if frame.predicted {
            frame.detections.clear();
            if self
                .last_detected
                .as_ref()
                .is_some_and(|(_, t)| !t.is_empty())
            {
                self.pending.push(frame);
            } else {
                self.settle(frame, ready);
            }
            return;
        }
        self.identify(&mut frame);
        let now: HashMap<u64, Detection> = frame
            .detections
            .iter()
            .filter_map(|d| Some((d.track_id?, d.clone())))
            .collect();
        let pending = std::mem::take(&mut self.pending);
        if let Some((before, then)) = self.last_detected.take() {
            let span = (frame.index - before) as f32;
            for mut p in pending {
                let t = (p.index - before) as f32 / span;
                p.detections = then
                    .iter()
                    .filter_map(|(id, a)| {
                        let b = now.get(id)?;
                        Some(Detection {
                            bbox: lerp(&a.bbox, &b.bbox, t),
                            score: a.score.min(b.score),
                            predicted: true,
                            landmarks: None,
                            embedding: None,
                            ..a.clone()
                        })
                    })
                    .collect();
                p.detections.sort_by_key(|d| d.track_id);
                self.settle(p, ready);
            }
        } else {
            for p in pending {
                self.settle(p, ready);
            }
        }
        self.last_detected = Some((frame.index, now));
        self.settle(frame, ready);
    }

    /// The tracker's settings for a video of `fps` frames/s sampled as `sampling`: the
    /// tracker sees the detected frames only, so its frame rate is theirs.
    pub fn params(fps: f64, sampling: Sampling) -> TrackerParams {
        let fps = if fps > 0.0 && fps.is_finite() {
            fps
        } else {
            30.0
        };
        TrackerParams {
            // The lost buffer is ByteTrack's 30 frames at 30 frames/s: a second of video, and
            // at least one detected frame (at a stride past the frame rate it would be none).
            frame_rate: match sampling {
                Sampling::Stride(n) => (fps / n.max(1) as f64).max(1.0),
                // One keyframe per GOP, of no fixed length: a lost track is kept for 30 of them.
                Sampling::Keyframes => 30.0,
            },
            ..TrackerParams::default()
        }
    }

    /// Frame `index` could not be decoded: what waited is settled without predicted boxes (no
    /// box is carried across damage), and if the detector would have seen it, time goes on
    /// for the tracker.
    pub fn gap(&mut self, index: u64, ready: &mut Vec<FrameDetections>) {
        for p in std::mem::take(&mut self.pending) {
            self.settle(p, ready);
        }
        self.last_detected = None;
        let would_detect = match self.sampling {
            Sampling::Stride(n) => index.is_multiple_of(n.max(1) as u64),
            // Only keyframes are ever listed as skipped in this mode.
            Sampling::Keyframes => true,
        };
        if would_detect {
            self.tracker.update(&[], &[]);
        }
    }

    /// Hands `frame` on, counting its tracked boxes in the zones and lines.
    fn settle(&mut self, frame: FrameDetections, ready: &mut Vec<FrameDetections>) {
        if let Some(regions) = &mut self.regions {
            for d in &frame.detections {
                if let Some(id) = d.track_id {
                    regions.observe(id, frame.index, frame.pts_ms, &d.bbox);
                }
            }
        }
        ready.push(frame);
    }

    /// A detected frame: its detections get their track ids, the tracks' summaries grow.
    fn identify(&mut self, frame: &mut FrameDetections) {
        let boxes: Vec<[f32; 4]> = frame.detections.iter().map(|d| d.bbox.into()).collect();
        let scores: Vec<f32> = frame.detections.iter().map(|d| d.score).collect();
        let ids = self.tracker.update(&boxes, &scores);
        for (d, id) in frame.detections.iter_mut().zip(ids) {
            d.track_id = id;
            // A face's embedding goes into its track's mean; the frames keep none.
            let embedding = d.embedding.take();
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
                embedding_sum: None,
            });
            if let Some(e) = embedding {
                let sum = b.embedding_sum.get_or_insert_with(|| vec![0.0; e.len()]);
                if sum.len() == e.len() {
                    sum.iter_mut().zip(&e).for_each(|(s, v)| *s += *v as f64);
                }
            }
            b.labels
                .entry(d.class_id)
                .or_insert_with(|| (d.label.clone(), 0))
                .1 += 1;
            if b.frames.is_multiple_of(b.step) {
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

    /// Every track's summary, by id, and what the zones and lines saw; the frames still
    /// waiting go into `ready` (no box is carried past the last detected frame).
    pub fn finish(mut self, ready: &mut Vec<FrameDetections>) -> Tracked {
        for p in std::mem::take(&mut self.pending) {
            self.settle(p, ready);
        }
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
                    embedding: b.embedding_sum.map(unit),
                }
            })
            .collect();
        tracks.sort_unstable_by_key(|t| t.id);
        let (zones, lines) = match self.regions {
            Some(regions) => regions.finish(&tracks),
            None => (Vec::new(), Vec::new()),
        };
        Tracked {
            tracks,
            zones,
            lines,
        }
    }
}

/// `v` scaled to length 1 (the direction of a sum of unit vectors is their mean's).
fn unit(v: Vec<f64>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    v.into_iter().map(|x| (x / norm) as f32).collect()
}

/// The box `t` of the way from `a` to `b`.
fn lerp(a: &BoundingBox, b: &BoundingBox, t: f32) -> BoundingBox {
    let m = |x: f32, y: f32| x + (y - x) * t;
    BoundingBox {
        x1: m(a.x1, b.x1),
        y1: m(a.y1, b.y1),
        x2: m(a.x2, b.x2),
        y2: m(a.y2, b.y2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32) -> Detection {
        Detection {
            label: "car".into(),
            class_id: 2,
            score: 0.9,
            bbox: BoundingBox::from([x, 10.0, x + 20.0, 30.0]),
            track_id: None,
            predicted: false,
            landmarks: None,
            embedding: None,
        }
    }

    /// Frame `index` of an object moving 1 px a frame, detected on every 4th frame only.
    fn frame(index: u64) -> FrameDetections {
        let detected = index.is_multiple_of(4);
        FrameDetections {
            index,
            pts_ms: index as f64 * 40.0,
            detections: if detected {
                vec![det(index as f32)]
            } else {
                vec![]
            },
            predicted: !detected,
        }
    }

    #[test]
    fn frames_passed_over_get_boxes_between_two_detections() {
        let mut tracks = Tracks::new(
            Tracks::params(25.0, Sampling::Stride(4)),
            Sampling::Stride(4),
            None,
        );
        let mut ready = Vec::new();
        for i in 0..=14 {
            tracks.push(frame(i), &mut ready);
        }
        // Frames 13 and 14 wait for a detected frame that never comes.
        assert_eq!(ready.len(), 13);
        let tracked = tracks.finish(&mut ready);
        assert_eq!(
            ready.iter().map(|f| f.index).collect::<Vec<_>>(),
            (0..=14).collect::<Vec<_>>()
        );
        assert_eq!(tracked.tracks.len(), 1);
        let id = tracked.tracks[0].id;
        // Detected 4 times; the first frame's birth confirms it at once.
        assert_eq!(tracked.tracks[0].frames, 4);
        for f in &ready[..=12] {
            let d = &f.detections;
            assert_eq!(d.len(), 1, "frame {}", f.index);
            assert_eq!(d[0].track_id, Some(id));
            assert_eq!(d[0].predicted, f.predicted);
            // Interpolated on the line the object moves along.
            assert!((d[0].bbox.x1 - f.index as f32).abs() < 1e-4, "{f:?}");
        }
        assert!(ready[13].detections.is_empty() && ready[14].detections.is_empty());
    }

    #[test]
    fn no_box_is_carried_across_a_damaged_frame() {
        let mut tracks = Tracks::new(
            Tracks::params(25.0, Sampling::Stride(4)),
            Sampling::Stride(4),
            None,
        );
        let mut ready = Vec::new();
        for i in 0..=5 {
            tracks.push(frame(i), &mut ready);
        }
        tracks.gap(6, &mut ready);
        tracks.push(frame(7), &mut ready);
        tracks.push(frame(8), &mut ready);
        let _ = tracks.finish(&mut ready);
        let boxes: Vec<(u64, usize)> = ready
            .iter()
            .map(|f| (f.index, f.detections.len()))
            .collect();
        assert_eq!(
            boxes,
            vec![
                (0, 1),
                (1, 1),
                (2, 1),
                (3, 1),
                (4, 1),
                (5, 0),
                (7, 0),
                (8, 1)
            ]
        );
    }

    #[test]
    fn a_face_track_gets_the_mean_embedding_and_its_frames_none() {
        let mut tracks = Tracks::new(
            Tracks::params(25.0, Sampling::Stride(1)),
            Sampling::Stride(1),
            None,
        );
        let mut ready = Vec::new();
        for index in 0..10u64 {
            let mut d = det(index as f32);
            // Alternating between two directions: the mean points between them.
            d.embedding = Some(if index % 2 == 0 {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            });
            let frame = FrameDetections {
                index,
                pts_ms: index as f64 * 40.0,
                detections: vec![d],
                predicted: false,
            };
            tracks.push(frame, &mut ready);
        }
        let tracked = tracks.finish(&mut ready);
        assert!(ready
            .iter()
            .flat_map(|f| &f.detections)
            .all(|d| d.embedding.is_none()));
        let [track] = &tracked.tracks[..] else {
            panic!("{:?}", tracked.tracks)
        };
        let e = track
            .embedding
            .as_ref()
            .expect("a face track has an embedding");
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (e[0] - half).abs() < 1e-5 && (e[1] - half).abs() < 1e-5,
            "{e:?}"
        );
    }
}

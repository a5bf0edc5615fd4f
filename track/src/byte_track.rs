//! ByteTrack (Zhang et al., 2022), step for step as supervision's `ByteTrack` (0.30) runs it, so
//! that the same detections give the same tracks: a Kalman filter per track; a first
//! association of the tracked and lost tracks with the confident detections (IoU fused with the
//! score), a second of the still unmatched tracked ones with the weak detections (score in
//! 0.1..threshold), a third of the tracks born last frame with what is left; new tracks from the
//! confident leftovers; a track lost for longer than the buffer is dropped. A track gets its
//! public id once it is confirmed (matched on a second frame, or born on the first).
//!
//! Ids are assigned in the order the reference assigns them; what differs is floating point
//! (f64 here throughout) and ties between equal-cost assignments.

use std::collections::HashMap;

use crate::assignment::linear_assignment;
use crate::kalman::{self, Covariance, Mean};

/// The tracker's settings; the defaults are supervision's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerParams {
    /// Detections at or above this score start and continue tracks; those in 0.1..this only
    /// continue them (the second association).
    pub activation_threshold: f32,
    /// Frames (at 30 frames/s; scaled by `frame_rate`) a lost track is kept for re-finding.
    pub lost_track_buffer: u32,
    /// The cost (1 − IoU × score) at most for the first association.
    pub matching_threshold: f64,
    pub frame_rate: f64,
    /// Frames a track must be matched on before it gets an id.
    pub minimum_consecutive_frames: u32,
}

impl Default for TrackerParams {
    fn default() -> Self {
        TrackerParams {
            activation_threshold: 0.25,
            lost_track_buffer: 30,
            matching_threshold: 0.8,
            frame_rate: 30.0,
            minimum_consecutive_frames: 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Tracked,
    Lost,
    Removed,
}

#[derive(Clone, Debug)]
struct Track {
    external: Option<u64>,
    state: State,
    activated: bool,
    start_frame: u64,
    frame_id: u64,
    mean: Mean,
    covariance: Covariance,
    tracklet_len: u32,
}

impl Track {
    /// `[x1, y1, x2, y2]` of the filter's box.
    fn tlbr(&self) -> [f64; 4] {
        let (cx, cy, a, h) = (self.mean[0], self.mean[1], self.mean[2], self.mean[3]);
        let w = a * h;
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    }
}

/// A detection of this frame, as the tracker sees it.
#[derive(Clone, Copy, Debug)]
struct Det {
    tlbr: [f64; 4],
    score: f32,
}

impl Det {
    fn xyah(&self) -> [f64; 4] {
        let [x1, y1, x2, y2] = self.tlbr;
        let (w, h) = (x2 - x1, y2 - y1);
        [x1 + w / 2.0, y1 + h / 2.0, w / h, h]
    }
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// The tracker over one video's frames, fed in order.
pub struct ByteTrack {
    params: TrackerParams,
    det_thresh: f32,
    max_time_lost: u64,
    frame_id: u64,
    tracks: HashMap<u64, Track>,
    /// Internal ids, in the reference's list orders.
    tracked: Vec<u64>,
    lost: Vec<u64>,
    removed: Vec<u64>,
    next_internal: u64,
    next_external: u64,
}

impl ByteTrack {
    pub fn new(params: TrackerParams) -> ByteTrack {
        let det_thresh = if params.activation_threshold + 0.1 > 1.0 {
            params.activation_threshold
        } else {
            params.activation_threshold + 0.1
        };
        ByteTrack {
            params,
            det_thresh,
            max_time_lost: (params.frame_rate / 30.0 * params.lost_track_buffer as f64) as u64,
            frame_id: 0,
            tracks: HashMap::new(),
            tracked: Vec::new(),
            lost: Vec::new(),
            removed: Vec::new(),
            next_internal: 0,
            next_external: 1,
        }
    }

    /// The next frame's detections (`[x1, y1, x2, y2]` and scores); for each, the id of the
    /// confirmed track it belongs to (matched to the track's box at IoU ≥ 0.5, as the
    /// reference maps them back), or `None`.
    pub fn update(&mut self, boxes: &[[f32; 4]], scores: &[f32]) -> Vec<Option<u64>> {
        debug_assert_eq!(boxes.len(), scores.len());
        let output = self.step(boxes, scores);
        if output.is_empty() {
            return vec![None; boxes.len()];
        }
        let dets: Vec<[f64; 4]> = boxes.iter().map(|b| b.map(f64::from)).collect();
        let track_boxes: Vec<[f64; 4]> = output.iter().map(|id| self.tracks[id].tlbr()).collect();
        let cost: Vec<f64> = dets
            .iter()
            .flat_map(|d| track_boxes.iter().map(move |t| 1.0 - iou(d, t)))
            .collect();
        let a = linear_assignment(&cost, dets.len(), track_boxes.len(), 0.5);
        let mut ids = vec![None; boxes.len()];
        for (d, t) in a.matches {
            ids[d] = self.tracks[&output[t]].external;
        }
        ids
    }

    /// The reference's `update_with_tensors`: the confirmed tracks after this frame.
    fn step(&mut self, boxes: &[[f32; 4]], scores: &[f32]) -> Vec<u64> {
        self.frame_id += 1;
        let frame = self.frame_id;
        // Last frame's removed tracks: the reference takes them off its lost list only now (a
        // timed-out lost track stays in this frame's pool).
        let removed_before = std::mem::take(&mut self.removed);
        let valid = |b: &[f32; 4], s: f32| {
            b.iter().all(|v| v.is_finite()) && s.is_finite() && b[2] > b[0] && b[3] > b[1]
        };
        let mut high = Vec::new();
        let mut low = Vec::new();
        for (b, &s) in boxes.iter().zip(scores) {
            if !valid(b, s) {
                continue;
            }
            let det = Det {
                tlbr: b.map(f64::from),
                score: s,
            };
            if s >= self.params.activation_threshold {
                high.push(det);
            } else if s > 0.1 {
                low.push(det);
            }
        }

        let (mut activated, mut refind, mut lost_now, mut removed_now) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (unconfirmed, confirmed): (Vec<u64>, Vec<u64>) = self
            .tracked
            .iter()
            .partition(|id| !self.tracks[id].activated);

        // First association: tracked and lost tracks against the confident detections.
        let pool = joint(&confirmed, &self.lost);
        for id in &pool {
            let t = self.tracks.get_mut(id).expect("listed tracks exist");
            if t.state != State::Tracked {
                t.mean[7] = 0.0;
            }
            kalman::predict(&mut t.mean, &mut t.covariance);
        }
        let cost = self.fused_cost(&pool, &high);
        let first = linear_assignment(
            &cost,
            pool.len(),
            high.len(),
            self.params.matching_threshold,
        );
        for &(ti, di) in &first.matches {
            let id = pool[ti];
            if self.tracks[&id].state == State::Tracked {
                self.continue_track(id, &high[di], frame);
                activated.push(id);
            } else {
                self.refind(id, &high[di], frame);
                refind.push(id);
            }
        }

        // Second association: tracked tracks still unmatched against the weak detections.
        let remaining: Vec<u64> = first
            .unmatched_rows
            .iter()
            .map(|&i| pool[i])
            .filter(|id| self.tracks[id].state == State::Tracked)
            .collect();
        let cost = self.iou_cost(&remaining, &low);
        let second = linear_assignment(&cost, remaining.len(), low.len(), 0.5);
        for &(ti, di) in &second.matches {
            let id = remaining[ti];
            if self.tracks[&id].state == State::Tracked {
                self.continue_track(id, &low[di], frame);
                activated.push(id);
            } else {
                self.refind(id, &low[di], frame);
                refind.push(id);
            }
        }
        for &ti in &second.unmatched_rows {
            let id = remaining[ti];
            let t = self.tracks.get_mut(&id).expect("listed");
            if t.state != State::Lost {
                t.state = State::Lost;
                lost_now.push(id);
            }
        }

        // Tracks born last frame against the confident detections left.
        let left: Vec<Det> = first.unmatched_cols.iter().map(|&i| high[i]).collect();
        let cost = self.fused_cost(&unconfirmed, &left);
        let third = linear_assignment(&cost, unconfirmed.len(), left.len(), 0.7);
        for &(ti, di) in &third.matches {
            self.continue_track(unconfirmed[ti], &left[di], frame);
            activated.push(unconfirmed[ti]);
        }
        for &ti in &third.unmatched_rows {
            let id = unconfirmed[ti];
            self.tracks.get_mut(&id).expect("listed").state = State::Removed;
            removed_now.push(id);
        }

        // New tracks from the confident detections nobody took.
        for &di in &third.unmatched_cols {
            let det = left[di];
            if det.score < self.det_thresh {
                continue;
            }
            let id = self.start_track(&det, frame);
            activated.push(id);
        }

        // Lost for too long: removed.
        for id in &self.lost {
            let t = self.tracks.get_mut(id).expect("listed");
            if frame - t.frame_id > self.max_time_lost {
                t.state = State::Removed;
                removed_now.push(*id);
            }
        }

        let tracked: Vec<u64> = self
            .tracked
            .iter()
            .copied()
            .filter(|id| self.tracks[id].state == State::Tracked)
            .collect();
        let tracked = joint(&joint(&tracked, &activated), &refind);
        let mut lost = sub(&self.lost, &tracked);
        lost.extend(lost_now);
        let lost = sub(&lost, &removed_before);
        let (tracked, lost) = self.remove_duplicates(tracked, lost);
        self.tracked = tracked;
        self.lost = lost;
        self.removed = removed_now;
        // What no list holds any more (removed, or dropped as a duplicate) is let go: memory
        // stays with the tracks alive.
        let (tracked, lost, removed) = (&self.tracked, &self.lost, &self.removed);
        self.tracks
            .retain(|id, _| tracked.contains(id) || lost.contains(id) || removed.contains(id));
        self.tracked
            .iter()
            .copied()
            .filter(|id| self.tracks[id].activated)
            .collect()
    }

    /// `1 − IoU × score` for each (track, detection).
    fn fused_cost(&self, tracks: &[u64], dets: &[Det]) -> Vec<f64> {
        let mut cost = self.iou_cost(tracks, dets);
        for row in cost.chunks_mut(dets.len().max(1)) {
            for (c, d) in row.iter_mut().zip(dets) {
                *c = 1.0 - (1.0 - *c) * d.score as f64;
            }
        }
        cost
    }

    fn iou_cost(&self, tracks: &[u64], dets: &[Det]) -> Vec<f64> {
        let mut cost = Vec::with_capacity(tracks.len() * dets.len());
        for id in tracks {
            let tb = self.tracks[id].tlbr();
            cost.extend(dets.iter().map(|d| 1.0 - iou(&tb, &d.tlbr)));
        }
        cost
    }

    fn start_track(&mut self, det: &Det, frame: u64) -> u64 {
        let internal = self.next_internal;
        self.next_internal += 1;
        let (mean, covariance) = kalman::initiate(det.xyah());
        let mut track = Track {
            external: None,
            state: State::Tracked,
            activated: false,
            start_frame: frame,
            frame_id: frame,
            mean,
            covariance,
            tracklet_len: 1,
        };
        // Born on the very first frame: confirmed at once (the reference's rule).
        if frame == 1 && track.tracklet_len >= self.params.minimum_consecutive_frames {
            track.activated = true;
            track.external = Some(self.new_external());
        }
        self.tracks.insert(internal, track);
        internal
    }

    fn continue_track(&mut self, id: u64, det: &Det, frame: u64) {
        let min = self.params.minimum_consecutive_frames;
        let need_id = {
            let t = self.tracks.get_mut(&id).expect("listed");
            t.frame_id = frame;
            t.tracklet_len += 1;
            kalman::update(&mut t.mean, &mut t.covariance, det.xyah());
            t.state = State::Tracked;
            if t.tracklet_len >= min {
                t.activated = true;
            }
            t.activated && t.external.is_none()
        };
        if need_id {
            let external = self.new_external();
            self.tracks.get_mut(&id).expect("listed").external = Some(external);
        }
    }

    fn refind(&mut self, id: u64, det: &Det, frame: u64) {
        let t = self.tracks.get_mut(&id).expect("listed");
        kalman::update(&mut t.mean, &mut t.covariance, det.xyah());
        t.tracklet_len = 0;
        t.state = State::Tracked;
        t.frame_id = frame;
    }

    fn new_external(&mut self) -> u64 {
        let id = self.next_external;
        self.next_external += 1;
        id
    }

    /// A tracked and a lost track over the same box (IoU > 0.95): the younger goes.
    fn remove_duplicates(&self, tracked: Vec<u64>, lost: Vec<u64>) -> (Vec<u64>, Vec<u64>) {
        let mut drop_a = vec![false; tracked.len()];
        let mut drop_b = vec![false; lost.len()];
        for (i, a) in tracked.iter().enumerate() {
            let ta = &self.tracks[a];
            for (j, b) in lost.iter().enumerate() {
                let tb = &self.tracks[b];
                if 1.0 - iou(&ta.tlbr(), &tb.tlbr()) < 0.05 {
                    let age_a = ta.frame_id - ta.start_frame;
                    let age_b = tb.frame_id - tb.start_frame;
                    if age_a > age_b {
                        drop_b[j] = true;
                    } else {
                        drop_a[i] = true;
                    }
                }
            }
        }
        let keep = |ids: Vec<u64>, drop: &[bool]| {
            ids.into_iter()
                .zip(drop)
                .filter(|(_, d)| !**d)
                .map(|(id, _)| id)
                .collect()
        };
        (keep(tracked, &drop_a), keep(lost, &drop_b))
    }

    /// Tracks held now (tracked and lost), for tests of memory.
    pub fn held(&self) -> usize {
        self.tracks.len()
    }
}

/// `a`, then what of `b` is not in `a`.
fn joint(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = a.to_vec();
    for id in b {
        if !a.contains(id) {
            out.push(*id);
        }
    }
    out
}

/// `a` less what is in `b`.
fn sub(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().copied().filter(|id| !b.contains(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_objects_crossing_keep_their_ids() {
        let mut tracker = ByteTrack::new(TrackerParams::default());
        let mut seen: Vec<Vec<Option<u64>>> = Vec::new();
        for t in 0..60 {
            let x = t as f32 * 4.0;
            // One moves right, the other left, both 40×80, crossing around t = 30.
            let a = [x, 100.0, x + 40.0, 180.0];
            let b = [240.0 - x, 120.0, 280.0 - x, 200.0];
            seen.push(tracker.update(&[a, b], &[0.9, 0.8]));
        }
        assert_eq!(seen[0], vec![Some(1), Some(2)]);
        assert_eq!(
            seen[59],
            vec![Some(1), Some(2)],
            "ids held through the crossing"
        );
    }

    #[test]
    fn a_track_lost_briefly_is_refound_and_a_long_gap_starts_a_new_one() {
        let mut tracker = ByteTrack::new(TrackerParams::default());
        let b = [[10.0, 10.0, 50.0, 90.0]];
        for _ in 0..5 {
            assert_eq!(tracker.update(&b, &[0.9]), vec![Some(1)]);
        }
        for _ in 0..10 {
            assert!(tracker.update(&[], &[]).is_empty());
        }
        assert_eq!(
            tracker.update(&b, &[0.9]),
            vec![Some(1)],
            "refound within the buffer"
        );
        // Past the buffer (30 frames) a lost track is removed; as in the reference it leaves
        // the pool one frame later.
        for _ in 0..32 {
            tracker.update(&[], &[]);
        }
        // Born after the first frame: unconfirmed until matched again.
        assert_eq!(tracker.update(&b, &[0.9]), vec![None]);
        assert_eq!(tracker.update(&b, &[0.9]), vec![Some(2)]);
        assert!(
            tracker.held() <= 2,
            "removed tracks are let go: {}",
            tracker.held()
        );
    }

    #[test]
    fn weak_detections_continue_tracks_but_never_start_them() {
        let mut tracker = ByteTrack::new(TrackerParams::default());
        let b = [[10.0, 10.0, 50.0, 90.0]];
        assert_eq!(
            tracker.update(&b, &[0.2]),
            vec![None],
            "a weak one starts nothing"
        );
        assert_eq!(tracker.update(&b, &[0.9]), vec![None], "born on frame 2");
        assert_eq!(tracker.update(&b, &[0.9]), vec![Some(1)], "confirmed");
        assert_eq!(
            tracker.update(&b, &[0.15]),
            vec![Some(1)],
            "continued by a weak one"
        );
        // Invalid boxes are ignored, never a panic.
        let bad = [[f32::NAN, 0.0, 1.0, 1.0], [5.0, 5.0, 5.0, 9.0]];
        assert_eq!(tracker.update(&bad, &[0.9, 0.9]), vec![None, None]);
    }
}

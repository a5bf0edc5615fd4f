//! Counting a video's tracks in its zones and across its lines, as the merge hands on each
//! frame's tracked boxes in order: a zone records each stay of a track (entry, exit, dwell), a
//! line each crossing of a track's anchor through the segment, by direction. What the shapes
//! are and why one is refused: [`argus_common::zones`].

use std::collections::{BTreeMap, HashMap};

use argus_common::video::TrackSummary;
use argus_common::zones::{
    cross, inside, segments_meet, Anchor, Direction, Line, LineClass, LineCrossing, LineResult,
    Zone, ZoneClass, ZoneResult, ZoneVisit,
};
use argus_common::BoundingBox;

/// How far past an edge or a line (in box heights) a track's anchor must be before it counts
/// as on the other side: a box's jitter from frame to frame (a few pixels, more for a large
/// box) must not make a track standing on a line cross it again and again. Measured on a
/// synthetic walk with the bundled model: the anchor's error spread about a tenth of the box.
const MARGIN: f64 = 0.1;

/// An axis-aligned box around a polygon.
struct Bounds {
    min: [f64; 2],
    max: [f64; 2],
}

impl Bounds {
    fn of(points: &[[f64; 2]]) -> Bounds {
        let mut b = Bounds {
            min: [f64::INFINITY; 2],
            max: [f64::NEG_INFINITY; 2],
        };
        for p in points {
            for k in 0..2 {
                b.min[k] = b.min[k].min(p[k]);
                b.max[k] = b.max[k].max(p[k]);
            }
        }
        b
    }

    /// Whether `p` is within `margin` of the box (inside it included).
    fn near(&self, p: [f64; 2], margin: f64) -> bool {
        (0..2).all(|k| p[k] >= self.min[k] - margin && p[k] <= self.max[k] + margin)
    }
}

/// The shortest distance from `p` to the polygon's edges.
fn distance_to_edges(polygon: &[[f64; 2]], p: [f64; 2]) -> f64 {
    let n = polygon.len();
    (0..n)
        .map(|i| {
            let (a, b) = (polygon[i], polygon[(i + 1) % n]);
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 {
                (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (x, y) = (a[0] + t * dx, a[1] + t * dy);
            ((p[0] - x).powi(2) + (p[1] - y).powi(2)).sqrt()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The zones and lines of one video, in pixels of its displayed frame, and what they saw.
pub struct Regions {
    zones: Vec<ZoneCounter>,
    lines: Vec<LineCounter>,
    /// Each track's last frame seen, to forget tracks gone for `forget_after` frames: what is
    /// held stays with the tracks in view, not every track of a long video.
    last_seen: HashMap<u64, u64>,
    forget_after: u64,
    next_sweep: u64,
}

struct ZoneCounter {
    name: String,
    polygon: Vec<[f64; 2]>,
    anchor: Anchor,
    /// Tracks inside now: their stay so far.
    open: HashMap<u64, Stay>,
    /// The polygon's bounding box: an anchor far from it is outside, without the edges.
    bounds: Bounds,
    /// Finished stays: track, entry, last inside, and whether it was seen leaving.
    visits: Vec<(u64, Stay, bool)>,
}

/// Entry frame and ms, last frame and ms seen inside.
type Stay = (u64, f64, u64, f64);

struct LineCounter {
    name: String,
    a: [f64; 2],
    b: [f64; 2],
    length: f64,
    anchor: Anchor,
    /// Each track's last anchor point off the line, and its side (±1).
    last: HashMap<u64, ([f64; 2], f64)>,
    crossings: Vec<(u64, u64, f64, Direction)>,
}

impl Regions {
    /// The shapes of a video's options (already checked) on its `width`×`height` frame; a
    /// track unseen for `forget_after` frames is taken as ended (its stay in a zone ends
    /// there, `left: false`).
    pub fn new(
        zones: &[Zone],
        lines: &[Line],
        width: u32,
        height: u32,
        forget_after: u64,
    ) -> Regions {
        Regions {
            last_seen: HashMap::new(),
            forget_after: forget_after.max(1),
            next_sweep: 0,
            zones: zones
                .iter()
                .enumerate()
                .map(|(i, z)| ZoneCounter {
                    name: z.name(i),
                    polygon: z.pixels(width, height),
                    anchor: z.anchor,
                    bounds: Bounds::of(&z.pixels(width, height)),
                    open: HashMap::new(),
                    visits: Vec::new(),
                })
                .collect(),
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let [a, b] = l.pixels(width, height);
                    LineCounter {
                        name: l.name(i),
                        a,
                        b,
                        length: ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt(),
                        anchor: l.anchor,
                        last: HashMap::new(),
                        crossings: Vec::new(),
                    }
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty() && self.lines.is_empty()
    }

    /// Track `track` is at `bbox` in frame `frame` (its time `ms`); frames come in order.
    pub fn observe(&mut self, track: u64, frame: u64, ms: f64, bbox: &BoundingBox) {
        if frame >= self.next_sweep {
            self.forget_before(frame.saturating_sub(self.forget_after));
            self.next_sweep = frame + self.forget_after;
        }
        self.last_seen.insert(track, frame);
        let margin = MARGIN * bbox.height().max(1.0) as f64;
        for z in &mut self.zones {
            let p = z.anchor.of(bbox);
            // In as soon as the anchor is inside (or on the edge: a box clipped by the frame
            // ends on its border); out only once it is past the edge by the margin, so that a
            // box jittering on the edge stays one visit, and a zone narrower than the margin
            // still counts who walks in.
            let now_inside = if !z.bounds.near(p, margin) {
                false
            } else if inside(&z.polygon, p) {
                true
            } else {
                let to_edge = distance_to_edges(&z.polygon, p);
                if to_edge < 1e-6 {
                    true
                } else if to_edge < margin && z.open.contains_key(&track) {
                    let stay = z.open.get_mut(&track).expect("just checked");
                    (stay.2, stay.3) = (frame, ms); // still in
                    continue;
                } else {
                    false
                }
            };
            match (z.open.get_mut(&track), now_inside) {
                (Some(stay), true) => {
                    stay.2 = frame;
                    stay.3 = ms;
                }
                (None, true) => {
                    z.open.insert(track, (frame, ms, frame, ms));
                }
                (Some(_), false) => {
                    let stay = z.open.remove(&track).expect("found above");
                    z.visits.push((track, stay, true));
                }
                (None, false) => {}
            }
        }
        for l in &mut self.lines {
            let p = l.anchor.of(bbox);
            let d = cross(l.a, l.b, p) / l.length;
            // On the line (or not a number): the side it came from still counts.
            let side = if d > margin {
                1.0
            } else if d < -margin {
                -1.0
            } else {
                continue;
            };
            if let Some(&(before, was)) = l.last.get(&track) {
                if was != side && segments_meet(before, p, l.a, l.b) {
                    let direction = if side > 0.0 {
                        Direction::In
                    } else {
                        Direction::Out
                    };
                    l.crossings.push((track, frame, ms, direction));
                }
            }
            l.last.insert(track, (p, side));
        }
    }

    /// Forgets the tracks last seen before frame `horizon`.
    fn forget_before(&mut self, horizon: u64) {
        let gone: Vec<u64> = self
            .last_seen
            .iter()
            .filter(|(_, &f)| f < horizon)
            .map(|(&t, _)| t)
            .collect();
        for track in gone {
            self.last_seen.remove(&track);
            for z in &mut self.zones {
                if let Some(stay) = z.open.remove(&track) {
                    z.visits.push((track, stay, false));
                }
            }
            for l in &mut self.lines {
                l.last.remove(&track);
            }
        }
    }

    /// Tracks held (for tests of memory).
    pub fn held(&self) -> usize {
        self.last_seen.len()
    }

    /// What each zone and line saw, labelled by `tracks` (each track's label).
    pub fn finish(self, tracks: &[TrackSummary]) -> (Vec<ZoneResult>, Vec<LineResult>) {
        let label: HashMap<u64, (&str, u32)> = tracks
            .iter()
            .map(|t| (t.id, (t.label.as_str(), t.class_id)))
            .collect();
        let label_of = |id: u64| label.get(&id).copied().unwrap_or(("", 0));
        let zones = self
            .zones
            .into_iter()
            .map(|mut z| {
                let ended_inside = z.open.drain().map(|(track, stay)| (track, stay, false));
                z.visits.extend(ended_inside);
                z.visits.sort_by_key(|&(track, stay, _)| (stay.0, track));
                let mut by_class: BTreeMap<u32, (String, Vec<u64>, u64)> = BTreeMap::new();
                let events: Vec<ZoneVisit> = z
                    .visits
                    .iter()
                    .map(|&(track, (entry, entry_ms, exit, exit_ms), left)| {
                        let (name, class_id) = label_of(track);
                        let c = by_class
                            .entry(class_id)
                            .or_insert_with(|| (name.to_string(), Vec::new(), 0));
                        c.1.push(track);
                        c.2 += 1;
                        ZoneVisit {
                            track_id: track,
                            label: name.to_string(),
                            class_id,
                            entry_frame: entry,
                            exit_frame: exit,
                            entry_ms,
                            exit_ms,
                            dwell_s: ((exit_ms - entry_ms) / 1000.0).max(0.0),
                            left,
                        }
                    })
                    .collect();
                let mut all: Vec<u64> = events.iter().map(|v| v.track_id).collect();
                all.sort_unstable();
                all.dedup();
                ZoneResult {
                    name: z.name,
                    tracks: all.len() as u64,
                    visits: events.len() as u64,
                    by_class: by_class
                        .into_iter()
                        .map(|(class_id, (label, mut ids, visits))| {
                            ids.sort_unstable();
                            ids.dedup();
                            ZoneClass {
                                label,
                                class_id,
                                tracks: ids.len() as u64,
                                visits,
                            }
                        })
                        .collect(),
                    events,
                }
            })
            .collect();
        let lines = self
            .lines
            .into_iter()
            .map(|l| {
                let mut by_class: BTreeMap<u32, LineClass> = BTreeMap::new();
                let events: Vec<LineCrossing> = l
                    .crossings
                    .iter()
                    .map(|&(track, frame, ms, direction)| {
                        let (name, class_id) = label_of(track);
                        let c = by_class.entry(class_id).or_insert_with(|| LineClass {
                            label: name.to_string(),
                            class_id,
                            in_: 0,
                            out: 0,
                        });
                        match direction {
                            Direction::In => c.in_ += 1,
                            Direction::Out => c.out += 1,
                        }
                        LineCrossing {
                            track_id: track,
                            label: name.to_string(),
                            class_id,
                            frame,
                            ms,
                            direction,
                        }
                    })
                    .collect();
                let count = |d| events.iter().filter(|e| e.direction == d).count() as u64;
                LineResult {
                    name: l.name,
                    in_: count(Direction::In),
                    out: count(Direction::Out),
                    by_class: by_class.into_values().collect(),
                    events,
                }
            })
            .collect();
        (zones, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(id: u64, label: &str) -> TrackSummary {
        let b = BoundingBox::from([0.0, 0.0, 1.0, 1.0]);
        TrackSummary {
            id,
            label: label.into(),
            class_id: if label == "car" { 2 } else { 0 },
            first_frame: 0,
            last_frame: 0,
            first_ms: 0.0,
            last_ms: 0.0,
            dwell_s: 0.0,
            frames: 1,
            mean_score: 1.0,
            first_box: b,
            last_box: b,
            path: vec![],
            embedding: None,
        }
    }

    /// A 10×10 box whose bottom centre is at `(x, y)`.
    fn at(x: f32, y: f32) -> BoundingBox {
        BoundingBox::from([x - 5.0, y - 10.0, x + 5.0, y])
    }

    #[test]
    fn a_track_entering_leaving_and_crossing_twice() {
        let zone = Zone {
            name: Some("middle".into()),
            points: vec![[35.0, 0.0], [65.0, 0.0], [65.0, 100.0], [35.0, 100.0]],
            normalized: false,
            anchor: Anchor::BottomCenter,
        };
        // Normalised: x = 50 on a 100-wide frame, drawn top to bottom: moving right is `out`.
        let line = Line {
            name: None,
            start: [0.5, 0.0],
            end: [0.5, 1.0],
            normalized: true,
            anchor: Anchor::Center,
        };
        let mut r = Regions::new(&[zone], &[line], 100, 100, 1000);
        // Track 1 walks right from x=10 to x=90 (frames 0..=8), then back to x=10.
        let xs: Vec<f32> = (0..=8)
            .chain((0..8).rev())
            .map(|k| 10.0 + 10.0 * k as f32)
            .collect();
        for (frame, &x) in xs.iter().enumerate() {
            r.observe(1, frame as u64, frame as f64 * 40.0, &at(x, 50.0));
        }
        // Track 2 stands inside the zone to the end.
        for frame in 3..6 {
            r.observe(2, frame, frame as f64 * 40.0, &at(45.0, 80.0));
        }
        let (zones, lines) = r.finish(&[track(1, "person"), track(2, "car")]);
        let z = &zones[0];
        assert_eq!((z.name.as_str(), z.tracks, z.visits), ("middle", 2, 3));
        // Inside at x = 40, 50, 60: frames 3..=5 going, 11..=13 coming back.
        let one: Vec<(u64, u64, bool)> = z
            .events
            .iter()
            .filter(|v| v.track_id == 1)
            .map(|v| (v.entry_frame, v.exit_frame, v.left))
            .collect();
        assert_eq!(one, vec![(3, 5, true), (11, 13, true)]);
        let two = z.events.iter().find(|v| v.track_id == 2).unwrap();
        assert_eq!((two.entry_frame, two.exit_frame, two.left), (3, 5, false));
        assert!((two.dwell_s - 0.08).abs() < 1e-9);
        assert_eq!(z.by_class.len(), 2);

        let l = &lines[0];
        assert_eq!((l.name.as_str(), l.in_, l.out), ("line-1", 1, 1));
        // Crossed at x 50→60 (frame 5) going right (`out`), and 50→40 coming back.
        assert_eq!(
            l.events
                .iter()
                .map(|e| (e.frame, e.direction))
                .collect::<Vec<_>>(),
            vec![(5, Direction::Out), (13, Direction::In)]
        );
        assert_eq!(l.by_class[0].label, "person");
    }

    #[test]
    fn a_track_cut_off_by_the_frames_edge_is_in_a_zone_along_it() {
        let zone = Zone {
            name: None,
            points: vec![[0.0, 50.0], [100.0, 50.0], [100.0, 100.0], [0.0, 100.0]],
            normalized: false,
            anchor: Anchor::BottomCenter,
        };
        let mut r = Regions::new(&[zone], &[], 100, 100, 1000);
        // Its box ends at the frame's bottom, on the zone's edge, all along.
        for frame in 0..5 {
            r.observe(1, frame, 0.0, &at(30.0 + frame as f32, 100.0));
        }
        let (zones, _) = r.finish(&[track(1, "person")]);
        assert_eq!(zones[0].visits, 1);
        assert_eq!(
            (
                zones[0].events[0].entry_frame,
                zones[0].events[0].exit_frame
            ),
            (0, 4)
        );
    }

    #[test]
    fn a_zone_narrower_than_the_margin_counts_who_walks_in() {
        // A 6 px wide stripe; the 10 px box's margin is 1 px, a 100 px box's 10 px.
        let zone = Zone {
            name: None,
            points: vec![[47.0, 0.0], [53.0, 0.0], [53.0, 200.0], [47.0, 200.0]],
            normalized: false,
            anchor: Anchor::BottomCenter,
        };
        let mut r = Regions::new(&[zone], &[], 200, 200, 1000);
        let tall = |x: f32| BoundingBox::from([x - 5.0, 50.0, x + 5.0, 150.0]);
        for (frame, x) in [20.0, 35.0, 50.0, 65.0, 80.0].into_iter().enumerate() {
            r.observe(1, frame as u64, frame as f64 * 40.0, &tall(x));
        }
        let (zones, _) = r.finish(&[track(1, "person")]);
        assert_eq!(zones[0].visits, 1);
        // In at frame 2 (x = 50); 65 is 12 px out, past the 10 px margin: left at 2.
        let v = &zones[0].events[0];
        assert_eq!((v.entry_frame, v.exit_frame, v.left), (2, 2, true));
    }

    #[test]
    fn tracks_long_gone_are_forgotten() {
        let zone = Zone {
            name: None,
            points: vec![[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]],
            normalized: false,
            anchor: Anchor::Center,
        };
        let mut r = Regions::new(&[zone], &[], 100, 100, 50);
        // 1000 tracks, each seen on 3 frames, one after the other.
        for t in 0..1000u64 {
            for k in 0..3 {
                r.observe(t, t * 3 + k, 0.0, &at(50.0, 60.0));
            }
            assert!(r.held() <= 60, "{} tracks held at track {t}", r.held());
        }
        let tracks: Vec<TrackSummary> = (0..1000).map(|t| track(t, "person")).collect();
        let (zones, _) = r.finish(&tracks);
        assert_eq!(zones[0].visits, 1000);
        assert!(zones[0]
            .events
            .iter()
            .all(|v| !v.left && v.exit_frame == v.entry_frame + 2));
    }

    #[test]
    fn passing_beside_a_segment_is_no_crossing() {
        let line = Line {
            name: None,
            start: [50.0, 0.0],
            end: [50.0, 40.0],
            normalized: false,
            anchor: Anchor::BottomCenter,
        };
        let mut r = Regions::new(&[], &[line], 100, 100, 1000);
        for (frame, x) in [10.0, 40.0, 60.0, 90.0].into_iter().enumerate() {
            r.observe(1, frame as u64, 0.0, &at(x, 80.0));
        }
        let (_, lines) = r.finish(&[track(1, "person")]);
        assert_eq!((lines[0].in_, lines[0].out), (0, 0));
    }
}

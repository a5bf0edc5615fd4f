//! Zones and lines: the regions a user draws on a video's frame to count its tracks by. What is
//! given (per-video options, in the displayed frame's pixels or normalised to 0..=1), why a
//! drawing is refused ([`check`]), the geometry the count runs on, and what the count found
//! (the result's `zones` and `lines`). The counting itself runs in the merge, over the tracks.

use serde::{Deserialize, Serialize};

use crate::BoundingBox;

/// Most zones, and most lines, one video may have.
pub const MAX_ZONES: usize = 16;
pub const MAX_LINES: usize = 16;
/// Most corners of one zone.
pub const MAX_POINTS: usize = 64;
/// Longest name of a zone or line, in characters.
pub const MAX_NAME: usize = 64;
/// Largest pixel coordinate taken before the frame's size is known (the probe checks the rest).
const MAX_PIXEL: f64 = 100_000.0;

/// Which point of a box stands for the object: where it touches the ground (the default, as
/// for people and vehicles seen from above or the side) or the box's centre.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    #[default]
    BottomCenter,
    Center,
}

impl Anchor {
    pub fn of(self, b: &BoundingBox) -> [f64; 2] {
        let x = (b.x1 as f64 + b.x2 as f64) / 2.0;
        match self {
            Anchor::BottomCenter => [x, b.y2 as f64],
            Anchor::Center => [x, (b.y1 as f64 + b.y2 as f64) / 2.0],
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_default(a: &Anchor) -> bool {
    *a == Anchor::default()
}

/// A polygon: a track is in it while its anchor point is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Unique among the zones; `zone-1`, `zone-2`, … when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 3..=64 corners `[x, y]`, in order around the polygon; it must not cross itself.
    pub points: Vec<[f64; 2]>,
    /// Coordinates as fractions of the frame's width and height instead of pixels.
    #[serde(default, skip_serializing_if = "is_false")]
    pub normalized: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub anchor: Anchor,
}

/// A line segment counted across: a track crosses it when its anchor's move between two frames
/// passes through the segment. Walking from `start` to `end`, a crossing from the left-hand
/// side to the right-hand side (as displayed, y pointing down) is `in`, the other way `out`:
/// for a line drawn left to right, objects moving down the picture cross `in`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// Unique among the lines; `line-1`, `line-2`, … when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub start: [f64; 2],
    pub end: [f64; 2],
    #[serde(default, skip_serializing_if = "is_false")]
    pub normalized: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub anchor: Anchor,
}

impl Zone {
    pub fn name(&self, i: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("zone-{}", i + 1))
    }

    /// The corners in pixels of a `width`×`height` frame.
    pub fn pixels(&self, width: u32, height: u32) -> Vec<[f64; 2]> {
        self.points
            .iter()
            .map(|&p| to_pixels(p, self.normalized, width, height))
            .collect()
    }
}

impl Line {
    pub fn name(&self, i: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("line-{}", i + 1))
    }

    pub fn pixels(&self, width: u32, height: u32) -> [[f64; 2]; 2] {
        [
            to_pixels(self.start, self.normalized, width, height),
            to_pixels(self.end, self.normalized, width, height),
        ]
    }
}

fn to_pixels(p: [f64; 2], normalized: bool, width: u32, height: u32) -> [f64; 2] {
    if normalized {
        [p[0] * width as f64, p[1] * height as f64]
    } else {
        p
    }
}

/// Why these zones and lines are refused, if they are: too many, a name twice, a coordinate
/// that is not a number or lies outside the frame (`frame`: its displayed width and height,
/// once known), a zone with fewer than three corners, no area or edges that cross, a line of
/// no length. The message names the shape (`zones[2] "door"`) and says why.
pub fn check(zones: &[Zone], lines: &[Line], frame: Option<(u32, u32)>) -> Result<(), String> {
    if zones.len() > MAX_ZONES {
        return Err(format!(
            "at most {MAX_ZONES} zones per video, got {}",
            zones.len()
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(format!(
            "at most {MAX_LINES} lines per video, got {}",
            lines.len()
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, z) in zones.iter().enumerate() {
        let name = z.name(i);
        let what = format!("zones[{i}] {:?}", shorten(&name));
        check_name(&name, &what)?;
        if !names.insert(("zone", name)) {
            return Err(format!("{what}: another zone has this name"));
        }
        if !(3..=MAX_POINTS).contains(&z.points.len()) {
            return Err(format!(
                "{what}: a zone has 3 to {MAX_POINTS} points, got {}",
                z.points.len()
            ));
        }
        for (k, &p) in z.points.iter().enumerate() {
            check_point(p, z.normalized, frame, &format!("{what}: point {k}"))?;
        }
        let points = match frame {
            Some((w, h)) => z.pixels(w, h),
            None => z.points.clone(),
        };
        check_polygon(&points).map_err(|why| format!("{what}: {why}"))?;
    }
    for (i, l) in lines.iter().enumerate() {
        let name = l.name(i);
        let what = format!("lines[{i}] {:?}", shorten(&name));
        check_name(&name, &what)?;
        if !names.insert(("line", name)) {
            return Err(format!("{what}: another line has this name"));
        }
        check_point(l.start, l.normalized, frame, &format!("{what}: start"))?;
        check_point(l.end, l.normalized, frame, &format!("{what}: end"))?;
        if l.start == l.end {
            return Err(format!(
                "{what}: start and end are the same point: a line needs a length"
            ));
        }
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    s.chars().take(MAX_NAME).collect()
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!("{what}: a name has 1 to {MAX_NAME} characters"));
    }
    // Control and invisible format characters (zero-width, bidirectional overrides): a name
    // must read as what it is.
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    };
    if name.chars().any(invisible) {
        return Err(format!(
            "{what}: a name has no control or invisible characters"
        ));
    }
    Ok(())
}

fn check_point(
    p: [f64; 2],
    normalized: bool,
    frame: Option<(u32, u32)>,
    what: &str,
) -> Result<(), String> {
    let [x, y] = p;
    if !x.is_finite() || !y.is_finite() {
        return Err(format!("{what}: coordinates must be numbers"));
    }
    if normalized {
        if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
            return Err(format!(
                "{what}: [{x}, {y}] is outside the frame: normalized coordinates lie in 0..=1"
            ));
        }
        return Ok(());
    }
    let (w, h) = frame.map_or((MAX_PIXEL, MAX_PIXEL), |(w, h)| (w as f64, h as f64));
    if !(0.0..=w).contains(&x) || !(0.0..=h).contains(&y) {
        let size = match frame {
            Some((fw, fh)) => format!("the frame is {fw}×{fh} pixels"),
            None => format!("pixel coordinates lie in 0..={MAX_PIXEL}"),
        };
        return Err(format!("{what}: [{x}, {y}] is outside the frame: {size}"));
    }
    Ok(())
}

/// A polygon that encloses an area without crossing itself.
fn check_polygon(points: &[[f64; 2]]) -> Result<(), String> {
    let n = points.len();
    for k in 0..n {
        if points[k] == points[(k + 1) % n] {
            return Err(format!("points {k} and {} are the same point", (k + 1) % n));
        }
    }
    if points
        .iter()
        .all(|&p| cross(points[0], points[1], p) == 0.0)
    {
        return Err("the polygon has no area (its points lie on one line)".into());
    }
    for i in 0..n {
        let (a, b) = (points[i], points[(i + 1) % n]);
        for j in i + 1..n {
            let (c, d) = (points[j], points[(j + 1) % n]);
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            let crosses = if adjacent {
                // Neighbours share a corner; they cross only by folding back over each other.
                let shared = if j == i + 1 { b } else { a };
                let (p, q) = if j == i + 1 { (a, d) } else { (b, c) };
                cross(shared, p, q) == 0.0 && dot(shared, p, q) > 0.0
            } else {
                segments_meet(a, b, c, d)
            };
            if crosses {
                return Err(format!(
                    "the polygon crosses itself: edge {i}–{} meets edge {j}–{}",
                    (i + 1) % n,
                    (j + 1) % n
                ));
            }
        }
    }
    Ok(())
}

/// `(p − o) × (q − o)`: positive when `q` lies to the right of `o → p` as displayed (y down).
pub fn cross(o: [f64; 2], p: [f64; 2], q: [f64; 2]) -> f64 {
    (p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0])
}

fn dot(o: [f64; 2], p: [f64; 2], q: [f64; 2]) -> f64 {
    (p[0] - o[0]) * (q[0] - o[0]) + (p[1] - o[1]) * (q[1] - o[1])
}

/// Whether segments `a–b` and `c–d` have a point in common (touching counts).
pub fn segments_meet(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]) -> bool {
    let (d1, d2) = (cross(a, b, c), cross(a, b, d));
    let (d3, d4) = (cross(c, d, a), cross(c, d, b));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    let on = |p: [f64; 2], q: [f64; 2], r: [f64; 2]| {
        r[0] >= p[0].min(q[0])
            && r[0] <= p[0].max(q[0])
            && r[1] >= p[1].min(q[1])
            && r[1] <= p[1].max(q[1])
    };
    (d1 == 0.0 && on(a, b, c))
        || (d2 == 0.0 && on(a, b, d))
        || (d3 == 0.0 && on(c, d, a))
        || (d4 == 0.0 && on(c, d, b))
}

/// Whether `p` lies inside the polygon (even-odd rule; a point on an edge may go either way).
pub fn inside(polygon: &[[f64; 2]], p: [f64; 2]) -> bool {
    let n = polygon.len();
    let mut inside = false;
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (polygon[i], polygon[j]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
            if p[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// Which way a crossing went (see [`Line`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

/// One stay of a track in a zone: from the first frame it was seen inside to the last before
/// it was seen outside (or its track ended).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneVisit {
    pub track_id: u64,
    /// The track's label.
    pub label: String,
    pub class_id: u32,
    pub entry_frame: u64,
    pub exit_frame: u64,
    pub entry_ms: f64,
    pub exit_ms: f64,
    /// From entry to exit, in seconds.
    pub dwell_s: f64,
    /// `false` when the track ended inside (it was never seen leaving).
    pub left: bool,
}

/// A zone's count per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneClass {
    pub label: String,
    pub class_id: u32,
    /// Different tracks that were in the zone.
    pub tracks: u64,
    pub visits: u64,
}

/// What a zone saw: how many different tracks were in it, how many stays (a track that goes
/// out and back counts twice), per class, and each stay (in the result; not in the summary).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneResult {
    pub name: String,
    pub tracks: u64,
    pub visits: u64,
    pub by_class: Vec<ZoneClass>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ZoneVisit>,
}

/// A track crossing a line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineCrossing {
    pub track_id: u64,
    pub label: String,
    pub class_id: u32,
    /// The first frame the track was seen on the other side.
    pub frame: u64,
    pub ms: f64,
    pub direction: Direction,
}

/// A line's crossings per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineClass {
    pub label: String,
    pub class_id: u32,
    #[serde(rename = "in")]
    pub in_: u64,
    pub out: u64,
}

/// What a line saw: crossings each way, per class, and each crossing (in the result; not in
/// the summary).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineResult {
    pub name: String,
    #[serde(rename = "in")]
    pub in_: u64,
    pub out: u64,
    pub by_class: Vec<LineClass>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<LineCrossing>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(points: &[[f64; 2]]) -> Zone {
        Zone {
            name: None,
            points: points.to_vec(),
            normalized: false,
            anchor: Anchor::default(),
        }
    }

    fn line(start: [f64; 2], end: [f64; 2]) -> Line {
        Line {
            name: None,
            start,
            end,
            normalized: false,
            anchor: Anchor::default(),
        }
    }

    #[test]
    fn good_shapes_pass() {
        let square = zone(&[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]);
        let concave = zone(&[
            [0.0, 0.0],
            [10.0, 0.0],
            [5.0, 5.0],
            [10.0, 10.0],
            [0.0, 10.0],
        ]);
        let mut norm = zone(&[[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]);
        norm.normalized = true;
        let l = line([0.0, 50.0], [100.0, 50.0]);
        assert_eq!(
            check(&[square, concave, norm], &[l], Some((100, 100))),
            Ok(())
        );
    }

    #[test]
    fn bad_shapes_are_refused_with_the_reason() {
        let frame = Some((100, 100));
        let cases: Vec<(Vec<Zone>, Vec<Line>, &str)> = vec![
            (
                vec![zone(&[[0.0, 0.0], [1.0, 1.0]])],
                vec![],
                "3 to 64 points",
            ),
            (
                vec![zone(&[[0.0, 0.0], [10.0, 10.0], [10.0, 0.0], [0.0, 10.0]])],
                vec![],
                "crosses itself",
            ),
            (
                vec![zone(&[[0.0, 0.0], [5.0, 5.0], [10.0, 10.0]])],
                vec![],
                "no area",
            ),
            (
                vec![zone(&[[0.0, 0.0], [10.0, 0.0], [5.0, 0.0], [5.0, 9.0]])],
                vec![],
                "crosses itself",
            ),
            (
                vec![zone(&[[0.0, 0.0], [0.0, 0.0], [5.0, 9.0]])],
                vec![],
                "same point",
            ),
            (
                vec![zone(&[[0.0, 0.0], [200.0, 0.0], [5.0, 9.0]])],
                vec![],
                "outside the frame: the frame is 100×100",
            ),
            (
                vec![zone(&[[0.0, f64::NAN], [20.0, 0.0], [5.0, 9.0]])],
                vec![],
                "must be numbers",
            ),
            (vec![], vec![line([5.0, 5.0], [5.0, 5.0])], "needs a length"),
            (
                vec![],
                vec![line([-1.0, 5.0], [5.0, 5.0])],
                "outside the frame",
            ),
            (
                vec![zone(&[[0.0, 0.0], [10.0, 0.0], [5.0, 9.0]]); MAX_ZONES + 1],
                vec![],
                "at most 16 zones",
            ),
            (
                vec![],
                vec![line([0.0, 0.0], [5.0, 5.0]); MAX_LINES + 1],
                "at most 16 lines",
            ),
        ];
        for (zones, lines, why) in cases {
            let err = check(&zones, &lines, frame).expect_err(why);
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
        let mut named = vec![zone(&[[0.0, 0.0], [10.0, 0.0], [5.0, 9.0]]); 2];
        named[0].name = Some("zone-2".into());
        let err = check(&named, &[], frame).unwrap_err();
        assert!(err.starts_with("zones[1] \"zone-2\""), "{err}");
        let mut hidden = vec![zone(&[[0.0, 0.0], [10.0, 0.0], [5.0, 9.0]])];
        hidden[0].name = Some("door\u{202E}".into());
        assert!(check(&hidden, &[], frame)
            .unwrap_err()
            .contains("invisible"));
        let mut norm = line([0.0, 0.0], [1.5, 0.5]);
        norm.normalized = true;
        assert!(check(&[], &[norm], None).unwrap_err().contains("0..=1"));
    }

    #[test]
    fn inside_and_crossing_geometry() {
        let square = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        assert!(inside(&square, [5.0, 5.0]));
        assert!(!inside(&square, [15.0, 5.0]));
        assert!(!inside(&square, [5.0, -1.0]));
        assert!(segments_meet(
            [0.0, 0.0],
            [10.0, 10.0],
            [0.0, 10.0],
            [10.0, 0.0]
        ));
        assert!(!segments_meet(
            [0.0, 0.0],
            [1.0, 1.0],
            [5.0, 0.0],
            [6.0, 1.0]
        ));
        // Below a left-to-right line is its right-hand side (y down).
        assert!(cross([0.0, 0.0], [10.0, 0.0], [5.0, 5.0]) > 0.0);
    }
}

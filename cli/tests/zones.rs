//! Zones, lines and the cost dial, end to end with the real model (`argus detect`):
//! - a synthetic walk with known motion (the astronaut photo crossing a grey frame to the
//!   right and back): one track, two stays in the middle zone and one crossing each way of the
//!   middle line, at the frames the motion predicts; the same in normalised coordinates and
//!   whatever the chunk size;
//! - a real clip (bikes): zones and lines do not depend on the chunk size, and every event
//!   names a track in view at that frame;
//! - `stride`: a quarter of the frames detected, the others carried by the track (interpolated
//!   boxes close to what detecting them gives), the same counts, less device time;
//!   `keyframes_only`: exactly the keyframes detected.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{detect_json, media, scratch};
use serde_json::{json, Value};

/// 200 frames at 25 frames/s, 640×360: the photo (150×150) at y = 120, x = 20 + 4.5 n for
/// n < 100, then back; a keyframe every 50 frames.
fn walk(dir: &Path) -> PathBuf {
    let out = dir.join("walk.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "color=c=gray:s=640x360:r=25:d=8", "-i"])
        .arg(media("astronaut.png"))
        .args([
            "-filter_complex",
            "[1]scale=150:150[p];[0][p]overlay=x='if(lt(n\\,100)\\,20+4.5*n\\,20+4.5*(200-n))'\
             :y=120:eval=frame,format=yuv420p",
            "-frames:v",
            "200",
            "-c:v",
            "libx264",
            "-g",
            "50",
            "-sc_threshold",
            "0",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// The frame at which the photo's centre column (x = 95 + 4.5 n, then back) reaches `x`:
/// going right, and coming back.
fn frames_at(x: f64) -> (f64, f64) {
    let n = (x - 95.0) / 4.5;
    (n, 200.0 - n)
}

fn near(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap();
    assert!(
        (got - want).abs() <= 10.0,
        "{what}: frame {got}, the motion says about {want}"
    );
}

const ZONES_PX: &str = r#"[{"name":"middle","points":[[240,0],[400,0],[400,360],[240,360]]}]"#;
const LINES_PX: &str = r#"[{"name":"gate","start":[320,0],"end":[320,360]}]"#;

#[test]
fn a_walk_enters_and_leaves_a_zone_and_crosses_a_line_twice() {
    let dir = scratch("zones-walk");
    let video = walk(&dir);
    let result = detect_json(
        &video,
        &["--zones", ZONES_PX, "--lines", LINES_PX],
        &dir.join("px.json"),
    );
    let tracks = result["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 1, "one object: {}", result["tracks"]);
    let id = &tracks[0]["id"];

    let zone = &result["zones"][0];
    assert_eq!(zone["name"], "middle");
    assert_eq!(
        (zone["tracks"].as_u64(), zone["visits"].as_u64()),
        (Some(1), Some(2))
    );
    let visits = zone["events"].as_array().unwrap();
    let (enter, leave_back) = frames_at(240.0);
    let (leave, enter_back) = frames_at(400.0);
    for (visit, (entry, exit)) in visits
        .iter()
        .zip([(enter, leave), (enter_back, leave_back)])
    {
        assert_eq!(&visit["track_id"], id);
        assert_eq!(visit["label"], "person");
        assert_eq!(visit["left"], true);
        near(&visit["entry_frame"], entry, "entry");
        near(&visit["exit_frame"], exit, "exit");
        let frames = visit["exit_frame"].as_f64().unwrap() - visit["entry_frame"].as_f64().unwrap();
        assert!((visit["dwell_s"].as_f64().unwrap() - frames / 25.0).abs() < 1e-6);
    }

    let line = &result["lines"][0];
    assert_eq!(
        (line["in"].as_u64(), line["out"].as_u64()),
        (Some(1), Some(1)),
        "{line}"
    );
    let crossings = line["events"].as_array().unwrap();
    // Drawn top to bottom: moving right is from its right-hand side to its left, `out`.
    let (right, back) = frames_at(320.0);
    assert_eq!(crossings[0]["direction"], "out");
    near(&crossings[0]["frame"], right, "crossing right");
    assert_eq!(crossings[1]["direction"], "in");
    near(&crossings[1]["frame"], back, "crossing back");
    assert_eq!(
        line["by_class"],
        json!([{"label": "person", "class_id": 0, "in": 1, "out": 1}])
    );

    // The summary has the counts without the events.
    let summary = &result["summary"];
    assert_eq!(summary["zones"][0]["visits"], 2);
    assert!(summary["zones"][0].get("events").is_none());
    assert_eq!(summary["lines"][0]["in"], 1);
    assert_eq!(summary["classes"][0]["most_at_once"], 1);

    // The same shapes normalised, and cut in chunks of 16: the same counts and events.
    let normalized = detect_json(
        &video,
        &[
            "--chunk-size",
            "16",
            "--zones",
            r#"[{"name":"middle","normalized":true,
                 "points":[[0.375,0],[0.625,0],[0.625,1],[0.375,1]]}]"#,
            "--lines",
            r#"[{"name":"gate","normalized":true,"start":[0.5,0],"end":[0.5,1]}]"#,
        ],
        &dir.join("norm.json"),
    );
    assert_eq!(normalized["zones"], result["zones"]);
    assert_eq!(normalized["lines"], result["lines"]);
}

#[test]
fn bad_shapes_are_refused_before_any_work() {
    let dir = scratch("zones-bad");
    let video = media("carphone_pristine.mp4");
    for (flag, value, why) in [
        (
            "--zones",
            r#"[{"points":[[0,0],[10,10],[10,0],[0,10]]}]"#,
            "crosses itself",
        ),
        (
            "--zones",
            r#"[{"points":[[0,0],[10,10]]}]"#,
            "3 to 64 points",
        ),
        // carphone is 176×144.
        (
            "--zones",
            r#"[{"points":[[0,0],[300,0],[0,100]]}]"#,
            "the frame is 176×144",
        ),
        (
            "--lines",
            r#"[{"start":[5,5],"end":[5,5]}]"#,
            "needs a length",
        ),
        ("--lines", r#"[{"start":[5,5]}]"#, "JSON lists"),
    ] {
        let run = common::argus(&[
            "detect",
            video.to_str().unwrap(),
            "-q",
            "-o",
            dir.join("x.json").to_str().unwrap(),
            flag,
            value,
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{value} was taken");
        assert!(stderr.contains(why), "{value}: {stderr}");
        assert!(!dir.join("x.json").exists());
    }
}

#[test]
fn zones_and_lines_on_a_real_clip_do_not_depend_on_the_cut() {
    let dir = scratch("zones-bikes");
    let shapes = [
        "--zones",
        r#"[{"name":"left half","normalized":true,"points":[[0,0],[0.5,0],[0.5,1],[0,1]]}]"#,
        "--lines",
        r#"[{"name":"middle","normalized":true,"start":[0.5,0],"end":[0.5,1]}]"#,
    ];
    let mut results = Vec::new();
    for chunk in ["16", "10000"] {
        let mut args = vec!["--chunk-size", chunk];
        args.extend_from_slice(&shapes);
        results.push(detect_json(
            &media("bikes.mp4"),
            &args,
            &dir.join(format!("{chunk}.json")),
        ));
    }
    assert_eq!(results[0]["zones"], results[1]["zones"]);
    assert_eq!(results[0]["lines"], results[1]["lines"]);
    let r = &results[0];
    let span = |id: &Value| {
        let t = r["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| &t["id"] == id)
            .unwrap();
        (
            t["first_frame"].as_u64().unwrap(),
            t["last_frame"].as_u64().unwrap(),
        )
    };
    let visits = r["zones"][0]["events"].as_array().unwrap();
    let crossings = r["lines"][0]["events"].as_array().unwrap();
    assert!(
        !visits.is_empty() && !crossings.is_empty(),
        "{}",
        r["summary"]
    );
    for v in visits {
        let (first, last) = span(&v["track_id"]);
        let (entry, exit) = (
            v["entry_frame"].as_u64().unwrap(),
            v["exit_frame"].as_u64().unwrap(),
        );
        assert!(first <= entry && entry <= exit && exit <= last, "{v}");
    }
    for c in crossings {
        let (first, last) = span(&c["track_id"]);
        let frame = c["frame"].as_u64().unwrap();
        assert!(first < frame && frame <= last, "{c}");
    }
}

fn iou(a: &Value, b: &Value) -> f64 {
    let a: Vec<f64> = a
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let b: Vec<f64> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn stride_and_keyframes_detect_fewer_frames_and_tracks_carry_the_rest() {
    let dir = scratch("zones-stride");
    let video = walk(&dir);
    let shapes = ["--zones", ZONES_PX, "--lines", LINES_PX];
    let every = detect_json(&video, &shapes, &dir.join("s1.json"));
    let mut args = vec!["--stride", "4"];
    args.extend_from_slice(&shapes);
    let strided = detect_json(&video, &args, &dir.join("s4.json"));

    let s = &strided["summary"];
    assert_eq!(s["frames_processed"], 200);
    assert_eq!(s["frames_detected"], 50);
    let frames = strided["frames"].as_array().unwrap();
    let last_detected = 196;
    let (mut ious, mut gaps) = (Vec::new(), 0);
    for (f, full) in frames.iter().zip(every["frames"].as_array().unwrap()) {
        let index = f["index"].as_u64().unwrap();
        assert_eq!(
            f["predicted"].as_bool().unwrap_or(false),
            index % 4 != 0,
            "{f}"
        );
        if index > last_detected {
            // Nothing carried past the last detected frame.
            assert!(f["detections"].as_array().unwrap().is_empty(), "{f}");
            continue;
        }
        let Some(d) = f["detections"].as_array().unwrap().first() else {
            // A track lost between two detected frames: nothing to carry (the walk turns
            // back at frame 100, faster than the tracker's motion model follows at stride 4).
            gaps += 1;
            continue;
        };
        let predicted = d["predicted"].as_bool().unwrap_or(false);
        assert_eq!(predicted, index % 4 != 0);
        // A carried box belongs to a track (a detected one may not yet).
        assert!(!predicted || d["track_id"].is_u64(), "{d}");
        // Kept: the box detecting this frame gives, matched at IoU ≥ 0.5 (the detector's own
        // boxes of the same object vary that much from frame to frame).
        let truth = &full["detections"][0]["box"];
        let overlap = iou(&d["box"], truth);
        assert!(overlap >= 0.5, "frame {index}: {d} vs {truth}");
        ious.push(overlap);
    }
    assert!(gaps <= 10, "{gaps} frames without a carried box");
    let mean = ious.iter().sum::<f64>() / ious.len() as f64;
    assert!(mean > 0.8, "mean IoU with the detected boxes {mean}");
    // The same stays and crossings from a quarter of the detections (the turn may split the
    // walk into two tracks).
    let counts = |r: &Value| {
        let (z, l) = (&r["summary"]["zones"][0], &r["summary"]["lines"][0]);
        (z["visits"].clone(), l["in"].clone(), l["out"].clone())
    };
    assert_eq!(counts(&strided), counts(&every));
    let (d1, d4) = (
        every["summary"]["device_seconds"].as_f64().unwrap(),
        s["device_seconds"].as_f64().unwrap(),
    );
    assert!(
        d4 > 0.0 && d4 < 0.7 * d1,
        "device seconds: {d4} at stride 4, {d1} at 1"
    );
    let per_hour = s["device_seconds_per_video_hour"].as_f64().unwrap();
    assert!((per_hour - d4 * 3600.0 / 8.0).abs() < 1e-6 * per_hour.max(1.0));

    // Cut in chunks of 16 frames (4 detected each), the carried boxes cross chunk ends: the
    // same frames, boxes and counts.
    let mut args = vec!["--stride", "4", "--chunk-size", "16"];
    args.extend_from_slice(&shapes);
    let cut = detect_json(&video, &args, &dir.join("s4c16.json"));
    assert_eq!(cut["frames"], strided["frames"]);
    assert_eq!(cut["zones"], strided["zones"]);
    assert_eq!(cut["lines"], strided["lines"]);

    // Keyframes only: exactly the keyframes ffprobe lists.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=key_frame",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&video)
        .output()
        .unwrap();
    // One line per frame ("1," when the frame has side data); blank lines between.
    let keys: Vec<u64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .enumerate()
        .filter(|(_, l)| *l == "1")
        .map(|(i, _)| i as u64)
        .collect();
    assert_eq!(keys, [0, 50, 100, 150]);
    let keyed = detect_json(&video, &["--keyframes-only"], &dir.join("k.json"));
    assert_eq!(keyed["summary"]["frames_detected"], 4);
    assert_eq!(keyed["summary"]["frames_processed"], 200);
    let detected: Vec<u64> = keyed["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["predicted"].as_bool().unwrap_or(false))
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(detected, keys);
    assert_eq!(keyed["summary"]["classes"][0]["objects"], 4);
}

//! `argus detect VIDEO` end to end: the real binary, the real model, real and made-up videos.

mod common;

use std::process::Command;

use common::{argus, detect_json, media, scratch, text};
use serde_json::Value;

fn ffmpeg(args: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("ffmpeg -nostdin -loglevel error -y {args}"))
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args}");
}

fn labels_in(frame: &Value) -> Vec<&str> {
    frame["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect()
}

#[test]
fn carphone_has_a_person_in_nearly_every_frame_and_an_annotated_copy() {
    let dir = scratch("carphone");
    let annotated = dir.join("annotated.mp4");
    let json = detect_json(
        &media("carphone_pristine.mp4"),
        &["--annotate", annotated.to_str().unwrap()],
        &dir.join("result.json"),
    );
    let frames = json["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 120);
    let indices: Vec<u64> = frames
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, (0..120).collect::<Vec<_>>());
    let with_person = frames
        .iter()
        .filter(|f| labels_in(f).contains(&"person"))
        .count();
    assert!(
        with_person * 100 >= 95 * 120,
        "person in {with_person}/120 frames"
    );
    assert!(frames[1]["pts_ms"].as_f64().unwrap() > frames[0]["pts_ms"].as_f64().unwrap());

    assert_eq!(json["video"]["codec"], "h264");
    assert_eq!(
        (
            json["video"]["width"].as_u64(),
            json["video"]["height"].as_u64()
        ),
        (Some(176), Some(144))
    );
    assert_eq!(json["model"]["name"], "coco-centernet");
    let summary = &json["summary"];
    assert_eq!(summary["frames_processed"], 120);
    assert_eq!(summary["top_classes"][0], "person");
    assert!(summary["most_persons"]["count"].as_u64().unwrap() >= 1);
    assert!(summary["frames_per_second"].as_f64().unwrap() > 0.0);

    // The annotated copy: H.264, every frame, and boxes drawn (it differs from the source).
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&annotated)
        .output()
        .unwrap();
    assert_eq!(text(&probe.stdout).trim(), "h264,120");
}

#[test]
fn bikes_has_people_cars_and_bicycles() {
    let dir = scratch("bikes");
    let json = detect_json(&media("bikes.mp4"), &[], &dir.join("result.json"));
    let classes: Vec<&str> = json["summary"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    for wanted in ["person", "car", "bicycle"] {
        assert!(classes.contains(&wanted), "{wanted} not in {classes:?}");
    }
    assert_eq!(json["frames"].as_array().unwrap().len(), 250);
}

#[test]
fn detections_do_not_depend_on_chunk_size_or_parallel_tasks() {
    let dir = scratch("invariance");
    // A real street scene, re-encoded with B-frames and short GOPs so that chunks of every size
    // start on and off keyframes.
    let clip = dir.join("clip.mp4");
    ffmpeg(&format!(
        "-i {} -frames:v 40 -c:v libx264 -g 9 -bf 2 -pix_fmt yuv420p {}",
        media("bikes.mp4").display(),
        clip.display()
    ));
    let reference = detect_json(
        &clip,
        &["--chunk-size", "1000", "--tasks", "1"],
        &dir.join("ref.json"),
    );
    assert_eq!(reference["summary"]["chunks"], 1);
    let found: usize = reference["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| labels_in(f).len())
        .sum();
    assert!(found > 40, "a street scene has objects: {found}");
    for (chunk_size, tasks) in [("1", "4"), ("7", "1"), ("7", "4"), ("25", "4")] {
        let out = dir.join(format!("c{chunk_size}-t{tasks}.json"));
        let json = detect_json(&clip, &["--chunk-size", chunk_size, "--tasks", tasks], &out);
        assert_eq!(
            json["frames"], reference["frames"],
            "chunk size {chunk_size}, {tasks} tasks"
        );
    }
}

#[test]
fn bad_videos_fail_clearly_with_exit_status_1() {
    let dir = scratch("bad");
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text_file = dir.join("notes.mp4");
    std::fs::write(&text_file, "not a video\n".repeat(100)).unwrap();
    let audio = dir.join("audio.m4a");
    ffmpeg(&format!("-f lavfi -i sine=duration=1 {}", audio.display()));
    // mp4 as ffmpeg writes it by default: the index (moov) at the end, so a cut loses it.
    let cut = dir.join("cut.mp4");
    let bytes = std::fs::read(media("carphone_pristine.mp4")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for (path, expected) in [
        (&empty, "the file is empty"),
        (&text_file, "cannot open"),
        (&audio, "has no video stream"),
        (&cut, "cannot open"),
    ] {
        let out = argus(&["detect", path.to_str().unwrap(), "-q"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
        assert!(stderr.contains(expected), "{}: {stderr}", path.display());
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_cut_off_streamable_mp4_keeps_the_frames_before_the_cut() {
    let dir = scratch("truncated");
    // faststart puts the index first, as streaming uploads do; then cut the file in half.
    let whole = dir.join("whole.mp4");
    ffmpeg(&format!(
        "-i {} -c copy -movflags +faststart {}",
        media("carphone_pristine.mp4").display(),
        whole.display()
    ));
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out_json = dir.join("result.json");
    let out = argus(&[
        "detect",
        cut.to_str().unwrap(),
        "-q",
        "-o",
        out_json.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is truncated"), "{stderr}");
    let json: Value = serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap();
    let frames = json["frames"].as_array().unwrap().len();
    assert!(
        (30..120).contains(&frames),
        "{frames} frames before the cut"
    );
}

/// Three packets in the middle of carphone are zeroed: the index is intact (probe passes) but
/// those frames cannot be decoded. FFmpeg's own CLI drops them and carries on; so do we: the
/// result lists them as skipped, every other frame keeps its own index, the frames before the
/// damage are detected exactly as in the pristine file, and the exit status says "partial".
#[test]
fn a_video_damaged_mid_file_reports_its_skipped_frames_and_keeps_the_rest() {
    let dir = scratch("damaged");
    let damaged = dir.join("damaged.mp4");
    // Decode positions 50-52 are presentation frames 52, 51, 50 (B-frame reordering).
    common::damage_packets(&media("carphone_pristine.mp4"), &damaged, &[50, 51, 52]);
    let out_json = dir.join("damaged.json");
    let out = argus(&[
        "detect",
        damaged.to_str().unwrap(),
        "-q",
        "--chunk-size",
        "16",
        "-o",
        out_json.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("3 of 120 frames could not be decoded"),
        "{stderr}"
    );
    let json: Value = serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap();
    assert_eq!(json["skipped_frames"], serde_json::json!([50, 51, 52]));
    assert_eq!(json["summary"]["frames_skipped"], 3);
    assert_eq!(json["summary"]["frames_processed"], 117);
    let indices: Vec<u64> = json["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..120).filter(|i| !(50..=52).contains(i)).collect();
    assert_eq!(indices, expected);
    assert!(
        json["warnings"][0].as_str().unwrap().contains("skipped"),
        "{json}"
    );
    // pts_ms counts from the stream's first frame, and frames keep their own times.
    let pristine = detect_json(
        &media("carphone_pristine.mp4"),
        &["--chunk-size", "16"],
        &dir.join("p.json"),
    );
    assert_eq!(pristine["frames"][0]["pts_ms"], 0.0);
    for i in [0usize, 10, 49] {
        assert_eq!(json["frames"][i], pristine["frames"][i], "frame {i}");
    }
    assert_eq!(
        json["frames"][50]["pts_ms"],
        pristine["frames"][53]["pts_ms"]
    );
}

/// `argus detect` runs a video through the pipeline's own workers in a scratch storage dir of
/// its own: whatever the outcome, nothing of it is left behind, and a video's failure is
/// reported in the user's terms (their file name, not the scratch dir's).
#[test]
fn a_run_leaves_no_scratch_behind_whatever_its_outcome() {
    let dir = scratch("leftovers");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let notes = dir.join("notes.mp4");
    std::fs::write(&notes, "not a video\n".repeat(10)).unwrap();
    let (ok, missing, carphone) = (
        dir.join("ok.json"),
        dir.join("missing.mp4"),
        media("carphone_pristine.mp4"),
    );
    let runs: [(&[&str], i32); 3] = [
        (&[notes.to_str().unwrap()], 1),
        (&[missing.to_str().unwrap()], 1),
        (&[carphone.to_str().unwrap(), "-o", ok.to_str().unwrap()], 0),
    ];
    for (args, code) in runs {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .arg("detect")
            .args(args)
            .arg("-q")
            .env("ARGUS_DEVICE", "cpu")
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("argus-detect-"),
            "scratch paths shown: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    // Ctrl-C mid-run: the scratch dir goes too, and the exit status says interrupted (130).
    let mut running = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["detect", media("bikes.mp4").to_str().unwrap(), "-q"])
        .env("ARGUS_DEVICE", "cpu")
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(&tmp).unwrap().next().is_none() {
        assert!(started.elapsed().as_secs() < 60, "no scratch dir");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500)); // into the detection
    unsafe { libc::kill(running.id() as i32, libc::SIGINT) };
    let status = running.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "Ctrl-C left {left:?}");
    let notes_err = text(
        &Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(["detect", notes.to_str().unwrap(), "-q"])
            .env("TMPDIR", &tmp)
            .output()
            .unwrap()
            .stderr,
    );
    assert!(
        notes_err.contains(&format!("cannot open {}", notes.display())),
        "{notes_err}"
    );
    let json: Value = serde_json::from_slice(&std::fs::read(&ok).unwrap()).unwrap();
    assert_eq!(json["frames"].as_array().unwrap().len(), 120);
}

//! Helpers shared by the CLI tests: run the real binary, find the media setup installed.

#![allow(dead_code)] // each test file uses its own subset

pub mod api;
pub mod serve;
pub mod workers;

use std::path::PathBuf;
use std::process::{Command, Output};

/// A sample file installed by scripts/setup.sh; missing setup fails the test (never skips it).
pub fn media(name: &str) -> PathBuf {
    let path = argus_common::paths::media_dir().join(name);
    assert!(
        path.is_file(),
        "{} missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// A fresh directory for one test.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `argus` on the CPU.
pub fn argus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .env("ARGUS_DEVICE", "cpu")
        .output()
        .expect("run argus")
}

/// `argus detect VIDEO -q -o OUT EXTRA...`, which must succeed; its result file.
pub fn detect_json(
    video: &std::path::Path,
    extra: &[&str],
    out: &std::path::Path,
) -> serde_json::Value {
    let mut args = vec![
        "detect",
        video.to_str().unwrap(),
        "-q",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = argus(&args);
    assert!(
        run.status.success(),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

/// Detections per frame from `argus detect VIDEO ARGS` (one process, no broker): the reference
/// the other paths must match.
pub fn embedded_frames(video: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = scratch("embedded").join(format!("{}.json", uuid::Uuid::new_v4().simple()));
    detect_json(video, args, &out)["frames"]
        .as_array()
        .unwrap()
        .clone()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copies `src` to `dst` with the video packets at decode positions `packets` overwritten by
/// zeros: a file damaged mid-way, whose index (and so its probe) is intact. Positions come
/// from ffprobe.
pub fn damage_packets(src: &std::path::Path, dst: &std::path::Path, packets: &[usize]) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pos,size", "-of", "json"])
        .arg(src)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = json["packets"].as_array().unwrap();
    let mut data = std::fs::read(src).unwrap();
    for &i in packets {
        let field = |name: &str| -> usize { list[i][name].as_str().unwrap().parse().unwrap() };
        let (pos, size) = (field("pos"), field("size"));
        data[pos..pos + size].fill(0);
    }
    std::fs::write(dst, data).unwrap();
}

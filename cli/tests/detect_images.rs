//! `argus detect` on photos, as a user runs it: the real binary, the real model.

mod common;

use common::{argus, media, scratch, text};

#[test]
fn prints_and_writes_detections_for_several_photos() {
    let out_file = scratch("ok").join("result.json");
    let (astronaut, coffee) = (media("astronaut.png"), media("coffee.png"));
    let out = argus(&[
        "detect",
        astronaut.to_str().unwrap(),
        coffee.to_str().unwrap(),
        "--output",
        out_file.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("astronaut.png (512x512)"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("person")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("cup")),
        "{stdout}"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(json["model"]["name"], "coco-centernet");
    // One CPU replica ("cpu") or several ("cpu:0", "cpu:1"): the split is measured at load.
    let devices = json["model"]["devices"].as_array().unwrap();
    assert!(
        !devices.is_empty()
            && devices
                .iter()
                .all(|d| d.as_str().is_some_and(|d| d.starts_with("cpu"))),
        "{devices:?}"
    );
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    let person = &images[0]["detections"][0];
    assert_eq!(person["label"], "person");
    assert_eq!(person["class_id"], 0);
    assert!(person["score"].as_f64().unwrap() >= 0.5);
    assert_eq!(person["box"].as_array().unwrap().len(), 4);
    assert_eq!(
        (images[1]["width"].as_u64(), images[1]["height"].as_u64()),
        (Some(600), Some(400))
    );
}

#[test]
fn bad_photos_fail_alone_with_exit_status_1() {
    let dir = scratch("bad");
    let text_file = dir.join("notes.jpg");
    std::fs::write(&text_file, "hello").unwrap();
    let out_file = dir.join("result.json");
    let chelsea = media("chelsea.png");
    let out = argus(&[
        "detect",
        text_file.to_str().unwrap(),
        chelsea.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("notes.jpg") && stderr.contains("1 of 2 inputs failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        text(&out.stdout).contains("cat"),
        "the good photo is still done"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert!(json["images"][0]["error"]
        .as_str()
        .unwrap()
        .contains("not a supported image"));
    assert_eq!(json["images"][1]["detections"][0]["label"], "cat");
}

#[test]
fn unknown_or_broken_model_is_a_setup_error_with_exit_status_2() {
    let astronaut = media("astronaut.png");
    let out = argus(&["detect", astronaut.to_str().unwrap(), "--model", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown model 'nope'"),
        "{}",
        text(&out.stderr)
    );

    let dir = scratch("broken-model");
    std::fs::write(dir.join("broken.pt"), "garbage").unwrap();
    let manifest = dir.join("broken.json");
    std::fs::write(
        &manifest,
        r#"{"name":"broken","file":"broken.pt","adapter":"centernet","input_size":[512,512],"labels":["a"]}"#,
    )
    .unwrap();
    let out = argus(&[
        "detect",
        astronaut.to_str().unwrap(),
        "--model",
        manifest.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot load model") && stderr.contains("broken.pt"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A GPU pod asks for CUDA (`ARGUS_DEVICE=cuda`, what the chart sets in GPU mode). Where CUDA
/// does not work (this machine has no GPU), the detector worker exits at once with status 2 and
/// the reason a person can act on (no driver visible, the CUDA this build needs) instead of
/// running on the CPU. `argus detect --device cuda` says the same.
#[test]
fn asked_for_cuda_without_one_the_detector_exits_with_the_reason() {
    if std::path::Path::new("/dev/nvidiactl").exists() {
        eprintln!("a GPU driver is here: the CUDA path is checked on the device machine");
        return;
    }
    let worker = std::process::Command::new(common::workers::binary("argus-detector"))
        .env("ARGUS_DEVICE", "cuda")
        .env("ARGUS_BROKER_URL", "amqp://127.0.0.1:1/%2f")
        .env("ARGUS_RESULT_BACKEND", "redis://127.0.0.1:1/0")
        .env("ARGUS_METRICS_BIND", "")
        .output()
        .expect("argus-detector runs");
    let stderr = text(&worker.stderr);
    assert_eq!(worker.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CUDA does not work here"), "{stderr}");
    assert!(stderr.contains("no NVIDIA driver is visible"), "{stderr}");
    assert!(stderr.contains("CUDA 13.0"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let astronaut = media("astronaut.png");
    let out = argus(&["detect", astronaut.to_str().unwrap(), "--device", "cuda"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CUDA does not work here"), "{stderr}");
}

//! The real coco-centernet model on real photos (scikit-image's), as set up by scripts/setup.sh.
//! Missing setup is a failure, not a skip: a test that cannot fail proves nothing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use argus_detector::images::{detect_images, load_image};
use argus_detector::{
    Detection, Detector, DetectorError, DetectorOptions, DeviceChoice, Frame, ModelSpec, Registry,
};

fn media(name: &str) -> PathBuf {
    let path = argus_common::paths::media_dir().join(name);
    assert!(
        path.is_file(),
        "{} missing: run scripts/setup.sh",
        path.display()
    );
    path
}

fn spec() -> ModelSpec {
    Registry::new(Registry::default_dir())
        .resolve("coco-centernet")
        .expect("coco-centernet not set up: run scripts/setup.sh")
}

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let options = DetectorOptions {
            device: DeviceChoice::Cpu,
            max_batch: Some(4),
            ..DetectorOptions::default()
        };
        Detector::load(spec(), &options).expect("load coco-centernet")
    })
}

fn detect_one(frame: &Frame) -> Vec<Detection> {
    detector().detect(&[frame]).unwrap().remove(0)
}

fn best(detections: &[Detection], label: &str) -> Option<Detection> {
    detections.iter().find(|d| d.label == label).cloned()
}

#[test]
fn astronaut_is_a_person() {
    let frame = load_image(&media("astronaut.png")).unwrap();
    let dets = detect_one(&frame);
    let person = best(&dets, "person").unwrap_or_else(|| panic!("no person in {dets:?}"));
    assert!(person.score >= 0.5, "{person:?}");
    // The astronaut fills most of the 512x512 photo.
    assert!(person.bbox.area() > 0.3 * 512.0 * 512.0, "{person:?}");
    assert!(person.bbox.x2 <= 512.0 && person.bbox.y2 <= 512.0);
}

#[test]
fn coffee_is_a_cup_and_chelsea_a_cat() {
    for (photo, label) in [("coffee.png", "cup"), ("chelsea.png", "cat")] {
        let frame = load_image(&media(photo)).unwrap();
        let dets = detect_one(&frame);
        assert!(
            best(&dets, label).is_some(),
            "{photo}: no {label} in {dets:?}"
        );
        for d in &dets {
            let b = d.bbox;
            assert!(
                b.x1 >= 0.0
                    && b.y1 >= 0.0
                    && b.x2 <= frame.width as f32
                    && b.y2 <= frame.height as f32
            );
        }
    }
}

#[test]
fn blank_image_has_nothing_above_threshold() {
    for value in [0u8, 128, 255] {
        let blank = Frame::new(640, 480, vec![value; 640 * 480 * 3]).unwrap();
        let dets = detect_one(&blank);
        assert!(dets.is_empty(), "value {value}: {dets:?}");
    }
}

#[test]
fn batched_results_equal_one_at_a_time() {
    let frames: Vec<Frame> = [
        "astronaut.png",
        "coffee.png",
        "chelsea.png",
        "coffee.png",
        "astronaut.png",
    ]
    .iter()
    .map(|p| load_image(&media(p)).unwrap())
    .collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    let batched = detector().detect(&refs).unwrap();
    assert_eq!(batched.len(), frames.len());
    for (frame, together) in frames.iter().zip(&batched) {
        let alone = detect_one(frame);
        assert_eq!(alone.len(), together.len(), "{alone:?} vs {together:?}");
        for (a, t) in alone.iter().zip(together) {
            assert_eq!((a.class_id, &a.label), (t.class_id, &t.label));
            assert!((a.score - t.score).abs() < 1e-4, "{a:?} vs {t:?}");
            let (ab, tb): ([f32; 4], [f32; 4]) = (a.bbox.into(), t.bbox.into());
            assert!(
                ab.iter().zip(tb).all(|(x, y)| (x - y).abs() < 0.05),
                "{a:?} vs {t:?}"
            );
        }
    }
}

#[test]
fn a_collection_streams_in_order_and_bad_files_fail_alone() {
    let dir = scratch("collection");
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "this is not a photo").unwrap();
    let png = std::fs::read(media("coffee.png")).unwrap();
    let truncated = dir.join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    let paths = vec![
        media("astronaut.png"),
        text.clone(),
        media("chelsea.png"),
        truncated.clone(),
        dir.join("missing.png"),
        media("coffee.png"),
    ];
    let mut seen = Vec::new();
    detect_images(detector(), &paths, |o| seen.push(o)).unwrap();
    let order: Vec<&Path> = seen.iter().map(|o| o.path.as_path()).collect();
    assert_eq!(
        order,
        paths.iter().map(PathBuf::as_path).collect::<Vec<_>>()
    );
    let ok: Vec<bool> = seen.iter().map(|o| o.result.is_ok()).collect();
    assert_eq!(ok, [true, false, true, false, false, true]);
    for o in seen.iter().filter(|o| o.result.is_err()) {
        let msg = o.result.as_ref().unwrap_err().to_string();
        assert!(msg.starts_with("cannot read image"), "{msg}");
    }
}

#[test]
fn missing_corrupt_and_unknown_models_are_clear_errors() {
    let dir = scratch("models");
    let mut spec = spec();
    spec.path = dir.join("absent.pt");
    let err = Detector::load(spec.clone(), &DetectorOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, DetectorError::ModelMissing { .. }), "{err}");

    spec.path = dir.join("corrupt.pt");
    std::fs::write(&spec.path, b"PK\x03\x04 definitely not torchscript").unwrap();
    let err = Detector::load(spec.clone(), &DetectorOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, DetectorError::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains("corrupt.pt"), "{err}");

    // A real model file whose last half is gone.
    let bytes = std::fs::read(self::spec().path).unwrap();
    spec.path = dir.join("truncated.pt");
    std::fs::write(&spec.path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Detector::load(spec, &DetectorOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, DetectorError::ModelLoad { .. }), "{err}");

    let err = Registry::new(Registry::default_dir())
        .resolve("yolov99")
        .unwrap_err();
    assert!(
        err.to_string().contains("coco-centernet"),
        "lists what exists: {err}"
    );
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

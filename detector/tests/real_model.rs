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

/// On CPU the detector runs the network alone (`heads`) and decodes peaks in Rust; its answers
/// must equal, bit for bit, the model's own `forward` with its in-graph decoder, here on 40 real
/// video frames and three photos, at the model's threshold and at a low one (many more peaks).
#[test]
fn the_rust_decoder_equals_the_models_own_on_real_frames() {
    use argus_detector::preprocess::letterbox_batch;
    use argus_media::{decode_chunk, plan_chunks, probe, MediaError, RgbConverter};

    let video = media("bikes.mp4");
    let probed = probe(&video).unwrap();
    let chunk = plan_chunks(&probed.packets, u64::MAX)[0];
    let mut converter = RgbConverter::new(probed.info.rotation);
    let mut frames = Vec::new();
    decode_chunk::<MediaError>(
        &video,
        &probed.info,
        &chunk,
        probed.chunk_pts(&chunk),
        1,
        &|| None,
        |f| {
            if frames.len() < 40 {
                frames.push(converter.convert(f.video)?);
            }
            Ok(())
        },
    )
    .unwrap();
    for photo in ["astronaut.png", "coffee.png", "chelsea.png"] {
        frames.push(load_image(&media(photo)).unwrap());
    }
    assert!(frames.len() >= 40, "{} frames", frames.len());

    let spec = spec();
    let module = tch::CModule::load(&spec.path).unwrap();
    for threshold in [spec.score_threshold, 0.05] {
        let options = DetectorOptions {
            device: DeviceChoice::Cpu,
            score_threshold: Some(threshold),
            ..DetectorOptions::default()
        };
        let ours = Detector::load(spec.clone(), &options).unwrap();
        assert!(
            ours.decodes_heads(),
            "the CPU path should decode the raw heads"
        );
        let mut compared = 0;
        for frame in &frames {
            let got = ours.detect(&[frame]).unwrap().remove(0);
            let want = tch::no_grad(|| {
                let (input, boxes) = letterbox_batch(
                    &[frame],
                    spec.input_width,
                    spec.input_height,
                    tch::Device::Cpu,
                )
                .unwrap();
                let output = module.forward_ts(&[input]).unwrap();
                spec.adapter
                    .decode(&spec, &output, &boxes, threshold)
                    .unwrap()
                    .remove(0)
            });
            assert_eq!(got, want, "threshold {threshold}");
            compared += want.len();
        }
        assert!(
            compared > 50,
            "only {compared} detections compared at {threshold}"
        );
    }
}

/// Unless told, the CPU runs one replica per core, 1 thread each (the split measured fastest:
/// docs/performance.md); the replicas exist and detect. Threads given alone mean one replica
/// with that many.
#[test]
fn the_cpu_runs_a_replica_per_core_unless_told() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let auto = DetectorOptions {
        device: DeviceChoice::Cpu,
        ..DetectorOptions::default()
    };
    let default = Detector::load(spec(), &auto).unwrap();
    let (replicas, threads) = default.cpu_split().expect("a CPU split");
    assert_eq!((replicas, threads), (cores, 1));
    assert_eq!(default.device_names().len(), replicas);
    let cat = load_image(&media("chelsea.png")).unwrap();
    for replica in 0..replicas {
        let found = default.detect_on(replica, &[&cat]).unwrap();
        assert!(
            found[0].iter().any(|d| d.label == "cat"),
            "replica {replica}: {found:?}"
        );
    }
    let given = DetectorOptions {
        cpu_threads: Some(1),
        ..auto
    };
    let one = Detector::load(spec(), &given).unwrap();
    assert_eq!(one.cpu_split(), Some((1, 1)));
    assert_eq!(one.device_names(), ["cpu"]);
}

/// Several CPU replicas, the mechanism that drives several GPUs, run on cores here: the
/// batcher spreads frames over both and their answers equal one replica's.
#[test]
fn cpu_replicas_share_the_batches_and_agree_with_one() {
    let options = DetectorOptions {
        device: DeviceChoice::Cpu,
        max_batch: Some(1),
        cpu_replicas: Some(2),
        cpu_threads: Some(1),
        ..DetectorOptions::default()
    };
    let replicated = std::sync::Arc::new(Detector::load(spec(), &options).unwrap());
    assert_eq!(replicated.device_names(), ["cpu:0", "cpu:1"]);
    let frames: Vec<Frame> = ["astronaut.png", "coffee.png", "chelsea.png", "coffee.png"]
        .iter()
        .cycle()
        .take(8)
        .map(|p| load_image(&media(p)).unwrap())
        .collect();
    let served = |device: &str| {
        argus_detector::metrics::METRICS
            .frames
            .with_label_values(&[device])
            .get()
    };
    let before = [served("cpu:0"), served("cpu:1")];
    let batcher = argus_detector::Batcher::start(replicated, std::time::Duration::from_millis(5));
    let (tx, rx) = crossbeam_channel::unbounded();
    for (i, frame) in frames.iter().enumerate() {
        batcher.submit(frame.clone(), i as u64, &tx).unwrap();
    }
    let mut answers: Vec<(u64, Vec<Detection>)> = (0..frames.len())
        .map(|_| {
            let reply: argus_detector::batcher::Reply = rx.recv().unwrap();
            assert!(
                reply.device_s > 0.0,
                "a batch's time is shared among its frames"
            );
            (reply.tag, reply.answer.unwrap())
        })
        .collect();
    answers.sort_by_key(|a| a.0);
    assert!(served("cpu:0") > before[0], "replica 0 served nothing");
    assert!(served("cpu:1") > before[1], "replica 1 served nothing");
    for ((_, replicated), frame) in answers.iter().zip(&frames) {
        let alone = detect_one(frame);
        assert_eq!(alone.len(), replicated.len());
        for (a, r) in alone.iter().zip(replicated) {
            assert_eq!(a.class_id, r.class_id);
            assert!((a.score - r.score).abs() < 1e-4, "{a:?} vs {r:?}");
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

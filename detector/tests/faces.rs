//! The bundled `faces` model (BlazeFace + FaceMesh's face flag + FaceRes, as set up by
//! scripts/setup.sh) on real photos from scikit-image: faces where a person sees them, none on
//! the cat or the cup, and embeddings that tell people apart but not a face from its own
//! flips and crops. Missing setup is a failure, not a skip.

use std::sync::OnceLock;

use argus_detector::images::load_image;
use argus_detector::{
    Detection, Detector, DetectorError, DetectorOptions, DeviceChoice, Frame, ModelSpec, Registry,
};

fn spec() -> ModelSpec {
    Registry::new(Registry::default_dir())
        .resolve("faces")
        .expect("the faces model is not set up: run scripts/setup.sh")
}

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let options = DetectorOptions {
            device: DeviceChoice::Cpu,
            max_batch: Some(4),
            ..DetectorOptions::default()
        };
        Detector::load(spec(), &options).expect("load faces")
    })
}

fn photo(name: &str) -> Frame {
    let path = argus_common::paths::media_dir().join(name);
    load_image(&path).unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh"))
}

fn faces(frame: &Frame) -> Vec<Detection> {
    detector().detect(&[frame]).unwrap().remove(0)
}

fn the_face(frame: &Frame, what: &str) -> Detection {
    let found = faces(frame);
    assert_eq!(found.len(), 1, "{what}: {found:?}");
    found.into_iter().next().unwrap()
}

fn embedding(d: &Detection) -> &[f32] {
    d.embedding.as_deref().expect("a face has an embedding")
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

/// The frame mirrored left to right.
fn mirrored(frame: &Frame) -> Frame {
    let w = frame.width as usize;
    let mut rgb = Vec::with_capacity(frame.rgb.len());
    for row in frame.rgb.chunks_exact(w * 3) {
        for px in row.chunks_exact(3).rev() {
            rgb.extend_from_slice(px);
        }
    }
    Frame::new(frame.width, frame.height, rgb).unwrap()
}

/// The `w × h` part of the frame at `(x, y)`.
fn cropped(frame: &Frame, x: u32, y: u32, w: u32, h: u32) -> Frame {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for row in y..y + h {
        let start = ((row * frame.width + x) * 3) as usize;
        rgb.extend_from_slice(&frame.rgb[start..start + (w * 3) as usize]);
    }
    Frame::new(w, h, rgb).unwrap()
}

#[test]
fn faces_are_found_on_people_and_not_on_the_cat_or_the_cup() {
    let astronaut = the_face(&photo("astronaut.png"), "astronaut");
    // Eileen Collins' face: around (170..280, 70..180) of the 512×512 photo.
    let b = astronaut.bbox;
    assert!(
        b.x1 > 150.0 && b.x2 < 300.0 && b.y1 > 50.0 && b.y2 < 200.0,
        "{b:?}"
    );
    assert!(astronaut.score >= 0.5 && astronaut.label == "face");
    let camera = the_face(&photo("camera.png"), "cameraman");
    assert!(
        camera.bbox.x1 > 150.0 && camera.bbox.x2 < 280.0,
        "{:?}",
        camera.bbox
    );

    for face in [&astronaut, &camera] {
        let points = face.landmarks.as_ref().expect("landmarks");
        assert_eq!(points.len(), 6);
        let b = face.bbox;
        let inside = |p: &[f32; 2]| {
            p[0] >= b.x1 - 0.2 * b.width()
                && p[0] <= b.x2 + 0.2 * b.width()
                && p[1] >= b.y1
                && p[1] <= b.y2
        };
        assert!(points.iter().all(inside), "{points:?} vs {b:?}");
        let (right_eye, left_eye, nose, mouth) = (points[0], points[1], points[2], points[3]);
        // The subject's right eye is on the picture's left; eyes above the nose above the mouth.
        assert!(right_eye[0] < left_eye[0], "{points:?}");
        assert!(
            right_eye[1].max(left_eye[1]) < nose[1] && nose[1] < mouth[1],
            "{points:?}"
        );
        let e = embedding(face);
        assert_eq!(e.len(), 1024);
        let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }

    // BlazeFace alone sees a face on both (0.77 and 0.62): the face check turns them down.
    for name in ["chelsea.png", "coffee.png"] {
        let found = faces(&photo(name));
        assert!(found.is_empty(), "{name}: {found:?}");
    }
}

#[test]
fn one_face_under_flips_and_crops_is_closer_than_two_people() {
    let mut worst_same: f32 = 0.0;
    let mut anchors = Vec::new();
    for name in ["astronaut.png", "camera.png"] {
        let frame = photo(name);
        let face = the_face(&frame, name);
        let b = face.bbox;
        let anchor = embedding(&face).to_vec();
        let mut variants = vec![(String::from("mirrored"), mirrored(&frame))];
        // The photo cut around the face, off-centre by up to a fifth of the face each way.
        for (i, (dx, dy)) in [(-0.2f32, 0.0f32), (0.2, -0.1), (0.0, 0.2)]
            .iter()
            .enumerate()
        {
            let margin = 1.5 * b.width().max(b.height());
            let x = ((b.x1 + dx * b.width() - margin).max(0.0)) as u32;
            let y = ((b.y1 + dy * b.height() - margin).max(0.0)) as u32;
            let w = ((b.x2 + margin) as u32).min(frame.width) - x;
            let h = ((b.y2 + margin) as u32).min(frame.height) - y;
            variants.push((format!("crop {i}"), cropped(&frame, x, y, w, h)));
        }
        for (what, variant) in &variants {
            let d = cosine_distance(&anchor, embedding(&the_face(variant, what)));
            eprintln!("{name} {what}: cosine distance {d:.3}");
            worst_same = worst_same.max(d);
        }
        anchors.push(anchor);
    }
    let different = cosine_distance(&anchors[0], &anchors[1]);
    eprintln!("astronaut vs cameraman: {different:.3}; same face at worst {worst_same:.3}");
    // Measured: the same face within 0.07, different people 0.57 apart.
    assert!(worst_same < 0.2, "{worst_same}");
    assert!(different > 2.0 * worst_same, "{different} vs {worst_same}");
}

#[test]
fn a_batch_gives_what_single_frames_give() {
    let frames: Vec<Frame> = ["astronaut.png", "chelsea.png", "camera.png"]
        .iter()
        .map(|n| photo(n))
        .collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    let batch = detector().detect(&refs).unwrap();
    for (frame, got) in frames.iter().zip(&batch) {
        let alone = faces(frame);
        assert_eq!(got.len(), alone.len());
        for (a, b) in got.iter().zip(&alone) {
            assert!((a.score - b.score).abs() < 1e-4);
            let d = cosine_distance(embedding(a), embedding(b));
            assert!(d.abs() < 1e-4, "{d}");
        }
    }
}

#[test]
fn a_face_model_without_embed_fails_at_load_with_the_reason() {
    // coco-centernet's file under a face manifest: it has no `embed` method.
    let mut spec = spec();
    spec.path = Registry::new(Registry::default_dir())
        .resolve("coco-centernet")
        .unwrap()
        .path;
    let err = Detector::load(spec, &DetectorOptions::default())
        .err()
        .expect("load must fail");
    assert!(matches!(err, DetectorError::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains("embed"), "{err}");
}

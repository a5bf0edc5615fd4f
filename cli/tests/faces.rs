//! The bundled `faces` model end to end with `argus detect` on a real video (carphone: a man
//! talking on a phone in a car): a face with landmarks in nearly every frame, one track, and
//! the track's identity as a unit embedding that each frame's own embedding (`--no-track`)
//! agrees with. Photos are covered by detector/tests/faces.rs.

mod common;

use common::{detect_json, media, scratch};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn a_face_in_a_video_is_one_track_with_one_identity() {
    let dir = scratch("faces-video");
    let video = media("carphone_pristine.mp4");
    let tracked = detect_json(
        &video,
        &["--model", "faces", "--chunk-size", "32"],
        &dir.join("tracked.json"),
    );
    let frames = tracked["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 120);
    let mut with_face = 0;
    for f in frames {
        let dets = f["detections"].as_array().unwrap();
        assert!(dets.len() <= 1, "one person in the car: {f}");
        for d in dets {
            with_face += 1;
            assert_eq!(d["label"], "face");
            assert_eq!(d["landmarks"].as_array().unwrap().len(), 6, "{d}");
            // Tracked: the identity lives on the track, not on each frame.
            assert!(d.get("embedding").is_none(), "{d}");
        }
    }
    assert!(with_face >= 110, "faces in {with_face} of 120 frames");
    let tracks = tracked["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 1, "{tracks:?}");
    let identity = floats(&tracks[0]["embedding"]);
    assert_eq!(identity.len(), 1024);
    assert!((norm(&identity) - 1.0).abs() < 1e-3);

    // Untracked, every frame's face has its own embedding, all close to the track's.
    let untracked = detect_json(
        &video,
        &["--model", "faces", "--no-track"],
        &dir.join("untracked.json"),
    );
    let mut worst: f32 = 0.0;
    let mut seen = 0;
    for f in untracked["frames"].as_array().unwrap() {
        for d in f["detections"].as_array().unwrap() {
            let e = floats(&d["embedding"]);
            assert!((norm(&e) - 1.0).abs() < 1e-3);
            let distance = 1.0 - e.iter().zip(&identity).map(|(a, b)| a * b).sum::<f32>();
            worst = worst.max(distance);
            seen += 1;
        }
    }
    assert_eq!(seen, with_face);
    // The same man in every frame; different people measure 0.57 and more apart.
    assert!(
        worst < 0.25,
        "a frame's face is {worst} from the track's identity"
    );
}

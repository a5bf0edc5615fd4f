//! A photo collection with faces end to end through the API of a real `argus serve` running
//! the bundled `faces` model: four photos as form parts and a tar of three more entries (a
//! mirrored astronaut, a text file named .jpg, a symlink), in batches of two; the summary
//! (faces found where people are, their mean embedding), per-photo results and errors, the
//! signed `collection.succeeded` webhook to a loopback receiver, once, and DELETE.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::serve::Server;
use common::{media, scratch};
use hmac::{Hmac, Mac};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;
use sha2::Sha256;

/// A loopback receiver: records each request's headers and body, answers 200.
fn receiver() -> (String, Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            seen.lock().unwrap().push((headers, body));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn photo_part(path: &Path) -> Part {
    Part::bytes(std::fs::read(path).unwrap())
        .file_name(path.file_name().unwrap().to_string_lossy().into_owned())
}

fn unit(v: &Value) -> Vec<f32> {
    let e: Vec<f32> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    e
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

#[test]
fn a_collection_of_photos_with_faces_runs_end_to_end() {
    let server = Server::start_with(
        "collections",
        &[
            ("ARGUS_MODEL", "faces"),
            ("ARGUS_WEBHOOK_ALLOW", "127.0.0.1"),
        ],
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let token = server.token(&http);
    let auth = format!("Bearer {token}");
    let secret = http
        .get(format!("{}/api/v1/users/me/webhook", server.url))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (hook, got) = receiver();

    // The archive: a mirrored astronaut, a text file named .jpg, a symlink.
    let dir = scratch("collection-archive");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let ffmpeg = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(media("astronaut.png"))
        .args(["-vf", "hflip"])
        .arg(files.join("mirrored.png"))
        .status()
        .unwrap();
    assert!(ffmpeg.success());
    std::fs::write(files.join("notes.jpg"), b"these are notes, not a photo").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", files.join("link.jpg")).unwrap();
    let archive = dir.join("more.tar");
    let tar = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&files)
        .args(["mirrored.png", "notes.jpg", "link.jpg"])
        .status()
        .unwrap();
    assert!(tar.success());

    let mut form = Form::new();
    for name in ["astronaut.png", "camera.png", "chelsea.png", "coffee.png"] {
        form = form.part("file", photo_part(&media(name)));
    }
    form = form
        .part(
            "archive",
            Part::bytes(std::fs::read(&archive).unwrap()).file_name("more.tar"),
        )
        .text("batch_photos", "2")
        .text("callback_url", hook.clone());
    let answer = http
        .post(format!("{}/api/v1/collections", server.url))
        .header("authorization", &auth)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 202);
    let created: Value = answer.json().unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    // Stored: the four, the mirrored one and the text file (judged by the detector); refused
    // on the way in: the link.
    assert_eq!(
        (created["photos"].as_u64(), created["refused"].as_u64()),
        (Some(6), Some(1))
    );

    // Its event stream: the current state first, then each change, ending at `succeeded`.
    let events = http
        .get(format!("{}/api/v1/collections/{id}/events", server.url))
        .header("authorization", &auth)
        .send()
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut states: Vec<Value> = Vec::new();
    for line in BufReader::new(events).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data:") {
            states.push(serde_json::from_str(data.trim()).unwrap());
        }
    }
    let last = states.last().expect("at least one state");
    assert_eq!(last["status"], "succeeded", "{states:?}");
    assert_eq!(
        last["progress"]["frames_total"], 6,
        "photos as frames: {last}"
    );
    assert_eq!(
        last["progress"]["chunks_total"], 3,
        "batches as chunks: {last}"
    );
    let done: Vec<u64> = states
        .iter()
        .map(|s| s["progress"]["frames_done"].as_u64().unwrap())
        .collect();
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]),
        "progress goes forward: {done:?}"
    );

    let started = Instant::now();
    let collection = loop {
        let c: Value = http
            .get(format!("{}/api/v1/collections/{id}", server.url))
            .header("authorization", &auth)
            .send()
            .unwrap()
            .json()
            .unwrap();
        match c["status"].as_str().unwrap() {
            "succeeded" => break c,
            "failed" | "cancelled" => panic!("{c}"),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{c}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(collection["progress"]["batches_total"], 3, "{collection}");
    assert_eq!(collection["progress"]["photos_done"], 6);
    let summary = &collection["summary"];
    assert_eq!(summary["entries"], 7, "{summary}");
    assert_eq!(summary["photos_detected"], 5);
    assert_eq!(summary["photos_failed"], 2);
    // The astronaut (twice: once mirrored) and the cameraman; nothing on the cat or the cup.
    assert_eq!(summary["objects"]["face"], 3, "{summary}");
    assert_eq!(summary["photos_with"]["face"], 3);
    assert_eq!(summary["faces"]["count"], 3);
    let mean = unit(&summary["faces"]["mean_embedding"]);
    assert_eq!(mean.len(), 1024);

    let result: Value = http
        .get(format!("{}/api/v1/collections/{id}/result", server.url))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let photos = result["photos"].as_array().unwrap();
    let names: Vec<&str> = photos.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        // As received: the form's parts, then the archive's entries in its order.
        [
            "astronaut.png",
            "camera.png",
            "chelsea.png",
            "coffee.png",
            "mirrored.png",
            "notes.jpg",
            "link.jpg"
        ]
    );
    let by_name = |n: &str| photos.iter().find(|p| p["name"] == n).unwrap();
    assert!(by_name("link.jpg")["error"]
        .as_str()
        .unwrap()
        .contains("a link"));
    assert!(by_name("notes.jpg")["error"]
        .as_str()
        .unwrap()
        .contains("not a supported image"));
    assert_eq!(
        by_name("chelsea.png")["detections"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        (
            by_name("astronaut.png")["width"].as_u64(),
            by_name("astronaut.png")["height"].as_u64()
        ),
        (Some(512), Some(512))
    );
    let face = |n: &str| unit(&by_name(n)["detections"][0]["embedding"]);
    let (astronaut, mirrored, cameraman) = (
        face("astronaut.png"),
        face("mirrored.png"),
        face("camera.png"),
    );
    assert!(
        distance(&astronaut, &mirrored) < 0.15,
        "{}",
        distance(&astronaut, &mirrored)
    );
    assert!(
        distance(&astronaut, &cameraman) > 0.4,
        "{}",
        distance(&astronaut, &cameraman)
    );
    assert_eq!(result["model"]["name"], "faces");

    // The CSV export: a row per face, a row per photo without any or with an error.
    let csv = http
        .get(format!(
            "{}/api/v1/collections/{id}/result?format=csv",
            server.url
        ))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "name,index,width,height,label,class_id,score,x1,y1,x2,y2,error"
    );
    assert_eq!(rows.len(), 1 + 7, "{csv}");
    assert!(
        rows[1].starts_with("astronaut.png,0,512,512,face,0,"),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("chelsea.png,2,451,300,,,")),
        "{csv}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("link.jpg,,,,") && r.contains("a link")),
        "{csv}"
    );

    // The webhook: once, signed, with the summary.
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no webhook");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let first = got.lock().unwrap().clone();
    assert_eq!(first.len(), 1, "sent once");
    let (headers, body) = &first[0];
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(header("x-argus-event"), "collection.succeeded");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(header("x-argus-timestamp").as_bytes());
    mac.update(b".");
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(header("x-argus-signature"), format!("sha256={want}"));
    let notified: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(notified["collection"]["id"], id.as_str());
    assert_eq!(notified["collection"]["summary"]["faces"]["count"], 3);

    let log: Value = http
        .get(format!("{}/api/v1/collections/{id}/webhooks", server.url))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(log[0]["status"], "delivered", "{log}");
    assert_eq!(log[0]["event"], "collection.succeeded");

    // `argus submit FOLDER --callback`: the folder's photos (not its text file) as one
    // collection, its result saved as <folder>.json, announced once too.
    let folder = dir.join("album");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(media("astronaut.png"), folder.join("a.png")).unwrap();
    std::fs::copy(media("camera.png"), folder.join("b.png")).unwrap();
    std::fs::copy(media("chelsea.png"), folder.join("c.png")).unwrap();
    std::fs::write(folder.join("readme.txt"), b"not a photo").unwrap();
    let out_dir = dir.join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args([
            "submit",
            "-q",
            "--url",
            &server.url,
            "--token",
            &token,
            "--callback",
            &hook,
            "-o",
        ])
        .arg(&out_dir)
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("album.json")).unwrap()).unwrap();
    let names: Vec<&str> = saved["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.png", "b.png", "c.png"]);
    assert_eq!(
        saved["summary"]["faces"]["count"], 2,
        "{}",
        saved["summary"]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "no second webhook");
        std::thread::sleep(Duration::from_millis(100));
    }

    // DELETE takes everything; no file of it is left in storage.
    let status = http
        .delete(format!("{}/api/v1/collections/{id}", server.url))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let status = http
        .get(format!("{}/api/v1/collections/{id}", server.url))
        .header("authorization", &auth)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let mut left = Vec::new();
    let mut stack = vec![server.storage.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(&id) {
                left.push(p);
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
    server.stop();
}

//! `argus serve` black-box: the real binary (API + processor + detector in one process, on
//! memory:// and SQLite), driven over HTTP by `argus submit` and by plain requests.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::serve::{Server, PASSWORD};
use common::{embedded_frames, media, text};
use serde_json::Value;

fn submit(server: &Server, file: &Path, extra: &[&str]) -> std::process::Output {
    let out_dir = server.storage.join("client");
    let mut args = vec![
        "submit",
        file.to_str().unwrap(),
        "--url",
        &server.url,
        "--user",
        "admin",
        "-o",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(&args)
        .env("ARGUS_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

/// The main job's path: a video uploaded with `argus submit` comes back with the same
/// detections as `argus detect` gives on the same file; a video deleted during detection is
/// cancelled and gone; SIGTERM stops the server cleanly.
#[test]
fn serve_takes_videos_through_the_rest_api() {
    let server = Server::start("serve");
    let carphone = media("carphone_pristine.mp4");
    let run = submit(&server, &carphone, &[]);
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    assert!(stdout.contains("120 frames"), "{stdout}");
    let result_file = server.storage.join("client/carphone_pristine.json");
    let result: Value = serde_json::from_slice(&std::fs::read(&result_file).unwrap()).unwrap();
    let frames = result["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 120);

    // The same detections as the embedded pipeline, frame by frame.
    let reference = embedded_frames(&carphone, &["--chunk-size", "32"]);
    for (got, want) in frames.iter().zip(&reference) {
        let labels = |f: &Value| -> Vec<Value> {
            f["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["label"].clone())
                .collect()
        };
        assert_eq!(labels(got), labels(want), "frame {}", got["index"]);
    }

    // Zones of full-precision points, 16 of 64 corners (~45 KB of JSON, past what a URL
    // carries through a proxy): `argus submit` sends them as form fields; the result counts
    // them. The person sits in each zone (the whole frame, the box's centre as anchor).
    let zones: Vec<Value> = (0..16)
        .map(|z| {
            let points: Vec<[f64; 2]> = (0..64)
                .map(|k| {
                    let a = k as f64 / 64.0 * std::f64::consts::TAU;
                    [0.5 + 0.499_999_999 * a.cos(), 0.5 + 0.499_999_999 * a.sin()]
                })
                .collect();
            serde_json::json!({"name": format!("ring {z}"), "normalized": true,
                               "anchor": "center", "points": points})
        })
        .collect();
    let zones = serde_json::to_string(&zones).unwrap();
    assert!(zones.len() > 40_000, "{}", zones.len());
    let run = submit(&server, &carphone, &["--zones", &zones, "--stride", "2"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let result: Value = serde_json::from_slice(&std::fs::read(&result_file).unwrap()).unwrap();
    assert_eq!(result["summary"]["zones"].as_array().unwrap().len(), 16);
    assert!(
        result["summary"]["zones"][15]["visits"].as_u64().unwrap() >= 1,
        "{}",
        result["summary"]
    );
    assert_eq!(result["summary"]["frames_detected"], 60);

    let http = reqwest::blocking::Client::new();
    let token = server.token(&http);

    // The embedded detector announces its model: listed live, with the model's 80 labels.
    let models: Value = http
        .get(format!("{}/api/v1/models", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(models[0]["name"], "coco-centernet", "{models}");
    assert_eq!(models[0]["live"], true, "{models}");
    assert_eq!(models[0]["labels"].as_array().unwrap().len(), 80);
    assert_eq!(models[0]["labels"][0], "person");

    // Asked for at upload, the annotated MP4 follows the run with no other request.
    let uploaded: Value = http
        .post(format!(
            "{}/api/v1/videos?filename=c.mp4&annotate=true",
            server.url
        ))
        .bearer_auth(&token)
        .header("content-type", "video/mp4")
        .body(std::fs::read(&carphone).unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let annotated_url = format!(
        "{}/api/v1/videos/{}/annotated",
        server.url,
        uploaded["id"].as_str().unwrap()
    );
    let started = Instant::now();
    loop {
        let annotation: Value = http
            .get(&annotated_url)
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if annotation["status"] == "succeeded" {
            assert_eq!(annotation["frames_done"], 120, "{annotation}");
            assert!(
                annotation["size_bytes"].as_u64().unwrap() > 10_000,
                "{annotation}"
            );
            break;
        }
        assert_ne!(annotation["status"], "failed", "{annotation}");
        assert!(started.elapsed() < Duration::from_secs(120), "{annotation}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleted during detection: cancelled, then gone (record, file, state).
    let upload = submit(&server, &media("bikes.mp4"), &["--no-wait"]);
    let stdout = text(&upload.stdout);
    assert!(upload.status.success(), "{stdout}{}", text(&upload.stderr));
    let id = stdout.split_whitespace().last().unwrap().to_string();
    let video_url = format!("{}/api/v1/videos/{id}", server.url);
    let started = Instant::now();
    loop {
        let video: Value = http
            .get(&video_url)
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if video["status"] == "detecting" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{video}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deleted = http.delete(&video_url).bearer_auth(&token).send().unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let gone = http.get(&video_url).bearer_auth(&token).send().unwrap();
    assert_eq!(gone.status().as_u16(), 404);
    let videos: Vec<_> = std::fs::read_dir(server.storage.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&id))
        .collect();
    assert!(videos.is_empty(), "{videos:?}");
    // The server is still serving, and stops cleanly.
    let health = http.get(format!("{}/healthz", server.url)).send().unwrap();
    assert!(health.status().is_success());
    let storage = server.storage.clone();
    server.stop();
    // Nothing of the deleted video came back: its running chunks stopped, no merge wrote a
    // result for it.
    assert!(!storage.join(format!("results/{id}.json")).exists());
}

/// 50 uploads at once from three users: every one is accepted, processed exactly once and
/// belongs to its uploader (another user gets 404 for it); nothing is lost or mixed up.
#[test]
fn fifty_concurrent_uploads_from_three_users_each_complete_once() {
    let server = Server::start("serve-many");
    let clip = server.storage.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(media("carphone_pristine.mp4"))
        .args(["-frames:v", "6", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&clip).unwrap();
    let http = reqwest::blocking::Client::new();
    let admin = server.token(&http);
    let users = ["alice", "bob", "carol"];
    let mut tokens = Vec::new();
    for user in users {
        let created = http
            .post(format!("{}/api/v1/users", server.url))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"username": user, "password": PASSWORD, "role": "user"}))
            .send()
            .unwrap();
        assert_eq!(
            created.status().as_u16(),
            201,
            "{}",
            created.text().unwrap()
        );
        let answer: Value = http
            .post(format!("{}/api/v1/auth/token", server.url))
            .form(&[("username", user), ("password", PASSWORD)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        tokens.push(answer["access_token"].as_str().unwrap().to_string());
    }

    // 50 uploads at once (the server takes 8 at a time: a 429 is retried, as clients should).
    let uploads: Vec<(usize, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (http, token, bytes, url) = (&http, &tokens[i % 3], &bytes, &server.url);
                scope.spawn(move || loop {
                    let answer = http
                        .post(format!("{url}/api/v1/videos?filename=clip-{i}.mp4"))
                        .bearer_auth(token)
                        .header("content-type", "video/mp4")
                        .body(bytes.clone())
                        .send()
                        .unwrap();
                    match answer.status().as_u16() {
                        202 => {
                            let body: Value = answer.json().unwrap();
                            return (i % 3, body["id"].as_str().unwrap().to_string());
                        }
                        429 => std::thread::sleep(Duration::from_millis(200)),
                        other => panic!("upload {i}: {other} {}", answer.text().unwrap()),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::HashSet<&String> = uploads.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), 50, "every upload got its own id");

    // Each completes, once, with its own result; each user lists exactly their own.
    let started = Instant::now();
    for (owner, id) in &uploads {
        let url = format!("{}/api/v1/videos/{id}", server.url);
        loop {
            let video: Value = http
                .get(&url)
                .bearer_auth(&tokens[*owner])
                .send()
                .unwrap()
                .json()
                .unwrap();
            match video["status"].as_str().unwrap() {
                "succeeded" => break,
                "failed" | "cancelled" => panic!("{video}"),
                _ => {}
            }
            assert!(started.elapsed() < Duration::from_secs(400), "{video}");
            std::thread::sleep(Duration::from_millis(250));
        }
        let result: Value = http
            .get(format!("{url}/result"))
            .bearer_auth(&tokens[*owner])
            .send()
            .unwrap()
            .json()
            .unwrap();
        let indices: Vec<u64> = result["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            indices,
            (0..6).collect::<Vec<_>>(),
            "{id}: every frame once"
        );
        let stranger = (owner + 1) % 3;
        let hidden = http
            .get(&url)
            .bearer_auth(&tokens[stranger])
            .send()
            .unwrap();
        assert_eq!(hidden.status().as_u16(), 404, "another user's video is 404");
    }
    for (user, token) in tokens.iter().enumerate() {
        let list: Value = http
            .get(format!("{}/api/v1/videos?limit=100", server.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let mut listed: Vec<String> = list["videos"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        let mut own: Vec<String> = uploads
            .iter()
            .filter(|(o, _)| *o == user)
            .map(|(_, id)| id.clone())
            .collect();
        listed.sort();
        own.sort();
        assert_eq!(listed, own, "{}", users[user]);
    }
    server.stop();
}

/// CPU seconds process `pid` has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
}

/// A server attacked (hostile media, a field flood, trickling uploads, dropped event streams)
/// while another user uploads and processes a video keeps serving that user, every frame
/// once, and ends idle: no thread spinning, no file left.
#[test]
fn an_attacked_server_keeps_serving_its_users() {
    use std::io::{Read, Write};
    let server = Server::start_with(
        "serve-attacked",
        &[
            ("ARGUS_UPLOAD_IDLE_TIMEOUT_S", "2"),
            ("ARGUS_UPLOAD_MIN_RATE", "4096"),
        ],
    );
    let http = reqwest::blocking::Client::new();
    let admin = server.token(&http);
    // Two attackers: each may hold ARGUS_MAX_UPLOADS_PER_USER (2) uploads at once.
    let [mallory, eve] = ["mallory", "eve"].map(|name| {
        let created = http
            .post(format!("{}/api/v1/users", server.url))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"username": name, "password": PASSWORD, "role": "user"}))
            .send()
            .unwrap();
        assert_eq!(created.status().as_u16(), 201);
        let token: Value = http
            .post(format!("{}/api/v1/auth/token", server.url))
            .form(&[("username", name), ("password", PASSWORD)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        token["access_token"].as_str().unwrap().to_string()
    });
    let addr = server.url.trim_start_matches("http://").to_string();

    // The admin's video, processed while Mallory attacks.
    let carphone = std::fs::read(media("carphone_pristine.mp4")).unwrap();
    let answer: Value = http
        .post(format!(
            "{}/api/v1/videos?filename=carphone.mp4",
            server.url
        ))
        .bearer_auth(&admin)
        .header("content-type", "video/mp4")
        .body(carphone.clone())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = answer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string();
    let stored = server.storage.join(format!("videos/{id}.mp4"));
    assert!(stored.is_file());

    std::thread::scope(|scope| {
        // A playlist to the admin's stored video, padded past the text sniff.
        scope.spawn(|| {
            for _ in 0..5 {
                let playlist = format!(
                    "#EXTM3U\n#EXTINF:4.0,\n{}\n#EXT-X-ENDLIST\n\x01",
                    stored.display()
                );
                let started = Instant::now();
                let answer = http
                    .post(format!("{}/api/v1/videos?filename=clip.mp4", server.url))
                    .bearer_auth(&eve)
                    .header("content-type", "video/mp4")
                    .body(playlist)
                    .send()
                    .unwrap();
                assert_eq!(answer.status().as_u16(), 422);
                assert!(started.elapsed() < Duration::from_secs(1));
            }
        });
        // A flood of option fields.
        scope.spawn(|| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                stream,
                "POST /api/v1/videos HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {eve}\r\n\
                 Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .unwrap();
            let field = format!(
                "--B\r\nContent-Disposition: form-data; name=\"classes\"\r\n\r\n{}\r\n",
                vec!["a"; 2000].join(",")
            );
            let chunk = format!("{:x}\r\n{field}\r\n", field.len());
            // Read as we write: the answer comes long before the flood's end.
            stream.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            for _ in 0..100_000 {
                if stream.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
                if let Ok(n) = stream.read(&mut buf) {
                    answer.extend_from_slice(&buf[..n]);
                    if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
        });
        // Trickling uploads: refused past Mallory's share, cut off within a window.
        for _ in 0..3 {
            scope.spawn(|| {
                let mut stream = std::net::TcpStream::connect(&addr).unwrap();
                write!(
                    stream,
                    "POST /api/v1/videos HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {mallory}\r\n\
                     Content-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
                    carphone.len()
                )
                .unwrap();
                stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                let mut answer = Vec::new();
                let mut buf = [0u8; 4096];
                for piece in carphone.chunks(100) {
                    if stream.write_all(piece).is_err() {
                        break;
                    }
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            answer.extend_from_slice(&buf[..n]);
                            break;
                        }
                        Err(_) => {}
                    }
                }
                let answer = String::from_utf8_lossy(&answer);
                assert!(
                    answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 429"),
                    "{answer}"
                );
            });
        }
        // Event streams of the admin's video opened and dropped (404 for Mallory) and of a
        // video of her own that does not exist.
        scope.spawn(|| {
            for _ in 0..100 {
                let answer = http
                    .get(format!("{}/api/v1/videos/{id}/events", server.url))
                    .bearer_auth(&mallory)
                    .send()
                    .unwrap();
                assert_eq!(answer.status().as_u16(), 404);
            }
        });
    });

    // The admin's video: done, every frame once.
    let url = format!("{}/api/v1/videos/{id}", server.url);
    let started = Instant::now();
    loop {
        let video: Value = http
            .get(&url)
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        match video["status"].as_str().unwrap() {
            "succeeded" => break,
            "failed" | "cancelled" => panic!("{video}"),
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{video}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let result: Value = http
        .get(format!("{url}/result"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let indices: Vec<u64> = result["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, (0..120).collect::<Vec<_>>(), "every frame once");

    // Idle afterwards, and nothing of the attacks kept.
    std::thread::sleep(Duration::from_secs(1));
    let pid = server.child.id();
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(pid) - before;
    assert!(
        used < 0.3,
        "the server used {used:.2} CPU s in 3 s of quiet"
    );
    let uploads: Vec<_> = std::fs::read_dir(server.storage.join("uploads"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(uploads.is_empty(), "{uploads:?}");
    let videos: Vec<_> = std::fs::read_dir(server.storage.join("videos"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(videos.len(), 1, "only the admin's video: {videos:?}");
    server.stop();
}

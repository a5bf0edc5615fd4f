//! The upload endpoint attacked as an attacker would, against the real server (support/) on
//! loopback: files that make FFmpeg follow them elsewhere, bodies that never end, clients
//! that trickle. Each attack must get a clear answer at once, leave nothing in storage, keep
//! the server's memory and CPU where they were, and leave other users served.
//!
//! One test per process measure: the scenarios run one after another in a single test, so
//! that the CPU and memory this process uses are the server's answer to them alone.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::*;

const PASSWORD: &str = "a-long-test-password";

/// The server under attack, two users, and its storage.
struct Target {
    api: TestApi,
    storage: TempDir,
    alice: String,
    bob: String,
}

impl Target {
    async fn start(tune: impl FnOnce(&mut argus_api::ApiConfig)) -> Target {
        let storage = TempDir::new("attacks");
        let mut config = support::config(Backend::Sqlite, &storage).await;
        tune(&mut config);
        let api = TestApi::start_with(config, Vec::new())
            .await
            .expect("the server starts");
        let admin = api.admin_token().await;
        for name in ["alice", "bob"] {
            let (status, body) = api.create_user(&admin, name, PASSWORD, "user").await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let alice = api.login("alice", PASSWORD).await;
        let bob = api.login("bob", PASSWORD).await;
        Target {
            api,
            storage,
            alice,
            bob,
        }
    }

    fn addr(&self) -> String {
        self.api.base.trim_start_matches("http://").to_string()
    }

    /// A multipart upload of `bytes` named `filename`.
    async fn upload(&self, token: &str, bytes: Vec<u8>, filename: &str) -> (StatusCode, Value) {
        let form = Form::new().part(
            "file",
            Part::bytes(bytes)
                .file_name(filename.to_string())
                .mime_str("video/mp4")
                .unwrap(),
        );
        self.api
            .send(
                self.api
                    .request(Method::POST, "/api/v1/videos", Some(token))
                    .multipart(form),
            )
            .await
    }

    /// Files under `dir` of the storage.
    fn files(&self, dir: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.storage.0.join(dir))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// This process's resident memory, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Asserts the process does (almost) nothing for a while: no thread left spinning.
async fn assert_idle(what: &str) {
    // Let the answers' own work finish first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds() - before;
    assert!(
        used < 0.3,
        "{what}: the server used {used:.2} CPU seconds in 2 s of quiet (a thread left spinning)"
    );
}

/// A loopback listener that counts the connections made to it.
fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_uploads_are_refused_at_once_and_leave_nothing() {
    let target = Target::start(|config| {
        config.max_upload_bytes = 4 << 20;
        config.max_concurrent_uploads = 3;
        config.max_uploads_per_user = 2;
        // Short rate windows, so that the trickling clients below are cut off in seconds.
        config.upload_idle_timeout = 2;
        config.upload_min_rate = 4096;
    })
    .await;
    // Bob's stored video: what a playlist would make the server read for Alice.
    let (status, body) = target.upload(&target.bob, carphone(), "bob.mp4").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let bobs_video = target.files("videos").pop().expect("bob's video is stored");
    let bobs = bobs_video.display().to_string();

    ffmpeg_reads_only_the_upload(&target, &bobs).await;
    assert_idle("after the FFmpeg attacks").await;
    a_million_fields_are_refused_in_bounded_memory(&target).await;
    assert_idle("after the field flood").await;
    trickling_clients_do_not_lock_others_out(&target).await;
    assert_idle("after the trickling clients").await;

    // Nothing of any refused upload stays; Bob's video is still there and still his.
    assert_eq!(target.files("uploads"), Vec::<PathBuf>::new());
    let videos = target.files("videos");
    assert_eq!(
        videos.len(),
        2,
        "bob's two accepted uploads only: {videos:?}"
    );
    let (status, list) = target.api.get("/api/v1/videos", Some(&target.alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 0, "alice has no video: {list}");
}

/// Playlists, concat scripts, SDP and images, named `.mp4` and padded with control bytes so
/// that no text sniff sees them, each pointing at Bob's stored video or at a listener on
/// loopback: 422 within a second, nothing read through them, no connection made.
async fn ffmpeg_reads_only_the_upload(target: &Target, bobs: &str) {
    let (addr, connections) = counting_listener();
    let port = addr.rsplit(':').next().unwrap();
    let png = std::fs::read(argus_common::paths::media_dir().join("astronaut.png")).unwrap();
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        (
            "HLS playlist to another user's video, one control byte",
            format!("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:4.0,\n{bobs}\n#EXT-X-ENDLIST\n\x01")
                .into_bytes(),
        ),
        (
            "HLS playlist to another user's video, NULs",
            [
                format!("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:4.0,\nfile://{bobs}\n#EXT-X-ENDLIST\n")
                    .into_bytes(),
                vec![0u8; 64],
            ]
            .concat(),
        ),
        (
            "HLS playlist to a loopback URL",
            format!("#EXTM3U\n#EXTINF:4.0,\nhttp://{addr}/seg.ts\n#EXT-X-ENDLIST\n\x00\x01\x02")
                .into_bytes(),
        ),
        (
            "ffconcat script",
            format!("ffconcat version 1.0\nfile '{bobs}'\n\x01\x02\x03").into_bytes(),
        ),
        (
            "ffconcat script to a URL",
            format!("ffconcat version 1.0\nfile 'http://{addr}/x.mp4'\n\x00").into_bytes(),
        ),
        (
            "SDP session to a loopback port",
            format!(
                "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n\
                 m=video {port} RTP/AVP 96\na=rtpmap:96 H264/90000\n\x01"
            )
            .into_bytes(),
        ),
        ("an image (image2 / png_pipe)", png),
    ];
    for (what, bytes) in attacks {
        let started = Instant::now();
        let (status, body) = target.upload(&target.alice, bytes, "clip.mp4").await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
        assert_eq!(body["code"], "not_a_video", "{what}: {body}");
        assert!(
            took < Duration::from_secs(1),
            "{what}: answered in {took:?}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            !message.contains(target.storage.0.to_str().unwrap()),
            "{what}: our paths in {message}"
        );
        assert_eq!(target.files("uploads"), Vec::<PathBuf>::new(), "{what}");
    }
    // Give a connection that was on its way the time to land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "FFmpeg connected out"
    );
}

/// One request head, then `body` sent in pieces by `write` until the server answers or stops
/// reading; the answer's status line and body.
fn raw_upload(addr: &str, head: &str, mut write: impl FnMut(&mut TcpStream) -> bool) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let mut writing = true;
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "no answer");
        if writing {
            writing = write(&mut stream);
        } else {
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                // A whole answer: its head and the JSON body it announced.
                let text = String::from_utf8_lossy(&answer);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok());
                    if length.is_some_and(|n| body.len() >= n) {
                        break;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A chunked multipart body of a million `classes` fields (no file): refused long before its
/// end, and the server's memory does not grow with what was sent.
async fn a_million_fields_are_refused_in_bounded_memory(target: &Target) {
    let rss_before = rss_mib();
    let head = format!(
        "POST /api/v1/videos HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n",
        target.addr(),
        target.alice
    );
    let labels = vec!["a"; 2000].join(",");
    let field =
        format!("--B\r\nContent-Disposition: form-data; name=\"classes\"\r\n\r\n{labels}\r\n");
    let chunk = format!("{:x}\r\n{field}\r\n", field.len());
    let mut sent = 0usize;
    let addr = target.addr();
    let answer = tokio::task::spawn_blocking(move || {
        let answer = raw_upload(&addr, &head, |stream| {
            if sent == 1_000_000 {
                let _ = stream.write_all(b"0\r\n\r\n");
                return false;
            }
            sent += 1;
            stream.write_all(chunk.as_bytes()).is_ok()
        });
        (answer, sent)
    })
    .await
    .unwrap();
    let (answer, sent) = answer;
    assert!(
        answer.starts_with("HTTP/1.1 422") || answer.starts_with("HTTP/1.1 413"),
        "{answer}"
    );
    assert!(
        answer.contains("invalid_input") || answer.contains("payload_too_large"),
        "{answer}"
    );
    assert!(sent < 1_000_000, "the whole flood was read: {sent} fields");
    let grown = rss_mib() - rss_before;
    assert!(grown < 64.0, "the server grew by {grown:.0} MiB");
    assert_eq!(target.files("uploads"), Vec::<PathBuf>::new());

    // A preamble that never reaches a boundary: the parser would hold it all in memory, so
    // bytes outside the file part have a limit of their own (64 KiB + 1 MiB of read-ahead).
    let head = format!(
        "POST /api/v1/videos HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n",
        target.addr(),
        target.alice
    );
    let piece = format!("{:x}\r\n{}\r\n", 60_000, "x".repeat(60_000));
    let mut sent = 0usize;
    let addr = target.addr();
    let (answer, sent) = tokio::task::spawn_blocking(move || {
        let answer = raw_upload(&addr, &head, |stream| {
            sent += 60_000;
            sent < 64 << 20 && stream.write_all(piece.as_bytes()).is_ok()
        });
        (answer, sent)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("outside its `file` part"), "{answer}");
    // Refused long before the 4 MiB upload limit: bytes the parser holds have their own.
    assert!(sent < 3 << 20, "{sent} bytes sent before the answer");
    let grown = rss_mib() - rss_before;
    assert!(grown < 64.0, "the server grew by {grown:.0} MiB");
}

/// Alice opens trickling uploads: her share of slots is two, so her third is refused and
/// Bob's upload still goes through beside them; the tricklers are cut off within a rate
/// window, and leave nothing behind.
async fn trickling_clients_do_not_lock_others_out(target: &Target) {
    let video = carphone();
    let head = format!(
        "POST /api/v1/videos HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
        target.addr(),
        target.alice,
        video.len()
    );
    let mut tricklers = Vec::new();
    for _ in 0..3 {
        let (addr, head, video) = (target.addr(), head.clone(), video.clone());
        tricklers.push(std::thread::spawn(move || {
            let started = Instant::now();
            let mut at = 0;
            let answer = raw_upload(&addr, &head, |stream| {
                // 100 bytes every 100 ms: 1 kB/s, under the 4 kB/s minimum.
                std::thread::sleep(Duration::from_millis(100));
                let end = (at + 100).min(video.len());
                let ok = stream.write_all(&video[at..end]).is_ok();
                at = end;
                ok && at < video.len()
            });
            (answer, started.elapsed())
        }));
        std::thread::sleep(Duration::from_millis(150));
    }
    // While they trickle, Bob uploads at full speed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = target.upload(&target.bob, carphone(), "bob2.mp4").await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "bob beside the tricklers: {body}"
    );

    let mut answers: Vec<(String, Duration)> =
        tricklers.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort_by_key(|(a, _)| a.starts_with("HTTP/1.1 408"));
    let (refused, took) = &answers[0];
    assert!(
        refused.starts_with("HTTP/1.1 429"),
        "alice's third: {refused}"
    );
    assert!(refused.contains("ARGUS_MAX_UPLOADS_PER_USER"), "{refused}");
    assert!(*took < Duration::from_secs(2), "refused at once: {took:?}");
    for (answer, took) in &answers[1..] {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("ARGUS_UPLOAD_MIN_RATE"), "{answer}");
        assert!(
            *took < Duration::from_secs(6),
            "cut off within a window: {took:?}"
        );
    }
    assert_eq!(target.files("uploads"), Vec::<PathBuf>::new());
}

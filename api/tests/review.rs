//! Black-box tests over HTTP of what the web console reads to review a video: detections by
//! frame range, the timeline, the summary through the result's index, the video file with range
//! requests and signed links, the stream of every video's progress, the model list, and the
//! console's own pages and headers.
//!
//! The server is the real one on `memory://` queues shared with the test. A finished video is
//! made as in `videos.rs`: uploaded for real, its state set through the shared backend, and its
//! result written by the merge's own writer (`argus_processor::MergeWriter`, with the index it
//! builds) into storage, as the merge task does. The real model's results are reviewed in a real
//! browser by `cli/tests/console.rs`.

#[macro_use]
mod support;

use argus_common::state::VideoStatus;
use argus_common::storage::Storage;
use argus_common::{BoundingBox, Detection, FrameDetections, ModelInfo, VideoInfo};
use argus_processor::MergeWriter;
use argus_queue::backend::Backend as ResultBackend;
use argus_queue::broker::Broker;
use reqwest::header::{ACCEPT_RANGES, CACHE_CONTROL, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

const PASSWORD: &str = "a-long-test-password";

struct Env {
    api: TestApi,
    broker: Broker,
    backend: ResultBackend,
    storage: TempDir,
    admin: String,
    alice: String,
    bob: String,
}

impl Env {
    async fn start() -> Env {
        let storage = TempDir::new("review");
        let mut config = config(Backend::Sqlite, &storage).await;
        // Streams check their user again at each keepalive.
        config.sse_keepalive = 1;
        let broker = Broker::connect("memory://", 4).await.unwrap();
        let backend = ResultBackend::connect("memory://").await.unwrap();
        let api = TestApi::start_with_queue(config, broker.clone(), backend.clone())
            .await
            .expect("the server starts");
        let admin = api.admin_token().await;
        for name in ["alice", "bob"] {
            let (status, body) = api.create_user(&admin, name, PASSWORD, "user").await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let alice = api.login("alice", PASSWORD).await;
        let bob = api.login("bob", PASSWORD).await;
        Env {
            api,
            broker,
            backend,
            storage,
            admin,
            alice,
            bob,
        }
    }

    fn storage(&self) -> Storage {
        Storage::new(&self.storage.0)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.api.get(path, Some(token)).await
    }
}

fn video_info() -> VideoInfo {
    VideoInfo {
        container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        codec: "h264".into(),
        width: 176,
        height: 144,
        rotation: 0,
        fps: 29.97,
        frame_count: 120,
        duration_s: 4.004,
        stream_index: 0,
        time_base: [1, 30000],
        start_pts: 0,
    }
}

/// Frame `i`'s detections: a person in every frame, a car in frames 40..60, frame 7 not
/// decoded (skipped).
fn frames() -> Vec<FrameDetections> {
    (0..120u64)
        .filter(|&i| i != 7)
        .map(|i| {
            let mut detections = vec![Detection {
                label: "person".into(),
                class_id: 0,
                score: 0.5 + (i % 10) as f32 / 100.0,
                bbox: BoundingBox::from([i as f32, 1.0, 100.0, 140.0]),
                track_id: None,
                predicted: false,
                landmarks: None,
                embedding: None,
            }];
            if (40..60).contains(&i) {
                detections.push(Detection {
                    label: "car".into(),
                    class_id: 2,
                    score: 0.9,
                    bbox: BoundingBox::from([10.0, 10.0, 20.0, 20.0]),
                    track_id: None,
                    predicted: false,
                    landmarks: None,
                    embedding: None,
                });
            }
            FrameDetections {
                predicted: false,
                index: i,
                pts_ms: i as f64 * 1000.0 / 29.97,
                detections,
            }
        })
        .collect()
}

/// Finishes video `id` as the merge would: the result (and its index) in storage, then the
/// state `succeeded`.
async fn finish(env: &Env, id: &str) -> Vec<u8> {
    let model = ModelInfo {
        name: "coco-centernet".into(),
        adapter: "centernet".into(),
        input_size: [512, 512],
        score_threshold: 0.3,
        devices: vec!["cpu".into()],
    };
    let storage = env.storage();
    let (_, document) = storage
        .write_result_with(
            id,
            |out| -> Result<Vec<u8>, argus_common::storage::StorageError> {
                let mut bytes = Vec::new();
                let mut writer = MergeWriter::start(&mut bytes, &video_info(), &model)
                    .unwrap()
                    .track(argus_processor::tracks::Tracks::new(
                        argus_track::TrackerParams::default(),
                        argus_pipeline::tasks::Sampling::Stride(1),
                        None,
                    ));
                writer.chunk(frames(), vec![7]).unwrap();
                let (_, merged) = writer
                    .finish(&video_info(), 1, 2.0, vec!["a warning".into()])
                    .unwrap();
                storage.write_result_index(id, &merged.index)?;
                out.write_all(&bytes)?;
                Ok(bytes)
            },
        )
        .unwrap();
    argus_pipeline::store::update_state(&env.backend, id, |old| {
        let mut s = old.unwrap().clone();
        s.status = VideoStatus::Succeeded;
        Some(s)
    })
    .await
    .unwrap()
    .expect("queued → succeeded");
    document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_read_by_frame_range_with_or_without_its_index() {
    let env = Env::start().await;
    let (id, _) = upload(&env.api, &env.alice).await;
    let frames_path =
        |from: u64, to: u64| format!("/api/v1/videos/{id}/frames?from={from}&to={to}");

    // Not finished yet: 409, as the result.
    assert_error(
        &env.get(&frames_path(0, 10), &env.alice).await,
        StatusCode::CONFLICT,
        "not_ready",
    );
    let document = finish(&env, &id).await;
    let parsed: Value = serde_json::from_slice(&document).unwrap();
    let expected = |from: u64, to: u64| -> Vec<Value> {
        parsed["frames"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| (from..to).contains(&f["index"].as_u64().unwrap()))
            .cloned()
            .collect()
    };
    let index_path = env.storage().result_index_path(&id).unwrap();
    assert!(index_path.is_file(), "the merge's writer leaves an index");

    for round in ["indexed", "scanned (no index)", "stale index"] {
        match round {
            "scanned (no index)" => {
                std::fs::remove_file(&index_path).unwrap();
                // Read through once, then stored for the next reader.
                let (status, _) = env.get(&frames_path(0, 1), &env.alice).await;
                assert_eq!(status, StatusCode::OK);
                assert!(index_path.is_file(), "the scanned index is kept");
                std::fs::remove_file(&index_path).unwrap();
            }
            "stale index" => {
                // An index of another document (one byte longer) is not trusted.
                let mut bytes = document.clone();
                bytes.insert(1, b' ');
                let mut other = argus_common::result_index::scan(&bytes[..], 120).unwrap();
                other.lanes.clear();
                env.storage().write_result_index(&id, &other).unwrap();
            }
            _ => {}
        }
        for (from, to) in [(0, 10), (5, 9), (100, 120), (119, 1119), (60, 60)] {
            let (status, page) = env.get(&frames_path(from, to), &env.alice).await;
            assert_eq!(status, StatusCode::OK, "{round}: {page}");
            assert_eq!(
                page["frames"],
                json!(expected(from, to)),
                "{round}: {from}..{to}"
            );
            assert_eq!(page["frame_count"], 120);
            assert_eq!(page["to"], to.min(120), "{round}");
        }
        // Frame 7 was not decoded: absent, its neighbours present.
        let (_, page) = env.get(&frames_path(6, 9), &env.alice).await;
        let indices: Vec<u64> = page["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indices, [6, 8], "{round}");

        let (status, timeline) = env
            .get(&format!("/api/v1/videos/{id}/timeline"), &env.alice)
            .await;
        assert_eq!(status, StatusCode::OK, "{round}: {timeline}");
        assert_eq!(timeline["frame_count"], 120);
        assert_eq!(timeline["block_frames"], 1);
        let lanes = timeline["lanes"].as_array().unwrap();
        assert_eq!(lanes.len(), 2, "{round}: {timeline}");
        assert_eq!(lanes[0]["label"], "person");
        assert_eq!(
            lanes[0]["blocks"].as_array().unwrap().len(),
            119,
            "all but frame 7"
        );
        assert_eq!(lanes[1]["label"], "car");
        let car: Vec<u64> = lanes[1]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[0].as_u64().unwrap())
            .collect();
        assert_eq!(car, (40..60).collect::<Vec<_>>(), "{round}");
        assert!((lanes[1]["blocks"][0][1].as_f64().unwrap() - 0.9).abs() < 1e-6);

        let (_, video) = env.get(&format!("/api/v1/videos/{id}"), &env.alice).await;
        assert_eq!(video["summary"], parsed["summary"], "{round}");
        assert_eq!(video["summary"]["frames_skipped"], 1);
    }

    // Tracks: the still car of frames 40..60 is one object (the person's box shrinks to a
    // sliver and is followed in pieces); the MOT export lists each tracked detection once,
    // frames from 1.
    let tracks = parsed["tracks"].as_array().unwrap();
    assert_eq!(
        parsed["summary"]["tracks"],
        tracks.len(),
        "{}",
        parsed["summary"]
    );
    let cars: Vec<&Value> = tracks.iter().filter(|t| t["label"] == "car").collect();
    assert_eq!(cars.len(), 1, "{tracks:?}");
    // Born at frame 40, confirmed at 41 (ByteTrack gives an id from a track's second frame).
    assert_eq!(
        (
            cars[0]["first_frame"].as_u64(),
            cars[0]["last_frame"].as_u64()
        ),
        (Some(41), Some(59))
    );
    assert_eq!(cars[0]["frames"], 19);
    let tracked: usize = parsed["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["detections"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["track_id"].is_u64())
                .count()
        })
        .sum();
    let mot = env
        .api
        .request(
            Method::GET,
            &format!("/api/v1/videos/{id}/result?format=mot"),
            Some(&env.alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mot.status(), StatusCode::OK);
    assert!(mot.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let mot = mot.text().await.unwrap();
    assert_eq!(mot.lines().count(), tracked, "{mot}");
    assert!(mot.starts_with("1,1,0,1,100,139,0.5,-1,-1,-1\n"), "{mot}");

    // Bad ranges, another user's video.
    for (query, status, code) in [
        (
            "from=10&to=5",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        // Past the end of the 120-frame video: what is left of it.
        ("from=0&to=1001", StatusCode::OK, ""),
        ("from=0&to=99999999999", StatusCode::OK, ""),
        ("from=0", StatusCode::BAD_REQUEST, "invalid_query"),
        ("from=-1&to=5", StatusCode::BAD_REQUEST, "invalid_query"),
        ("from=x&to=5", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let answer = env
            .get(&format!("/api/v1/videos/{id}/frames?{query}"), &env.alice)
            .await;
        if status == StatusCode::OK {
            assert_eq!(answer.0, status, "{query}");
            assert_eq!(answer.1["to"], 120, "{query}");
            assert_eq!(answer.1["frames"].as_array().unwrap().len(), 119, "{query}");
            continue;
        }
        assert_error(&answer, status, code);
    }
    for path in [frames_path(0, 10), format!("/api/v1/videos/{id}/timeline")] {
        assert_error(
            &env.get(&path, &env.bob).await,
            StatusCode::NOT_FOUND,
            "video_not_found",
        );
        assert_eq!(
            env.get(&path, &env.admin).await.0,
            StatusCode::OK,
            "admins see all"
        );
    }
    // The result gone from storage: 410, not a 500.
    env.storage().delete_result(&id).unwrap();
    assert_error(
        &env.get(&frames_path(0, 10), &env.alice).await,
        StatusCode::GONE,
        "result_gone",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_answers_ranges_to_its_owner_and_to_signed_links_only() {
    let env = Env::start().await;
    let (id, _) = upload(&env.api, &env.alice).await;
    let original = carphone();
    let file = format!("/api/v1/videos/{id}/file");

    let whole = env
        .api
        .request(Method::GET, &file, Some(&env.alice))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()[ACCEPT_RANGES], "bytes");
    assert_eq!(whole.headers()[CONTENT_TYPE], "video/mp4");
    assert!(whole.headers()[CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("private"));
    assert_eq!(whole.bytes().await.unwrap(), original);

    let part = env
        .api
        .request(Method::GET, &file, Some(&env.alice))
        .header(RANGE, "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[CONTENT_RANGE],
        format!("bytes 1000-1999/{}", original.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), original[1000..2000]);
    let tail = env
        .api
        .request(Method::GET, &file, Some(&env.alice))
        .header(RANGE, "bytes=-100")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        tail.bytes().await.unwrap(),
        original[original.len() - 100..]
    );
    let beyond = env
        .api
        .request(Method::GET, &file, Some(&env.alice))
        .header(RANGE, format!("bytes={}-", original.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // A `Range` that is not one is ignored: the whole file.
    let garbage = env
        .api
        .request(Method::GET, &file, Some(&env.alice))
        .header(RANGE, "null")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::OK);
    assert_eq!(garbage.headers()[CONTENT_TYPE], "video/mp4");
    assert_eq!(garbage.bytes().await.unwrap(), original);

    // Another user: 404 as for a missing video; nobody: 401.
    assert_error(
        &env.get(&file, &env.bob).await,
        StatusCode::NOT_FOUND,
        "video_not_found",
    );
    assert_error(
        &env.api.get(&file, None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    );

    // A signed link opens the file with no header, ranges included.
    let (status, link) = env
        .api
        .send(
            env.api
                .request(Method::POST, &format!("{file}-url"), Some(&env.alice)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{file}?")), "{url}");
    assert!(!url.contains(&env.alice), "never the token in a URL");
    let by_link = env
        .api
        .client
        .get(env.api.url(&url))
        .header(RANGE, "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(by_link.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(by_link.bytes().await.unwrap(), original[..100]);
    assert_error(
        &env.api.get(&format!("{file}-url"), Some(&env.alice)).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // Tampered: another video, another user, a later expiry, a changed signature.
    let (other, _) = upload(&env.api, &env.alice).await;
    let expires: u64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for forged in [
        url.replace(&id, &other),
        url.replace("u=alice", "u=bob"),
        url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        ),
        format!("{}A", url),
        url.split("&sig=").next().unwrap().to_string(),
    ] {
        let answer = env.api.get(&forged, None).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token");
    }
    // Expired: signed here with the server's secret, an hour ago.
    let keys = argus_api::auth::JwtKeys::new(&argus_api::Secret::new(SECRET), 60);
    let past = jsonwebtoken::get_current_timestamp() - 3600;
    let grant = argus_api::auth::LinkGrant {
        video_id: id.clone(),
        file: argus_api::auth::LinkedFile::Video,
        username: "alice".into(),
        generation: 0,
        expires: past,
    };
    let expired = format!(
        "{file}?u=alice&g=0&expires={past}&sig={}",
        keys.sign_link(&grant)
    );
    assert_error(
        &env.api.get(&expired, None).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    );
    // The same grant unexpired is good (the test signs as the server does).
    let fresh = argus_api::auth::LinkGrant {
        expires: past + 7200,
        ..grant
    };
    let good = format!(
        "{file}?u=alice&g=0&expires={}&sig={}",
        past + 7200,
        keys.sign_link(&fresh)
    );
    assert_eq!(
        env.api
            .client
            .head(env.api.url(&good))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // A password change ends the links with the tokens.
    let (status, body) = env
        .api
        .send(
            env.api
                .request(Method::PUT, "/api/v1/auth/password", Some(&env.alice))
                .json(
                    &json!({"current_password": PASSWORD, "new_password": "another-long-password"}),
                ),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_error(
        &env.api.get(&url, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_follows_every_video_of_its_user() {
    let env = Env::start().await;
    let open = |token: String, query: &'static str| {
        let api = &env.api;
        async move {
            let response = api
                .request(
                    Method::GET,
                    &format!("/api/v1/videos/events{query}"),
                    Some(&token),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
            Blocks {
                response,
                buffer: String::new(),
            }
        }
    };
    let mut alice = open(env.alice.clone(), "").await;
    let mut admin = open(env.admin.clone(), "?all=true").await;
    for stream in [&mut alice, &mut admin] {
        assert_eq!(
            stream.next().await,
            "event: resync\ndata: {}",
            "resync first"
        );
    }
    assert_error(
        &env.get("/api/v1/videos/events?all=true", &env.bob).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (bobs, _) = upload(&env.api, &env.bob).await;
    let (alices, _) = upload(&env.api, &env.alice).await;
    // Alice sees her upload (queued), never Bob's.
    let event = alice.state().await;
    assert_eq!(event["id"], alices.as_str(), "{event}");
    assert_eq!(event["status"], "queued");
    moves_on(&env.backend, &alices, VideoStatus::Splitting).await;
    let event = alice.state().await;
    assert_eq!(
        (event["id"].as_str(), event["status"].as_str()),
        (Some(alices.as_str()), Some("splitting"))
    );
    // The admin sees both, in order.
    let seen: Vec<String> = vec![
        admin.state().await["id"].as_str().unwrap().into(),
        admin.state().await["id"].as_str().unwrap().into(),
    ];
    assert_eq!(seen, [bobs.clone(), alices.clone()]);
    // A deleted video's tombstone is not an event of anyone's list, and the stream goes on.
    let (status, _) = env
        .api
        .send(env.api.request(
            Method::DELETE,
            &format!("/api/v1/videos/{bobs}"),
            Some(&env.bob),
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    moves_on(&env.backend, &alices, VideoStatus::Detecting).await;
    assert_eq!(alice.state().await["status"], "detecting");

    // Disabled, Alice's stream ends at its next keepalive (1 s here), as her token does.
    let (status, _) = env
        .api
        .send(
            env.api
                .request(Method::DELETE, "/api/v1/users/alice", Some(&env.admin)),
        )
        .await;
    assert!(status.is_success(), "{status}");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match alice.response.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of a disabled user ends");
}

/// A stream's blocks (events and comments), read with reqwest.
struct Blocks {
    response: reqwest::Response,
    buffer: String,
}

impl Blocks {
    async fn next(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block = self.buffer[..end].to_string();
                self.buffer.drain(..end + 2);
                return block;
            }
            let chunk = tokio::time::timeout(STREAM_WAIT, self.response.chunk())
                .await
                .expect("a block within the wait")
                .unwrap()
                .expect("the stream goes on");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next state event's data.
    async fn state(&mut self) -> Value {
        loop {
            let block = self.next().await;
            if let Some(data) = block.strip_prefix("event: state\ndata: ") {
                return serde_json::from_str(data).unwrap();
            }
            assert!(block.starts_with(':'), "a state or a comment: {block:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_are_listed_with_what_their_detectors_announce() {
    let env = Env::start().await;
    let (status, models) = env.get("/api/v1/models", &env.alice).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    assert_eq!(
        models,
        json!([{"name": "coco-centernet", "default": true, "live": false, "labels": [],
                "devices": [], "detectors": 0}])
    );
    let announcement = argus_pipeline::models::ModelAnnouncement {
        name: "coco-centernet".into(),
        adapter: "centernet".into(),
        input_size: [512, 512],
        labels: vec!["person".into(), "bicycle".into()],
        devices: vec!["cpu".into()],
        landmarks: Vec::new(),
        embedding_size: None,
    };
    argus_pipeline::models::announce(&env.backend, &announcement, "one")
        .await
        .unwrap();
    // A second detector of the model, on two GPUs: both listed, their devices together.
    let on_gpus = argus_pipeline::models::ModelAnnouncement {
        devices: vec!["cuda:0".into(), "cuda:1".into()],
        landmarks: Vec::new(),
        embedding_size: None,
        ..announcement.clone()
    };
    argus_pipeline::models::announce(&env.backend, &on_gpus, "two")
        .await
        .unwrap();
    // Renewed: still two.
    argus_pipeline::models::announce(&env.backend, &announcement, "one")
        .await
        .unwrap();
    let (_, models) = env.get("/api/v1/models", &env.alice).await;
    assert_eq!(models[0]["live"], true);
    assert_eq!(models[0]["detectors"], 2);
    let mut devices: Vec<String> = serde_json::from_value(models[0]["devices"].clone()).unwrap();
    devices.sort();
    assert_eq!(devices, ["cpu", "cuda:0", "cuda:1"]);
    assert_eq!(models[0]["labels"], json!(["person", "bicycle"]));
    assert_eq!(models[0]["input_size"], json!([512, 512]));
    assert_error(
        &env.api.get("/api/v1/models", None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_policy_and_the_api_keeps_its_404s() {
    let env = Env::start().await;
    let page = env
        .api
        .client
        .get(env.api.url("/videos/7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e"))
        .send()
        .await
        .unwrap();
    assert!(
        argus_api::console::is_built(),
        "web/dist is built by scripts/setup.sh"
    );
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()[CACHE_CONTROL], "no-cache");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("<style"),
        "no inline script or style"
    );
    // Every asset the page names is served, cached for good, with its type.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
    for asset in assets {
        let response = env.api.client.get(env.api.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(response.headers()[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let kind = response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            kind.contains("javascript") || kind.contains("css"),
            "{asset}: {kind}"
        );
    }
    for path in ["/", "/login", "/users"] {
        let response = env.api.client.get(env.api.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // What is not the console's is the API's JSON 404, or 405 for a wrong method.
    for path in [
        "/nope",
        "/videos/not-a-uuid",
        "/assets/missing.js",
        "/index.html",
        "/api/v1/nope",
    ] {
        assert_error(
            &env.api.get(path, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let (status, _) = env
        .api
        .send(env.api.request(Method::POST, "/login", None))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_annotated_copy_is_made_once_on_request_and_served_by_range() {
    let env = Env::start().await;
    // The real processor tasks (annotate_video among them) on the shared queue.
    let worker = argus_processor::tasks::register(
        argus_queue::worker::Worker::new(
            env.broker.clone(),
            env.backend.clone(),
            argus_queue::worker::WorkerOptions::default(),
        ),
        argus_processor::tasks::ProcessorConfig {
            storage: env.storage(),
            chunk_size: 32.into(),
            limits: Default::default(),
            result_inline_max: argus_processor::tasks::DEFAULT_RESULT_INLINE_MAX,
            default_model: argus_pipeline::tasks::DEFAULT_MODEL.into(),
            served_models: vec![argus_pipeline::tasks::DEFAULT_MODEL.into()],
        },
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (id, _) = upload(&env.api, &env.alice).await;
    let annotated = format!("/api/v1/videos/{id}/annotated");
    // Before the run succeeds there is nothing to draw.
    let (status, body) = env.get(&annotated, &env.alice).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("absent")),
        "{body}"
    );
    let early = env
        .api
        .send(env.api.request(Method::POST, &annotated, Some(&env.alice)))
        .await;
    assert_error(&early, StatusCode::CONFLICT, "not_ready");
    // (The upload's process_video is still queued: it is not this test's subject.)
    finish(&env, &id).await;
    let worker = tokio::spawn(async move {
        worker
            .run(&[argus_pipeline::tasks::PROCESSOR_QUEUE], stopped)
            .await
    });

    // Two requests at once queue one task.
    let (a, b) = tokio::join!(
        env.api
            .send(env.api.request(Method::POST, &annotated, Some(&env.alice))),
        env.api
            .send(env.api.request(Method::POST, &annotated, Some(&env.alice))),
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
        "{} {}",
        a.1,
        b.1
    );
    let state = argus_pipeline::annotation::get(&env.backend, &id)
        .await
        .unwrap()
        .unwrap();
    assert_error(
        &env.get(&annotated, &env.bob).await,
        StatusCode::NOT_FOUND,
        "video_not_found",
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut seen = Vec::new();
    let view = loop {
        let (_, view) = env.get(&annotated, &env.alice).await;
        seen.push(view["status"].as_str().unwrap().to_string());
        if view["status"] == "succeeded" || view["status"] == "failed" {
            break view;
        }
        assert!(std::time::Instant::now() < deadline, "annotation: {seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["percent"], 100.0);
    let still = argus_pipeline::annotation::get(&env.backend, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.task_id, state.task_id, "one task made it");
    // Asked again: 200, nothing queued.
    let again = env
        .api
        .send(env.api.request(Method::POST, &annotated, Some(&env.alice)))
        .await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.1);

    // The file: an MP4 of the video's 120 frames, by range, to its owner only.
    let file = format!("{annotated}/file");
    let response = env
        .api
        .request(Method::GET, &file, Some(&env.alice))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "video/mp4");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, view["size_bytes"].as_u64().unwrap());
    assert_eq!(&bytes[4..8], b"ftyp", "an MP4");
    let on_disk = env.storage().annotated_path(&id).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&on_disk)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "176,144,120");
    let part = env
        .api
        .request(Method::GET, &file, Some(&env.alice))
        .header(RANGE, "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap(), bytes[..10]);
    assert_error(
        &env.get(&file, &env.bob).await,
        StatusCode::NOT_FOUND,
        "video_not_found",
    );
    // A link for the video's own file does not open its annotated copy, nor the other way.
    let (_, link) = env
        .api
        .send(env.api.request(
            Method::POST,
            &format!("/api/v1/videos/{id}/file-url?file=annotated"),
            Some(&env.alice),
        ))
        .await;
    let url = link["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{file}?")), "{url}");
    assert_eq!(
        env.api
            .client
            .get(env.api.url(&url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        bytes
    );
    let swapped = url.replace("/annotated/file?", "/file?");
    assert_error(
        &env.api.get(&swapped, None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );

    // Deleted with the video: the file and the state.
    let (status, _) = env
        .api
        .send(env.api.request(
            Method::DELETE,
            &format!("/api/v1/videos/{id}"),
            Some(&env.alice),
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!on_disk.exists());
    assert!(argus_pipeline::annotation::get(&env.backend, &id)
        .await
        .unwrap()
        .is_none());
    stop.send(true).unwrap();
    worker.await.unwrap();
}

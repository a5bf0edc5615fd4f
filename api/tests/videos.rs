//! Black-box tests of the video endpoints over HTTP: the real server (support/) on `memory://`
//! broker and result backend that the test shares, with the real processor tasks running
//! in-process where a test needs them (probe, split, fan-out; no detector: videos stop at
//! `detecting`, with their chunks waiting in the detector queue). Real media from setup
//! (`carphone_pristine.mp4`, 120 frames, its index at the end of the file) and files made here
//! with the ffmpeg CLI.
//!
//! Where a test needs a finished, failed or cancelled video it uploads one, then sets its state
//! through the shared result backend and places a result file in storage itself: a unit-level
//! fixture for what the detectors and the merge would do (they are tested elsewhere).

#[macro_use]
mod support;

use argus_pipeline::store::RunStore;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use argus_common::state::VideoStatus;
use argus_common::storage::Storage;
use argus_pipeline::tasks::{ProcessVideo, VideoOptions, DETECTOR_QUEUE, PROCESSOR_QUEUE};
use argus_processor::tasks::ProcessorConfig;
use argus_queue::backend::Backend as ResultBackend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use argus_queue::worker::{Worker, WorkerOptions};
use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;
use tokio::sync::watch;

const PASSWORD: &str = "a-long-test-password";
const WAIT: Duration = Duration::from_secs(20);

on_both_backends!(list_pagination_and_status_filter, delete_removes_everything);

fn media(name: &str) -> PathBuf {
    let path = argus_common::paths::media_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: scripts/setup.sh installs the sample media",
        path.display()
    );
    path
}

const TRIANGLE: &str = r#"[{"points":[[0,0],[100,0],[50,80]]}]"#;
const BOW_TIE: &str = r#"[{"points":[[0,0],[100,100],[100,0],[0,100]]}]"#;

/// Runs the ffmpeg CLI; its output file's bytes.
fn ffmpeg(dir: &TempDir, args: &[&str], output: &str) -> Vec<u8> {
    let out = dir.0.join(output);
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("the ffmpeg CLI (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg {args:?}");
    std::fs::read(out).unwrap()
}

struct Settings {
    backend: Backend,
    processor: bool,
    max_upload_bytes: Option<u64>,
    max_concurrent_uploads: Option<usize>,
    max_uploads_per_user: Option<usize>,
    sse_keepalive: Option<u64>,
    served_models: Option<Vec<String>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            backend: Backend::Sqlite,
            processor: false,
            max_upload_bytes: None,
            max_concurrent_uploads: None,
            max_uploads_per_user: None,
            sse_keepalive: None,
            served_models: None,
        }
    }
}

/// An answer: status, JSON body (Null if none), headers.
struct Answer {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

/// A server on a shared `memory://` broker and backend, three users and an admin.
struct Env {
    // Dropped first: the server stops before its storage goes.
    api: TestApi,
    storage: TempDir,
    broker: Broker,
    backend: ResultBackend,
    stop: watch::Sender<bool>,
    admin: String,
    alice: String,
    bob: String,
    carol: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl Env {
    async fn start(settings: Settings) -> Env {
        let storage = TempDir::new("videos");
        let mut config = support::config(settings.backend, &storage).await;
        if let Some(n) = settings.max_upload_bytes {
            config.max_upload_bytes = n;
        }
        if let Some(n) = settings.max_concurrent_uploads {
            config.max_concurrent_uploads = n;
        }
        if let Some(n) = settings.max_uploads_per_user {
            config.max_uploads_per_user = n;
        }
        if let Some(s) = settings.sse_keepalive {
            config.sse_keepalive = s;
        }
        if let Some(models) = settings.served_models {
            config.served_models = models;
        }
        let broker = Broker::connect("memory://", 4).await.unwrap();
        let backend = ResultBackend::connect("memory://").await.unwrap();
        let api = TestApi::start_with_queue(config, broker.clone(), backend.clone())
            .await
            .expect("the server starts");
        let admin = api.admin_token().await;
        let mut tokens = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let (status, body) = api.create_user(&admin, name, PASSWORD, "user").await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            tokens.push(api.login(name, PASSWORD).await);
        }
        let [alice, bob, carol]: [String; 3] = tokens.try_into().unwrap();
        let env = Env {
            api,
            storage,
            broker,
            backend,
            stop: watch::channel(false).0,
            admin,
            alice,
            bob,
            carol,
        };
        if settings.processor {
            env.start_processor();
        }
        env
    }

    /// The real processor tasks, consuming the processor queue in this process.
    fn start_processor(&self) {
        let worker = argus_processor::tasks::register(
            Worker::new(
                self.broker.clone(),
                self.backend.clone(),
                WorkerOptions::default(),
            ),
            ProcessorConfig {
                storage: Storage::new(&self.storage.0),
                chunk_size: 32.into(),
                limits: Default::default(),
                result_inline_max: argus_processor::tasks::DEFAULT_RESULT_INLINE_MAX,
                default_model: argus_pipeline::tasks::DEFAULT_MODEL.into(),
                served_models: vec![argus_pipeline::tasks::DEFAULT_MODEL.into()],
            },
        );
        let stop = self.stop.subscribe();
        tokio::spawn(async move { worker.run(&[PROCESSOR_QUEUE], stop).await });
    }

    async fn answer(&self, builder: reqwest::RequestBuilder) -> Answer {
        let response = builder.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    async fn upload_form(&self, token: &str, form: Form) -> Answer {
        self.answer(
            self.api
                .request(Method::POST, "/api/v1/videos", Some(token))
                .multipart(form),
        )
        .await
    }

    /// A multipart upload of `bytes` as `filename` in the field `file`, with option fields.
    async fn upload(
        &self,
        token: &str,
        bytes: Vec<u8>,
        filename: &str,
        fields: &[(&str, &str)],
    ) -> Answer {
        let mut form = Form::new().part(
            "file",
            Part::bytes(bytes)
                .file_name(filename.to_string())
                .mime_str("video/mp4")
                .unwrap(),
        );
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        self.upload_form(token, form).await
    }

    /// A raw-body upload.
    async fn upload_raw(
        &self,
        token: &str,
        bytes: Vec<u8>,
        content_type: &str,
        query: &str,
    ) -> Answer {
        self.answer(
            self.api
                .request(Method::POST, &format!("/api/v1/videos{query}"), Some(token))
                .header(CONTENT_TYPE, content_type)
                .body(bytes),
        )
        .await
    }

    /// Uploads the sample video; its id.
    async fn upload_carphone(&self, token: &str) -> String {
        let answer = self
            .upload(token, carphone(), "carphone.mp4", &[("chunk_size", "32")])
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// `DELETE /api/v1/videos/{id}` as `token`'s.
    async fn delete(&self, id: &str, token: &str) -> Answer {
        self.answer(
            self.api
                .request(Method::DELETE, &format!("/api/v1/videos/{id}"), Some(token)),
        )
        .await
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.answer(self.api.request(Method::GET, path, Some(token)))
            .await
    }

    /// Polls the video until `done` holds.
    async fn wait_for(
        &self,
        token: &str,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let answer = self.get(&format!("/api/v1/videos/{id}"), token).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            if done(&answer.body) {
                return answer.body;
            }
            assert!(
                started.elapsed() < WAIT,
                "waited for {what}: {}",
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Files under `videos/`, `uploads/` and `results/`.
    fn stored_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        for dir in ["videos", "uploads", "results", "chunks"] {
            if let Ok(entries) = std::fs::read_dir(self.storage.0.join(dir)) {
                for entry in entries {
                    files.push(format!(
                        "{dir}/{}",
                        entry.unwrap().file_name().to_string_lossy()
                    ));
                }
            }
        }
        files.sort();
        files
    }

    /// Every user's videos, as the admin sees them.
    async fn all_videos(&self) -> Value {
        let answer = self
            .get("/api/v1/videos?all=true&limit=100", &self.admin)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    /// No file and no record of any video.
    async fn assert_nothing_kept(&self, what: &str) {
        assert_eq!(
            self.stored_files(),
            Vec::<String>::new(),
            "{what}: files left"
        );
        let all = self.all_videos().await;
        assert_eq!(all["total"], 0, "{what}: records left: {all}");
    }

    async fn metrics(&self) -> String {
        self.api
            .request(Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn addr(&self) -> String {
        self.api.base.trim_start_matches("http://").to_string()
    }
}

/// The value of the sample of `metric` whose labels include all of `labels`.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| {
            l.starts_with(&format!("{metric}{{"))
                || (labels.is_empty() && l.starts_with(&format!("{metric} ")))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `/readyz` once it is no longer 200 (the checks run every few seconds), or its answer
/// after the wait.
async fn not_ready(api: &TestApi) -> (StatusCode, Value) {
    let started = Instant::now();
    loop {
        let answer = api.get("/readyz", None).await;
        if answer.0 != StatusCode::OK || started.elapsed() > WAIT {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[track_caller]
fn assert_code(answer: &Answer, status: StatusCode, code: &str) {
    assert_error(&(answer.status, answer.body.clone()), status, code);
}

// --- uploads ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_is_probed_split_and_detected_on() {
    let env = Env::start(Settings {
        processor: true,
        ..Settings::default()
    })
    .await;
    let bytes = carphone();
    let answer = env
        .upload(
            &env.alice,
            bytes.clone(),
            "dir/carphone.mp4",
            &[
                ("chunk_size", "32"),
                ("classes", "person"),
                ("classes", "car,tie"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let body = &answer.body;
    let id = body["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(answer.headers[LOCATION], format!("/api/v1/videos/{id}"));
    assert_eq!(body["status"], "queued");
    assert_eq!(body["owner"], "alice");
    assert_eq!(body["filename"], "carphone.mp4", "path components removed");
    assert_eq!(body["size_bytes"], bytes.len());
    assert_eq!(body["content_type"], "video/mp4");
    assert_eq!(
        body["options"],
        json!({"chunk_size": 32, "classes": ["person", "car", "tie"]})
    );
    assert_eq!(body["video"]["frame_count"], 120, "probed before queueing");
    assert_eq!(body["video"]["width"], 176);
    assert_eq!(body["progress"]["frames_total"], 120);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["links"]["self"], format!("/api/v1/videos/{id}"));
    assert_eq!(
        body["links"]["result"],
        format!("/api/v1/videos/{id}/result")
    );
    assert_eq!(
        body["links"]["events"],
        format!("/api/v1/videos/{id}/events")
    );
    assert!(body["task_id"].is_string());

    // Stored under its id with the file's extension, byte for byte; nothing in uploads/.
    assert_eq!(env.stored_files(), [format!("videos/{id}.mp4")]);
    assert_eq!(
        std::fs::read(env.storage.0.join(format!("videos/{id}.mp4"))).unwrap(),
        bytes
    );

    // The processor probes and splits it; without detectors it stays detecting.
    let detecting = env
        .wait_for(&env.alice, id, "detecting", |v| v["status"] == "detecting")
        .await;
    let progress = &detecting["progress"];
    assert_eq!(progress["frames_total"], 120, "{detecting}");
    assert_eq!(progress["frames_done"], 0);
    assert_eq!(progress["percent"], 0.0);
    let chunks = progress["chunks_total"].as_u64().unwrap();
    assert!(
        (2..=8).contains(&chunks),
        "120 frames in chunks of ~32: {detecting}"
    );
    assert_eq!(detecting["task_id"], body["task_id"]);
    assert!(detecting.get("summary").is_none());

    // Its chunks wait for a detector: the queue depth the autoscaler reads.
    let started = Instant::now();
    loop {
        let text = env.metrics().await;
        let detector = sample(&text, "argus_queue_messages", &[("queue", DETECTOR_QUEUE)]);
        let processor = sample(&text, "argus_queue_messages", &[("queue", PROCESSOR_QUEUE)]);
        if detector == Some(chunks as f64) && processor == Some(0.0) {
            assert_eq!(
                sample(&text, "argus_videos", &[("status", "detecting")]),
                Some(1.0),
                "the listener recorded the status: {text}"
            );
            break;
        }
        assert!(started.elapsed() < WAIT, "queue depths: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_uploads_take_options_from_the_query() {
    let env = Env::start(Settings {
        processor: true,
        ..Settings::default()
    })
    .await;
    let bytes = carphone();
    // curl --data-binary @car.mp4 -H 'Content-Type: video/mp4' '…?filename=car.mp4&…'
    let answer = env
        .upload_raw(
            &env.bob,
            bytes.clone(),
            "video/mp4",
            "?filename=my%20car.MP4&chunk_size=64&score_threshold=0.5&classes=person,car&classes=dog",
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let id = answer.body["id"].as_str().unwrap().to_string();
    assert_eq!(answer.headers[LOCATION], format!("/api/v1/videos/{id}"));
    assert_eq!(answer.body["filename"], "my car.MP4");
    assert_eq!(answer.body["size_bytes"], bytes.len());
    assert_eq!(
        answer.body["options"],
        json!({"chunk_size": 64, "score_threshold": 0.5, "classes": ["person", "car", "dog"]})
    );
    assert!(env.stored_files().contains(&format!("videos/{id}.mp4")));

    // application/octet-stream without a name: stored without an extension, probed by content.
    let answer = env
        .upload_raw(&env.bob, bytes, "application/octet-stream", "")
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let plain = answer.body["id"].as_str().unwrap().to_string();
    assert_eq!(answer.body["filename"], "upload");
    assert_eq!(answer.body["content_type"], "application/octet-stream");
    assert!(env.stored_files().contains(&format!("videos/{plain}")));

    for id in [&id, &plain] {
        let state = env
            .wait_for(&env.bob, id, "detecting", |v| v["status"] == "detecting")
            .await;
        assert_eq!(state["progress"]["frames_total"], 120, "{state}");
    }
    // chunk_size 64 gives fewer chunks than the processor's default of 32 would.
    let big = env
        .get(&format!("/api/v1/videos/{id}"), &env.bob)
        .await
        .body;
    let small = env
        .get(&format!("/api/v1/videos/{plain}"), &env.bob)
        .await
        .body;
    assert!(
        big["progress"]["chunks_total"].as_u64() < small["progress"]["chunks_total"].as_u64(),
        "{big} {small}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_celery_message_carries_the_options_as_kwargs() {
    let env = Env::start(Settings::default()).await;
    let answer = env
        .upload(
            &env.carol,
            carphone(),
            "c.mp4",
            &[
                ("model", "coco-centernet"),
                ("chunk_size", "16"),
                ("score_threshold", "0.4"),
                ("classes", "person, car"),
                ("annotate", "on"),
                (
                    "zones",
                    r#"[{"name":"door","points":[[0,0],[176,0],[176,72]]}]"#,
                ),
                (
                    "lines",
                    r#"[{"start":[0.5,0],"end":[0.5,1],"normalized":true}]"#,
                ),
                ("stride", "2"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let id = answer.body["id"].as_str().unwrap();

    // Consume the processor queue ourselves, as a worker would.
    let mut queue = env.broker.consume(PROCESSOR_QUEUE).await.unwrap();
    let incoming = tokio::time::timeout(Duration::from_secs(5), queue.recv())
        .await
        .expect("a message within 5 s")
        .expect("the queue is open");
    let celery = incoming.message.as_ref().expect("a Celery message");
    assert_eq!(celery.headers.task, "process_video");
    assert_eq!(celery.properties.content_type, "application/json");
    let message = TaskMessage::from_celery(celery).unwrap();
    assert!(
        message.args.is_empty(),
        "keyword arguments only: {:?}",
        message.args
    );
    assert_eq!(message.kwargs["video_id"], id);
    assert_eq!(message.kwargs["chunk_size"], 16);
    assert_eq!(message.kwargs["classes"], json!(["person", "car"]));
    assert_eq!(message.kwargs["annotate"], true);
    assert_eq!(
        message.kwargs["zones"][0]["points"][2],
        json!([176.0, 72.0])
    );
    assert_eq!(message.kwargs["lines"][0]["normalized"], true);
    assert_eq!(message.kwargs["stride"], 2);
    let payload: ProcessVideo = message.payload().unwrap();
    assert_eq!(
        payload,
        ProcessVideo {
            video_id: id.to_string(),
            options: VideoOptions {
                model: Some("coco-centernet".into()),
                chunk_size: Some(16),
                score_threshold: Some(0.4),
                classes: Some(vec!["person".into(), "car".into()]),
                annotate: Some(true),
                zones: payload.options.zones.clone(),
                lines: payload.options.lines.clone(),
                stride: Some(2),
                ..VideoOptions::default()
            },
        }
    );
    // The message's id is the run: the task id of the record and of the queued state.
    assert_eq!(answer.body["task_id"], message.id);
    let state = env.backend.get_state(id).await.unwrap().expect("a state");
    assert_eq!(state.status, VideoStatus::Queued);
    assert_eq!(state.task_id.as_deref(), Some(message.id.as_str()));
    incoming.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_leave_nothing() {
    let too_many_zones = format!(
        "[{}]",
        vec![TRIANGLE.trim_matches(['[', ']']); 17].join(",")
    );
    let env = Env::start(Settings::default()).await;
    let scratch = TempDir::new("media");
    let audio = ffmpeg(
        &scratch,
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-c:a",
            "aac",
        ],
        "tone.m4a",
    );
    let full = carphone();
    // A playlist FFmpeg would follow to a file on the server (another user's video, say).
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.0,\n{}\n#EXT-X-ENDLIST\n",
        media("carphone_pristine.mp4").display()
    )
    .into_bytes();
    // carphone's index (moov) is at the end: the first half has none.
    let truncated = full[..full.len() / 2].to_vec();
    let token = env.alice.clone();

    let cases: Vec<(&str, Answer, StatusCode, &str)> = vec![
        (
            "empty file",
            env.upload(&token, Vec::new(), "empty.mp4", &[]).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_file",
        ),
        (
            "empty raw body",
            env.upload_raw(&token, Vec::new(), "video/mp4", "").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_file",
        ),
        (
            "text",
            env.upload(&token, b"just some text\n".repeat(100), "notes.txt", &[])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_video",
        ),
        (
            "playlist",
            env.upload(&token, playlist, "list.m3u8", &[]).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_video",
        ),
        (
            "audio only",
            env.upload(&token, audio, "tone.m4a", &[]).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_video_stream",
        ),
        (
            "truncated before its index",
            env.upload(&token, truncated.clone(), "half.mp4", &[]).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_video",
        ),
        (
            "truncated raw",
            env.upload_raw(&token, truncated, "video/mp4", "?filename=half.mp4")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_video",
        ),
        (
            "wrong field name",
            env.upload_form(
                &token,
                Form::new().part("video", Part::bytes(full.clone()).file_name("c.mp4")),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "no file field",
            env.upload_form(&token, Form::new().text("model", "coco-centernet"))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "two files",
            env.upload_form(
                &token,
                Form::new()
                    .part("file", Part::bytes(full.clone()).file_name("a.mp4"))
                    .part("file", Part::bytes(full.clone()).file_name("b.mp4")),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "unknown model",
            env.upload(&token, full.clone(), "c.mp4", &[("model", "yolo-v8")])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_model",
        ),
        (
            "unknown model, raw",
            env.upload_raw(&token, full.clone(), "video/mp4", "?model=yolo-v8")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_model",
        ),
        (
            "annotate neither true nor false",
            env.upload(&token, full.clone(), "c.mp4", &[("annotate", "maybe")])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "bad chunk size",
            env.upload(&token, full.clone(), "c.mp4", &[("chunk_size", "0")])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "bad threshold, raw",
            env.upload_raw(&token, full.clone(), "video/mp4", "?score_threshold=high")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "unknown query option",
            env.upload_raw(&token, full.clone(), "video/mp4", "?colour=red")
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "not multipart at all",
            env.upload_raw(
                &token,
                b"this is not a multipart body".to_vec(),
                "multipart/form-data; boundary=XyZ",
                "",
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_multipart",
        ),
        (
            "multipart without boundary",
            env.upload_raw(&token, b"--x\r\n".to_vec(), "multipart/form-data", "")
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_multipart",
        ),
        (
            "multipart ending inside the file",
            env.upload_raw(
                &token,
                [
                    b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.mp4\"\r\n\r\n"
                        .as_slice(),
                    &full[..100_000],
                ]
                .concat(),
                "multipart/form-data; boundary=XyZ",
                "",
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_multipart",
        ),
        (
            "text/plain",
            env.upload_raw(&token, full.clone(), "text/plain", "").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "self-intersecting zone",
            env.upload(&token, full.clone(), "c.mp4", &[("zones", BOW_TIE)])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "zone outside the frame, raw",
            // carphone is 176×144: known only once probed.
            env.upload_raw(
                &token,
                full.clone(),
                "video/mp4",
                "?zones=%5B%7B%22points%22%3A%5B%5B0%2C0%5D%2C%5B300%2C0%5D%2C%5B0%2C100%5D%5D%7D%5D",
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "zero-length line",
            env.upload(
                &token,
                full.clone(),
                "c.mp4",
                &[("lines", r#"[{"start":[5,5],"end":[5,5]}]"#)],
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "too many zones",
            env.upload(&token, full.clone(), "c.mp4", &[("zones", too_many_zones.as_str())])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "zones without tracking",
            env.upload(
                &token,
                full.clone(),
                "c.mp4",
                &[("zones", TRIANGLE), ("track", "false")],
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "zones not JSON",
            env.upload(&token, full.clone(), "c.mp4", &[("zones", "door")])
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "stride and keyframes",
            env.upload(
                &token,
                full.clone(),
                "c.mp4",
                &[("stride", "4"), ("keyframes_only", "true")],
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
    ];
    for (what, answer, status, code) in &cases {
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        assert_code(answer, *status, code);
        env.assert_nothing_kept(what).await;
    }
    // The probe's reasons reach the client, naming the upload, never our paths.
    let storage = env.storage.0.display().to_string();
    for (what, answer, _, _) in &cases {
        let message = answer.body["message"].as_str().unwrap();
        assert!(!message.contains(&storage), "{what}: {message}");
    }
    let message = |what: &str| {
        cases.iter().find(|c| c.0 == what).unwrap().1.body["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        message("audio only").contains("tone.m4a has no video stream"),
        "{}",
        message("audio only")
    );
    assert!(message("truncated before its index").contains("half.mp4"));
    assert!(message("truncated before its index").contains("cut off before its index"));
    assert!(message("unknown model").contains("served models: coco-centernet"));
    assert!(message("wrong field name").contains("\"video\""));
    for (what, says) in [
        (
            "self-intersecting zone",
            "zones[0] \"zone-1\": the polygon crosses itself",
        ),
        (
            "zone outside the frame, raw",
            "outside the frame: the frame is 176×144",
        ),
        (
            "zero-length line",
            "lines[0] \"line-1\": start and end are the same point",
        ),
        ("too many zones", "at most 16 zones"),
        ("zones without tracking", "need track on"),
        ("zones not JSON", "zones must be JSON like"),
        ("stride and keyframes", "give one"),
    ] {
        assert!(message(what).contains(says), "{what}: {}", message(what));
    }

    // No token: 401, nothing read.
    let answer = env
        .answer(
            env.api
                .request(Method::POST, "/api/v1/videos", None)
                .header(CONTENT_TYPE, "video/mp4")
                .body(full.clone()),
        )
        .await;
    assert_code(&answer, StatusCode::UNAUTHORIZED, "missing_token");

    let text = env.metrics().await;
    assert_eq!(
        sample(&text, "argus_api_uploads_total", &[("result", "rejected")]),
        Some(cases.len() as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "argus_api_uploads_total", &[("result", "accepted")]),
        Some(0.0)
    );

    // And after all that, a good upload works.
    env.upload_carphone(&token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_limit_are_refused_at_once() {
    let bytes = carphone();
    let limit = bytes.len() as u64;
    let env = Env::start(Settings {
        max_upload_bytes: Some(limit),
        ..Settings::default()
    })
    .await;
    // Exactly at the limit: fine (multipart framing does not count against it).
    let answer = env.upload(&env.alice, bytes.clone(), "c.mp4", &[]).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let answer = env
        .upload_raw(&env.alice, bytes.clone(), "video/mp4", "")
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let kept = env.stored_files();
    assert_eq!(kept.len(), 2, "{kept:?}");

    let mut over = bytes.clone();
    over.push(0);
    let answer = env
        .upload_raw(&env.alice, over.clone(), "video/mp4", "")
        .await;
    assert_code(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let answer = env.upload(&env.alice, over.clone(), "c.mp4", &[]).await;
    assert_code(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // A body of unknown length that passes the limit and then stalls: the 413 comes as soon
    // as the limit is passed, not when the body ends (it never does).
    for content_type in ["video/mp4", "multipart/form-data; boundary=XyZ"] {
        let head: &[u8] = if content_type.starts_with("multipart") {
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.mp4\"\r\n\r\n"
        } else {
            b""
        };
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            std::iter::once(Ok(Bytes::copy_from_slice(head)))
                .chain(
                    over.chunks(64 * 1024)
                        .map(|c| Ok(Bytes::copy_from_slice(c))),
                )
                .collect();
        let body = reqwest::Body::wrap_stream(futures::StreamExt::chain(
            futures::stream::iter(chunks),
            futures::stream::pending(),
        ));
        let request = env
            .api
            .request(Method::POST, "/api/v1/videos", Some(&env.alice))
            .header(CONTENT_TYPE, content_type)
            .body(body);
        let answer = tokio::time::timeout(Duration::from_secs(10), env.answer(request))
            .await
            .unwrap_or_else(|_| panic!("{content_type}: no answer while the body stalls"));
        assert_code(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    // Only the two accepted uploads are kept.
    assert_eq!(env.stored_files(), kept);
    assert_eq!(env.all_videos().await["total"], 2);
}

/// Sends a request head and part of its body over a raw connection, and keeps it open.
fn partial_request(
    addr: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
    sent: usize,
) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/v1/videos HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..sent]).unwrap();
    stream.flush().unwrap();
    stream
}

/// Waits until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < WAIT, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_cut_off_midway_leave_nothing() {
    let env = Env::start(Settings::default()).await;
    let video = carphone();
    let multipart = [
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
            .as_slice(),
        &video,
        b"\r\n--XyZ--\r\n",
    ]
    .concat();
    for (content_type, body) in [
        ("video/mp4", &video),
        ("multipart/form-data; boundary=XyZ", &multipart),
    ] {
        let uploads = env.storage.0.join("uploads");
        let stream = partial_request(&env.addr(), &env.alice, content_type, body, body.len() / 2);
        // Streamed to a file in uploads/ as it arrives…
        eventually("the upload to reach storage", || {
            std::fs::read_dir(&uploads)
                .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
                .unwrap_or(false)
        })
        .await;
        // …and gone with its connection.
        drop(stream);
        eventually("the partial upload to be removed", || {
            std::fs::read_dir(&uploads)
                .map(|d| d.count() == 0)
                .unwrap_or(true)
        })
        .await;
        env.assert_nothing_kept(content_type).await;
    }
    // The server still takes uploads.
    env.upload_carphone(&env.alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_concurrency_limit_get_429() {
    let env = Env::start(Settings {
        max_concurrent_uploads: Some(1),
        ..Settings::default()
    })
    .await;
    let video = carphone();
    // One upload in progress holds the only slot.
    let mut slow = partial_request(&env.addr(), &env.alice, "video/mp4", &video, 1000);
    let uploads = env.storage.0.join("uploads");
    eventually("the slow upload to start", || {
        std::fs::read_dir(&uploads)
            .map(|d| d.count() == 1)
            .unwrap_or(false)
    })
    .await;
    let answer = env
        .upload_raw(&env.bob, video.clone(), "video/mp4", "")
        .await;
    assert_code(&answer, StatusCode::TOO_MANY_REQUESTS, "too_many_uploads");
    let retry: u64 = answer.headers[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    // The slow one finishes and is accepted; the slot is free again.
    slow.write_all(&video[1000..]).unwrap();
    let mut response = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !response.contains("\r\n\r\n") {
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed: {response}");
        response.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    let answer = env.upload_raw(&env.bob, video, "video/mp4", "").await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_from_three_users() {
    let env = Env::start(Settings {
        processor: true,
        max_concurrent_uploads: Some(32),
        // Eight at once from each user.
        max_uploads_per_user: Some(8),
        ..Settings::default()
    })
    .await;
    let video = carphone();
    let users = [
        ("alice", &env.alice),
        ("bob", &env.bob),
        ("carol", &env.carol),
    ];
    let uploads = (0..24).map(|i| {
        let (name, token) = users[i % 3];
        let video = video.clone();
        let env = &env;
        async move {
            let answer = env
                .upload(token, video, &format!("{name}-{i}.mp4"), &[])
                .await;
            (name, token, answer)
        }
    });
    let answers = futures::future::join_all(uploads).await;
    let mut ids = HashSet::new();
    for (name, _, answer) in &answers {
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        assert_eq!(answer.body["owner"], *name);
        assert!(ids.insert(answer.body["id"].as_str().unwrap().to_string()));
    }
    assert_eq!(ids.len(), 24);
    for (name, token) in users {
        let list = env.get("/api/v1/videos?limit=100", token).await.body;
        assert_eq!(list["total"], 8, "{name}: {list}");
        let mine: HashSet<String> = list["videos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        let expected: HashSet<String> = answers
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(_, _, a)| a.body["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(mine, expected, "{name}");
        // Nobody sees anybody else's.
        for (other, _, answer) in &answers {
            if *other != name {
                let id = answer.body["id"].as_str().unwrap();
                let answer = env.get(&format!("/api/v1/videos/{id}"), token).await;
                assert_code(&answer, StatusCode::NOT_FOUND, "video_not_found");
            }
        }
    }
    assert_eq!(env.all_videos().await["total"], 24);
    assert_eq!(env.stored_files().len(), 24);
    // Every one of them gets split.
    for (_, token, answer) in &answers {
        let id = answer.body["id"].as_str().unwrap();
        env.wait_for(token, id, "detecting", |v| v["status"] == "detecting")
            .await;
    }
}

// --- reading and deleting -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_video_is_404_on_every_route() {
    let env = Env::start(Settings::default()).await;
    let id = env.upload_carphone(&env.alice).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let routes = |id: &str| {
        vec![
            (Method::GET, format!("/api/v1/videos/{id}")),
            (Method::GET, format!("/api/v1/videos/{id}/result")),
            (
                Method::GET,
                format!("/api/v1/videos/{id}/result?format=csv"),
            ),
            (Method::GET, format!("/api/v1/videos/{id}/events")),
            (Method::DELETE, format!("/api/v1/videos/{id}")),
        ]
    };
    for ((method, path), (_, missing_path)) in routes(&id).into_iter().zip(routes(&missing)) {
        let theirs = env
            .answer(env.api.request(method.clone(), &path, Some(&env.bob)))
            .await;
        let absent = env
            .answer(
                env.api
                    .request(method.clone(), &missing_path, Some(&env.bob)),
            )
            .await;
        assert_code(&theirs, StatusCode::NOT_FOUND, "video_not_found");
        // The same answer as for a video that does not exist, but for the id itself.
        assert_eq!(
            theirs.body.to_string().replace(&id, &missing),
            absent.body.to_string(),
            "{method} {path}"
        );
        assert_eq!(
            theirs.headers.get(CONTENT_TYPE),
            absent.headers.get(CONTENT_TYPE)
        );
    }
    for bad in ["not-a-uuid", "..%2F..%2Fetc", "7d0f4a52"] {
        for (method, path) in routes(bad) {
            let answer = env
                .answer(env.api.request(method.clone(), &path, Some(&env.alice)))
                .await;
            assert_code(&answer, StatusCode::NOT_FOUND, "video_not_found");
        }
    }
    // Untouched by bob's DELETE; the owner and admins see it.
    let answer = env.get(&format!("/api/v1/videos/{id}"), &env.alice).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"], "queued");
    let answer = env.get(&format!("/api/v1/videos/{id}"), &env.admin).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["owner"], "alice");
    assert_eq!(env.stored_files().len(), 1);
    // Bob's own list is empty.
    let list = env.get("/api/v1/videos", &env.bob).await.body;
    assert_eq!(list["total"], 0, "{list}");
}

async fn list_pagination_and_status_filter(backend: Backend) {
    let env = Env::start(Settings {
        backend,
        ..Settings::default()
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(env.upload_carphone(&env.alice).await);
    }
    env.upload_carphone(&env.bob).await;
    // Fixture: one run fails, one is cancelled (what workers and a DELETE elsewhere would do).
    let failed_run = env
        .backend
        .get_state(&ids[0])
        .await
        .unwrap()
        .unwrap()
        .task_id
        .unwrap();
    assert!(
        argus_pipeline::run::fail_video(&env.backend, &ids[0], &failed_run, "boom")
            .await
            .unwrap()
    );
    argus_pipeline::run::cancel_video(&env.backend, &ids[1])
        .await
        .unwrap();

    async fn page(env: &Env, query: &str) -> Value {
        let answer = env.get(&format!("/api/v1/videos{query}"), &env.alice).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
        answer.body
    }
    let listed = |body: &Value| -> Vec<String> {
        body["videos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let all = page(&env, "").await;
    assert_eq!(all["total"], 5);
    assert_eq!(listed(&all), newest_first);
    assert!(all.get("next_offset").is_none());
    let first = page(&env, "?limit=2").await;
    assert_eq!(
        (first["total"].clone(), first["limit"].clone()),
        (json!(5), json!(2))
    );
    assert_eq!(listed(&first), newest_first[..2]);
    assert_eq!(first["next_offset"], 2);
    let second = page(&env, "?limit=2&offset=2").await;
    assert_eq!(listed(&second), newest_first[2..4]);
    assert_eq!(second["next_offset"], 4);
    let last = page(&env, "?limit=2&offset=4").await;
    assert_eq!(listed(&last), newest_first[4..]);
    assert!(last.get("next_offset").is_none());
    assert_eq!(
        listed(&page(&env, "?offset=10").await),
        Vec::<String>::new()
    );

    // The live status shows at once; the filter follows it as the listener records it.
    let started = Instant::now();
    loop {
        let failed = page(&env, "?status=failed").await;
        if failed["total"] == 1 {
            assert_eq!(listed(&failed), [ids[0].clone()]);
            assert_eq!(failed["videos"][0]["status"], "failed");
            assert_eq!(failed["videos"][0]["error"], "boom");
            assert!(failed["videos"][0]["finished_at"].is_string());
            break;
        }
        assert!(started.elapsed() < WAIT, "{failed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancelled = page(&env, "?status=cancelled").await;
    assert_eq!(listed(&cancelled), [ids[1].clone()]);
    let queued = page(&env, "?status=queued&limit=100").await;
    assert_eq!(listed(&queued), newest_first[..3]);
    assert_eq!(page(&env, "?status=succeeded").await["total"], 0);

    // Admins list everyone's with all=true; users may not.
    let everyone = env.get("/api/v1/videos?all=true", &env.admin).await.body;
    assert_eq!(everyone["total"], 6);
    let answer = env.get("/api/v1/videos?all=true", &env.alice).await;
    assert_code(&answer, StatusCode::FORBIDDEN, "forbidden");
    // Without all=true an admin sees their own (none).
    assert_eq!(env.get("/api/v1/videos", &env.admin).await.body["total"], 0);

    for bad in ["?limit=0", "?limit=101"] {
        let answer = env.get(&format!("/api/v1/videos{bad}"), &env.alice).await;
        assert_code(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    }
    for bad in ["?status=done", "?limit=x", "?offset=-1"] {
        let answer = env.get(&format!("/api/v1/videos{bad}"), &env.alice).await;
        assert_code(&answer, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let text = env.metrics().await;
    for (status, n) in [
        ("queued", 4.0),
        ("failed", 1.0),
        ("cancelled", 1.0),
        ("succeeded", 0.0),
    ] {
        assert_eq!(
            sample(&text, "argus_videos", &[("status", status)]),
            Some(n),
            "{status}: {text}"
        );
    }
}

async fn delete_removes_everything(backend: Backend) {
    let env = Env::start(Settings {
        backend,
        processor: true,
        ..Settings::default()
    })
    .await;
    let id = env.upload_carphone(&env.alice).await;
    let keep = env.upload_carphone(&env.alice).await;
    let detecting = env
        .wait_for(&env.alice, &id, "detecting", |v| v["status"] == "detecting")
        .await;
    let task_id = detecting["task_id"].as_str().unwrap().to_string();
    // A result file too (fixture), to see it removed.
    Storage::new(&env.storage.0)
        .write_result(&id, b"{}")
        .unwrap();

    let answer = env.delete(&id, &env.alice).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);

    let answer = env.get(&format!("/api/v1/videos/{id}"), &env.alice).await;
    assert_code(&answer, StatusCode::NOT_FOUND, "video_not_found");
    assert!(
        env.backend.get_state(&id).await.unwrap().is_none(),
        "state deleted"
    );
    // The run was cancelled: a Celery client waiting on it gets REVOKED.
    let celery = env.backend.get_result(&task_id).await.unwrap().unwrap();
    assert_eq!(celery["status"], "REVOKED", "{celery}");
    assert!(
        env.stored_files().iter().all(|f| !f.contains(&id)),
        "{:?}",
        env.stored_files()
    );
    let list = env.get("/api/v1/videos", &env.alice).await.body;
    assert_eq!(list["total"], 1);
    assert_eq!(list["videos"][0]["id"], keep);
    let answer = env.delete(&id, &env.alice).await;
    assert_code(&answer, StatusCode::NOT_FOUND, "video_not_found");

    // An admin deletes another user's video; a queued one too.
    let answer = env.delete(&keep, &env.admin).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    env.assert_nothing_kept("after deleting both").await;
}

/// A DELETE that lands before the processor takes the video: the late `process_video` finds
/// the video's tombstone and brings nothing back (no state, no file, no record), and its Celery
/// result says REVOKED as the API says the video is gone. (It used to start the state afresh
/// and leave a failed video in the backend.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_before_the_processor_starts_stays_deleted() {
    let env = Env::start(Settings::default()).await; // no processor yet
    let id = env.upload_carphone(&env.alice).await;
    let video = env
        .get(&format!("/api/v1/videos/{id}"), &env.alice)
        .await
        .body;
    let task_id = video["task_id"].as_str().unwrap().to_string();
    let answer = env.delete(&id, &env.alice).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);

    env.start_processor();
    let started = Instant::now();
    while env.broker.queue_depth(PROCESSOR_QUEUE).await.unwrap() > 0 {
        assert!(started.elapsed() < WAIT, "process_video never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Taken: let it run to its end (it would probe, fail and write a state back).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.backend.get_state(&id).await.unwrap(), None, "no state");
    assert!(env.backend.is_deleted(&id).await.unwrap());
    let celery = env.backend.get_result(&task_id).await.unwrap().unwrap();
    assert_eq!(celery["status"], "REVOKED", "{celery}");
    let answer = env.get(&format!("/api/v1/videos/{id}"), &env.alice).await;
    assert_code(&answer, StatusCode::NOT_FOUND, "video_not_found");
    env.assert_nothing_kept("a delete before the processor")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_the_current_state_then_every_change() {
    let env = Env::start(Settings {
        sse_keepalive: Some(1),
        ..Settings::default()
    })
    .await;
    let id = env.upload_carphone(&env.alice).await;
    let mut events = EventStream::open(&env.api, &id, &env.alice).await;
    let mut keepalives = 0;
    let first = events.state(&mut keepalives).await.unwrap();
    assert_eq!(first["id"], id);
    assert_eq!(first["status"], "queued");
    assert_eq!(first["progress"]["frames_total"], 120);
    // Nothing happens for a while: keepalive comments.
    assert_eq!(events.next().await.as_deref(), Some(": keepalive"));

    // The processor starts: splitting, then detecting with its chunks.
    env.start_processor();
    let mut seen = Vec::new();
    loop {
        let event = events.state(&mut keepalives).await.unwrap();
        seen.push(event["status"].as_str().unwrap().to_string());
        if event["status"] == "detecting" {
            assert!(
                event["progress"]["chunks_total"].as_u64().unwrap() >= 2,
                "{event}"
            );
            break;
        }
    }
    assert_eq!(seen, ["splitting", "detecting"]);

    // Deleting it cancels it: the last event, then the stream ends.
    let answer = env.delete(&id, &env.alice).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let last = events.state(&mut keepalives).await.unwrap();
    assert_eq!(last["status"], "cancelled");
    assert_eq!(last["error"], "cancelled");
    assert_eq!(
        events.state(&mut keepalives).await,
        None,
        "closed after a final state"
    );
}

/// Fixture: a result document as the merge writes it.
fn result_document() -> Value {
    json!({
        "video": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "codec": "h264", "width": 176,
                  "height": 144, "rotation": 0, "fps": 29.97, "frame_count": 120,
                  "duration_s": 4.004, "stream_index": 0, "time_base": [1, 30000], "start_pts": 0},
        "model": {"name": "coco-centernet", "adapter": "centernet", "input_size": [512, 512],
                  "score_threshold": 0.3, "devices": ["cpu"]},
        "frames": [
            {"index": 0, "pts_ms": 0.0, "detections": [
                {"label": "person", "class_id": 0, "score": 0.75, "box": [3.5, 0.0, 174.25, 144.0]},
                {"label": "tie", "class_id": 27, "score": 0.5, "box": [80.0, 100.0, 90.0, 140.0]}]},
            {"index": 1, "pts_ms": 33.367, "detections": []},
            {"index": 2, "pts_ms": 66.733, "detections": [
                {"label": "person", "class_id": 0, "score": 0.625, "box": [4.0, 1.0, 170.0, 143.5]}]}
        ],
        "warnings": ["a warning for people"],
        "summary": {"frames_processed": 3, "frames_skipped": 0, "video_duration_s": 4.004,
                    "wall_time_s": 1.5, "frames_per_second": 2.0, "chunks": 1,
                    "classes": [{"label": "person", "class_id": 0, "objects": 2, "frames": 2},
                                {"label": "tie", "class_id": 27, "objects": 1, "frames": 1}],
                    "top_classes": ["person", "tie"], "most_persons": {"index": 0, "count": 1}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_and_their_exports() {
    let env = Env::start(Settings::default()).await;
    let id = env.upload_carphone(&env.alice).await;
    let result_path = format!("/api/v1/videos/{id}/result");

    // Not finished: 409 with its status.
    for query in ["", "?format=coco", "?format=csv"] {
        let answer = env.get(&format!("{result_path}{query}"), &env.alice).await;
        assert_code(&answer, StatusCode::CONFLICT, "not_ready");
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("is queued"),
            "{}",
            answer.body
        );
    }

    // Fixture: the run succeeds and its result is in storage.
    let document = result_document();
    let written = serde_json::to_vec_pretty(&document).unwrap();
    Storage::new(&env.storage.0)
        .write_result(&id, &written)
        .unwrap();
    argus_pipeline::store::update_state(&env.backend, &id, |old| {
        let mut s = old.unwrap().clone();
        s.status = VideoStatus::Succeeded;
        s.frames_done = 120;
        s.frames_total = 120;
        Some(s)
    })
    .await
    .unwrap()
    .expect("queued → succeeded");

    let video = env
        .get(&format!("/api/v1/videos/{id}"), &env.alice)
        .await
        .body;
    assert_eq!(video["status"], "succeeded");
    assert_eq!(video["progress"]["percent"], 100.0);
    assert_eq!(video["summary"], document["summary"]);
    assert_eq!(video["warnings"], json!(["a warning for people"]));
    assert!(video["finished_at"].is_string());

    // JSON: the file itself.
    let response = env
        .api
        .request(Method::GET, &result_path, Some(&env.alice))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.bytes().await.unwrap(), written);

    // COCO.
    let coco = env
        .get(&format!("{result_path}?format=coco"), &env.alice)
        .await;
    assert_eq!(coco.status, StatusCode::OK);
    let coco = coco.body;
    let images = coco["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[2]["id"], 3);
    assert_eq!(images[2]["frame_index"], 2);
    assert_eq!(images[2]["pts_ms"], 66.733);
    assert_eq!(
        (images[0]["width"].clone(), images[0]["height"].clone()),
        (json!(176), json!(144))
    );
    let annotations = coco["annotations"].as_array().unwrap();
    assert_eq!(annotations.len(), 3);
    assert_eq!(annotations[0]["image_id"], 1);
    assert_eq!(annotations[0]["bbox"], json!([3.5, 0.0, 170.75, 144.0]));
    assert_eq!(annotations[0]["score"], 0.75);
    assert_eq!(annotations[1]["category_id"], 28);
    assert_eq!(annotations[2]["image_id"], 3);
    assert_eq!(
        coco["categories"],
        json!([{"id": 1, "name": "person", "supercategory": "", "class_id": 0},
               {"id": 28, "name": "tie", "supercategory": "", "class_id": 27}])
    );
    assert_eq!(coco["info"]["video_id"], id);
    assert_eq!(coco["videos"][0]["file_name"], "carphone.mp4");

    // CSV.
    let response = env
        .api
        .request(
            Method::GET,
            &format!("{result_path}?format=csv"),
            Some(&env.alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&format!("{id}.csv")));
    assert_eq!(
        response.text().await.unwrap(),
        "frame,pts_ms,label,class_id,score,x1,y1,x2,y2,track_id,predicted\n\
         0,0,person,0,0.75,3.5,0,174.25,144,,0\n\
         0,0,tie,27,0.5,80,100,90,140,,0\n\
         2,66.733,person,0,0.625,4,1,170,143.5,,0\n"
    );
    let answer = env
        .get(&format!("{result_path}?format=xml"), &env.alice)
        .await;
    assert_code(&answer, StatusCode::BAD_REQUEST, "invalid_query");

    // A finished video's event stream: its state, then the end.
    let mut events = EventStream::open(&env.api, &id, &env.alice).await;
    let mut keepalives = 0;
    let only = events.state(&mut keepalives).await.unwrap();
    assert_eq!(only["status"], "succeeded");
    assert_eq!(events.state(&mut keepalives).await, None);

    // The result file gone: 410.
    std::fs::remove_file(env.storage.0.join(format!("results/{id}.json"))).unwrap();
    let answer = env.get(&result_path, &env.alice).await;
    assert_code(&answer, StatusCode::GONE, "result_gone");

    // Failed and cancelled videos: 409 with the reason.
    let failed = env.upload_carphone(&env.alice).await;
    let run = env
        .backend
        .get_state(&failed)
        .await
        .unwrap()
        .unwrap()
        .task_id
        .unwrap();
    argus_pipeline::run::fail_video(&env.backend, &failed, &run, "the file is damaged")
        .await
        .unwrap();
    let answer = env
        .get(&format!("/api/v1/videos/{failed}/result"), &env.alice)
        .await;
    assert_code(&answer, StatusCode::CONFLICT, "video_failed");
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("the file is damaged"));
    let cancelled = env.upload_carphone(&env.alice).await;
    argus_pipeline::run::cancel_video(&env.backend, &cancelled)
        .await
        .unwrap();
    let answer = env
        .get(&format!("/api/v1/videos/{cancelled}/result"), &env.alice)
        .await;
    assert_code(&answer, StatusCode::CONFLICT, "video_cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_uploads_and_queue_depth() {
    let env = Env::start(Settings {
        // A second model: its own queue's depth is sampled too, for its detectors' autoscaler.
        served_models: Some(vec!["coco-centernet".into(), "bench-null".into()]),
        ..Settings::default()
    })
    .await;
    let size = carphone().len() as f64;
    env.upload_carphone(&env.alice).await;
    env.upload_carphone(&env.bob).await;
    let refused = env.upload(&env.bob, b"text".to_vec(), "t.txt", &[]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = env.metrics().await;
    let uploads = |result| sample(&text, "argus_api_uploads_total", &[("result", result)]);
    assert_eq!(uploads("accepted"), Some(2.0), "{text}");
    assert_eq!(uploads("rejected"), Some(1.0));
    assert_eq!(uploads("failed"), Some(0.0));
    assert_eq!(
        sample(&text, "argus_api_upload_bytes_total", &[]),
        Some(2.0 * size + 4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "argus_videos", &[("status", "queued")]),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "argus_videos", &[("status", "detecting")]),
        Some(0.0)
    );
    // Nothing consumes the processor queue here: both messages wait.
    assert_eq!(
        sample(&text, "argus_queue_messages", &[("queue", "processor")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "argus_queue_messages", &[("queue", "detector")]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "argus_queue_messages",
            &[("queue", "detector.bench-null")]
        ),
        Some(0.0),
        "{text}"
    );
    // The dead-letter queue's depth is there for its alert.
    assert_eq!(
        sample(&text, "argus_queue_messages", &[("queue", "argus.dlq")]),
        Some(0.0)
    );

    // /readyz checks the broker and the result backend too.
    let (status, body) = env.api.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["checks"],
        json!(["database", "broker", "result_backend"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_video_routes() {
    let env = Env::start(Settings::default()).await;
    let (status, spec) = env.api.get("/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let upload = &spec["paths"]["/api/v1/videos"]["post"];
    let content = &upload["requestBody"]["content"];
    assert_eq!(
        content["multipart/form-data"]["schema"]["$ref"],
        "#/components/schemas/UploadForm"
    );
    for raw in ["application/octet-stream", "video/*"] {
        assert!(content[raw].is_object(), "{raw}: {content}");
    }
    // Swagger UI shows a file picker for a binary string.
    let file = &spec["components"]["schemas"]["UploadForm"]["properties"]["file"];
    assert_eq!(file["type"], "string", "{file}");
    assert_eq!(file["format"], "binary", "{file}");
    assert_eq!(
        spec["components"]["schemas"]["UploadForm"]["required"],
        json!(["file"])
    );
    assert!(upload["responses"]["202"]["headers"]["Location"].is_object());
    for code in ["400", "401", "413", "415", "422", "429"] {
        assert!(upload["responses"][code].is_object(), "upload {code}");
    }
    assert_eq!(upload["security"], json!([{"oauth2": []}, {"bearer": []}]));
    let result = &spec["paths"]["/api/v1/videos/{id}/result"]["get"];
    for code in ["200", "404", "409", "410"] {
        assert!(result["responses"][code].is_object(), "result {code}");
    }
    assert!(result["responses"]["200"]["content"]["text/csv"].is_object());
    let events = &spec["paths"]["/api/v1/videos/{id}/events"]["get"];
    assert!(events["responses"]["200"]["content"]["text/event-stream"].is_object());
    let codes = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    for code in [
        "video_not_found",
        "not_a_video",
        "no_video_stream",
        "empty_file",
        "unknown_model",
        "too_many_uploads",
        "invalid_multipart",
    ] {
        assert!(codes.contains(&json!(code)), "{code}");
    }
    let statuses = &spec["components"]["schemas"]["VideoStatus"]["enum"];
    assert_eq!(
        *statuses,
        json!([
            "queued",
            "splitting",
            "detecting",
            "merging",
            "succeeded",
            "failed",
            "cancelled"
        ])
    );
}

/// The API as deployed: its own connections to a real RabbitMQ and Redis from the URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_rabbitmq_and_redis() {
    use argus_testkit::{RabbitServer, RedisServer};
    let (rabbit, redis) =
        tokio::task::spawn_blocking(|| (RabbitServer::start(), RedisServer::start()))
            .await
            .unwrap();
    let storage = TempDir::new("servers");
    let mut config = support::config(Backend::Sqlite, &storage).await;
    config.broker_url = argus_api::Secret::new(rabbit.url());
    config.result_backend = argus_api::Secret::new(redis.url());
    let api = TestApi::start_with(config, Vec::new())
        .await
        .expect("starts");
    let (status, body) = api.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["checks"],
        json!(["database", "broker", "result_backend"])
    );

    let token = api.admin_token().await;
    let upload = |bytes: Vec<u8>| {
        api.request(Method::POST, "/api/v1/videos?filename=c.mp4", Some(&token))
            .header(CONTENT_TYPE, "video/mp4")
            .body(bytes)
    };
    let (status, video) = api.send(upload(carphone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    let id = video["id"].as_str().unwrap().to_string();

    // The queued state is in Redis, the message in RabbitMQ's processor queue.
    let backend = ResultBackend::connect(&redis.url()).await.unwrap();
    let state = backend
        .get_state(&id)
        .await
        .unwrap()
        .expect("a state in Redis");
    assert_eq!(state.status, VideoStatus::Queued);
    assert_eq!(state.task_id.as_deref(), video["task_id"].as_str());
    let metrics = || async {
        api.request(Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let text = metrics().await;
    assert_eq!(
        sample(&text, "argus_queue_messages", &[("queue", "processor")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "argus_queue_messages", &[("queue", "detector")]),
        Some(0.0)
    );

    // A state change in Redis reaches the record through the listener's subscription.
    argus_pipeline::run::fail_video(&backend, &id, state.task_id.as_deref().unwrap(), "boom")
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let (_, list) = api.get("/api/v1/videos?status=failed", Some(&token)).await;
        if list["total"] == 1 {
            break;
        }
        assert!(started.elapsed() < WAIT, "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // RabbitMQ goes away: not ready (at the next round of checks), and an upload is refused
    // with nothing kept.
    tokio::task::spawn_blocking(move || drop(rabbit))
        .await
        .unwrap();
    let (status, body) = not_ready(&api).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("broker: "),
        "{body}"
    );
    let response = upload(carphone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(RETRY_AFTER));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable", "{body}");
    let (_, all) = api.get("/api/v1/videos?all=true", Some(&token)).await;
    assert_eq!(all["total"], 1, "only the first: {all}");
    let files: Vec<_> = std::fs::read_dir(storage.0.join("videos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(files, [format!("{id}.mp4")]);

    // Redis goes away too.
    drop(redis);
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = api.get("/readyz", None).await;
        if body["message"]
            .as_str()
            .is_some_and(|m| m.contains("result_backend: "))
            || started.elapsed() > WAIT
        {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("result_backend: "),
        "{body}"
    );
    // Reads fall back to the stored status.
    let (status, shown) = api.get(&format!("/api/v1/videos/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["status"], "failed");
    assert_eq!(shown["error"], "boom");
}

//! Signed webhooks against a local receiver, on real RabbitMQ, Redis and PostgreSQL:
//! - the notification of a video that ends is signed (HMAC-SHA256 over timestamp.body, checked
//!   here with the user's secret), retried through RabbitMQ's delay queues after two 500s, then
//!   delivered, and never sent again: not by a second status write, a read that repairs the
//!   record, nor a duplicated attempt message;
//! - the delivery log shows every attempt;
//! - a target the allow list does not name (127.0.0.2 while it names 127.0.0.1) is refused
//!   when given and again when an attempt is due, and a redirect to it is not followed: its
//!   listener never sees a connection.
//!
//! Every address contacted is a loopback one.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus_common::state::VideoStatus;
use argus_queue::backend::Backend as ResultBackend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

/// A minimal HTTP/1.1 receiver on a loopback address: records each request and answers with
/// the next planned response (`(status, extra header lines)`), then 200.
struct Receiver {
    addr: std::net::SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    /// Connections accepted, whether or not a request came.
    connections: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start(ip: &str, plan: Vec<(u16, String)>) -> Receiver {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
        let (got2, connections2) = (Arc::clone(&got), Arc::clone(&connections));
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                *connections2.lock().unwrap() += 1;
                let (got, plan) = (Arc::clone(&got2), Arc::clone(&plan));
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    got.lock().unwrap().push(request);
                    let (status, extra) = plan
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((200, String::new()));
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\n{extra}content-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Receiver {
            addr,
            got,
            connections,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests within {within:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        at: Instant::now(),
        path,
        headers,
        body,
    })
}

/// What a receiver does with the documented scheme: HMAC-SHA256 of `timestamp.body`.
fn verify(secret: &str, r: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(r.header("x-argus-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    r.header("x-argus-signature") == format!("sha256={want}")
}

async fn user(api: &TestApi, name: &str) -> String {
    let admin = api.admin_token().await;
    let (status, body) = api
        .create_user(&admin, name, "password-123456", "user")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    api.login(name, "password-123456").await
}

async fn upload_with(api: &TestApi, token: &str, query: &str) -> (StatusCode, Value) {
    api.send(
        api.request(
            Method::POST,
            &format!("/api/v1/videos?filename=c.mp4&{query}"),
            Some(token),
        )
        .header(reqwest::header::CONTENT_TYPE, "video/mp4")
        .body(carphone()),
    )
    .await
}

fn encode(url: &str) -> String {
    serde_urlencoded::to_string([("callback_url", url)]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_notification_is_retried_then_delivered_once() {
    use argus_testkit::{RabbitServer, RedisServer};
    let (rabbit, redis) =
        tokio::task::spawn_blocking(|| (RabbitServer::start(), RedisServer::start()))
            .await
            .unwrap();
    let storage = TempDir::new("webhooks");
    let mut config = support::config(Backend::Postgres, &storage).await;
    config.broker_url = argus_api::Secret::new(rabbit.url());
    config.result_backend = argus_api::Secret::new(redis.url());
    config.webhooks.allow = vec!["127.0.0.1".into()];
    config.webhooks.retry_delay = 1;
    config.webhooks.public_url = Some("https://argus.example.com/".into());
    let api = TestApi::start_with(config, Vec::new())
        .await
        .expect("starts");
    let receiver = Receiver::start(
        "127.0.0.1",
        vec![(500, String::new()), (503, String::new())],
    )
    .await;

    let token = user(&api, "alice").await;
    let (status, settings) = api.get("/api/v1/users/me/webhook", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let secret = settings["secret"].as_str().unwrap().to_string();
    assert!(settings["url"].is_null());
    // Stable until rotated.
    let (_, again) = api.get("/api/v1/users/me/webhook", Some(&token)).await;
    assert_eq!(again["secret"], secret.as_str());

    let (status, video) = upload_with(&api, &token, &encode(&receiver.url("/hook?k=1"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    let id = video["id"].as_str().unwrap().to_string();

    // The run ends as a processor would end it: in Redis; the API's listener sees it.
    let backend = ResultBackend::connect(&redis.url()).await.unwrap();
    let ended = Instant::now();
    moves_on(&backend, &id, VideoStatus::Succeeded).await;

    let got = receiver.wait_for(3, Duration::from_secs(30)).await;
    let (first, second, third) = (&got[0], &got[1], &got[2]);
    for r in &got {
        assert_eq!(r.path, "/hook?k=1");
        assert!(verify(&secret, r), "bad signature on {r:?}");
        assert!(!verify("whsec_another", r));
        assert_eq!(r.header("x-argus-event"), "video.succeeded");
        assert_eq!(r.header("content-type"), "application/json");
        // One notification: the same id and the same bytes on every attempt.
        assert_eq!(
            r.header("x-argus-delivery"),
            first.header("x-argus-delivery")
        );
        assert_eq!(r.body, first.body);
    }
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["event"], "video.succeeded");
    assert_eq!(body["video"]["id"], id.as_str());
    assert_eq!(body["video"]["status"], "succeeded");
    assert_eq!(
        body["video"]["links"]["result"],
        format!("https://argus.example.com/api/v1/videos/{id}/result")
    );
    // The timestamp is fresh and the signature changes with it.
    let now = chrono::Utc::now().timestamp();
    let ts: i64 = first.header("x-argus-timestamp").parse().unwrap();
    assert!((now - ts).abs() < 60, "{ts} vs {now}");
    // Retried after 1 s, then 2 s, through the broker's delay queues.
    let gaps = (
        second.at.duration_since(first.at),
        third.at.duration_since(second.at),
    );
    assert!(
        gaps.0 >= Duration::from_millis(900) && gaps.1 >= Duration::from_millis(1900),
        "{gaps:?}"
    );
    assert!(first.at.duration_since(ended) < Duration::from_secs(10));

    // The log: three attempts, the last delivered.
    let (status, log) = api
        .get(&format!("/api/v1/videos/{id}/webhooks"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let deliveries = log.as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{log}");
    let d = &deliveries[0];
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["id"], first.header("x-argus-delivery"));
    assert_eq!(d["event"], "video.succeeded");
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 200]);
    assert!(d["attempts"][0]["error"].as_str().unwrap().contains("500"));

    // Nothing is sent twice: not by reads that repair the record from the final state (each
    // writes it again), not by duplicates of every attempt's message.
    for _ in 0..3 {
        let (status, _) = api.get(&format!("/api/v1/videos/{id}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    for attempt in 1..=4 {
        let duplicate = TaskMessage::new(&argus_api::webhooks::DeliverWebhook {
            delivery_id: d["id"].as_str().unwrap().to_string(),
            attempt,
        });
        broker
            .send(argus_api::webhooks::WEBHOOK_QUEUE, &duplicate)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.got().len(), 3, "{:?}", receiver.got());

    // Another video of hers with no callback_url of its own goes to her default, and a failed
    // run is announced as such.
    let (status, settings) = api
        .send(
            api.request(Method::PUT, "/api/v1/users/me/webhook", Some(&token))
                .json(&json!({"url": receiver.url("/default")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (_, second_video) = upload_with(&api, &token, "").await;
    let second_id = second_video["id"].as_str().unwrap().to_string();
    argus_pipeline::store::update_state(&backend, &second_id, |old| {
        let mut s = old?.clone();
        s.status = VideoStatus::Failed;
        s.error = Some("the file is damaged".into());
        Some(s)
    })
    .await
    .unwrap();
    let got = receiver.wait_for(4, Duration::from_secs(20)).await;
    let failed = &got[3];
    assert_eq!(failed.path, "/default");
    assert_eq!(failed.header("x-argus-event"), "video.failed");
    assert!(verify(&secret, failed));
    let body: Value = serde_json::from_slice(&failed.body).unwrap();
    assert_eq!(body["video"]["error"], "the file is damaged");

    // A rotated secret signs what comes after; the old one no longer verifies.
    let (_, rotated) = api
        .send(api.request(
            Method::POST,
            "/api/v1/users/me/webhook/secret",
            Some(&token),
        ))
        .await;
    let rotated = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(rotated, secret);
    let (_, third_video) = upload_with(&api, &token, "").await;
    moves_on(
        &backend,
        third_video["id"].as_str().unwrap(),
        VideoStatus::Cancelled,
    )
    .await;
    let got = receiver.wait_for(5, Duration::from_secs(20)).await;
    assert_eq!(got[4].header("x-argus-event"), "video.cancelled");
    assert!(verify(&rotated, &got[4]) && !verify(&secret, &got[4]));

    // Deleting a video deletes its log.
    let db = argus_api::db::Db::open(&api.config.database_url())
        .await
        .unwrap();
    let logged = |table: &'static str| {
        let (db, id) = (db.clone(), id.clone());
        async move {
            let sql = if table == "webhook_deliveries" {
                "SELECT COUNT(*) FROM webhook_deliveries WHERE job_id = $1"
            } else {
                "SELECT COUNT(*) FROM webhook_attempts a JOIN webhook_deliveries d \
                 ON d.id = a.delivery_id WHERE d.job_id = $1"
            };
            let n: i64 = sqlx::query_scalar(sql)
                .bind(&id)
                .fetch_one(db.pool())
                .await
                .unwrap();
            n
        }
    };
    assert_eq!(
        (logged("webhook_deliveries").await, logged("attempts").await),
        (1, 3)
    );
    let attempts_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let (status, _) = api
        .send(api.request(
            Method::DELETE,
            &format!("/api/v1/videos/{id}"),
            Some(&token),
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(logged("webhook_deliveries").await, 0);
    let attempts_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(attempts_before - attempts_after, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_outside_the_allow_list_are_refused_and_never_contacted() {
    let storage = TempDir::new("webhooks-refused");
    let mut config = support::config(Backend::Sqlite, &storage).await;
    config.webhooks.allow = vec!["127.0.0.1".into()];
    config.webhooks.retry_delay = 1;
    config.webhooks.attempts = 2;
    let broker = Broker::connect("memory://", 4).await.unwrap();
    let broker_for_sweep = broker.clone();
    let backend = ResultBackend::connect("memory://").await.unwrap();
    let api = TestApi::start_with_queue(config.clone(), broker, backend.clone())
        .await
        .expect("starts");
    // The unlisted target: a loopback address the list does not name, listening, so that any
    // connection to it would be seen.
    let unlisted = Receiver::start("127.0.0.2", Vec::new()).await;
    let token = user(&api, "bob").await;

    // Refused when given: with an upload (nothing is kept) and as a default.
    for bad in [
        unlisted.url("/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]:9/".to_string(),
        "ftp://127.0.0.1/".to_string(),
        "http://user:pw@127.0.0.1/".to_string(),
    ] {
        let answer = upload_with(&api, &token, &encode(&bad)).await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
        let answer = api
            .send(
                api.request(Method::PUT, "/api/v1/users/me/webhook", Some(&token))
                    .json(&json!({"url": bad})),
            )
            .await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    }
    let answer = upload_with(&api, &token, &encode(&unlisted.url("/"))).await;
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.2 is a loopback address"),
        "{}",
        answer.1
    );
    let (_, list) = api.get("/api/v1/videos", Some(&token)).await;
    assert_eq!(list["total"], 0, "{list}");

    // A redirect to it is not followed: the 302 is an attempt that failed.
    let redirecting = Receiver::start(
        "127.0.0.1",
        vec![
            (302, format!("location: {}\r\n", unlisted.url("/"))),
            (307, format!("location: {}\r\n", unlisted.url("/"))),
        ],
    )
    .await;
    let (status, video) = upload_with(&api, &token, &encode(&redirecting.url("/r"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    let redirected_id = video["id"].as_str().unwrap().to_string();

    // Checked again when due: a URL that passed (here written straight into the database, as
    // a name that resolves elsewhere by then would) is refused at the attempt.
    let (status, video) = upload_with(&api, &token, "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    let sneaked_id = video["id"].as_str().unwrap().to_string();
    let db = argus_api::db::Db::open(&config.database_url())
        .await
        .unwrap();
    sqlx::query("UPDATE videos SET callback_url = $1 WHERE id = $2")
        .bind(unlisted.url("/sneaked"))
        .bind(&sneaked_id)
        .execute(db.pool())
        .await
        .unwrap();

    // Both runs end, as a processor would end them.
    moves_on(&backend, &redirected_id, VideoStatus::Succeeded).await;
    moves_on(&backend, &sneaked_id, VideoStatus::Cancelled).await;

    let log = |id: String| {
        let api = &api;
        let token = token.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (_, log) = api
                    .get(&format!("/api/v1/videos/{id}/webhooks"), Some(&token))
                    .await;
                if log[0]["status"] == "failed" {
                    return log;
                }
                assert!(Instant::now() < deadline, "{log}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let redirected = log(redirected_id).await;
    let codes: Vec<Value> = redirected[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(302), json!(307)], "{redirected}");
    assert_eq!(redirecting.got().len(), 2);

    let sneaked = log(sneaked_id).await;
    let attempts = sneaked[0]["attempts"].as_array().unwrap();
    // Refused is final: no second attempt.
    assert_eq!(attempts.len(), 1, "{sneaked}");
    assert!(attempts[0]["status_code"].is_null());
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.2 is a loopback address"),
        "{sneaked}"
    );
    assert_eq!(sneaked[0]["event"], "video.cancelled");

    // The sweep announces a run whose end was recorded without its notification (the replica
    // that recorded it died first): here a record made final straight in the database.
    let late = Receiver::start("127.0.0.1", Vec::new()).await;
    let (status, video) = upload_with(&api, &token, &encode(&late.url("/late"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{video}");
    let missed_id = video["id"].as_str().unwrap().to_string();
    let two_minutes_ago = (chrono::Utc::now() - chrono::Duration::minutes(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::query(
        "UPDATE videos SET status = 'failed', error = 'lost', finished_at = $1 WHERE id = $2",
    )
    .bind(&two_minutes_ago)
    .bind(&missed_id)
    .execute(db.pool())
    .await
    .unwrap();
    let webhooks = argus_api::webhooks::Webhooks::new(
        &config.webhooks,
        broker_for_sweep.clone(),
        argus_common::storage::Storage::new(&storage.0),
    )
    .unwrap();
    assert_eq!(webhooks.sweep(&db).await.unwrap(), 1);
    let got = late.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("x-argus-event"), "video.failed");
    // Once: a second sweep finds it announced.
    assert_eq!(webhooks.sweep(&db).await.unwrap(), 0);

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(late.got().len(), 1);
    assert_eq!(
        unlisted.connections(),
        0,
        "the unlisted target was contacted"
    );
}

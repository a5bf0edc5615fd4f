//! Logins and passwords against the real server over HTTP (support/): login throttling per name
//! and per client address (loopback clients bound to different 127.0.0.0/8 source addresses),
//! `X-Forwarded-For` behind trusted proxies only, the bounded hashing queue, the same answer
//! time for unknown users and wrong passwords, password changes and resets that end earlier
//! tokens, the last admin, and `nbf`. What touches the store runs on SQLite and PostgreSQL.

#[macro_use]
mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

on_both_backends!(
    password_change_ends_earlier_tokens,
    admin_reset_ends_the_users_tokens,
    the_last_admin_stays,
);

/// A client whose connections come from `source` (any 127.0.0.0/8 address reaches the server).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// One login: status, body and `Retry-After`.
struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
}

impl Answer {
    #[track_caller]
    fn assert(&self, status: StatusCode, code: &str) {
        assert_error(&(self.status, self.body.clone()), status, code);
    }

    /// A 429 `too_many_attempts` asking to wait `seconds`.
    #[track_caller]
    fn assert_throttled(&self, seconds: u64) {
        self.assert(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
        assert_eq!(self.retry_after, Some(seconds), "{}", self.body);
    }
}

async fn attempt(
    api: &TestApi,
    client: &reqwest::Client,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> Answer {
    let mut request = client
        .post(api.url("/api/v1/auth/token"))
        .form(&[("username", username), ("password", password)]);
    if let Some(value) = forwarded_for {
        request = request.header("X-Forwarded-For", value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        retry_after,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Five failures for a name, then 429 with `Retry-After` for that name only, known or not;
/// the wait doubles; a success starts the count again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_per_name() {
    let api = TestApi::start(Backend::Sqlite).await;
    let admin = api.admin_token().await;
    let (status, _) = api
        .create_user(&admin, "alice", "alice-password", "user")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let client = client_from("127.0.0.1");

    // A known name and an unknown one are throttled alike: a 429 tells nothing about names.
    for name in ["alice", "ghost"] {
        for _ in 0..5 {
            attempt(&api, &client, name, "wrong-password", None)
                .await
                .assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
        attempt(&api, &client, name, "wrong-password", None)
            .await
            .assert_throttled(1);
    }
    // Even the right password waits, but other names do not.
    attempt(&api, &client, "alice", "alice-password", None)
        .await
        .assert_throttled(1);
    api.login(ADMIN, ADMIN_PASSWORD).await;

    // After Retry-After, one more failure doubles the wait.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    attempt(&api, &client, "alice", "wrong-password", None)
        .await
        .assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
    attempt(&api, &client, "alice", "wrong-password", None)
        .await
        .assert_throttled(2);

    // A success resets the name: the next failure is a plain 401 again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    api.login("alice", "alice-password").await;
    attempt(&api, &client, "alice", "wrong-password", None)
        .await
        .assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
    api.login("alice", "alice-password").await;
}

/// Twenty failures from one address, whatever the names, block that address (and not others);
/// without trusted proxies `X-Forwarded-For` changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_per_address() {
    let api = TestApi::start_tuned(Backend::Sqlite, |c| c.login_attempts = 1000).await;
    let attacker = client_from("127.0.0.2");
    for i in 0..20 {
        attempt(
            &api,
            &attacker,
            &format!("spray{i}"),
            "wrong-password",
            Some(&format!("198.51.100.{i}")),
        )
        .await
        .assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    for forwarded in [None, Some("198.51.100.200")] {
        attempt(&api, &attacker, ADMIN, ADMIN_PASSWORD, forwarded)
            .await
            .assert_throttled(1);
    }
    // Another address logs in as usual.
    let other = attempt(&api, &client_from("127.0.0.3"), ADMIN, ADMIN_PASSWORD, None).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
}

/// Behind a trusted proxy the client is the right-most untrusted `X-Forwarded-For` address;
/// from any other peer the header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_trusted_proxies() {
    let api = TestApi::start_tuned(Backend::Sqlite, |c| {
        c.login_attempts = 1000;
        c.login_address_attempts = 3;
        c.trusted_proxies = vec!["127.0.0.1/32".to_string()];
    })
    .await;
    let proxy = client_from("127.0.0.1");
    for i in 0..3 {
        attempt(&api, &proxy, &format!("u{i}"), "wrong", Some("203.0.113.7"))
            .await
            .assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    for forwarded in [
        "203.0.113.7",
        // Through a second trusted hop.
        "203.0.113.7, 127.0.0.1",
        // A client cannot hide behind addresses it puts in front.
        "203.0.113.9, 203.0.113.7",
    ] {
        attempt(&api, &proxy, ADMIN, ADMIN_PASSWORD, Some(forwarded))
            .await
            .assert_throttled(1);
    }
    // Another client behind the same proxy is not blocked.
    let answer = attempt(&api, &proxy, ADMIN, ADMIN_PASSWORD, Some("203.0.113.8")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // An untrusted peer's header is ignored: its own address is throttled.
    let direct = client_from("127.0.0.5");
    for i in 0..3 {
        attempt(
            &api,
            &direct,
            &format!("v{i}"),
            "wrong",
            Some(&format!("203.0.113.{}", 20 + i)),
        )
        .await
        .assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    attempt(&api, &direct, ADMIN, ADMIN_PASSWORD, Some("203.0.113.99"))
        .await
        .assert_throttled(1);
}

/// 4 hashes run and 1 waits; a burst beyond that is answered 429 `hashing_busy` at once, with
/// `Retry-After`, and the server logs in normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashing_queue_is_bounded() {
    let api = TestApi::start_tuned(Backend::Sqlite, |c| {
        c.hash_queue = 1;
        c.login_attempts = 1000;
        c.login_address_attempts = 1000;
    })
    .await;
    let client = client_from("127.0.0.1");
    let attempts = (0..80).map(|i| {
        let name = if i % 2 == 0 {
            ADMIN.to_string()
        } else {
            format!("nobody{i}")
        };
        let (api, client) = (&api, &client);
        async move { attempt(api, client, &name, "wrong-password", None).await }
    });
    let answers = futures::future::join_all(attempts).await;
    let mut busy = 0;
    let mut checked = 0;
    for answer in &answers {
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.assert(StatusCode::TOO_MANY_REQUESTS, "hashing_busy");
            assert_eq!(answer.retry_after, Some(1));
            busy += 1;
        } else {
            answer.assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
            checked += 1;
        }
    }
    assert!(busy > 0, "{busy} busy, {checked} checked");
    assert!(checked >= 5, "{busy} busy, {checked} checked");
    api.login(ADMIN, ADMIN_PASSWORD).await;
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// An unknown name, a wrong password and a disabled user take the same time to refuse (argon2
/// runs for each); medians within 2x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_and_wrong_passwords_take_as_long() {
    let api = TestApi::start_tuned(Backend::Sqlite, |c| {
        c.login_attempts = 1000;
        c.login_address_attempts = 1000;
    })
    .await;
    let admin = api.admin_token().await;
    for name in ["alice", "bob"] {
        let (status, _) = api
            .create_user(&admin, name, "right-password", "user")
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = api
        .send(api.request(Method::DELETE, "/api/v1/users/bob", Some(&admin)))
        .await;
    assert_eq!(status, StatusCode::OK);

    let client = client_from("127.0.0.1");
    let kinds = [
        ("alice", "wrong-password"),
        ("ghost", "wrong-password"),
        ("bob", "right-password"),
    ];
    let mut times = vec![Vec::new(); kinds.len()];
    for round in 0..15 {
        for (i, (name, password)) in kinds.iter().enumerate() {
            let name = if *name == "ghost" {
                format!("ghost{round}")
            } else {
                name.to_string()
            };
            let started = Instant::now();
            attempt(&api, &client, &name, password, None)
                .await
                .assert(StatusCode::UNAUTHORIZED, "invalid_credentials");
            times[i].push(started.elapsed());
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    let (fastest, slowest) = (
        *medians.iter().min().unwrap(),
        *medians.iter().max().unwrap(),
    );
    assert!(
        slowest < fastest * 2,
        "medians (wrong password, unknown user, disabled user): {medians:?}"
    );
}

async fn put_json(
    api: &TestApi,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    api.send(api.request(Method::PUT, path, token).json(&body))
        .await
}

async fn password_change_ends_earlier_tokens(backend: Backend) {
    let api = TestApi::start(backend).await;
    let admin = api.admin_token().await;
    api.create_user(&admin, "alice", "alice-password", "user")
        .await;
    let first = api.login("alice", "alice-password").await;
    let second = api.login("alice", "alice-password").await;
    let path = "/api/v1/auth/password";

    let answer = put_json(
        &api,
        path,
        None,
        json!({"current_password": "alice-password", "new_password": "new-password-1"}),
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "missing_token");
    let answer = put_json(
        &api,
        path,
        Some(&first),
        json!({"current_password": "not-it-at-all", "new_password": "new-password-1"}),
    )
    .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "wrong_password");
    let answer = put_json(
        &api,
        path,
        Some(&first),
        json!({"current_password": "alice-password", "new_password": "short"}),
    )
    .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let answer = put_json(
        &api,
        path,
        Some(&first),
        json!({"new_password": "new-password-1"}),
    )
    .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    // Nothing changed so far.
    let (status, _) = api.get("/api/v1/auth/me", Some(&second)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = put_json(
        &api,
        path,
        Some(&first),
        json!({"current_password": "alice-password", "new_password": "new-password-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_string();
    // Within the same second: the tokens from before are dead, the fresh one works.
    for old in [&first, &second] {
        let answer = api.get("/api/v1/auth/me", Some(old)).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let (status, me) = api.get("/api/v1/auth/me", Some(&fresh)).await;
    assert_eq!(
        (status, me["username"].clone()),
        (StatusCode::OK, json!("alice"))
    );
    // A token issued a moment after the change works too, even within the same second as it.
    let after = api.login("alice", "new-password-1").await;
    let (status, _) = api.get("/api/v1/auth/me", Some(&after)).await;
    assert_eq!(status, StatusCode::OK);
    // A correctly signed token without the new generation (as issued before) is refused.
    let forged_old =
        sign(&json!({"sub": "alice", "role": "user", "iat": now(), "exp": now() + 600}));
    let answer = api.get("/api/v1/auth/me", Some(&forged_old)).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token");

    let answer = api
        .send(
            api.request(Method::POST, "/api/v1/auth/token", None)
                .form(&[("username", "alice"), ("password", "alice-password")]),
        )
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Guessing the current password through this route is throttled like the login, in the
    // same record (the failed login just above counts: 1 + 4 = the 5 allowed).
    for _ in 0..4 {
        let answer = put_json(
            &api,
            path,
            Some(&fresh),
            json!({"current_password": "guess-guess", "new_password": "new-password-2"}),
        )
        .await;
        assert_error(&answer, StatusCode::FORBIDDEN, "wrong_password");
    }
    let response = api
        .request(Method::PUT, path, Some(&fresh))
        .json(&json!({"current_password": "new-password-1", "new_password": "new-password-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[RETRY_AFTER], "1");
    let status = response.status();
    assert_error(
        &(status, response.json().await.unwrap()),
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    // Nothing was changed by the refused attempts.
    let (status, _) = api.get("/api/v1/auth/me", Some(&fresh)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn admin_reset_ends_the_users_tokens(backend: Backend) {
    let api = TestApi::start(backend).await;
    let admin = api.admin_token().await;
    for name in ["alice", "bob"] {
        api.create_user(&admin, name, "first-password", "user")
            .await;
    }
    let alice = api.login("alice", "first-password").await;
    let bob = api.login("bob", "first-password").await;
    let reset = |name: &str| format!("/api/v1/users/{name}/password");

    let answer = put_json(
        &api,
        &reset("alice"),
        Some(&bob),
        json!({"password": "bobs-choice-1"}),
    )
    .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    let answer = put_json(
        &api,
        &reset("nobody"),
        Some(&admin),
        json!({"password": "whatever-1"}),
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "user_not_found");
    let answer = put_json(
        &api,
        &reset("alice"),
        Some(&admin),
        json!({"password": "short"}),
    )
    .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let answer = put_json(
        &api,
        &reset("alice"),
        None,
        json!({"password": "second-password"}),
    )
    .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "missing_token");
    let (status, _) = api.get("/api/v1/auth/me", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "nothing changed yet");

    let (status, body) = put_json(
        &api,
        &reset("alice"),
        Some(&admin),
        json!({"password": "second-password"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let answer = api.get("/api/v1/auth/me", Some(&alice)).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token");
    api.login("alice", "second-password").await;
    // Only alice's tokens: bob's and the admin's still work.
    for token in [&bob, &admin] {
        let (status, _) = api.get("/api/v1/auth/me", Some(token)).await;
        assert_eq!(status, StatusCode::OK);
    }

    // A disabled user's password can be reset; the user stays disabled.
    let (status, _) = api
        .send(api.request(Method::DELETE, "/api/v1/users/bob", Some(&admin)))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = put_json(
        &api,
        &reset("bob"),
        Some(&admin),
        json!({"password": "second-password"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answer = api
        .send(
            api.request(Method::POST, "/api/v1/auth/token", None)
                .form(&[("username", "bob"), ("password", "second-password")]),
        )
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let (_, list) = api.get("/api/v1/users", Some(&admin)).await;
    let bob_listed = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .cloned()
        .unwrap();
    assert_eq!(bob_listed["disabled"], true, "{list}");
}

/// Two admins disabling each other at the same moment leave one of them; the store refuses to
/// disable the last active admin whoever asks.
async fn the_last_admin_stays(backend: Backend) {
    let api = TestApi::start(backend).await;
    let mut survivor = (ADMIN.to_string(), api.admin_token().await);
    let mut disabled = Vec::new();
    for round in 0..6 {
        let partner = format!("admin{round}");
        let (status, body) = api
            .create_user(&survivor.1, &partner, "partner-password", "admin")
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let partner_token = api.login(&partner, "partner-password").await;
        let pair = [survivor.clone(), (partner.clone(), partner_token)];
        let disable = |by: usize| {
            let (_, token) = &pair[by];
            let (target, _) = &pair[1 - by];
            api.send(api.request(
                Method::DELETE,
                &format!("/api/v1/users/{target}"),
                Some(token),
            ))
        };
        let (a, b) = tokio::join!(disable(0), disable(1));
        let answers = [a, b];
        let done: Vec<usize> = (0..2).filter(|&i| answers[i].0 == StatusCode::OK).collect();
        assert_eq!(
            done.len(),
            1,
            "exactly one disable went through: {answers:?}"
        );
        let other = &answers[1 - done[0]];
        // Refused by the guard, or by the token check when the other was already done.
        if other.0 == StatusCode::CONFLICT {
            assert_error(other, StatusCode::CONFLICT, "last_admin");
        } else {
            assert_error(other, StatusCode::UNAUTHORIZED, "user_disabled");
        }
        // The one who disabled the other is the survivor.
        survivor = pair[done[0]].clone();
        disabled.push(pair[1 - done[0]].0.clone());
        let (status, _) = api.get("/api/v1/users", Some(&survivor.1)).await;
        assert_eq!(status, StatusCode::OK);
    }

    // Whoever asks (the CLI, a future route), the store keeps the last active admin.
    let db = argus_api::db::Db::open(&api.config.database_url())
        .await
        .unwrap();
    let err = argus_api::users::disable_user(&db, &survivor.0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, argus_api::users::UserError::LastAdmin(_)),
        "{err}"
    );
    // A disabled admin disabled again is still harmless.
    let again = argus_api::users::disable_user(&db, &disabled[0])
        .await
        .unwrap();
    assert!(again.disabled);
    db.close().await;
    let (status, me) = api.get("/api/v1/auth/me", Some(&survivor.1)).await;
    assert_eq!(
        (status, me["disabled"].clone()),
        (StatusCode::OK, json!(false))
    );
}

/// `nbf` is honoured when present (5 s of leeway, as for `exp`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_not_valid_yet_are_refused() {
    let api = TestApi::start(Backend::Sqlite).await;
    let claims = |nbf: u64| json!({"sub": ADMIN, "role": "admin", "iat": now(), "exp": now() + 7200, "nbf": nbf});
    let answer = api
        .get("/api/v1/auth/me", Some(&sign(&claims(now() + 3600))))
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .contains("not valid yet"),
        "{}",
        answer.1
    );
    let malformed = sign(&json!({"sub": ADMIN, "exp": now() + 600, "nbf": "soon"}));
    let answer = api.get("/api/v1/auth/me", Some(&malformed)).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token");
    for nbf in [now() - 60, now() + 2] {
        let (status, body) = api.get("/api/v1/auth/me", Some(&sign(&claims(nbf)))).await;
        assert_eq!(status, StatusCode::OK, "nbf {nbf}: {body}");
    }
}

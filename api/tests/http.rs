//! Black-box tests of the API over HTTP: the real server on a free loopback port (support/), on
//! SQLite and on a real PostgreSQL server, driven by `reqwest` as any client would; and the
//! `argus-api` binary itself (startup refusal, graceful shutdown, what it logs).

#[macro_use]
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

on_both_backends!(
    admin_bootstrap_and_login,
    wrong_credentials,
    user_lifecycle,
    invalid_users_are_refused,
    non_admins_get_403,
    bad_tokens_get_401,
    errors_are_json,
    operations_endpoints,
    existing_admin_is_never_overwritten,
);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a token, read without verifying it.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn admin_bootstrap_and_login(backend: Backend) {
    let api = TestApi::start(backend).await;

    // Form login (OAuth2 password flow).
    let (status, body) = api
        .send(
            api.request(Method::POST, "/api/v1/auth/token", None)
                .form(&[("username", ADMIN), ("password", ADMIN_PASSWORD)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(header_of(&token)["alg"], "HS256");
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], ADMIN);
    assert_eq!(claims["role"], "admin");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    assert!(iat.abs_diff(now()) < 60, "iat {iat} is now");

    // JSON login gives a working token too.
    let (status, body) = api
        .send(
            api.request(Method::POST, "/api/v1/auth/token", None)
                .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json_token = body["access_token"].as_str().unwrap();

    for token in [token.as_str(), json_token] {
        let (status, me) = api.get("/api/v1/auth/me", Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["username"], ADMIN);
        assert_eq!(me["role"], "admin");
        assert_eq!(me["disabled"], false);
        assert!(
            me.get("password_hash").is_none() && me.get("id").is_none(),
            "{me}"
        );
    }

    // What Swagger UI's Authorize dialog sends: grant_type, an empty scope, client fields
    // (empty) and a Basic header made of them.
    let response = api
        .request(Method::POST, "/api/v1/auth/token", None)
        .header("Authorization", "Basic Og==")
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
            ("scope", ""),
            ("client_id", ""),
            ("client_secret", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let swagger_token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // A token pasted with its scheme into Swagger's bearer field, which adds another one.
    let (status, me) = api
        .send(
            api.request(Method::GET, "/api/v1/auth/me", None)
                .header("Authorization", format!("Bearer Bearer {swagger_token}")),
        )
        .await;
    assert_eq!(
        (status, me["username"].clone()),
        (StatusCode::OK, json!(ADMIN))
    );

    let answer = api
        .send(
            api.request(Method::POST, "/api/v1/auth/token", None)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("username", ADMIN),
                    ("password", ADMIN_PASSWORD),
                ]),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "unsupported_grant_type");
}

async fn wrong_credentials(backend: Backend) {
    let api = TestApi::start(backend).await;
    for (username, password) in [
        (ADMIN, "wrong-password"),
        (ADMIN, ""),
        ("nobody", ADMIN_PASSWORD),
        ("ADMIN", ADMIN_PASSWORD),
    ] {
        let response = api
            .request(Method::POST, "/api/v1/auth/token", None)
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers().get(WWW_AUTHENTICATE).unwrap(),
            r#"Bearer realm="argus""#
        );
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_error(
            &(status, body),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
}

async fn user_lifecycle(backend: Backend) {
    let api = TestApi::start(backend).await;
    let admin = api.admin_token().await;

    let (status, alice) = api
        .create_user(&admin, "alice", "alice-password", "user")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["role"], "user");
    assert_eq!(alice["disabled"], false);
    assert!(
        alice["created_at"].as_str().unwrap().ends_with('Z'),
        "{alice}"
    );
    assert!(alice.get("password").is_none() && alice.get("password_hash").is_none());

    // Role defaults to user; a second admin can be made.
    let (status, bob) = api
        .send(
            api.request(Method::POST, "/api/v1/users", Some(&admin))
                .json(&json!({"username": "bob", "password": "bob-password"})),
        )
        .await;
    assert_eq!(
        (status, bob["role"].clone()),
        (StatusCode::CREATED, json!("user"))
    );
    let (status, carol) = api
        .create_user(&admin, "carol", "carol-password", "admin")
        .await;
    assert_eq!(
        (status, carol["role"].clone()),
        (StatusCode::CREATED, json!("admin"))
    );

    let answer = api
        .create_user(&admin, "alice", "another-password", "user")
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "user_exists");

    let (status, list) = api.get("/api/v1/users", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<(&str, &str)> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("admin", "admin"),
            ("alice", "user"),
            ("bob", "user"),
            ("carol", "admin")
        ]
    );

    // Alice logs in and uses her token; the admin disables her; the same token is refused on
    // the very next request, and she cannot log in again.
    let alice_token = api.login("alice", "alice-password").await;
    let (status, me) = api.get("/api/v1/auth/me", Some(&alice_token)).await;
    assert_eq!(
        (status, me["username"].clone()),
        (StatusCode::OK, json!("alice"))
    );

    let (status, disabled) = api
        .send(api.request(Method::DELETE, "/api/v1/users/alice", Some(&admin)))
        .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["disabled"], true);
    assert!(disabled["disabled_at"].is_string(), "{disabled}");

    let response = api
        .request(Method::GET, "/api/v1/auth/me", Some(&alice_token))
        .send()
        .await
        .unwrap();
    assert!(response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let status = response.status();
    assert_error(
        &(status, response.json().await.unwrap()),
        StatusCode::UNAUTHORIZED,
        "user_disabled",
    );
    let answer = api
        .send(
            api.request(Method::POST, "/api/v1/auth/token", None)
                .form(&[("username", "alice"), ("password", "alice-password")]),
        )
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Disabling again is harmless and keeps the first time; the name stays taken.
    let (status, again) = api
        .send(api.request(Method::DELETE, "/api/v1/users/alice", Some(&admin)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["disabled_at"], disabled["disabled_at"]);
    let answer = api
        .create_user(&admin, "alice", "alice-password", "user")
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "user_exists");

    let (_, list) = api.get("/api/v1/users", Some(&admin)).await;
    let alice_listed = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(alice_listed["disabled"], true);

    let answer = api
        .send(api.request(Method::DELETE, "/api/v1/users/nobody", Some(&admin)))
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "user_not_found");
    let answer = api
        .send(api.request(Method::DELETE, "/api/v1/users/admin", Some(&admin)))
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "cannot_disable_self");

    // The other admin can use the admin routes.
    let carol_token = api.login("carol", "carol-password").await;
    let (status, _) = api.get("/api/v1/users", Some(&carol_token)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn invalid_users_are_refused(backend: Backend) {
    let api = TestApi::start(backend).await;
    let admin = api.admin_token().await;
    let cases = [
        json!({"username": "Alice", "password": "long-enough"}),
        json!({"username": "al", "password": "long-enough"}),
        json!({"username": "a".repeat(33), "password": "long-enough"}),
        json!({"username": "al ice", "password": "long-enough"}),
        json!({"username": "-alice", "password": "long-enough"}),
        json!({"username": "alice", "password": "short"}),
        json!({"username": "alice", "password": "long-enough", "role": "root"}),
        json!({"username": "alice"}),
        json!({"username": 7, "password": "long-enough"}),
    ];
    for case in cases {
        let answer = api
            .send(
                api.request(Method::POST, "/api/v1/users", Some(&admin))
                    .json(&case),
            )
            .await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    }
    let (_, list) = api.get("/api/v1/users", Some(&admin)).await;
    assert_eq!(list["users"].as_array().unwrap().len(), 1, "{list}");
}

async fn non_admins_get_403(backend: Backend) {
    let api = TestApi::start(backend).await;
    let admin = api.admin_token().await;
    let (status, _) = api
        .create_user(&admin, "dave", "dave-password", "user")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let dave = api.login("dave", "dave-password").await;

    let answers = [
        api.get("/api/v1/users", Some(&dave)).await,
        api.create_user(&dave, "eve", "eve-password", "admin").await,
        api.send(api.request(Method::DELETE, "/api/v1/users/admin", Some(&dave)))
            .await,
    ];
    for answer in &answers {
        assert_error(answer, StatusCode::FORBIDDEN, "forbidden");
    }
    // Nothing happened.
    let (_, list) = api.get("/api/v1/users", Some(&admin)).await;
    let users = list["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u["disabled"] == false));

    // The role comes from the database, not from the token: a correctly signed token that
    // claims admin for dave still gets 403.
    let claims = json!({"sub": "dave", "role": "admin", "iat": now(), "exp": now() + 600});
    let forged_role = sign(Algorithm::HS256, SECRET, &claims);
    let answer = api.get("/api/v1/users", Some(&forged_role)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    // His own routes work.
    let (status, me) = api.get("/api/v1/auth/me", Some(&dave)).await;
    assert_eq!(
        (status, me["role"].clone()),
        (StatusCode::OK, json!("user"))
    );
}

async fn bad_tokens_get_401(backend: Backend) {
    let api = TestApi::start(backend).await;
    let valid = json!({"sub": ADMIN, "role": "admin", "iat": now(), "exp": now() + 600});
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());

    let expired = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"sub": ADMIN, "role": "admin", "iat": now() - 7200, "exp": now() - 3600}),
    );
    let forged = sign(
        Algorithm::HS256,
        "another-secret-that-is-long-enough-000",
        &valid,
    );
    let hs512 = sign(Algorithm::HS512, SECRET, &valid);
    let hs384 = sign(Algorithm::HS384, SECRET, &valid);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&valid)
    );
    let alg_none_upper = format!("{}.{}.", b64(&json!({"alg": "None"})), b64(&valid));
    // An RS256 header over an HMAC signature made with the secret (key-confusion attempt).
    let good = sign(Algorithm::HS256, SECRET, &valid);
    let signature = good.rsplit('.').next().unwrap();
    let rs256 = format!(
        "{}.{}.{signature}",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(&valid)
    );
    let unknown_user = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"sub": "ghost", "role": "admin", "iat": now(), "exp": now() + 600}),
    );
    let no_exp = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"sub": ADMIN, "role": "admin", "iat": now()}),
    );
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = b64(&json!({"sub": ADMIN, "role": "admin", "iat": now(), "exp": now() + 99999}));
        parts.join(".")
    };

    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing_token"),
        (Some("Bearer".into()), "invalid_token"),
        (Some("Bearer not-a-jwt".into()), "invalid_token"),
        (Some("Bearer a.b.c".into()), "invalid_token"),
        (
            Some(format!(
                "Basic {}",
                URL_SAFE_NO_PAD.encode("admin:admin-password-1")
            )),
            "invalid_token",
        ),
        (Some(format!("Token {good}")), "invalid_token"),
        (
            Some(format!("Bearer {}", "a".repeat(10_000))),
            "invalid_token",
        ),
        (Some(format!("Bearer {expired}")), "token_expired"),
        (Some(format!("Bearer {forged}")), "invalid_token"),
        (Some(format!("Bearer {hs512}")), "invalid_token"),
        (Some(format!("Bearer {hs384}")), "invalid_token"),
        (Some(format!("Bearer {alg_none}")), "invalid_token"),
        (Some(format!("Bearer {alg_none_upper}")), "invalid_token"),
        (Some(format!("Bearer {rs256}")), "invalid_token"),
        (Some(format!("Bearer {unknown_user}")), "invalid_token"),
        (Some(format!("Bearer {no_exp}")), "invalid_token"),
        (Some(format!("Bearer {tampered}")), "invalid_token"),
    ];
    for path in ["/api/v1/auth/me", "/api/v1/users"] {
        for (authorization, code) in &cases {
            let mut request = api.request(Method::GET, path, None);
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            let response = request.send().await.unwrap();
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{authorization:?}: {challenge:?}"
            );
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], *code, "{path} with {authorization:?}: {body}");
            assert_error(&(status, body), StatusCode::UNAUTHORIZED, code);
        }
    }
    // The properly signed token works: the refusals above are about the tokens.
    let (status, _) = api.get("/api/v1/auth/me", Some(&good)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn errors_are_json(backend: Backend) {
    let api = TestApi::start(backend).await;
    let admin = api.admin_token().await;

    let raw = |method: Method, path: &str, content_type: &str, body: Vec<u8>| {
        api.request(method, path, Some(&admin))
            .header(CONTENT_TYPE, content_type)
            .body(body)
    };

    let answer = api
        .send(raw(
            Method::POST,
            "/api/v1/users",
            "application/json",
            b"{not json".to_vec(),
        ))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    let answer = api
        .send(raw(
            Method::POST,
            "/api/v1/auth/token",
            "application/json",
            b"{\"username\": ".to_vec(),
        ))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    let answer = api
        .send(raw(
            Method::POST,
            "/api/v1/users",
            "text/plain",
            b"{}".to_vec(),
        ))
        .await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let answer = api
        .send(raw(
            Method::POST,
            "/api/v1/auth/token",
            "text/plain",
            b"username=admin".to_vec(),
        ))
        .await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let answer = api
        .send(raw(
            Method::POST,
            "/api/v1/auth/token",
            "application/x-www-form-urlencoded",
            b"username=admin".to_vec(),
        ))
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");

    // Too large: 100 KiB of JSON, to a public and to an authenticated endpoint.
    let big =
        serde_json::to_vec(&json!({"username": "x".repeat(100 * 1024), "password": "p"})).unwrap();
    for path in ["/api/v1/auth/token", "/api/v1/users"] {
        let answer = api
            .send(raw(Method::POST, path, "application/json", big.clone()))
            .await;
        assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }

    // Wrong method: 405 with Allow.
    for (method, path, allow) in [
        (Method::PUT, "/api/v1/users", "GET, POST"),
        (Method::GET, "/api/v1/auth/token", "POST"),
        (Method::POST, "/api/v1/auth/me", "GET"),
        (Method::GET, "/api/v1/users/alice", "DELETE"),
        (Method::DELETE, "/healthz", "GET"),
    ] {
        let response = api
            .request(method.clone(), path, Some(&admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()[ALLOW], allow, "{method} {path}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let status = response.status();
        assert_error(
            &(status, response.json().await.unwrap()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
    }

    // Unknown routes, inside and outside /api/v1, with and without a token.
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v1/users/alice/extra",
        "/api/v2/users",
        // `/` is the web console's page (api/tests/review.rs).
        "/console",
    ] {
        let answer = api.get(path, None).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
        let answer = api.get(path, Some(&admin)).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }

    // A path parameter that is not UTF-8 (decoded lossily by actix): no such user.
    let answer = api
        .send(api.request(Method::DELETE, "/api/v1/users/%FF%FE", Some(&admin)))
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "user_not_found");

    // Request ids: ours when the client sends none or a bad one, the client's when sane.
    let response = api
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let response = api
        .request(Method::GET, "/healthz", None)
        .header("X-Request-Id", "client-id.42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-id.42");
    let response = api
        .request(Method::GET, "/nope", None)
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "bad id with spaces");

    // After all that the server still serves.
    let (status, _) = api.get("/api/v1/auth/me", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
}

/// The value of the sample of `metric` whose labels include all of `labels`.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn operations_endpoints(backend: Backend) {
    let api = TestApi::start(backend).await;
    let (status, body) = api.get("/healthz", None).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let (status, body) = api.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["checks"],
        json!(["database", "broker", "result_backend"])
    );

    for _ in 0..3 {
        api.get("/healthz", None).await;
    }
    api.get("/no/such/route", None).await;
    api.get("/api/v1/auth/me", None).await;

    let response = api
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let requests = "argus_api_http_requests_total";
    assert_eq!(
        sample(
            &text,
            requests,
            &[("route", "/healthz"), ("method", "GET"), ("status", "200")]
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            requests,
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            requests,
            &[("route", "/api/v1/auth/me"), ("status", "401")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, requests, &[("route", "/readyz"), ("status", "200")]),
        Some(1.0),
        "{text}"
    );
    let histogram = "argus_api_http_request_duration_seconds";
    assert_eq!(
        sample(
            &text,
            &format!("{histogram}_count"),
            &[("route", "/healthz"), ("method", "GET")]
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{histogram}_bucket"),
            &[("route", "/healthz"), ("le", "+Inf")]
        ),
        Some(4.0),
        "{text}"
    );
}

/// A restart with another ARGUS_ADMIN_PASSWORD does not change the stored one.
async fn existing_admin_is_never_overwritten(backend: Backend) {
    let storage = TempDir::new("restart");
    let mut config = support::config(backend, &storage).await;
    let first = TestApi::start_with(config.clone(), Vec::new())
        .await
        .unwrap();
    let admin = first.admin_token().await;
    first
        .create_user(&admin, "frank", "frank-password", "user")
        .await;
    drop(first);

    config.admin_password = Some(argus_api::Secret::new("a-different-password"));
    let second = TestApi::start_with(config.clone(), Vec::new())
        .await
        .unwrap();
    second.login(ADMIN, ADMIN_PASSWORD).await;
    let answer = second
        .send(
            second
                .request(Method::POST, "/api/v1/auth/token", None)
                .form(&[("username", ADMIN), ("password", "a-different-password")]),
        )
        .await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");
    // Users survive restarts; a user named as the admin is not promoted.
    second.login("frank", "frank-password").await;
    drop(second);

    config.admin_user = Some("frank".to_string());
    let third = TestApi::start_with(config, Vec::new()).await.unwrap();
    let frank = third.login("frank", "frank-password").await;
    let answer = third.get("/api/v1/users", Some(&frank)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
}

struct Failing;

impl argus_api::health::ReadinessCheck for Failing {
    fn name(&self) -> &str {
        "broker"
    }

    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("connection refused".to_string()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_plug_in() {
    let storage = TempDir::new("ready");
    let config = support::config(Backend::Sqlite, &storage).await;
    let api = TestApi::start_with(config, vec![Box::new(Failing)])
        .await
        .unwrap();
    let answer = api.get("/readyz", None).await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert_eq!(answer.1["message"], "broker: connection refused");
    // Liveness does not depend on it.
    let (status, _) = api.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_refuses_missing_or_short_secret() {
    let storage = TempDir::new("secret");
    let mut config = support::config(Backend::Sqlite, &storage).await;
    config.jwt_secret = Some(argus_api::Secret::new("x".repeat(31)));
    let err = TestApi::start_with(config.clone(), Vec::new())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, argus_api::StartupError::JwtSecretTooShort { len: 31 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
    config.jwt_secret = None;
    let err = TestApi::start_with(config.clone(), Vec::new())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, argus_api::StartupError::MissingJwtSecret),
        "{err:?}"
    );
    // Refused before anything was written.
    assert!(!storage.0.join("argus.db").exists());
    config.jwt_secret = Some(argus_api::Secret::new("x".repeat(32)));
    TestApi::start_with(config, Vec::new())
        .await
        .expect("32 bytes are enough");
    assert!(storage.0.join("argus.db").exists());
}

// --- OpenAPI ------------------------------------------------------------------------------------

/// Every route the server has, as (method, path template): the OpenAPI must list each.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/token"),
    ("get", "/api/v1/auth/me"),
    ("put", "/api/v1/auth/password"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("delete", "/api/v1/users/{name}"),
    ("put", "/api/v1/users/{name}/password"),
    ("get", "/api/v1/videos"),
    ("post", "/api/v1/videos"),
    ("get", "/api/v1/videos/{id}"),
    ("delete", "/api/v1/videos/{id}"),
    ("get", "/api/v1/videos/{id}/result"),
    ("get", "/api/v1/videos/{id}/events"),
    ("get", "/api/v1/videos/events"),
    ("get", "/api/v1/videos/{id}/frames"),
    ("get", "/api/v1/videos/{id}/timeline"),
    ("post", "/api/v1/videos/{id}/file-url"),
    ("get", "/api/v1/videos/{id}/file"),
    ("get", "/api/v1/videos/{id}/annotated/file"),
    ("get", "/api/v1/videos/{id}/annotated"),
    ("post", "/api/v1/videos/{id}/annotated"),
    ("get", "/api/v1/models"),
    ("get", "/api/v1/videos/{id}/webhooks"),
    ("get", "/api/v1/collections"),
    ("post", "/api/v1/collections"),
    ("get", "/api/v1/collections/{id}"),
    ("delete", "/api/v1/collections/{id}"),
    ("get", "/api/v1/collections/{id}/result"),
    ("get", "/api/v1/collections/{id}/webhooks"),
    ("get", "/api/v1/collections/{id}/events"),
    ("get", "/api/v1/users/me/webhook"),
    ("put", "/api/v1/users/me/webhook"),
    ("post", "/api/v1/users/me/webhook/secret"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

fn venv() -> std::path::PathBuf {
    std::env::var_os("ARGUS_VENV")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/argus/venv")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_valid_and_complete() {
    let api = TestApi::start(Backend::Sqlite).await;
    let (status, spec) = api.get("/api-docs/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        spec["openapi"]
    );

    // Every route is listed, and every listed route exists on the server (not 404).
    let mut listed = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            listed.push((method.clone(), path.clone()));
        }
    }
    listed.sort();
    // Operation ids are unique: Swagger UI keys its "Try it out" state by them (two alike send
    // one operation's request to the other's path).
    let mut ids: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operation ids among {ids:?}");
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    for (method, path) in ROUTES {
        let path = path
            .replace("{name}", "someone")
            .replace("{id}", "7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = api
            .request(method.clone(), &path, None)
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }

    // Security: OAuth2 password flow at the token endpoint, and bare bearer tokens.
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["oauth2"]["type"], "oauth2");
    assert_eq!(
        schemes["oauth2"]["flows"]["password"]["tokenUrl"],
        "/api/v1/auth/token"
    );
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let protected = [
        ("get", "/api/v1/auth/me"),
        ("put", "/api/v1/auth/password"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("delete", "/api/v1/users/{name}"),
        ("put", "/api/v1/users/{name}/password"),
        ("get", "/api/v1/videos"),
        ("post", "/api/v1/videos"),
        ("get", "/api/v1/videos/{id}"),
        ("delete", "/api/v1/videos/{id}"),
        ("get", "/api/v1/videos/{id}/result"),
        ("get", "/api/v1/videos/{id}/events"),
    ];
    for (method, path) in protected {
        let operation = &spec["paths"][path][method];
        assert_eq!(
            operation["security"],
            json!([{"oauth2": []}, {"bearer": []}]),
            "{method} {path}"
        );
        assert!(operation["responses"]["401"].is_object(), "{method} {path}");
    }
    // The token endpoint takes a form and JSON.
    let content = &spec["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"];
    assert!(
        content["application/x-www-form-urlencoded"].is_object(),
        "{content}"
    );
    assert!(content["application/json"].is_object(), "{content}");

    // The error codes are listed.
    let codes = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    for code in [
        "invalid_json",
        "missing_token",
        "invalid_token",
        "token_expired",
        "user_disabled",
        "invalid_credentials",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "user_exists",
        "too_many_attempts",
        "hashing_busy",
        "wrong_password",
        "last_admin",
        "payload_too_large",
        "unsupported_media_type",
        "invalid_input",
        "internal_error",
        "not_ready",
    ] {
        assert!(codes.contains(&json!(code)), "{code} in {codes:?}");
    }

    // A validator of the OpenAPI specification (PyPI openapi-spec-validator) accepts it.
    let dir = TempDir::new("openapi");
    let file = dir.0.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let validator = venv().join("bin/openapi-spec-validator");
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install it: \"$ARGUS_VENV/bin/pip\" install openapi-spec-validator",
                validator.display()
            )
        });
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Swagger UI is served.
    let response = api
        .request(Method::GET, "/swagger-ui/", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let response = api
        .request(Method::GET, "/swagger-ui", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.url().path(), "/swagger-ui/", "redirected");
    assert_eq!(response.status(), StatusCode::OK);
}

// --- the argus-api binary ------------------------------------------------------------------------

/// `argus-api` with a clean environment (no ARGUS_* from the caller) plus `vars`.
fn binary(vars: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_argus-api"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ARGUS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.envs(vars.iter().copied());
    cmd
}

#[test]
fn binary_refuses_a_short_or_missing_secret() {
    let storage = TempDir::new("bin-secret");
    let dir = storage.0.to_str().unwrap();
    for (secret, expected) in [
        (
            Some("too-short"),
            "ARGUS_JWT_SECRET is 9 bytes long; it must be at least 32 bytes",
        ),
        (None, "ARGUS_JWT_SECRET is not set"),
    ] {
        let mut vars = vec![("ARGUS_STORAGE_DIR", dir), ("ARGUS_BIND", "127.0.0.1:0")];
        if let Some(secret) = secret {
            vars.push(("ARGUS_JWT_SECRET", secret));
        }
        let out = binary(&vars).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        if let Some(secret) = secret {
            assert!(
                !stderr.contains(secret),
                "the secret is not printed: {stderr}"
            );
        }
    }
    assert!(!storage.0.join("argus.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_logs_safely_and_stops_on_sigterm() {
    let storage = TempDir::new("bin");
    let port = argus_testkit::free_port();
    let bind = format!("127.0.0.1:{port}");
    let log = storage.0.join("stderr.log");
    let child = binary(&[
        ("ARGUS_STORAGE_DIR", storage.0.to_str().unwrap()),
        ("ARGUS_BIND", &bind),
        ("ARGUS_JWT_SECRET", SECRET),
        ("ARGUS_ADMIN_USER", ADMIN),
        ("ARGUS_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let mut child = scopeguard(child);

    let base = format!("http://{bind}");
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "argus-api did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        storage.0.join("argus.db").exists(),
        "the default SQLite database"
    );

    let body: Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .form(&[("username", ADMIN), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().expect("a token").to_string();
    let response = client
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&token)
        .header("X-Request-Id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A failed login with a password in the username field.
    client
        .post(format!("{base}/api/v1/auth/token"))
        .form(&[("username", "typed-password-here"), ("password", "x")])
        .send()
        .await
        .unwrap();

    // SIGTERM: graceful stop, exit 0.
    let pid = child.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {stderr}");

    // One line per request, with its id, route and status; no secret of any kind.
    let me_line = stderr
        .lines()
        .find(|l| l.contains("trace-me-123"))
        .unwrap_or_else(|| panic!("request id logged: {stderr}"));
    assert!(
        me_line.contains("route=/api/v1/auth/me") && me_line.contains("status=200"),
        "{me_line}"
    );
    assert!(stderr.contains("shutting down"), "{stderr}");
    for secret in [
        SECRET,
        ADMIN_PASSWORD,
        token.as_str(),
        "typed-password-here",
        "Bearer",
    ] {
        assert!(!stderr.contains(secret), "{secret:?} logged: {stderr}");
    }
}

/// Kills the child if the test fails before it exits.
struct Guard(std::process::Child);

fn scopeguard(child: std::process::Child) -> Guard {
    Guard(child)
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

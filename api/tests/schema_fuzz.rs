//! The API fuzzed from its own OpenAPI document: schemathesis (PyPI, in the venv setup makes)
//! against the real server on loopback, once with an admin's token and once with a user's,
//! every route and method, positive and negative data, every check it has (exceptions, each
//! with its reason, in tests/schemathesis.toml): no 5xx, every
//! status, header, content type and body as documented, nothing the document allows refused
//! and nothing it forbids accepted, no panic.
//!
//! `ARGUS_FUZZ_SEED` replays a run (the default is fixed, so that CI is repeatable);
//! `ARGUS_FUZZ_EXAMPLES` sets the cases per operation (default 25).

#[macro_use]
mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argus_common::state::VideoStatus;
use argus_queue::backend::Backend as ResultBackend;
use argus_queue::broker::Broker;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use support::*;

const PASSWORD: &str = "a-long-test-password";

fn st() -> std::path::PathBuf {
    argus_common::paths::venv().join("bin/st")
}

/// Runs schemathesis with `token`; its output, and whether it passed.
fn fuzz(base: &str, token: &str, report: &std::path::Path) -> (bool, String) {
    let seed = std::env::var("ARGUS_FUZZ_SEED").unwrap_or_else(|_| "20261207".into());
    let examples = std::env::var("ARGUS_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let output = Command::new(st())
        .args(["--config-file", config])
        .args(["run", &format!("{base}/api-docs/openapi.json")])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--workers", "2", "--request-timeout", "10"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Hypothesis's own state stays out of the clone.
        .env("HYPOTHESIS_STORAGE_DIRECTORY", report.join("hypothesis"))
        .args(["--report", "junit", "--report-dir"])
        .arg(report)
        .args(["--warnings", "off", "--no-color"])
        .current_dir(report)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; scripts/setup.sh installs schemathesis into the venv",
                st().display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_holds_to_its_openapi_document_under_fuzzing() {
    // A panic anywhere in the server (actix turns one in a handler into a 500, but one in a
    // spawned task would only be logged) fails the test.
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&panics);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let storage = TempDir::new("fuzz");
    let config = support::config(Backend::Sqlite, &storage).await;
    let broker = Broker::connect("memory://", 4).await.unwrap();
    let backend = ResultBackend::connect("memory://").await.unwrap();
    let api = TestApi::start_with_queue(config, broker, backend.clone())
        .await
        .expect("the server starts");
    let admin = api.admin_token().await;
    let (status, body) = api.create_user(&admin, "alice", PASSWORD, "user").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = api.login("alice", PASSWORD).await;

    // A finished video of Alice's, so that the routes on a video (and its event stream,
    // which ends after a final state) answer with a real one where the fuzzer finds it.
    let video = std::fs::read(argus_common::paths::media_dir().join("carphone_pristine.mp4"))
        .expect("the sample media (scripts/setup.sh)");
    let form = Form::new().part(
        "file",
        Part::bytes(video)
            .file_name("carphone.mp4")
            .mime_str("video/mp4")
            .unwrap(),
    );
    let (status, body) = api
        .send(
            api.request(Method::POST, "/api/v1/videos", Some(&alice))
                .multipart(form),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    argus_pipeline::store::update_state(&backend, &id, |old| {
        let mut s = old.unwrap().clone();
        s.status = VideoStatus::Failed;
        s.error = Some("a failure for the fuzzer".into());
        Some(s)
    })
    .await
    .unwrap()
    .expect("queued → failed");

    let report = TempDir::new("fuzz-report");
    let mut failures = Vec::new();
    // Alice first: the admin's run may create, disable and delete users (their names come
    // from the document's examples).
    for (who, token) in [("alice", &alice), ("admin", &admin)] {
        let base = api.base.clone();
        let token = token.clone();
        let dir = report.0.join(who);
        std::fs::create_dir_all(&dir).unwrap();
        let (passed, output) = tokio::task::spawn_blocking(move || {
            let (passed, output) = fuzz(&base, &token, &dir);
            // A run whose only problem is schemathesis's own crash ("Runtime Error", e.g.
            // CPython's "AST constructor recursion depth mismatch" on a deep generated
            // value), with no check of ours failed, is run once more; a check that failed is
            // never retried.
            if !passed && output.contains("Runtime Error") && !output.contains("- ST") {
                println!(
                    "--- schemathesis crashed without a failed check; once more ---\n{output}"
                );
                return fuzz(&base, &token, &dir);
            }
            (passed, output)
        })
        .await
        .unwrap();
        println!("--- schemathesis as {who} ---\n{output}");
        if !passed {
            failures.push(format!("as {who}:\n{output}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(panics.load(Ordering::SeqCst), 0, "the server panicked");

    // The server still serves afterwards.
    let (status, _) = api.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

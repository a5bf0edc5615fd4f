//! TLS to the result backend (`rediss://`) and the broker (`amqps://`), against a real
//! redis-server listening with TLS only and a RabbitMQ node's TLS listener (which requires a
//! client certificate), on certificates the test makes: the
//! server is trusted through ARGUS_TLS_CA_FILE, the client shows ARGUS_TLS_CERT_FILE and
//! ARGUS_TLS_KEY_FILE where the server asks for one, and the wrong CA, a missing client
//! certificate or bad files are refused with the reason.

use std::time::Duration;

use argus_queue::backend::{Backend, TaskStatus};
use argus_queue::broker::Broker;
use argus_queue::message::{TaskMessage, TaskPayload};
use argus_queue::tls::{Tls, TlsArgs};
use argus_queue::worker::{Worker, WorkerOptions};
use argus_testkit::{RabbitServer, RedisServer, TestCerts};
use serde_json::json;
use tokio::sync::watch;

fn args(certs: &TestCerts, ca: bool, client: bool) -> TlsArgs {
    TlsArgs {
        tls_ca_file: ca.then(|| certs.ca.clone()),
        tls_cert_file: client.then(|| certs.client_cert.clone()),
        tls_key_file: client.then(|| certs.client_key.clone()),
    }
}

/// Connects and does a round trip (a Celery result stored and read back).
async fn backend_works(url: &str, tls: &Tls) -> Result<(), String> {
    let backend = Backend::connect_tls(url, tls)
        .await
        .map_err(|e| e.to_string())?;
    backend.ping().await.map_err(|e| e.to_string())?;
    backend
        .store_result("t", TaskStatus::Success, &json!({"ok": 1}), None)
        .await
        .map_err(|e| e.to_string())?;
    let meta = backend.get_result("t").await.map_err(|e| e.to_string())?;
    assert_eq!(meta.unwrap()["result"]["ok"], 1);
    Ok(())
}

#[tokio::test]
async fn the_result_backend_speaks_tls_with_a_private_ca_and_client_certificates() {
    let certs = TestCerts::make();
    // Server authentication only: the private CA is all the client needs.
    let redis = RedisServer::start_tls(&certs, false);
    assert!(redis.url().starts_with("rediss://"));
    let with_ca = args(&certs, true, false).load().unwrap();
    backend_works(&redis.url(), &with_ca).await.unwrap();
    // The system's roots do not know the test's CA; another CA is not the one.
    let refused = backend_works(&redis.url(), &Tls::none()).await.unwrap_err();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    let wrong = TlsArgs {
        tls_ca_file: Some(certs.other_ca.clone()),
        ..TlsArgs::default()
    }
    .load()
    .unwrap();
    assert!(backend_works(&redis.url(), &wrong).await.is_err());

    // Mutual TLS: the server asks for the client's certificate.
    let mutual = RedisServer::start_tls(&certs, true);
    let both = args(&certs, true, true).load().unwrap();
    backend_works(&mutual.url(), &both).await.unwrap();
    assert!(
        backend_works(&mutual.url(), &with_ca).await.is_err(),
        "no client certificate: refused"
    );
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Echo {
    word: String,
}

impl TaskPayload for Echo {
    const NAME: &'static str = "echo";
    const ARGS: &'static [&'static str] = &["word"];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_speaks_tls_with_client_certificates_workers_included() {
    let certs = TestCerts::make();
    let rabbit = RabbitServer::start_tls(&certs);
    let redis = RedisServer::start_tls(&certs, true);
    let tls = args(&certs, true, true).load().unwrap();
    let broker = Broker::connect_tls(&rabbit.tls_url(), 1, tls.clone())
        .await
        .unwrap();
    let backend = Backend::connect_tls(&redis.url(), &tls).await.unwrap();
    // A worker on amqps:// (its consumer, its publish channel and its control connection all
    // over TLS) runs a task whose result lands in the rediss:// backend.
    let worker = Worker::new(broker.clone(), backend.clone(), WorkerOptions::default()).task(
        "echo",
        |ctx| async move {
            let p: Echo = ctx
                .message
                .payload()
                .map_err(|e| argus_queue::worker::TaskError::Permanent(e.to_string()))?;
            Ok(Some(json!({"echo": p.word})))
        },
    );
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(&["tls-work"], stop).await });
    let message = TaskMessage::new(&Echo {
        word: "over tls".into(),
    });
    broker.send("tls-work", &message).await.unwrap();
    let started = std::time::Instant::now();
    let meta = loop {
        if let Some(meta) = backend.get_result(&message.id).await.unwrap() {
            if meta["status"] == "SUCCESS" {
                break meta;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no result");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(meta["result"]["echo"], "over tls");
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();

    // The broker asks for a client certificate: without one, or trusting another CA, no
    // connection.
    let no_client = args(&certs, true, false).load().unwrap();
    assert!(Broker::connect_tls(&rabbit.tls_url(), 1, no_client)
        .await
        .is_err());
    let wrong_ca = TlsArgs {
        tls_ca_file: Some(certs.other_ca.clone()),
        ..args(&certs, false, true)
    }
    .load()
    .unwrap();
    assert!(Broker::connect_tls(&rabbit.tls_url(), 1, wrong_ca)
        .await
        .is_err());
}

#[test]
fn bad_certificate_files_are_refused_with_the_file_and_the_reason() {
    let certs = TestCerts::make();
    let missing = TlsArgs {
        tls_ca_file: Some(certs.dir.join("nope.pem")),
        ..TlsArgs::default()
    };
    let e = missing.load().err().unwrap().to_string();
    assert!(e.contains("nope.pem"), "{e}");
    // A key where the CA should be: no certificate in it.
    let swapped = TlsArgs {
        tls_ca_file: Some(certs.client_key.clone()),
        ..TlsArgs::default()
    };
    let e = swapped.load().err().unwrap().to_string();
    assert!(e.contains("no certificate"), "{e}");
    // A CERTIFICATE block that is not X.509: refused now, not at the first connection.
    let garbage = certs.dir.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = TlsArgs {
        tls_ca_file: Some(garbage),
        ..TlsArgs::default()
    }
    .load()
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("not an X.509 certificate"), "{e}");
    // A certificate where the key should be.
    let no_key = TlsArgs {
        tls_ca_file: None,
        tls_cert_file: Some(certs.client_cert.clone()),
        tls_key_file: Some(certs.client_cert.clone()),
    };
    let e = no_key.load().err().unwrap().to_string();
    assert!(e.contains("no private key"), "{e}");
    // A PKCS#1 / SEC1 key is named, with how to convert it.
    let sec1 = certs.dir.join("sec1.key");
    let out = std::process::Command::new("openssl")
        .args(["ec", "-in"])
        .arg(&certs.client_key)
        .arg("-out")
        .arg(&sec1)
        .output()
        .unwrap();
    assert!(out.status.success());
    let e = TlsArgs {
        tls_ca_file: None,
        tls_cert_file: Some(certs.client_cert.clone()),
        tls_key_file: Some(sec1),
    }
    .load()
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("PKCS#8"), "{e}");
}

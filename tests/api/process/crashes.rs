//! Crash safety of the embedded store: what was answered before a
//! `kill -9` is there after a restart on the same data.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::start;
use crate::helpers::PASSWORD;

/// Floods registrations from several clients, kills the process with
/// SIGKILL mid-flood, restarts on the same data: every registration that was
/// answered 201 must sign in, and the store must open cleanly.
#[tokio::test]
async fn registrations_answered_201_survive_kill_9() {
    if std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo") {
        eprintln!("SKIPPED: crash safety is about the embedded store");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut server = start(dir.path(), &log).await;
    let base = server.base.clone();
    let created: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for worker in 0..4 {
        let (base, created, stop) = (base.clone(), created.clone(), stop.clone());
        flooders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("crash-{worker}-{i}@example.com");
                let r = client
                    .post(format!("{base}/v1/users"))
                    .json(&serde_json::json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        created.lock().unwrap().push(email)
                    }
                    Ok(r) => assert!(!r.status().is_server_error(), "{}", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }
    let created = created.lock().unwrap().clone();
    assert!(
        created.len() >= 5,
        "the flood made only {} accounts",
        created.len()
    );

    let log2 = dir.path().join("server2.log");
    let server = start(dir.path(), &log2).await;
    let ready = server
        .client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    for email in &created {
        let creds = serde_json::json!({"email": email, "password": PASSWORD});
        let r = server.post("/v1/sessions", &creds).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{email} was acknowledged but lost"
        );
    }
    eprintln!(
        "{} acknowledged registrations all survived kill -9",
        created.len()
    );
}

/// Group commit: 32 clients register and sign in at once, so
/// the store always has a batch of writes waiting on one fsync; the process
/// is killed with SIGKILL while they run. Every registration answered 201
/// must sign in after the restart, and every refresh token handed out must
/// still refresh (its session was durable before the token left).
#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one crash: the load, the kill, the restart and the checks share the process's state"
)]
async fn writes_acknowledged_mid_batch_survive_kill_9() {
    if std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo") {
        eprintln!("SKIPPED: crash safety is about the embedded store");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &dir.path().join("server.log")).await;
    let base = server.base.clone();
    type Acked = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;
    let accounts: Acked = Default::default();
    let refresh_tokens: Acked = Default::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..32 {
        let (base, accounts, refresh_tokens, stop) = (
            base.clone(),
            accounts.clone(),
            refresh_tokens.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("batch-{worker}-{i}@example.com");
                let body = serde_json::json!({"email": email, "password": PASSWORD});
                let Ok(r) = client
                    .post(format!("{base}/v1/users"))
                    .json(&body)
                    .send()
                    .await
                else {
                    break; // the server is gone
                };
                assert!(!r.status().is_server_error(), "{}", r.status());
                if r.status() != StatusCode::CREATED {
                    continue;
                }
                accounts
                    .lock()
                    .unwrap()
                    .push((email.clone(), String::new()));
                let Ok(r) = client
                    .post(format!("{base}/v1/sessions"))
                    .json(&body)
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() != StatusCode::OK {
                    assert!(!r.status().is_server_error(), "{}", r.status());
                    continue;
                }
                let Ok(tokens) = r.json::<Value>().await else {
                    break; // killed while the body was on its way
                };
                let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
                refresh_tokens.lock().unwrap().push((email, refresh));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let writes = server.counter("portcullis_store_writes_total").await;
    let flushes = server.counter("portcullis_store_flushes_total").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    // The batching this test is about did happen: fewer fsyncs than writes.
    assert!(flushes >= 1.0, "no flush counted");
    assert!(
        writes / flushes > 1.5,
        "{writes} writes took {flushes} fsyncs: no group commit under 32 clients"
    );
    let accounts = accounts.lock().unwrap().clone();
    let refresh_tokens = refresh_tokens.lock().unwrap().clone();
    assert!(
        accounts.len() >= 32 && refresh_tokens.len() >= 32,
        "the flood made only {} accounts and {} sessions",
        accounts.len(),
        refresh_tokens.len()
    );

    let server = start(dir.path(), &dir.path().join("server2.log")).await;
    for (email, _) in &accounts {
        let creds = serde_json::json!({"email": email, "password": PASSWORD});
        let r = server.post("/v1/sessions", &creds).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{email} was acknowledged but lost"
        );
    }
    for (email, refresh) in &refresh_tokens {
        let r = server
            .post(
                "/v1/sessions/refresh",
                &serde_json::json!({"refresh_token": refresh}),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "the session of {email} was acknowledged but lost"
        );
    }
    eprintln!(
        "{} accounts and {} sessions acknowledged at {:.1} writes per fsync all survived kill -9",
        accounts.len(),
        refresh_tokens.len(),
        writes / flushes
    );
}

//! MongoDB-only behaviour: shared state across replicas and outages.
//! These run when `PORTCULLIS_TEST_BACKEND=mongo`.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

fn mongo_backend() -> bool {
    std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo")
}

#[tokio::test]
async fn logout_on_one_replica_is_honoured_by_another_at_once() {
    if !mongo_backend() {
        eprintln!("SKIPPED: two replicas need the MongoDB backend");
        return;
    }
    let db = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
    let db_a = db.clone();
    // Two replicas of one deployment: one database, one key set, one public URL.
    let a = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MONGODB_DB".into(), db_a);
        m.insert(
            "PORTCULLIS_PUBLIC_URL".into(),
            "http://portcullis.test".into(),
        );
    })
    .await;
    let keys = a.keys_path().display().to_string();
    let b = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MONGODB_DB".into(), db);
        m.insert("PORTCULLIS_KEYS_DIR".into(), keys);
        m.insert(
            "PORTCULLIS_PUBLIC_URL".into(),
            "http://portcullis.test".into(),
        );
    })
    .await;
    // Register on A, sign in on B, use the token on both.
    let email = unique_email();
    assert_eq!(
        a.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let tokens = b.login_ok(&email, PASSWORD).await;
    let at = token(&tokens, "access_token");
    assert_eq!(a.me_status(&at).await, StatusCode::OK);
    assert_eq!(b.me_status(&at).await, StatusCode::OK);
    // Rotation on A, reuse detected on B.
    let r1 = token(&tokens, "refresh_token");
    assert_eq!(a.refresh(&r1).await.status(), StatusCode::OK);
    // Sign out on A: B refuses the token immediately.
    assert_eq!(
        a.delete_authed("/v1/sessions", &at).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(b.me_status(&at).await, StatusCode::UNAUTHORIZED);
    // Failed sign-ins counted on A throttle the account on B too.
    for _ in 0..5 {
        assert_eq!(
            a.login(&email, "not the password at all 1").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = b.login(&email, PASSWORD).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "captcha-required").await;
    // The email is taken on both.
    assert_eq!(
        b.register(&email.to_uppercase(), PASSWORD).await.status(),
        StatusCode::CONFLICT
    );
}

fn ferretdb(args: &[&str]) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ferretdb.sh");
    let out = Command::new(script).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "ferretdb.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let stdout = String::from_utf8(out.stdout).ok()?;
    Some(stdout.lines().last().unwrap_or_default().to_string())
}

#[tokio::test]
async fn an_outage_answers_503_and_recovers_without_restart() {
    if !mongo_backend() {
        eprintln!("SKIPPED: outage test needs the MongoDB backend");
        return;
    }
    // Its own FerretDB, so stopping it disturbs no other test.
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().display().to_string();
    let Some(uri) = ferretdb(&["start", &dir_s]) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "FerretDB could not start in CI"
        );
        eprintln!("SKIPPED: outage test (FerretDB not available)");
        return;
    };
    let port = uri
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = ferretdb(&["stop", &self.0]);
        }
    }
    let _stop = Stop(dir_s.clone());
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MONGODB_URI".into(), uri.clone());
        m.insert("PORTCULLIS_MONGODB_TIMEOUT".into(), "2s".into());
    })
    .await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    assert_eq!(app.status_of("/readyz").await, StatusCode::OK);

    ferretdb(&["stop", &dir_s]).expect("stop");
    let started = Instant::now();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let r = app.get_authed("/v1/me", &at).await;
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let r = app.login(&email, PASSWORD).await;
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let r = app.register(&unique_email(), PASSWORD).await;
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    // Liveness is not readiness: the process itself is fine.
    assert_eq!(app.status_of("/healthz").await, StatusCode::OK);
    eprintln!(
        "four requests during the outage answered 503 in {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "requests hung during the outage"
    );

    ferretdb(&["start", &dir_s, &port]).expect("restart on the same port");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if app.me_status(&at).await == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(app.status_of("/readyz").await, StatusCode::OK);
    app.login_ok(&email, PASSWORD).await;
}

#[tokio::test]
async fn report_which_server_the_mongodb_run_used() {
    if !mongo_backend() {
        return;
    }
    let mut map = std::collections::BTreeMap::new();
    backend_settings(&mut map);
    let settings = portcullis::Settings::from_map(&map).unwrap();
    let store = portcullis::startup::open_store(&settings.store)
        .await
        .unwrap();
    println!("MongoDB HTTP suite ran on: {}", store.describe());
}

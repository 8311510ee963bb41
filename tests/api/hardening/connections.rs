//! Connections (slow senders, idle and slow handlers) and CORS: the
//! defects found at the HTTP layer, each failing on the code before the fix.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 or similar before the close
        }
    }
}

/// Defect 7: a slow sender (slowloris) and an idle connection are cut off.
#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_HTTP_TIMEOUT".into(), "1s".into());
        m.insert("PORTCULLIS_IDLE_TIMEOUT".into(), "2s".into());
    })
    .await;
    let host = app.addr.trim_start_matches("http://").to_string();
    // Slowloris: headers trickle in, one byte every 200 ms, never finishing.
    let mut slow = tokio::net::TcpStream::connect(&host).await.unwrap();
    slow.write_all(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"X").await.is_err() {
                return true;
            }
        }
        false
    };
    let cut = tokio::time::timeout(Duration::from_secs(6), trickle).await;
    let mut slow_closed = matches!(cut, Ok(true));
    if !slow_closed {
        slow_closed = closed_within(&mut slow, Duration::from_secs(1)).await;
    }
    assert!(slow_closed, "a trickling request stayed open");
    // Idle: a connection that never sends a byte.
    let mut idle = tokio::net::TcpStream::connect(&host).await.unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle connection stayed open"
    );
    // Normal requests, and keep-alive between them, still work.
    assert_eq!(app.status_of("/healthz").await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.status_of("/healthz").await, StatusCode::OK);
}

/// The request deadline covers receiving the request, not handling it: a
/// sign-in whose bcrypt takes longer than the timeout is still answered.
#[tokio::test]
async fn slow_handlers_are_not_cut_off() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_HTTP_TIMEOUT".into(), "50ms".into());
        m.insert("PORTCULLIS_BCRYPT_COST".into(), "12".into());
    })
    .await;
    let t = Instant::now();
    let r = app.login("ghost@example.com", "wrong guess 12345").await;
    assert!(
        t.elapsed() > Duration::from_millis(50),
        "bcrypt at cost 12 was faster than 50 ms"
    );
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
}

/// Defect 8: an unlisted origin is not refused (no 403; discovery and JWKS
/// keep working), only given no CORS headers; listed origins get them; every
/// response says `Vary: Origin`.
#[tokio::test]
async fn cors_never_refuses_and_varies_by_origin() {
    let app = spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_CORS_ORIGINS".into(),
            "https://app.example".into(),
        );
    })
    .await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/healthz",
    ] {
        let r = app
            .with_origin(Method::GET, path, "https://evil.example")
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert!(
            r.headers().get("x-content-type-options").is_some(),
            "security headers"
        );
        let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
        assert!(
            vary.iter().any(|v| v.to_str().unwrap().contains("Origin")),
            "{path}: {vary:?}"
        );
        let r = app
            .with_origin(Method::GET, path, "https://app.example")
            .await;
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://app.example"
        );
    }
    let r = app
        .preflight("/v1/sessions", "https://app.example", "POST")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let r = app
        .preflight("/v1/sessions", "https://evil.example", "POST")
        .await;
    assert_ne!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // A same-origin page's requests go through unchanged.
    let r = app
        .client
        .post(app.url("/v1/sessions"))
        .header("origin", &app.addr)
        .json(&json!({"email": "ghost@example.com", "password": "wrong guess 12345"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
}

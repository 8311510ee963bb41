//! Webhooks: a local receiver (a real HTTP server in the test) verifies
//! each signature on its own (aws-lc HMAC, not the service's code) and gets
//! every event at least once across an outage.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use poem::http::StatusCode as PoemStatus;
use poem::listener::TcpListener;
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, handler};
use serde_json::Value;

use crate::helpers::{spawn_app_with, token};

#[derive(Default)]
struct Received {
    /// Every request: (webhook-id, signature valid).
    requests: Vec<(String, bool)>,
    /// Bodies of accepted deliveries by id.
    accepted: BTreeMap<String, Value>,
    /// Requests still to refuse with 503 (a receiver in trouble).
    refuse: usize,
}

#[derive(Clone)]
struct Receiver {
    key: Vec<u8>,
    state: Arc<Mutex<Received>>,
}

fn verify(key: &[u8], id: &str, ts: &str, body: &[u8], sig_header: &str) -> bool {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(body);
    // Several space-separated signatures may be sent; any valid v1 one will do.
    sig_header.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|mac| aws_lc_rs::hmac::verify(&k, &msg, &mac).is_ok())
    })
}

#[handler]
async fn hook(req: &Request, body: poem::Body, rx: Data<&Receiver>) -> Response {
    let h = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let body = body.into_vec().await.unwrap();
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (t - chrono_now()).abs() < 300);
    let valid = fresh && verify(&rx.key, &id, &ts, &body, &sig);
    let mut st = rx.state.lock().unwrap();
    st.requests.push((id.clone(), valid));
    if st.refuse > 0 {
        st.refuse -= 1;
        return Response::builder()
            .status(PoemStatus::SERVICE_UNAVAILABLE)
            .finish();
    }
    if !valid {
        return Response::builder()
            .status(PoemStatus::UNAUTHORIZED)
            .finish();
    }
    let json: Value = serde_json::from_slice(&body).unwrap();
    st.accepted.insert(id, json);
    Response::builder().status(PoemStatus::NO_CONTENT).finish()
}

fn chrono_now() -> i64 {
    portcullis::clock::Clock::system().now()
}

#[tokio::test]
async fn a_receiver_verifies_signatures_and_gets_every_event_across_an_outage() {
    let key = b"a webhook key of thirty-two byte".to_vec();
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(&key)
    );
    // Reserve a port, then leave it closed: the receiver is down at first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_WEBHOOK_URL".into(), url);
        m.insert("PORTCULLIS_WEBHOOK_SECRET".into(), secret);
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let r = app.refresh(&token(&tokens, "refresh_token")).await;
    let tokens: Value = r.json().await.unwrap();
    // Reading the feed stores (and queues) everything emitted so far.
    let events = app.all_activity(&token(&tokens, "access_token")).await;
    let expected: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The receiver comes up, but refuses its first two requests (503).
    let receiver = Receiver {
        key,
        state: Arc::new(Mutex::new(Received {
            refuse: 2,
            ..Received::default()
        })),
    };
    let state = receiver.state.clone();
    let server = tokio::spawn(
        poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
            .run(Route::new().at("/hook", poem::post(hook)).data(receiver)),
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let got: BTreeSet<String> = state.lock().unwrap().accepted.keys().cloned().collect();
        if expected.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every event delivered: expected {expected:?}, got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.abort();
    let st = state.lock().unwrap();
    assert!(
        st.requests.iter().all(|(_, valid)| *valid),
        "a bad signature"
    );
    assert!(
        st.requests.len() >= expected.len() + 2,
        "the refused requests were retried"
    );
    for e in &events {
        let id = e["id"].as_str().unwrap();
        let body = &st.accepted[id];
        assert_eq!(body["id"], id);
        assert_eq!(body["type"], e["type"]);
        assert_eq!(body["data"]["user_id"], e["user_id"]);
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn the_receivers_check_refuses_a_tampered_body() {
    let key = b"k".to_vec();
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let mac = aws_lc_rs::hmac::sign(&k, b"id1.100.{\"a\":1}");
    let sig = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.as_ref())
    );
    assert!(verify(&key, "id1", "100", b"{\"a\":1}", &sig));
    assert!(!verify(&key, "id1", "100", b"{\"a\":2}", &sig));
    assert!(!verify(&key, "id2", "100", b"{\"a\":1}", &sig));
}

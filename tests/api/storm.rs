//! Concurrency storms and crash safety.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn sid_of(jwt: &str) -> String {
    claims_of(jwt)["sid"].as_str().unwrap().to_string()
}

/// Waits (up to 2 s) until some refreshes have succeeded since the start.
async fn refreshes_under_way(issued: &Mutex<Vec<(String, Value)>>, initial: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while issued.lock().unwrap().len() < initial + 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// Refreshes, sign-outs and password changes race on the same users. No
/// request may fail with a 5xx, and afterwards exactly the tokens of live
/// sessions work: none outlives its revocation.
#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one storm: the concurrent tasks and the checks after them share its bookkeeping"
)]
async fn refresh_logout_and_password_change_storm() {
    let app = Arc::new(spawn_app().await);
    let issued: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let mut users = Vec::new();
    for _ in 0..3 {
        let (email, first) = app.signed_in_user().await;
        let mut sessions = vec![first];
        for _ in 0..3 {
            sessions.push(app.login_ok(&email, PASSWORD).await);
        }
        for s in &sessions {
            issued.lock().unwrap().push((email.clone(), s.clone()));
        }
        users.push((email, sessions));
    }
    let initial = issued.lock().unwrap().len();
    // The password each user ends with (a change may lose its session mid-storm).
    let passwords: Arc<Mutex<HashMap<String, &'static str>>> = Arc::default();
    let mut tasks = Vec::new();
    for (email, sessions) in users.clone() {
        // Two refreshers per user, each walking its own chain.
        for s in &sessions[..2] {
            let (app, issued, email) = (app.clone(), issued.clone(), email.clone());
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut rt = token(&s, "refresh_token");
                for _ in 0..15 {
                    let r = app.refresh(&rt).await;
                    let status = r.status();
                    assert!(!status.is_server_error(), "refresh: {status}");
                    if status != StatusCode::OK {
                        break;
                    }
                    let body: Value = r.json().await.unwrap();
                    rt = token(&body, "refresh_token");
                    issued.lock().unwrap().push((email.clone(), body));
                }
            }));
        }
        // One session signs out the others, then itself, once refreshes
        // are under way (so the two really race).
        let (app2, s2, issued2) = (app.clone(), sessions[2].clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            refreshes_under_way(&issued2, initial).await;
            let at = token(&s2, "access_token");
            for scope in ["others", "local"] {
                let r = app2.logout(&at, scope).await;
                assert!(!r.status().is_server_error(), "logout: {}", r.status());
            }
        }));
        // One session changes the password back and forth.
        let (app3, s3) = (app.clone(), sessions[3].clone());
        let (passwords, email3, issued3) = (passwords.clone(), email.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            refreshes_under_way(&issued3, initial).await;
            let at = token(&s3, "access_token");
            for (cur, new) in [
                (PASSWORD, "interim passphrase for storms 9"),
                ("interim passphrase for storms 9", PASSWORD),
            ] {
                let r = app3.change_password(&at, cur, new).await;
                assert!(
                    !r.status().is_server_error(),
                    "password change: {}",
                    r.status()
                );
                if r.status() == StatusCode::NO_CONTENT {
                    passwords.lock().unwrap().insert(email3.clone(), new);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let passwords = passwords.lock().unwrap().clone();
    let password = |email: &str| passwords.get(email).copied().unwrap_or(PASSWORD);

    // Ground truth: the sessions each user's store says are live.
    let mut live: HashMap<String, HashSet<String>> = HashMap::new();
    for (email, _) in &users {
        let fresh = app.login_ok(email, password(email)).await;
        let list: Vec<Value> = app
            .get_authed("/v1/sessions", &token(&fresh, "access_token"))
            .await
            .json()
            .await
            .unwrap();
        live.insert(
            email.clone(),
            list.iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect(),
        );
    }
    let issued = issued.lock().unwrap().clone();
    assert!(issued.len() > 12);
    for (email, body) in &issued {
        let at = token(body, "access_token");
        let alive = live[email].contains(&sid_of(&at));
        let status = app.me_status(&at).await;
        assert_eq!(
            status == StatusCode::OK,
            alive,
            "access token of session {} ({status})",
            sid_of(&at)
        );
    }
    // And a global sign-out leaves nothing alive.
    for (email, _) in &users {
        let fresh = app.login_ok(email, password(email)).await;
        app.delete_authed("/v1/sessions?scope=global", &token(&fresh, "access_token"))
            .await;
    }
    for (_, body) in &issued {
        assert_eq!(
            app.me_status(&token(body, "access_token")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&token(body, "refresh_token")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

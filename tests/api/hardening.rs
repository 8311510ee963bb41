//! Regression tests of the defects found by probing from outside.
//! Each failed on the code before the fix.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

mod connections;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Defect 1: at a realistic cost, an unknown email takes as long as a wrong
/// password (was ~0.9 ms against ~195 ms at cost 12). Interleaved samples,
/// medians, and a ratio: no absolute time is assumed.
#[tokio::test]
async fn unknown_email_and_wrong_password_take_the_same_time() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_BCRYPT_COST".into(), "10".into());
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "100".into());
    })
    .await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // An attacker probes one address again and again, as here: both
    // addresses pile up the same failures.
    let ghost = unique_email();
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        let r = app.login(&ghost, "wrong guess 12345").await;
        unknown.push(t.elapsed().as_secs_f64());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let t = Instant::now();
        let r = app.login(&email, "wrong guess 12345").await;
        wrong.push(t.elapsed().as_secs_f64());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let ratio = median(unknown) / median(wrong);
    eprintln!("unknown/wrong median ratio at cost 10: {ratio:.2}");
    assert!((0.7..=1.3).contains(&ratio), "ratio {ratio:.2}");
}

/// Defect 3: 20 concurrent wrong passwords against a fresh account and a
/// threshold of 5: exactly 5 are checked; the rest need a CAPTCHA.
#[tokio::test]
async fn concurrent_attempts_cannot_pass_the_threshold() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let attempts = (0..20).map(|_| app.login(&email, "wrong guess 12345"));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((checked, refused), (5, 15), "{statuses:?}");
}

/// Defect 2: wrong current passwords are throttled like sign-in failures
/// (429 with Retry-After), and one token cannot queue more bcrypt work than
/// the limit, even all at once.
#[tokio::test]
async fn password_change_is_throttled() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    for _ in 0..5 {
        let r = app
            .change_password(&at, "wrong current 123", "a brand new passphrase 9")
            .await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    }
    let r = app
        .change_password(&at, PASSWORD, "a brand new passphrase 9")
        .await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry));
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;

    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let attempts =
        (0..32).map(|_| app.change_password(&at, "wrong current 123", "a brand new passphrase 9"));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, throttled), (5, 27), "{statuses:?}");
}

/// Defect 12: changing the password to the same password is refused.
#[tokio::test]
async fn same_password_is_not_a_change() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let r = app.change_password(&at, PASSWORD, PASSWORD).await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_eq!(body["errors"][0]["code"], "same_as_current");
}

/// Defect 4: behind a trusted proxy, `ip:port` and `[v6]:port` entries are
/// parsed (they used to be skipped, promoting the spoofed entry to their
/// left), and an unparsable entry ends the walk.
#[tokio::test]
async fn forwarded_for_entries_with_ports() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    for (xff, want) in [
        ("6.6.6.6, 203.0.113.7:5555", "203.0.113.7"),
        ("6.6.6.6, [2001:db8::7]:443", "2001:db8::7"),
        ("6.6.6.6, not-an-address", "127.0.0.1"),
    ] {
        let r = app.login_via_proxy(&email, PASSWORD, xff).await;
        assert_eq!(r.status(), StatusCode::OK);
        let tokens: Value = r.json().await.unwrap();
        let list: Value = app
            .sessions(&token(&tokens, "access_token"))
            .await
            .json()
            .await
            .unwrap();
        let current = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == true)
            .unwrap();
        assert_eq!(current["ip"], want, "{xff}");
    }
}

/// Defect 4: the per-IP sign-in limit holds whatever the spoofed entries.
#[tokio::test]
async fn spoofed_forwarded_entries_do_not_escape_the_ip_limit() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "100".into());
    })
    .await;
    let mut limited = 0;
    for i in 0..26 {
        let xff = format!("10.9.{i}.1, 203.0.113.7:{}", 1000 + i);
        let r = app
            .login_via_proxy(&format!("ghost{i}@example.com"), "wrong guess 12345", &xff)
            .await;
        limited += usize::from(r.status() == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(limited >= 5, "only {limited} of 26 throttled");
}

/// Defect 12: with `CAPTCHA=off`, an attacker's failures lock out the
/// attacker's network, not the owner elsewhere; guessing from many networks
/// is still capped account-wide.
#[tokio::test]
async fn failures_lock_out_the_failing_network_only() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
        m.insert("PORTCULLIS_CAPTCHA".into(), "off".into());
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    for _ in 0..3 {
        let r = app
            .login_via_proxy(&email, "wrong guess 12345", "198.51.100.9")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app.login_via_proxy(&email, PASSWORD, "198.51.100.10").await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    // The owner, from another network, signs in.
    let r = app.login_via_proxy(&email, PASSWORD, "203.0.113.5").await;
    assert_eq!(r.status(), StatusCode::OK);
    // Distributed guessing: 3 × 10 failures account-wide, then 429 everywhere.
    let mut refused_at = None;
    for i in 0..40 {
        let r = app
            .login_via_proxy(&email, "wrong guess 12345", &format!("10.{i}.0.1"))
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused_at = Some(i);
            break;
        }
    }
    assert_eq!(refused_at, Some(30));
}

/// Defect 5: one mailbox, one account, however it is typed; look-alikes
/// are refused.
#[tokio::test]
async fn emails_are_normalized() {
    let app = spawn_app().await;
    let r = app.register("uni@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for twin in [
        "uni@ｅｘａｍｐｌｅ.com",
        "UNI@EXAMPLE.com",
        "ｕｎｉ@example.com",
    ] {
        let r = app.register(twin, PASSWORD).await;
        assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    }
    app.login_ok("uni@ｅｘａｍｐｌｅ.com", PASSWORD).await;
    let r = app.register("bücher@bücher.example", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["email"], "bücher@xn--bcher-kva.example");
    let r = app.register("bücher@xn--bcher-kva.example", PASSWORD).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    // A Cyrillic "а" inside a Latin name, or an all-Cyrillic look-alike.
    for lookalike in [
        "p\u{0430}ypal@example.com",
        "\u{0430}\u{0441}\u{0435}@example.com",
    ] {
        let r = app.register(lookalike, PASSWORD).await;
        let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(body["errors"][0]["field"], "email");
    }
}

/// Defect 6: no length skips the strength check; a long passphrase that is
/// genuinely strong still passes.
#[tokio::test]
async fn long_weak_passwords_are_refused() {
    let app = spawn_app().await;
    // 16 characters: four times is a 64-character password.
    let email = format!(
        "v{}@ex.test",
        &uuid::Uuid::new_v4().simple().to_string()[..7]
    );
    assert_eq!(email.chars().count(), 16);
    for weak in ["a".repeat(64), email.repeat(4), "🔐".repeat(64)] {
        let r = app.register(&email, &weak).await;
        let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(body["errors"][0]["code"], "too_common", "{weak}");
    }
    let varied: String = (0..64u32)
        .map(|i| char::from_u32(0x1F600 + (i * 7) % 80).unwrap())
        .collect();
    assert_eq!(
        app.register(&email, &varied).await.status(),
        StatusCode::CREATED
    );
    app.login_ok(&email, &varied).await;
}

/// Defect 9: at most `PORTCULLIS_MAX_SESSIONS` live sessions; the oldest ends.
#[tokio::test]
async fn sessions_are_capped_oldest_first() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MAX_SESSIONS".into(), "3".into());
    })
    .await;
    let (email, first) = app.signed_in_user().await;
    let mut latest = first.clone();
    for _ in 0..4 {
        latest = app.login_ok(&email, PASSWORD).await;
    }
    let at = token(&latest, "access_token");
    let list: Value = app.sessions(&at).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(
        app.me_status(&token(&first, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me_status(&at).await, StatusCode::OK);
}

/// Defect 10: `/metrics` takes its token when one is set, and only
/// loopback clients otherwise.
#[tokio::test]
async fn metrics_are_not_public() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_METRICS_TOKEN".into(), "metrics-secret-1".into());
    })
    .await;
    let r = app.metrics(None, None).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
    let r = app.metrics(Some("wrong"), None).await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.metrics(Some("metrics-secret-1"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    for name in [
        "portcullis_password_verifications_total",
        "portcullis_refresh_reuse_total",
        "portcullis_registrations_total",
        "portcullis_logins_total",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    // No token configured: loopback only (a client behind a local proxy is not loopback).
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    assert_eq!(app.metrics(None, None).await.status(), StatusCode::OK);
    let r = app.metrics(None, Some("203.0.113.9")).await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
}

/// Defect 12: 405 carries `Allow`; problem `type` URIs answer with a page;
/// 400 details name fields, not internal types; the CAPTCHA difficulty is
/// configuration.
#[tokio::test]
async fn smaller_protocol_defects() {
    let app = spawn_app().await;
    let r = app.client.put(app.url("/v1/users")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    assert_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    let r = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD");

    let r = app.login("ghost@example.com", "wrong guess 12345").await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let page = app
        .client
        .get(body["type"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("Invalid credentials"));
    assert_eq!(
        app.status_of("/problems/no-such-thing").await,
        StatusCode::NOT_FOUND
    );

    let r = app
        .post_json("/v1/sessions", &json!({"email": "a@example.com"}))
        .await;
    let body = assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("password"), "{detail}");
    for internal in ["string(password)", "LoginRequest", "failed to parse"] {
        assert!(!detail.contains(internal), "{detail}");
    }
    assert_eq!(body["errors"][0]["field"], "password");
    assert_eq!(body["errors"][0]["code"], "required");
    let r = app
        .post_json(
            "/v1/users",
            &json!({"email": 5, "password": PASSWORD, "extra": 1}),
        )
        .await;
    let body = assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"email") && fields.contains(&"extra"),
        "{body}"
    );

    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_CAPTCHA_DIFFICULTY".into(), "7000".into());
    })
    .await;
    assert_eq!(app.captcha().await["maxnumber"], 7000);
}

fn sha1_hex(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// Optional screening: a filter built offline by the CLI from a synthetic
/// SHA-1 list refuses listed passwords at registration and change (422,
/// code `breached`); unlisted ones pass.
#[tokio::test]
async fn breached_passwords_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let listed = "violet harbor lanterns juggle 1987";
    let mut list: String = (0..5000)
        .map(|i| format!("{}:{}\n", sha1_hex(&format!("synthetic leak {i}")), i + 1))
        .collect();
    list.push_str(&format!("{}:42\n", sha1_hex(listed)));
    let source = dir.path().join("pwned.txt");
    let filter = dir.path().join("breached.filter");
    std::fs::write(&source, list).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["passwords", "build-filter"])
        .arg(&source)
        .arg(&filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5001 hashes"));
    let path = filter.display().to_string();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_BREACHED_PASSWORDS".into(), path);
    })
    .await;
    let email = unique_email();
    let r = app.register(&email, listed).await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(body["errors"][0]["code"], "breached");
    let (_, tokens) = app.signed_in_user().await;
    let r = app
        .change_password(&token(&tokens, "access_token"), PASSWORD, listed)
        .await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_eq!(body["errors"][0]["code"], "breached");
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

//! Throttling, CAPTCHA and per-IP limits.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn solved_captcha(app: &TestApp) -> String {
    let c = app.captcha().await;
    assert_eq!(c["algorithm"], "SHA-256");
    assert!(c["salt"].as_str().unwrap().contains("?expires="));
    solve_captcha(&c)
}

#[tokio::test]
async fn repeated_failures_require_a_captcha() {
    let app = spawn_app().await; // PORTCULLIS_CAPTCHA=on-failures, 5 failures
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    for _ in 0..5 {
        let r = app.login(&email, "definitely not it 123").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password now needs a CAPTCHA.
    let r = app.login(&email, PASSWORD).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "captcha-required").await;
    let solution = solved_captcha(&app).await;
    let app = &app;
    let email = &email;
    let with = |captcha: &str| {
        let body = json!({"email": email, "password": PASSWORD, "captcha": captcha});
        async move { app.post_json("/v1/sessions", &body).await }
    };
    let r = with("bm90IGpzb24=").await;
    assert_problem(r, StatusCode::BAD_REQUEST, "captcha-required").await;
    assert_eq!(with(&solution).await.status(), StatusCode::OK);
    // Success cleared the count; a used solution never works twice anyway.
    assert_eq!(app.login(email, PASSWORD).await.status(), StatusCode::OK);
    for _ in 0..5 {
        app.login(email, "definitely not it 123").await;
    }
    let r = with(&solution).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "captcha-required").await;
    // Other accounts are unaffected.
    let (other, _) = app.signed_in_user().await;
    app.login_ok(&other, PASSWORD).await;
}

#[tokio::test]
async fn without_captcha_failures_throttle_with_retry_after() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_CAPTCHA".into(), "off".into());
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(
            app.login(&email, "definitely not it 123").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.login(&email, PASSWORD).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900);
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    // Unknown accounts are throttled the same way (no enumeration).
    for _ in 0..3 {
        app.login("ghost@example.com", "definitely not it 123")
            .await;
    }
    let r = app
        .login("ghost@example.com", "definitely not it 123")
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn captcha_always_guards_registration_and_sign_in() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_CAPTCHA".into(), "always".into());
    })
    .await;
    let email = unique_email();
    let r = app.register(&email, PASSWORD).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "captcha-required").await;
    let c = solved_captcha(&app).await;
    let r = app
        .post_json(
            "/v1/users",
            &json!({"email": email, "password": PASSWORD, "captcha": c}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.login(&email, PASSWORD).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "captcha-required").await;
    let c = solved_captcha(&app).await;
    let r = app
        .post_json(
            "/v1/sessions",
            &json!({"email": email, "password": PASSWORD, "captcha": c}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn per_ip_rate_limits_answer_429_with_retry_after() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(app.register(&unique_email(), PASSWORD).await);
    }
    let limited = statuses
        .into_iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("no 429 after 12 registrations");
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
}

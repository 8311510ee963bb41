//! Recovery mail delivery (the outbox folder, SMTP down at request time,
//! a restart with mail still queued) and the limits of the flow: per
//! address, a token or a code, the CAPTCHA, the second factor.

use super::*;

#[tokio::test]
async fn outbox_mode_writes_a_readable_eml() {
    let app = spawn_app_with(|_| {}).await;
    let (email, _) = app.signed_in_user().await;
    assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_email(&email, RESET).await;
    assert!(mail.raw.contains("MIME-Version: 1.0"));
    assert!(mail.raw.contains("multipart/alternative"));
    assert!(mail.text.contains(&mail.code()));
    assert!(!mail.message_id.is_empty());
    assert_eq!(
        app.reset_with_token(&mail.token(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    app.login_ok(&email, NEW_PASSWORD).await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "portcullis_mail_queued_total",
        "portcullis_mail_sent_total",
        "portcullis_mail_failed_total",
        "portcullis_mail_queue_pending",
        "portcullis_mail_queue_age_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn smtp_down_at_request_time_then_the_mail_goes_out_once() {
    let port = free_port();
    let app = spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_SMTP_URL".into(),
            format!("smtp://127.0.0.1:{port}"),
        );
    })
    .await;
    let (email, _) = app.signed_in_user().await;
    assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    // A couple of failed attempts while the server is down.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let smtp = SmtpServer::start_on(port).await;
    let mail = smtp.wait_for_mail(&email, RESET).await;
    // Retries after the success send nothing more.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(mails_to(&smtp, &email, RESET).len(), 1, "sent once");
    assert_eq!(
        app.reset_with_token(&mail.token(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_restart_with_mail_still_queued_sends_it_once() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let db = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
    let shared = |m: &mut std::collections::BTreeMap<String, String>| {
        m.insert(
            "PORTCULLIS_DATA_DIR".into(),
            data.path().display().to_string(),
        );
        m.insert(
            "PORTCULLIS_KEYS_DIR".into(),
            keys.path().display().to_string(),
        );
        if m.contains_key("PORTCULLIS_MONGODB_URI") {
            m.insert("PORTCULLIS_MONGODB_DB".into(), db.clone());
        }
    };
    let down = free_port();
    let first = spawn_app_with(|m| {
        shared(m);
        m.insert(
            "PORTCULLIS_SMTP_URL".into(),
            format!("smtp://127.0.0.1:{down}"),
        );
    })
    .await;
    let (email, _) = first.signed_in_user().await;
    assert_eq!(first.forgot(&email).await.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first);
    // The stopped server lets go of the embedded store's lock soon after.
    for _ in 0..50 {
        if portcullis::store::embedded::EmbeddedStore::open(data.path()).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let second = spawn_app_with(|m| {
        shared(m);
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
    })
    .await;
    let mail = smtp.wait_for_mail(&email, RESET).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(mails_to(&smtp, &email, RESET).len(), 1, "sent once");
    assert_eq!(
        second
            .reset_with_token(&mail.token(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn forgot_is_limited_per_address() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
    })
    .await;
    let email = unique_email();
    // The per-IP budget is 5 at once too; the sixth request is refused by
    // one limit or the other, known address or not.
    for _ in 0..5 {
        assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    }
    let r = app.forgot(&email).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
}

#[tokio::test]
async fn reset_needs_a_token_or_a_code() {
    let app = spawn_app_with(|_| {}).await;
    for body in [
        serde_json::json!({"new_password": NEW_PASSWORD}),
        serde_json::json!({"email": "a@example.com", "new_password": NEW_PASSWORD}),
    ] {
        assert_problem(
            app.post_json("/v1/password/reset", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        )
        .await;
    }
    for bad in ["", "x", "not-a-token!!", &"A".repeat(64)] {
        assert_problem(
            app.reset_with_token(bad, NEW_PASSWORD).await,
            StatusCode::BAD_REQUEST,
            "token-invalid-or-expired",
        )
        .await;
    }
}

#[tokio::test]
async fn forgot_needs_a_captcha_in_always_mode() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
        m.insert("PORTCULLIS_CAPTCHA".into(), "always".into());
    })
    .await;
    let email = unique_email();
    assert_problem(
        app.forgot(&email).await,
        StatusCode::BAD_REQUEST,
        "captcha-required",
    )
    .await;
    let solution = crate::helpers::solve_captcha(&app.captcha().await);
    let r = app
        .post_json(
            "/v1/password/forgot",
            &serde_json::json!({"email": email, "captcha": solution}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn reset_of_a_two_factor_account_needs_a_second_factor() {
    let app = spawn_app_at(Clock::manual(Clock::system().now()), |_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    // A verified address: the reset of an unverified one claims the account
    // and asks for no second factor (`stepup::a_reset_of_an_unverified_account_claims_it`).
    let verify = app.wait_for_email(&email, "Confirm your email").await;
    assert_eq!(
        app.verify_email_token(&verify.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    let (secret, recovery_codes) = app.enable_mfa(&token(&tokens, "access_token")).await;
    assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_email(&email, RESET).await;
    let reset = |extra: Value| {
        let mut body = serde_json::json!({"token": mail.token(), "new_password": NEW_PASSWORD});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let app = &app;
        async move { app.post_json("/v1/password/reset", &body).await }
    };
    // Without a factor, and with a wrong one: 401 mfa-required; the token stays usable.
    let r = reset(serde_json::json!({})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "mfa-required").await;
    let r = reset(serde_json::json!({"mfa_code": "000000"})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "mfa-required").await;
    app.login_mfa_token(&email).await; // the old password still works
    // With a current code: 204, every session revoked, the new password works.
    let code = crate::helpers::totp_code(&secret, app.clock.now());
    let r = reset(serde_json::json!({"mfa_code": code})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&token(&tokens, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_ok(&email, NEW_PASSWORD).await["mfa_required"],
        true
    );
    // A recovery code also does it (on a fresh reset mail).
    app.clock.advance(60);
    assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    let first = mail.token();
    let second = loop {
        let fresh = app
            .emails()
            .into_iter()
            .filter(|m| m.subject.contains(RESET))
            .map(|m| m.token())
            .find(|t| *t != first);
        if let Some(t) = fresh {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body = serde_json::json!({
        "token": second, "new_password": PASSWORD, "recovery_code": recovery_codes[0],
    });
    let r = app.post_json("/v1/password/reset", &body).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

//! Email verification: the mail at registration, `POST /v1/email/verify`
//! by link or code, resend, and `PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem, spawn_app_with, token, unique_email};
use crate::mailbox::SmtpServer;

const VERIFY: &str = "Confirm your email address";

async fn app_with_smtp(required: bool) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
        if required {
            m.insert("PORTCULLIS_REQUIRE_VERIFIED_EMAIL".into(), "true".into());
        }
    })
    .await;
    (app, smtp)
}

async fn verified(app: &TestApp, access: &str) -> bool {
    let me: Value = app.get_authed("/v1/me", access).await.json().await.unwrap();
    me["email_verified"].as_bool().unwrap()
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_only_when_posted() {
    let (app, smtp) = app_with_smtp(false).await;
    let (email, tokens) = app.signed_in_user().await;
    let access = token(&tokens, "access_token");
    let mail = smtp.wait_for_mail(&email, VERIFY).await;
    assert!(mail.link().starts_with(&format!(
        "{}/verify-email?token=",
        app.addr.replace("127.0.0.1", "localhost")
    )));
    // Opening the page (and a scanner's HEAD) verifies nothing.
    let page = app.client.get(mail.link()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("method=\"post\""));
    let head = app.client.head(mail.link()).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(!verified(&app, &access).await);

    assert_eq!(
        app.verify_email_token(&mail.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(verified(&app, &access).await);
    assert_problem(
        app.verify_email_token(&mail.token()).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
}

#[tokio::test]
async fn the_code_verifies_on_another_device() {
    let (app, smtp) = app_with_smtp(false).await;
    let (email, tokens) = app.signed_in_user().await;
    let mail = smtp.wait_for_mail(&email, VERIFY).await;
    assert_problem(
        app.verify_email_code(&email, "12345678x").await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    assert_eq!(
        app.verify_email_code(&email, &mail.code()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(verified(&app, &token(&tokens, "access_token")).await);
}

#[tokio::test]
async fn the_built_in_verify_page_form_verifies() {
    let (app, smtp) = app_with_smtp(false).await;
    let (email, tokens) = app.signed_in_user().await;
    let mail = smtp.wait_for_mail(&email, VERIFY).await;
    let r = app
        .client
        .post(app.url("/verify-email"))
        .form(&[("token", mail.token())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("confirmed"));
    assert!(verified(&app, &token(&tokens, "access_token")).await);
}

#[tokio::test]
async fn resend_sends_a_new_mail_that_supersedes_the_old() {
    let (app, smtp) = app_with_smtp(false).await;
    let (email, tokens) = app.signed_in_user().await;
    let access = token(&tokens, "access_token");
    let first = smtp.wait_for_mail(&email, VERIFY).await;
    let r = app.resend_verification(&access).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let second = smtp.wait_for(2).await.pop().unwrap();
    assert!(second.subject.contains(VERIFY));
    assert_ne!(first.token(), second.token());
    assert_eq!(
        app.verify_email_token(&first.token()).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.verify_email_token(&second.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        app.client
            .post(app.url("/v1/email/verify/resend"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "authentication-required",
    )
    .await;
}

#[tokio::test]
async fn resend_is_rate_limited() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let access = token(&tokens, "access_token");
    for _ in 0..3 {
        assert_eq!(
            app.resend_verification(&access).await.status(),
            StatusCode::ACCEPTED
        );
    }
    assert_problem(
        app.resend_verification(&access).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
    )
    .await;
}

#[tokio::test]
async fn required_verification_blocks_sign_in_until_verified() {
    let (app, smtp) = app_with_smtp(true).await;
    let email = unique_email();
    let r = app.register(&email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "verification_sent"})
    );
    assert_problem(
        app.login(&email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email-unverified",
    )
    .await;
    // A wrong password says nothing about verification.
    assert_problem(
        app.login(&email, "wrong password entirely 9").await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    let mail = smtp.wait_for_mail(&email, VERIFY).await;
    assert_eq!(
        app.verify_email_token(&mail.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    let tokens = app.login_ok(&email, PASSWORD).await;
    assert_eq!(tokens["user"]["email_verified"], true);
}

#[tokio::test]
async fn required_verification_registration_is_no_oracle() {
    let (app, smtp) = app_with_smtp(true).await;
    let taken = unique_email();
    assert_eq!(
        app.register(&taken, PASSWORD).await.status(),
        StatusCode::ACCEPTED
    );
    smtp.wait_for_mail(&taken, VERIFY).await;

    let again = app.register(&taken, "another strong passphrase 5").await;
    let fresh = app.register(&unique_email(), PASSWORD).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(fresh.status(), StatusCode::ACCEPTED);
    assert_eq!(again.text().await.unwrap(), fresh.text().await.unwrap());
    // The owner of the taken address hears about it; the password is unchanged.
    let notice = smtp
        .wait_for_mail(&taken, "You already have an account")
        .await;
    assert!(notice.text.contains("/reset-password"));
    let mail = smtp.wait_for_mail(&taken, VERIFY).await;
    app.verify_email_token(&mail.token()).await;
    app.login_ok(&taken, PASSWORD).await;
    // Invalid input is still a 422 (it says nothing about accounts).
    assert_problem(
        app.register("not-an-email", PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;

    // Similar timing: both hash the password and attempt one insert.
    let mut taken_t = Vec::new();
    let mut fresh_t = Vec::new();
    for _ in 0..9 {
        let t = std::time::Instant::now();
        app.register(&taken, PASSWORD).await;
        taken_t.push(t.elapsed());
        let t = std::time::Instant::now();
        app.register(&unique_email(), PASSWORD).await;
        fresh_t.push(t.elapsed());
    }
    taken_t.sort();
    fresh_t.sort();
    let ratio = taken_t[4].as_secs_f64() / fresh_t[4].as_secs_f64();
    assert!(
        (0.25..4.0).contains(&ratio),
        "median taken {:?} vs new {:?}",
        taken_t[4],
        fresh_t[4]
    );
}

#[tokio::test]
async fn email_change_moves_the_account_when_the_new_address_is_proven() {
    let app = crate::helpers::spawn_app().await;
    let (old, tokens) = app.signed_in_user().await;
    let at = crate::helpers::token(&tokens, "access_token");
    let change = |new_email: String, password: &'static str| {
        let (app, at) = (&app, at.clone());
        async move { app.change_email(&at, &new_email, password).await }
    };
    let new = crate::helpers::unique_email();
    // Wrong password, a malformed address: refused, nothing sent.
    let r = change(new.clone(), "not my password 12345").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A taken address answers as a free one (no oracle; its owner is told).
    let taken = crate::helpers::unique_email();
    app.register(&taken, crate::helpers::PASSWORD).await;
    assert_eq!(
        change(taken.clone(), crate::helpers::PASSWORD)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    app.wait_for_email(&taken, "You already have an account")
        .await;
    assert_eq!(
        change("not-an-address".into(), crate::helpers::PASSWORD)
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Accepted: a link to the new address, a notice to the old one.
    let r = change(new.clone(), crate::helpers::PASSWORD).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_email(&new, "Confirm your email address").await;
    app.wait_for_email(&old, "A change of your email address was requested")
        .await;
    // Opening the link changes nothing.
    let link = mail.link();
    let path = &link[link.find("/verify-email").unwrap()..];
    let page = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let me: serde_json::Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me["email"], old.as_str());
    // Using it moves the account.
    let r = app
        .post_json(
            "/v1/email/verify",
            &serde_json::json!({"token": mail.token()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let me: serde_json::Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me["email"], new.as_str());
    assert_eq!(me["email_verified"], true);
    app.login_ok(&new, crate::helpers::PASSWORD).await;
    assert_eq!(
        app.login(&old, crate::helpers::PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The link works once.
    let r = app
        .post_json(
            "/v1/email/verify",
            &serde_json::json!({"token": mail.token()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // An address taken between the request and the link: 409, nothing moves.
    let next = crate::helpers::unique_email();
    assert_eq!(
        change(next.clone(), crate::helpers::PASSWORD)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let mail = app
        .wait_for_email(&next, "Confirm your email address")
        .await;
    app.register(&next, crate::helpers::PASSWORD).await;
    let r = app
        .post_json(
            "/v1/email/verify",
            &serde_json::json!({"token": mail.token()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let me: serde_json::Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me["email"], new.as_str());
}

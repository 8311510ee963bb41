//! Password recovery by mail: `POST /v1/password/forgot` and
//! `POST /v1/password/reset`, against a real SMTP server on loopback (or the
//! outbox folder), messages parsed as MIME.

use std::time::{Duration, Instant};

use portcullis::clock::Clock;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, spawn_app_at, spawn_app_with, token, unique_email,
};
use crate::mailbox::{Mail, SmtpServer, free_port};

mod delivery_and_limits;

const NEW_PASSWORD: &str = "a brand new passphrase 77";
const RESET: &str = "Reset your password";

/// The public URL the server builds links from (it binds 127.0.0.1, and
/// without `PORTCULLIS_PUBLIC_URL` its public URL is `http://localhost:<port>`).
fn public_url(app: &TestApp) -> String {
    app.addr.replace("127.0.0.1", "localhost")
}

/// The mails of `smtp` to `to` whose subject contains `subject`.
fn mails_to(smtp: &SmtpServer, to: &str, subject: &str) -> Vec<Mail> {
    smtp.messages()
        .into_iter()
        .filter(|m| m.to == to && m.subject.contains(subject))
        .collect()
}

async fn app_with_smtp() -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
    })
    .await;
    (app, smtp)
}

/// Registers, signs in, asks for a reset; returns (email, tokens, mail).
async fn reset_mail(app: &TestApp, smtp: &SmtpServer) -> (String, Value, Mail) {
    let (email, tokens) = app.signed_in_user().await;
    assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    let mail = smtp.wait_for_mail(&email, RESET).await;
    (email, tokens, mail)
}

#[tokio::test]
async fn reset_by_link_revokes_sessions_and_does_not_sign_in() {
    let (app, smtp) = app_with_smtp().await;
    let (email, tokens, mail) = reset_mail(&app, &smtp).await;
    // The link points at the built-in page of the public URL.
    assert!(
        mail.link()
            .starts_with(&format!("{}/reset-password?token=", public_url(&app))),
        "{}",
        mail.link()
    );
    assert!(mail.raw.contains("Content-Type: text/plain"), "a text part");
    assert!(mail.raw.contains("Content-Type: text/html"), "an HTML part");
    assert_eq!(mail.code().len(), 8);

    let r = app.reset_with_token(&mail.token(), NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.text().await.unwrap(), "", "a reset does not sign in");
    // Every session ended.
    assert_eq!(
        app.refresh(&token(&tokens, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me_status(&token(&tokens, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        app.login(&email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
    )
    .await;
    app.login_ok(&email, NEW_PASSWORD).await;
    // And a notice tells the owner.
    smtp.wait_for_mail(&email, "Your password was reset").await;
}

#[tokio::test]
async fn reset_by_code_on_another_device_spends_the_link_too() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    let r = app
        .reset_with_code(&email.to_uppercase(), &mail.code(), NEW_PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.login_ok(&email, NEW_PASSWORD).await;
    // One mail, one credential: the link died with the code.
    assert_problem(
        app.reset_with_token(&mail.token(), "yet another passphrase 88")
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
}

#[tokio::test]
async fn a_used_token_is_refused() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    assert_eq!(
        app.reset_with_token(&mail.token(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        app.reset_with_token(&mail.token(), "yet another passphrase 88")
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    assert_problem(
        app.reset_with_code(&email, &mail.code(), "yet another passphrase 88")
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    app.login_ok(&email, NEW_PASSWORD).await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let clock = Clock::manual(1_900_000_000);
    let app = spawn_app_at(clock.clone(), |m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
        m.insert("PORTCULLIS_RESET_TTL".into(), "30m".into());
    })
    .await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    clock.advance(30 * 60);
    assert_problem(
        app.reset_with_token(&mail.token(), NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    assert_problem(
        app.reset_with_code(&email, &mail.code(), NEW_PASSWORD)
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    app.login_ok(&email, PASSWORD).await;
}

#[tokio::test]
async fn a_newer_mail_supersedes_the_older() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, first) = reset_mail(&app, &smtp).await;
    assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    for _ in 0..200 {
        if mails_to(&smtp, &email, RESET).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = mails_to(&smtp, &email, RESET).pop().unwrap();
    assert_ne!(first.token(), second.token());
    assert_problem(
        app.reset_with_token(&first.token(), NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    assert_problem(
        app.reset_with_code(&email, &first.code(), NEW_PASSWORD)
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    assert_eq!(
        app.reset_with_token(&second.token(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_password_change_kills_the_token() {
    let (app, smtp) = app_with_smtp().await;
    let (email, tokens, mail) = reset_mail(&app, &smtp).await;
    let changed = app
        .change_password(&token(&tokens, "access_token"), PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.reset_with_token(&mail.token(), "yet another passphrase 88")
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    app.login_ok(&email, NEW_PASSWORD).await;
    smtp.wait_for_mail(&email, "Your password was changed")
        .await;
}

#[tokio::test]
async fn five_wrong_codes_kill_the_code() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    let right = mail.code();
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..5 {
        assert_problem(
            app.reset_with_code(&email, wrong, NEW_PASSWORD).await,
            StatusCode::BAD_REQUEST,
            "token-invalid-or-expired",
        )
        .await;
    }
    assert_problem(
        app.reset_with_code(&email, &right, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    app.login_ok(&email, PASSWORD).await;
}

#[tokio::test]
async fn four_wrong_codes_leave_the_fifth_try() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    let right = mail.code();
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..4 {
        assert_eq!(
            app.reset_with_code(&email, wrong, NEW_PASSWORD)
                .await
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.reset_with_code(&email, &right, NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_refused_password_leaves_the_token_usable() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    for weak in ["password", "short", &email] {
        let body = assert_problem(
            app.reset_with_token(&mail.token(), weak).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "new_password");
    }
    assert_eq!(
        app.reset_with_token(&mail.token(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn unknown_email_gets_the_same_answer_and_no_mail() {
    let (app, smtp) = app_with_smtp().await;
    let (known, _) = app.signed_in_user().await;
    let unknown = unique_email();
    let a = app.forgot(&known).await;
    let b = app.forgot(&unknown).await;
    assert_eq!(a.status(), StatusCode::ACCEPTED);
    assert_eq!(b.status(), a.status());
    let (a, b) = (a.text().await.unwrap(), b.text().await.unwrap());
    assert_eq!(a, b, "same body");
    smtp.wait_for_mail(&known, RESET).await;
    // Give a mail to the unknown address every chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let to: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.subject.contains(RESET))
        .map(|m| m.to)
        .collect();
    assert_eq!(to, vec![known.clone()], "no mail for an unknown address");
    assert!(smtp.messages().iter().all(|m| m.to != unknown));

    // Similar timing: the same work either way (one queued request), so
    // the medians stay within a small factor of each other. One known
    // address per request: each address has a budget of 5 requests (which
    // holds whatever `PORTCULLIS_RATE_LIMIT` says).
    let mut knowns = Vec::new();
    for _ in 0..15 {
        let email = unique_email();
        app.register(&email, PASSWORD).await;
        knowns.push(email);
    }
    let mut known_t = Vec::new();
    let mut unknown_t = Vec::new();
    for known in &knowns {
        let t = Instant::now();
        assert_eq!(app.forgot(known).await.status(), StatusCode::ACCEPTED);
        known_t.push(t.elapsed());
        let other = unique_email();
        let t = Instant::now();
        assert_eq!(app.forgot(&other).await.status(), StatusCode::ACCEPTED);
        unknown_t.push(t.elapsed());
    }
    known_t.sort();
    unknown_t.sort();
    let ratio = known_t[7].as_secs_f64() / unknown_t[7].as_secs_f64();
    assert!(
        (0.25..4.0).contains(&ratio),
        "median known {:?} vs unknown {:?}",
        known_t[7],
        unknown_t[7]
    );
}

#[tokio::test]
async fn a_spoofed_host_header_does_not_change_the_link() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _) = app.signed_in_user().await;
    let r = app
        .client
        .post(app.url("/v1/password/forgot"))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .json(&serde_json::json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mail = smtp.wait_for_mail(&email, RESET).await;
    assert!(!mail.text.contains("evil.example"));
    assert!(!mail.html.contains("evil.example"));
    assert!(
        mail.link().starts_with(&public_url(&app)),
        "{}",
        mail.link()
    );
}

#[tokio::test]
async fn links_go_to_the_app_url_when_set() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
        m.insert(
            "PORTCULLIS_APP_URL".into(),
            "https://app.example/auth/".into(),
        );
    })
    .await;
    let (_, _, mail) = reset_mail(&app, &smtp).await;
    assert!(
        mail.link()
            .starts_with("https://app.example/auth/reset-password?token="),
        "{}",
        mail.link()
    );
}

#[tokio::test]
async fn a_scanner_opening_every_link_does_not_burn_it() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    let mut links = mail.links();
    links.extend(mail.html_links());
    assert!(links.len() >= 2, "{links:?}");
    // Outlook Safe Links and friends: GET and HEAD of every link, twice.
    for _ in 0..2 {
        for link in &links {
            let r = app.client.get(link).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "GET {link}");
            let r = app.client.head(link).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "HEAD {link}");
        }
    }
    assert_eq!(
        app.reset_with_token(&mail.token(), NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    app.login_ok(&email, NEW_PASSWORD).await;
}

#[tokio::test]
async fn the_built_in_page_is_strict_and_its_form_resets() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    let r = app.client.get(mail.link()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("method=\"post\""));
    assert!(!html.contains("<script"));
    assert!(html.contains(&mail.token()), "the form carries the token");

    // A weak password: the form comes back, the token stays usable.
    let r = app
        .post_reset_form(&[("token", &mail.token()), ("new_password", "password")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("name=\"new_password\""));
    let r = app
        .post_reset_form(&[("token", &mail.token()), ("new_password", NEW_PASSWORD)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Password changed"));
    app.login_ok(&email, NEW_PASSWORD).await;
    let r = app
        .post_reset_form(&[("token", &mail.token()), ("new_password", PASSWORD)])
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_built_in_page_takes_a_code_without_a_token() {
    let (app, smtp) = app_with_smtp().await;
    let (email, _, mail) = reset_mail(&app, &smtp).await;
    let html = app
        .client
        .get(app.url("/reset-password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"email_code\""));
    let r = app
        .post_reset_form(&[
            ("email", &email),
            ("email_code", &mail.code()),
            ("new_password", NEW_PASSWORD),
        ])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.login_ok(&email, NEW_PASSWORD).await;
}

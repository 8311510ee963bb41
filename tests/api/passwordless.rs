//! Passwordless sign-in by email: link and code over real SMTP on loopback
//! and through the outbox, mail scanners before the user, the per-address
//! budget of codes across mails, the second factor, sign-up by email and
//! enumeration parity (status, body, timing). Anonymous users are in
//! `passwordless/anonymous.rs`.

use std::time::{Duration, Instant};

use portcullis::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, claims_of, spawn_app_at, spawn_app_with, token, unique_email,
};
use crate::mailbox::{Mail, SmtpServer};

mod anonymous;

const SIGN_IN: &str = "Your sign-in link and code";
const VERIFY: &str = "Confirm your email address";
const START: i64 = 1_900_000_000;

impl TestApp {
    async fn email_sign_in(&self, email: &str) -> reqwest::Response {
        self.post_json("/v1/sessions/email", &json!({ "email": email }))
            .await
    }

    async fn email_verify(&self, body: &Value) -> reqwest::Response {
        self.post_json("/v1/sessions/email/verify", body).await
    }

    /// A verified account (registered, its verification link used), with
    /// its mail from `smtp` or else the outbox.
    async fn verified_user(&self, smtp: Option<&SmtpServer>) -> String {
        let email = unique_email();
        assert_eq!(
            self.register(&email, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        let m = match smtp {
            Some(smtp) => smtp.wait_for_mail(&email, VERIFY).await,
            None => self.wait_for_email(&email, VERIFY).await,
        };
        assert_eq!(
            self.verify_email_token(&m.token()).await.status(),
            StatusCode::NO_CONTENT
        );
        email
    }
}

/// Waits (at most 20 s) for more than `seen` outbox mails to `to` with
/// `subject`; returns the newest.
async fn next_mail(app: &TestApp, to: &str, subject: &str, seen: usize) -> Mail {
    for _ in 0..200 {
        let mut mails: Vec<_> = app
            .emails()
            .into_iter()
            .filter(|m| m.to == to && m.subject.contains(subject))
            .collect();
        if mails.len() > seen {
            return mails.pop().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new mail to {to} with subject {subject:?}");
}

fn amr(tokens: &Value) -> Value {
    claims_of(&token(tokens, "access_token"))["amr"].clone()
}

#[tokio::test]
async fn link_sign_in_over_smtp_survives_scanners() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_SMTP_URL".into(), url);
    })
    .await;
    let email = app.verified_user(Some(&smtp)).await;
    let r = app.email_sign_in(&email).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mail = smtp.wait_for_mail(&email, SIGN_IN).await;
    assert!(mail.link().contains("/sign-in?token="), "{}", mail.link());
    assert_eq!(mail.code().len(), 8);
    // Mail scanners open every link (text and HTML), with GET and HEAD,
    // more than once: nothing is used up.
    let mut links = mail.links();
    links.extend(mail.html_links());
    assert!(links.len() >= 2);
    for link in &links {
        for _ in 0..2 {
            let g = app.client.get(link).send().await.unwrap();
            assert_eq!(g.status(), StatusCode::OK, "{link}");
            let html = g.text().await.unwrap();
            assert!(html.contains("<form method=\"post\" action=\"sign-in\">"));
            let h = app.client.head(link).send().await.unwrap();
            assert_eq!(h.status(), StatusCode::OK);
        }
    }
    // The person presses the button: the form posts the token.
    let r = app
        .client
        .post(app.url("/sign-in"))
        .form(&[("token", mail.token().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("You are signed in"));
    // One credential: the link and the code of the mail are spent.
    assert_problem(
        app.email_verify(&json!({ "token": mail.token() })).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    assert_problem(
        app.email_verify(&json!({ "email": email, "email_code": mail.code() }))
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    // A new mail, its link through the API: tokens with `amr: ["email"]`.
    let _ = app.email_sign_in(&email).await;
    let mut second = None;
    for _ in 0..200 {
        let mut mails: Vec<Mail> = smtp
            .messages()
            .into_iter()
            .filter(|m| m.to == email && m.subject.contains(SIGN_IN))
            .collect();
        if mails.len() >= 2 {
            second = mails.pop();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = second.expect("a second sign-in mail");
    assert_ne!(second.token(), mail.token());
    let r = app.email_verify(&json!({ "token": second.token() })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(amr(&tokens), json!(["email"]));
    assert_eq!(tokens["user"]["email"], email);
    assert_eq!(tokens["user"]["email_verified"], true);
    assert_eq!(tokens["user"]["is_anonymous"], false);
    assert_eq!(
        app.me_status(&token(&tokens, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn code_sign_in_through_the_outbox() {
    let app = spawn_app_with(|_| {}).await;
    let email = app.verified_user(None).await;
    assert_eq!(
        app.email_sign_in(&email).await.status(),
        StatusCode::ACCEPTED
    );
    let first = next_mail(&app, &email, SIGN_IN, 0).await;
    // A newer mail supersedes the older one.
    assert_eq!(
        app.email_sign_in(&email).await.status(),
        StatusCode::ACCEPTED
    );
    let mail = next_mail(&app, &email, SIGN_IN, 1).await;
    assert_problem(
        app.email_verify(&json!({ "email": email, "email_code": first.code() }))
            .await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    // The address as typed in another case still finds it.
    let r = app
        .email_verify(&json!({ "email": email.to_uppercase(), "email_code": mail.code() }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(amr(&tokens), json!(["email"]));
    // The session is a normal one: it refreshes, and lists `amr`.
    let r = app.refresh(&token(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let sessions: Value = app
        .sessions(&token(&tokens, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["amr"], json!(["email"]));
    // Neither the code nor the link works twice.
    assert_problem(
        app.email_verify(&json!({ "token": mail.token() })).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    // Malformed bodies are problems that change nothing.
    assert_problem(
        app.email_verify(&json!({ "email": email })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert_problem(
        app.email_verify(&json!({ "token": "x", "extra": 1 })).await,
        StatusCode::BAD_REQUEST,
        "malformed-request",
    )
    .await;
}

#[tokio::test]
async fn an_unverified_account_is_claimed_by_the_link() {
    let app = spawn_app_with(|_| {}).await;
    // Someone registered the address with a password, never verified.
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    app.email_sign_in(&email).await;
    let mail = next_mail(&app, &email, SIGN_IN, 0).await;
    let r = app
        .email_verify(&json!({ "email": email, "email_code": mail.code() }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["user"]["email_verified"], true);
    // The squatter's password is gone.
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn code_guessing_across_mails_is_stopped_by_the_budget() {
    let clock = Clock::manual(START);
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let email = app.verified_user(None).await;
    let unknown = unique_email();
    let wrong = |e: &str, code: &str| {
        let body = json!({ "email": e, "email_code": code });
        async move { body }
    };
    // Two mails, five wrong codes each: each code dies after its five.
    for round in 0..2 {
        app.email_sign_in(&email).await;
        let mail = next_mail(&app, &email, SIGN_IN, round).await;
        let bad = if mail.code() == "00000000" {
            "11111111"
        } else {
            "00000000"
        };
        for _ in 0..5 {
            let known = app.email_verify(&wrong(&email, bad).await).await;
            assert_problem(known, StatusCode::BAD_REQUEST, "token-invalid-or-expired").await;
            let other = app.email_verify(&wrong(&unknown, bad).await).await;
            assert_problem(other, StatusCode::BAD_REQUEST, "token-invalid-or-expired").await;
        }
    }
    // A third mail gives no new tries: the budget of the address is spent,
    // even for the right code; an unknown address answers the same.
    app.email_sign_in(&email).await;
    let mail = next_mail(&app, &email, SIGN_IN, 2).await;
    let r = app.email_verify(&wrong(&email, &mail.code()).await).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    let r = app.email_verify(&wrong(&unknown, "12345678").await).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    // Many guesses at once do not pass the budget either.
    let mut guesses = Vec::new();
    for i in 0..20 {
        let body = json!({ "email": email, "email_code": format!("{:08}", 20_000_000 + i) });
        let app = &app;
        guesses.push(async move { app.email_verify(&body).await.status() });
    }
    let statuses = futures_util::future::join_all(guesses).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
    // Once the window has passed, a new mail's right code works.
    clock.advance(15 * 60 + 1);
    app.email_sign_in(&email).await;
    let mail = next_mail(&app, &email, SIGN_IN, 3).await;
    let r = app.email_verify(&wrong(&email, &mail.code()).await).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_two_factor_account_is_asked_for_its_code() {
    let clock = Clock::manual(START);
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let email = app.verified_user(None).await;
    let at = token(&app.login_ok(&email, PASSWORD).await, "access_token");
    let (secret, _) = app.enable_mfa(&at).await;
    app.email_sign_in(&email).await;
    let mail = next_mail(&app, &email, SIGN_IN, 0).await;
    let r = app
        .email_verify(&json!({ "email": email, "email_code": mail.code() }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none());
    assert!(body["methods"].as_array().unwrap().contains(&json!("totp")));
    // The link of that mail is spent with its code.
    assert_problem(
        app.email_verify(&json!({ "token": mail.token() })).await,
        StatusCode::BAD_REQUEST,
        "token-invalid-or-expired",
    )
    .await;
    let r = app
        .login_mfa(&json!({ "mfa_token": body["mfa_token"], "code": app.totp_now(&secret, 0) }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(amr(&tokens), json!(["email", "otp"]));
}

#[tokio::test]
async fn email_signup_makes_the_account_at_first_use_only_when_on() {
    // Off (the default): an unknown address gets no mail and no account.
    let off = spawn_app_with(|_| {}).await;
    let nobody = unique_email();
    assert_eq!(
        off.email_sign_in(&nobody).await.status(),
        StatusCode::ACCEPTED
    );
    let known = off.verified_user(None).await;
    off.email_sign_in(&known).await;
    next_mail(&off, &known, SIGN_IN, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(off.emails().iter().all(|m| m.to != nobody));
    // On: the mail goes out, and the account appears when the code is used.
    let on = spawn_app_with(|m| {
        m.insert("PORTCULLIS_EMAIL_SIGNUP".into(), "true".into());
    })
    .await;
    let newcomer = unique_email();
    assert_eq!(
        on.email_sign_in(&newcomer).await.status(),
        StatusCode::ACCEPTED
    );
    let mail = next_mail(&on, &newcomer, SIGN_IN, 0).await;
    assert!(on.store.user_by_email(&newcomer).await.unwrap().is_none());
    let r = on
        .email_verify(&json!({ "email": newcomer, "email_code": mail.code() }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["user"]["email"], newcomer);
    assert_eq!(tokens["user"]["email_verified"], true);
    assert_eq!(amr(&tokens), json!(["email"]));
    // No password: a password sign-in fails like any wrong one.
    assert_eq!(
        on.login(&newcomer, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The next mail signs in to the same account.
    on.email_sign_in(&newcomer).await;
    let again = next_mail(&on, &newcomer, SIGN_IN, 1).await;
    let r = on.email_verify(&json!({ "token": again.token() })).await;
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["user"]["id"], tokens["user"]["id"]);
}

/// Requests for known and unknown addresses answer the same (status and
/// body), with and without sign-up, and take the same time (medians, at
/// the default bcrypt cost); so do wrong codes.
#[tokio::test]
async fn known_and_unknown_addresses_look_the_same() {
    for signup in ["false", "true"] {
        let app = spawn_app_with(|m| {
            m.insert("PORTCULLIS_EMAIL_SIGNUP".into(), signup.into());
            m.insert("PORTCULLIS_BCRYPT_COST".into(), "12".into());
        })
        .await;
        // Known accounts, made in the store (no bcrypt needed for them).
        const N: usize = 12;
        let mut knowns = Vec::new();
        for i in 0..N {
            let email = unique_email();
            let now = app.clock.now();
            let user = portcullis::store::UserRecord {
                id: portcullis::domain::UserId::mint(),
                email: email.clone(),
                email_verified: true,
                roles: vec!["user".into()],
                created_at: now,
                updated_at: now,
                display_name: Some(format!("Known {i}")),
                ..Default::default()
            };
            app.store
                .create_user(&user, &portcullis::store::CredentialRecord::default())
                .await
                .unwrap();
            knowns.push(email);
        }
        let unknowns: Vec<String> = (0..N).map(|_| unique_email()).collect();
        let a = app.email_sign_in(&knowns[0]).await;
        let b = app.email_sign_in(&unknowns[0]).await;
        assert_eq!(a.status(), StatusCode::ACCEPTED);
        assert_eq!(b.status(), a.status());
        assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
        let (mut k, mut u) = (Vec::new(), Vec::new());
        for i in 1..N {
            for known_first in [i % 2 == 0, i % 2 == 1] {
                let e = if known_first {
                    &knowns[i]
                } else {
                    &unknowns[i]
                };
                let t = Instant::now();
                assert_eq!(app.email_sign_in(e).await.status(), StatusCode::ACCEPTED);
                if known_first { &mut k } else { &mut u }.push(t.elapsed());
            }
        }
        k.sort();
        u.sort();
        let ratio = k[k.len() / 2].as_secs_f64() / u[u.len() / 2].as_secs_f64();
        eprintln!("sign-in mail request, signup={signup}: known/unknown median ratio {ratio:.2}");
        assert!((0.4..2.5).contains(&ratio), "request ratio {ratio:.2}");
        // Wrong codes: known addresses have live tickets now.
        for e in &knowns {
            next_mail(&app, e, SIGN_IN, 0).await;
        }
        let (mut k, mut u) = (Vec::new(), Vec::new());
        for i in 0..N * 3 {
            for known_first in [i % 2 == 0, i % 2 == 1] {
                // Three wrong codes per address (five kill a code).
                let e = if known_first {
                    &knowns[i % N]
                } else {
                    &unknowns[i % N]
                };
                let body = json!({ "email": e, "email_code": "00000000" });
                let t = Instant::now();
                let r = app.email_verify(&body).await;
                let took = t.elapsed();
                let (status, text) = (r.status(), r.text().await.unwrap());
                assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
                if known_first { &mut k } else { &mut u }.push((took, text));
            }
        }
        assert!(k.iter().zip(&u).all(|(a, b)| a.1 == b.1), "same bodies");
        let mut k: Vec<Duration> = k.into_iter().map(|x| x.0).collect();
        let mut u: Vec<Duration> = u.into_iter().map(|x| x.0).collect();
        k.sort();
        u.sort();
        let ratio = k[k.len() / 2].as_secs_f64() / u[u.len() / 2].as_secs_f64();
        eprintln!("wrong code, signup={signup}: known/unknown median ratio {ratio:.2}");
        assert!((0.5..2.0).contains(&ratio), "code ratio {ratio:.2}");
    }
}

/// The sign-ins are in the user's activity like password ones: a wrong
/// code as `login.failed`, the sign-in as `login.succeeded`; an account
/// made by a link as `user.registered` and `email.verified`.
#[tokio::test]
async fn sign_ins_by_email_are_audited() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_EMAIL_SIGNUP".into(), "true".into());
    })
    .await;
    let email = unique_email();
    app.email_sign_in(&email).await;
    let mail = next_mail(&app, &email, SIGN_IN, 0).await;
    let bad = if mail.code() == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let r = app
        .email_verify(&json!({ "email": email, "email_code": bad }))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.email_verify(&json!({ "token": mail.token() })).await;
    let tokens: Value = r.json().await.unwrap();
    let kinds = crate::helpers::kinds_oldest_first(
        &app.all_activity(&token(&tokens, "access_token")).await,
    );
    for kind in ["user.registered", "email.verified", "login.succeeded"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    // A second sign-in with a wrong code first, now that the account exists.
    app.email_sign_in(&email).await;
    let mail = next_mail(&app, &email, SIGN_IN, 1).await;
    let bad = if mail.code() == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    app.email_verify(&json!({ "email": email, "email_code": bad }))
        .await;
    let r = app
        .email_verify(&json!({ "email": email, "email_code": mail.code() }))
        .await;
    let tokens: Value = r.json().await.unwrap();
    let kinds = crate::helpers::kinds_oldest_first(
        &app.all_activity(&token(&tokens, "access_token")).await,
    );
    assert!(kinds.iter().any(|k| k == "login.failed"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "login.succeeded").count(), 2);
}

/// The built-in page asks a two-factor account for its code (with the
/// `mfa_token` in a hidden field) and completes the sign-in with it.
#[tokio::test]
async fn the_sign_in_page_asks_for_the_second_factor() {
    let clock = Clock::manual(START);
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let email = app.verified_user(None).await;
    let at = token(&app.login_ok(&email, PASSWORD).await, "access_token");
    let (secret, _) = app.enable_mfa(&at).await;
    app.email_sign_in(&email).await;
    let mail = next_mail(&app, &email, SIGN_IN, 0).await;
    let post = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/sign-in"))
                .form(&fields)
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, html) = post(vec![("token", mail.token())]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("two-factor"), "{html}");
    let mfa_token = html
        .split("name=\"mfa_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let (status, html) = post(vec![
        ("mfa_token", mfa_token.clone()),
        ("second_factor", "000000".into()),
    ])
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("wrong"));
    let (status, html) = post(vec![
        ("mfa_token", mfa_token),
        ("second_factor", app.totp_now(&secret, 0)),
    ])
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("You are signed in"));
}

//! Two-factor sign-in (TOTP and recovery codes), end to end: codes are
//! computed from the secret the API returns; time moves on a manual clock.

use portcullis::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A step boundary plus 5 s, so that "this step" and "the next step" are
/// unambiguous.
const START: i64 = 1_900_000_020 + 5;

async fn app() -> TestApp {
    spawn_app_at(Clock::manual(START), |_| {}).await
}

/// A signed-in user with two-factor sign-in on: (email, access token,
/// secret, recovery codes).
async fn mfa_user(app: &TestApp) -> (String, String, String, Vec<String>) {
    let (email, tokens) = app.signed_in_user().await;
    let access = token(&tokens, "access_token");
    let (secret, codes) = app.enable_mfa(&access).await;
    (email, access, secret, codes)
}

async fn mfa_with_code(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    app.login_mfa(&json!({"mfa_token": mfa_token, "code": code}))
        .await
}

async fn mfa_with_recovery(app: &TestApp, mfa_token: &str, code: &str) -> reqwest::Response {
    app.login_mfa(&json!({"mfa_token": mfa_token, "recovery_code": code}))
        .await
}

#[tokio::test]
async fn end_to_end_with_codes_from_the_returned_secret() {
    let app = app().await;
    let (email, tokens) = app.signed_in_user().await;
    let access = token(&tokens, "access_token");
    let other = app.login_ok(&email, PASSWORD).await;
    let other_access = token(&other, "access_token");
    assert_eq!(tokens["user"]["mfa_enabled"], false);

    let r = app.totp_begin(&access).await;
    assert_eq!(r.status(), StatusCode::OK);
    let e: Value = r.json().await.unwrap();
    let secret = e["secret"].as_str().unwrap();
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("Portcullis"), "{uri}");
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    // Pending only: sign-in still needs nothing more.
    let me: Value = app
        .get_authed("/v1/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], false);
    assert!(app.login_ok(&email, PASSWORD).await["access_token"].is_string());

    let r = app.totp_activate(&access, &app.totp_now(secret, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let me: Value = app
        .get_authed("/v1/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], true);
    let me_text = me.to_string();
    assert!(!me_text.contains(secret) && !me_text.contains("recovery"));
    // Turning it on ended the other sessions, not this one.
    assert_eq!(app.me_status(&other_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&access).await, StatusCode::OK);

    // Sign-in: the password alone issues no tokens.
    app.clock.advance(30);
    let body = app.login_ok(&email, PASSWORD).await;
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    let mfa_token = token(&body, "mfa_token");
    let r = mfa_with_code(&app, &mfa_token, &app.totp_now(secret, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let signed_in: Value = r.json().await.unwrap();
    assert_eq!(signed_in["user"]["mfa_enabled"], true);
    let claims = claims_of(&token(&signed_in, "access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    let sessions: Value = app
        .sessions(&token(&signed_in, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap();
    assert_eq!(current["amr"], json!(["pwd", "otp"]));
    // Its refresh token works like any other.
    let r = app.refresh(&token(&signed_in, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_code_is_accepted_once_within_its_step() {
    let app = app().await;
    let (email, _, secret, _) = mfa_user(&app).await;
    let code = app.totp_now(&secret, 0);
    let first = app.login_mfa_token(&email).await;
    assert_eq!(
        mfa_with_code(&app, &first, &code).await.status(),
        StatusCode::OK
    );
    // Same code, a fresh sign-in, same step: refused.
    let second = app.login_mfa_token(&email).await;
    let r = mfa_with_code(&app, &second, &code).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    // Still the same code, now one step later (within the drift): still used.
    app.clock.advance(30);
    let r = mfa_with_code(&app, &second, &code).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    // The next code works, with the same mfa_token (wrong codes spend nothing).
    let r = mfa_with_code(&app, &second, &app.totp_now(&secret, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_step_of_drift_is_accepted_and_two_are_not() {
    let app = app().await;
    let (email, _, secret, _) = mfa_user(&app).await;
    // Away from the step the activation used.
    app.clock.advance(90);
    let t = app.login_mfa_token(&email).await;
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, -2)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, 2)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    // The step before (a slow typist) and the step after (a fast phone clock).
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, -1)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t = app.login_mfa_token(&email).await;
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, 1)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = app().await;
    let (email, _, _, codes) = mfa_user(&app).await;
    let t = app.login_mfa_token(&email).await;
    // As typed on paper: upper case, spaces instead of the dash.
    let sloppy = codes[0].to_uppercase().replace('-', " ");
    let r = mfa_with_recovery(&app, &t, &sloppy).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        claims_of(&token(&body, "access_token"))["amr"],
        json!(["pwd", "rc"])
    );
    let t = app.login_mfa_token(&email).await;
    let r = mfa_with_recovery(&app, &t, &codes[0]).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    let r = mfa_with_recovery(&app, &t, "aaaaa-aaaaa").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    // Another code of the set still works with the same mfa_token.
    assert_eq!(
        mfa_with_recovery(&app, &t, &codes[1]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn two_racing_uses_of_one_recovery_code_one_wins() {
    let app = app().await;
    let (email, _, _, codes) = mfa_user(&app).await;
    // Two racers per code, four codes: the losers' attempts count as wrong
    // codes (at most four, under the throttle's limit of five).
    for code in &codes[..4] {
        let mut tokens = Vec::new();
        for _ in 0..2 {
            tokens.push(app.login_mfa_token(&email).await);
        }
        let attempts = tokens.iter().map(|t| mfa_with_recovery(&app, t, code));
        let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
            .await
            .iter()
            .map(|r| r.status())
            .collect();
        let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(won, 1, "{statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
    }
}

#[tokio::test]
async fn an_mfa_token_is_neither_a_bearer_nor_a_refresh_token() {
    let app = app().await;
    let (email, _, _, _) = mfa_user(&app).await;
    let t = app.login_mfa_token(&email).await;
    let r = app.get_authed("/v1/me", &t).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    let r = app.refresh(&t).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    // And an access token is no mfa_token.
    let (_, tokens) = app.signed_in_user().await;
    let r = mfa_with_code(&app, &token(&tokens, "access_token"), "123456").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test]
async fn an_mfa_token_expires_and_works_once() {
    let app = app().await;
    let (email, _, secret, _) = mfa_user(&app).await;
    let t = app.login_mfa_token(&email).await;
    app.clock.advance(300 + 30);
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, 0)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;

    let t = app.login_mfa_token(&email).await;
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let signed_in: Value = r.json().await.unwrap();
    app.clock.advance(30);
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, 0)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;

    // Bound to the sign-in: a password change after the password step
    // voids the token.
    let t = app.login_mfa_token(&email).await;
    app.clock.advance(1);
    let new_password = "a different horse battery staple 43";
    let r = app
        .change_password(&token(&signed_in, "access_token"), PASSWORD, new_password)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.clock.advance(30);
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, 0)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test]
async fn wrong_codes_are_throttled_per_account() {
    let app = app().await;
    let (email, _, secret, codes) = mfa_user(&app).await;
    let (other_email, _, other_secret, _) = mfa_user(&app).await;
    let t = app.login_mfa_token(&email).await;
    let right = app.totp_now(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let r = mfa_with_code(&app, &t, wrong).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    }
    // Now even the right code and a recovery code wait.
    let r = mfa_with_code(&app, &t, &right).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    let r = mfa_with_recovery(&app, &t, &codes[0]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The other account is not affected.
    let o = app.login_mfa_token(&other_email).await;
    let r = mfa_with_code(&app, &o, &app.totp_now(&other_secret, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Once the window has slid past the failures, the right code works.
    app.clock.advance(15 * 60);
    let t = app.login_mfa_token(&email).await;
    let r = mfa_with_code(&app, &t, &app.totp_now(&secret, 0)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn turning_it_off_needs_a_right_code_or_the_password() {
    let app = app().await;
    let (email, access, secret, _) = mfa_user(&app).await;
    let right = app.totp_now(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = app.totp_disable(&access, &json!({"code": wrong})).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    let r = app
        .totp_disable(&access, &json!({"password": "not the password 42"}))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let me: Value = app
        .get_authed("/v1/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], true);
    assert_eq!(app.login_ok(&email, PASSWORD).await["mfa_required"], true);

    // Another device signed in with two factors; turning it off ends it.
    let t = app.login_mfa_token(&email).await;
    let other: Value = mfa_with_code(&app, &t, &right).await.json().await.unwrap();
    app.clock.advance(30);
    let r = app
        .totp_disable(&access, &json!({"code": app.totp_now(&secret, 0)}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&token(&other, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let me: Value = app
        .get_authed("/v1/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], false);
    let body = app.login_ok(&email, PASSWORD).await;
    assert!(body["access_token"].is_string(), "{body}");
    // Off already: nothing to turn off.
    let r = app
        .totp_disable(&access, &json!({"password": PASSWORD}))
        .await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    // And on again, with a new secret (in a later step: steps are claimed
    // per user).
    app.clock.advance(30);
    let (secret2, _) = app.enable_mfa(&access).await;
    assert_ne!(secret, secret2);
    let r = app
        .totp_disable(&access, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_set() {
    let app = app().await;
    let (email, access, _, old) = mfa_user(&app).await;
    let r = app
        .regenerate_recovery_codes(&access, &json!({"password": "wrong password 42"}))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let r = app
        .regenerate_recovery_codes(&access, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let new: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    let t = app.login_mfa_token(&email).await;
    let r = mfa_with_recovery(&app, &t, &old[0]).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    assert_eq!(
        mfa_with_recovery(&app, &t, &new[0]).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_input_is_a_clear_problem_and_changes_nothing() {
    let app = app().await;
    let (_, tokens) = app.signed_in_user().await;
    let access = token(&tokens, "access_token");
    // Nothing pending yet.
    let r = app.totp_activate(&access, "123456").await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    let e: Value = app.totp_begin(&access).await.json().await.unwrap();
    for bad in ["12345", "abcdef", "1234567", ""] {
        let r = app.totp_activate(&access, bad).await;
        let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(body["errors"][0]["field"], "code");
    }
    let r = app
        .post_authed_json(
            "/v1/me/mfa/totp/activate",
            &access,
            &json!({"code": 123456}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A wrong code for the pending secret.
    let secret = e["secret"].as_str().unwrap();
    let right = app.totp_now(secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = app.totp_activate(&access, wrong).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    let me: Value = app
        .get_authed("/v1/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa_enabled"], false);
    // Both alternatives at once. (Neither relies on a recent proof on the
    // session: see `stepup`.)
    let r = app
        .totp_disable(&access, &json!({"code": right, "password": PASSWORD}))
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = app.login_mfa(&json!({"mfa_token": "x"})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = app
        .login_mfa(&json!({"mfa_token": "x", "code": "123456", "recovery_code": "y"}))
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = app
        .login_mfa(&json!({"mfa_token": "x", "code": "123456"}))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    // On, then enrolling again is a conflict.
    assert_eq!(
        app.totp_activate(&access, &right).await.status(),
        StatusCode::OK
    );
    let r = app.totp_begin(&access).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    // No bearer, no enrolment.
    let r = app
        .client
        .post(app.url("/v1/me/mfa/totp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn turning_two_factor_on_and_off_mails_a_notice_and_is_audited() {
    let app = app().await;
    let (email, access, _secret, _codes) = mfa_user(&app).await;
    let on = app
        .wait_for_email(&email, "Two-factor sign-in was turned on")
        .await;
    assert!(on.text.contains(&email), "{}", on.text);
    let r = app
        .totp_disable(&access, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.wait_for_email(&email, "Two-factor sign-in was turned off")
        .await;
    let kinds: Vec<String> = app
        .all_activity(&access)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"mfa.enabled".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"mfa.disabled".to_string()), "{kinds:?}");
}

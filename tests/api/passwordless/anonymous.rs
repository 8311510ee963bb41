//! Anonymous users: off by default; create, use, what they may not do,
//! upgrade in place (same id, sessions kept, old access token valid,
//! refresh drops the claim), the purge after `PORTCULLIS_ANONYMOUS_TTL`
//! with the manual clock, and a flood from one network.

use portcullis::clock::Clock;
use portcullis::domain::UserId;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::START;
use crate::helpers::{
    PASSWORD, TestApp, assert_problem, claims_of, solve_captcha, spawn_app_at, spawn_app_with,
    token, unique_email,
};

fn on(m: &mut std::collections::BTreeMap<String, String>) {
    m.insert("PORTCULLIS_ANONYMOUS".into(), "true".into());
}

impl TestApp {
    async fn anonymous(&self) -> reqwest::Response {
        self.post_json("/v1/sessions/anonymous", &json!({})).await
    }

    async fn anonymous_ok(&self) -> Value {
        let r = self.anonymous().await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn upgrade(&self, at: &str, email: &str, password: &str) -> reqwest::Response {
        self.post_authed_json(
            "/v1/me/upgrade",
            at,
            &json!({ "email": email, "password": password }),
        )
        .await
    }
}

#[tokio::test]
async fn anonymous_users_are_off_by_default() {
    let app = spawn_app_with(|_| {}).await;
    assert_problem(
        app.anonymous().await,
        StatusCode::FORBIDDEN,
        "anonymous-disabled",
    )
    .await;
    assert_eq!(
        app.status_of("/problems/anonymous-disabled").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn create_use_and_upgrade_in_place() {
    let app = spawn_app_with(on).await;
    let guest = app.anonymous_ok().await;
    let at = token(&guest, "access_token");
    let id = guest["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(claims_of(&at)["is_anonymous"], true);
    assert_eq!(claims_of(&at)["sub"], id.as_str());
    assert_eq!(guest["user"]["is_anonymous"], true);
    assert_eq!(guest["user"]["email"], "");
    // Use: the profile is the guest's own.
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me["is_anonymous"], true);
    let r = app
        .patch_authed("/v1/me", &at, &json!({ "display_name": "Guest" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // What needs a full account (even within the step-up window).
    assert_problem(
        app.passkey_registration_options(&at).await,
        StatusCode::FORBIDDEN,
        "anonymous-user",
    )
    .await;
    assert_problem(
        app.totp_begin(&at).await,
        StatusCode::FORBIDDEN,
        "anonymous-user",
    )
    .await;
    assert_problem(
        app.post_authed_json("/v1/me/email", &at, &json!({ "new_email": unique_email() }))
            .await,
        StatusCode::FORBIDDEN,
        "anonymous-user",
    )
    .await;
    // Bad input changes nothing.
    assert_problem(
        app.upgrade(&at, "not an address", PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert_problem(
        app.upgrade(&at, &unique_email(), "short").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    // A taken address: sign-up's conflict.
    let taken = unique_email();
    app.register(&taken, PASSWORD).await;
    assert_problem(
        app.upgrade(&at, &taken, PASSWORD).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // The upgrade: same id, a verification mail, the claim gone after refresh.
    let email = unique_email();
    let r = app.upgrade(&at, &email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["id"], id.as_str());
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["is_anonymous"], false);
    assert_eq!(user["display_name"], "Guest");
    app.wait_for_email(&email, "Confirm your email address")
        .await;
    // The old access token works until it expires (its claim says what it
    // was when issued).
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["is_anonymous"], false);
    let r = app.refresh(&token(&guest, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh: Value = r.json().await.unwrap();
    let claims = claims_of(&token(&fresh, "access_token"));
    assert_eq!(claims["sub"], id.as_str());
    assert!(claims.get("is_anonymous").is_none(), "{claims}");
    assert_eq!(fresh["user"]["is_anonymous"], false);
    // A full account: signs in with its password; no second upgrade.
    let login = app.login_ok(&email, PASSWORD).await;
    assert_eq!(login["user"]["id"], id.as_str());
    assert_problem(
        app.upgrade(&token(&fresh, "access_token"), &unique_email(), PASSWORD)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
}

#[tokio::test]
async fn upgrade_in_verification_mode_answers_alike_for_taken_addresses() {
    let app = spawn_app_with(|m| {
        on(m);
        m.insert("PORTCULLIS_REQUIRE_VERIFIED_EMAIL".into(), "true".into());
    })
    .await;
    let taken = unique_email();
    app.register(&taken, PASSWORD).await;
    let a = token(&app.anonymous_ok().await, "access_token");
    let b = token(&app.anonymous_ok().await, "access_token");
    let to_taken = app.upgrade(&a, &taken, PASSWORD).await;
    let to_free = app.upgrade(&b, &unique_email(), PASSWORD).await;
    assert_eq!(to_taken.status(), StatusCode::ACCEPTED);
    assert_eq!(to_free.status(), StatusCode::ACCEPTED);
    assert_eq!(
        to_taken.text().await.unwrap(),
        to_free.text().await.unwrap()
    );
    // The owner of the taken address hears of it.
    app.wait_for_email(&taken, "already").await;
}

#[tokio::test]
async fn unused_guests_are_purged_after_the_ttl() {
    let clock = Clock::manual(START);
    let app = spawn_app_at(clock.clone(), |m| {
        on(m);
        m.insert("PORTCULLIS_ANONYMOUS_TTL".into(), "1d".into());
    })
    .await;
    let idle = app.anonymous_ok().await;
    let used = app.anonymous_ok().await;
    let upgraded = app.anonymous_ok().await;
    assert_eq!(
        app.upgrade(&token(&upgraded, "access_token"), &unique_email(), PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    clock.advance(12 * 3600);
    let r = app.refresh(&token(&used, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let used_now: Value = r.json().await.unwrap();
    // Not yet a day: nothing goes.
    assert_eq!(app.core.purge_anonymous().await.unwrap(), 0);
    clock.advance(12 * 3600 + 1);
    assert_eq!(app.core.purge_anonymous().await.unwrap(), 1);
    let gone = idle["user"]["id"].as_str().unwrap();
    assert!(
        app.store
            .user_by_id(&UserId::from(gone))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.refresh(&token(&idle, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The used one and the upgraded one stay.
    for kept in [&used, &upgraded] {
        let id = kept["user"]["id"].as_str().unwrap();
        assert!(
            app.store
                .user_by_id(&UserId::from(id))
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(
        app.refresh(&token(&used_now, "refresh_token"))
            .await
            .status(),
        StatusCode::OK
    );
    // A guest may delete itself with its bearer token alone (it has no
    // proof to give), past the step-up window of its sign-in.
    let leaving = app.anonymous_ok().await;
    clock.advance(600);
    let r = app
        .delete_me_with(&token(&leaving, "access_token"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let id = leaving["user"]["id"].as_str().unwrap();
    assert!(
        app.store
            .user_by_id(&UserId::from(id))
            .await
            .unwrap()
            .is_none()
    );
    // A day after its last refresh the used one goes too; never the upgraded.
    clock.advance(86_401 - 600);
    assert_eq!(app.core.purge_anonymous().await.unwrap(), 1);
    let id = upgraded["user"]["id"].as_str().unwrap();
    assert!(
        app.store
            .user_by_id(&UserId::from(id))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_flood_from_one_network_is_limited() {
    // CAPTCHA off: 429 past the limit, for any number at once.
    let app = spawn_app_with(|m| {
        on(m);
        m.insert("PORTCULLIS_CAPTCHA".into(), "off".into());
    })
    .await;
    let mut all = Vec::new();
    for _ in 0..30 {
        let app = &app;
        all.push(async move { app.anonymous().await });
    }
    let answers = futures_util::future::join_all(all).await;
    let ok = answers
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(ok, 10, "exactly the limit's worth of guests");
    let refused = answers
        .into_iter()
        .find(|r| r.status() != StatusCode::OK)
        .unwrap();
    assert!(refused.headers().get("retry-after").is_some());
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    // The default (`on-failures`): past the limit a solved CAPTCHA passes.
    let app = spawn_app_with(on).await;
    for _ in 0..10 {
        app.anonymous_ok().await;
    }
    assert_problem(
        app.anonymous().await,
        StatusCode::BAD_REQUEST,
        "captcha-required",
    )
    .await;
    let solved = solve_captcha(&app.captcha().await);
    let r = app
        .post_json("/v1/sessions/anonymous", &json!({ "captcha": solved }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn admins_see_guests_as_anonymous() {
    let admin = unique_email();
    let app = crate::helpers::spawn_app_with_admin_as(&admin, on).await;
    let at = token(&app.login_ok(&admin, PASSWORD).await, "access_token");
    let guest = app.anonymous_ok().await;
    let id = guest["user"]["id"].as_str().unwrap();
    let r = app.get_authed(&format!("/v1/admin/users/{id}"), &at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["is_anonymous"], true);
    assert_eq!(user["email"], "");
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me["is_anonymous"], false);
}

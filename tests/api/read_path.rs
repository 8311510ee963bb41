//! The lean read path: a verified-token cache and, on the
//! embedded store, session state in memory. Revocation stays exact: a token
//! whose session was revoked is refused by the next request after the
//! revoking one returned, even when the token and its session were just
//! served from the caches. Every test warms the caches first (`GET /v1/me`,
//! `GET /v1/sessions` and `GET /oauth/userinfo`, twice: both bearer
//! checkers) and runs on either backend.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Serves `at` through both bearer checkers twice (fills every cache).
async fn warm(app: &TestApp, at: &str) {
    for _ in 0..2 {
        assert_eq!(app.me_status(at).await, StatusCode::OK);
        assert_eq!(app.sessions(at).await.status(), StatusCode::OK);
        assert_eq!(app.userinfo(at).await.status(), StatusCode::OK);
    }
}

/// `at` is refused by both bearer checkers, with the RFC 6750 header.
async fn assert_refused(app: &TestApp, at: &str, what: &str) {
    let r = app.get_authed("/v1/me", at).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "GET /v1/me after {what}"
    );
    assert!(r.headers().contains_key("www-authenticate"), "{what}");
    assert_eq!(
        app.sessions(at).await.status(),
        StatusCode::UNAUTHORIZED,
        "GET /v1/sessions after {what}"
    );
    let r = app.userinfo(at).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "userinfo after {what}"
    );
    assert!(r.headers().contains_key("www-authenticate"), "{what}");
}

fn at(v: &Value) -> String {
    token(v, "access_token")
}

#[tokio::test]
async fn sign_out_in_every_scope_is_exact_after_cached_reads() {
    let app = spawn_app().await;
    let (email, a) = app.signed_in_user().await;
    let b = app.login_ok(&email, PASSWORD).await;
    let c = app.login_ok(&email, PASSWORD).await;
    for t in [&a, &b, &c] {
        warm(&app, &at(t)).await;
    }
    // Local.
    assert_eq!(
        app.logout(&at(&c), "local").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_refused(&app, &at(&c), "sign-out (local)").await;
    warm(&app, &at(&a)).await;
    // One session by id.
    let sid_b = claims_of(&at(&b))["sid"].as_str().unwrap().to_string();
    assert_eq!(
        app.revoke_session(&at(&a), &sid_b).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_refused(&app, &at(&b), "DELETE /v1/sessions/{sid}").await;
    // Others, then global.
    let d = app.login_ok(&email, PASSWORD).await;
    warm(&app, &at(&d)).await;
    assert_eq!(
        app.logout(&at(&a), "others").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_refused(&app, &at(&d), "sign-out (others)").await;
    warm(&app, &at(&a)).await;
    assert_eq!(
        app.logout(&at(&a), "global").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_refused(&app, &at(&a), "sign-out (global)").await;
}

#[tokio::test]
async fn password_change_and_account_deletion_are_exact_after_cached_reads() {
    let app = spawn_app().await;
    let (email, a) = app.signed_in_user().await;
    let b = app.login_ok(&email, PASSWORD).await;
    warm(&app, &at(&a)).await;
    warm(&app, &at(&b)).await;
    let new_password = "another long passphrase for this 77";
    let r = app.change_password(&at(&a), PASSWORD, new_password).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &at(&b), "password change").await;
    warm(&app, &at(&a)).await;
    let r = app.delete_me(&at(&a), new_password).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &at(&a), "account deletion").await;
}

#[tokio::test]
async fn admin_disable_session_revocation_and_deletion_are_exact_after_cached_reads() {
    let (app, admin) = spawn_app_with_admin().await;
    let admin_at = at(&admin);
    let id_of = |t: &Value| t["user"]["id"].as_str().unwrap().to_string();

    let (_, u) = app.signed_in_user().await;
    warm(&app, &at(&u)).await;
    let r = app
        .admin_patch(&admin_at, &id_of(&u), &json!({"disabled": true}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_refused(&app, &at(&u), "admin disable").await;

    let (_, v) = app.signed_in_user().await;
    warm(&app, &at(&v)).await;
    let r = app
        .delete_authed(
            &format!("/v1/admin/users/{}/sessions", id_of(&v)),
            &admin_at,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &at(&v), "admin session revocation").await;

    let (_, w) = app.signed_in_user().await;
    warm(&app, &at(&w)).await;
    let r = app
        .delete_authed(&format!("/v1/admin/users/{}", id_of(&w)), &admin_at)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &at(&w), "admin deletion").await;
}

#[tokio::test]
async fn refresh_reuse_and_oauth_revoke_are_exact_after_cached_reads() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_GRACE".into(), "0s".into());
    })
    .await;
    let (email, a) = app.signed_in_user().await;
    warm(&app, &at(&a)).await;
    let first = token(&a, "refresh_token");
    let r = app.refresh(&first).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next: Value = r.json().await.unwrap();
    warm(&app, &at(&next)).await;
    // The retired token comes back: the family is revoked.
    let r = app.refresh(&first).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    assert_refused(&app, &at(&a), "reuse detection (old access token)").await;
    assert_refused(&app, &at(&next), "reuse detection (new access token)").await;

    let b = app.login_ok(&email, PASSWORD).await;
    warm(&app, &at(&b)).await;
    assert_eq!(app.oauth_revoke(&at(&b)).await.status(), StatusCode::OK);
    assert_refused(&app, &at(&b), "/oauth/revoke").await;
}

#[tokio::test]
async fn cached_tokens_expire_by_the_service_clock() {
    use portcullis::clock::Clock;
    let app = spawn_app_at(Clock::manual(Clock::system().now()), |_| {}).await;
    let (_, tokens) = app.signed_in_user().await;
    let at = at(&tokens);
    warm(&app, &at).await;
    // Just inside the lifetime and the 5 s leeway: still served.
    app.clock.advance(15 * 60 + 5);
    assert_eq!(app.me_status(&at).await, StatusCode::OK);
    app.clock.advance(1);
    for path in ["/v1/me", "/v1/sessions"] {
        let r = app.get_authed(path, &at).await;
        let body = assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
        assert!(
            body["detail"].as_str().unwrap().contains("expired"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_forged_variant_of_a_cached_token_is_refused() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let good = at(&tokens);
    warm(&app, &good).await;
    // Same header and claims, another signature: not the cached token.
    let (signed, sig) = good.rsplit_once('.').unwrap();
    let mut sig = sig.to_string();
    let first = sig.remove(0);
    sig.insert(0, if first == 'A' { 'B' } else { 'A' });
    let forged = format!("{signed}.{sig}");
    assert_refused(&app, &forged, "a forged signature").await;
    assert_eq!(app.me_status(&good).await, StatusCode::OK);
}

//! Profile and password change.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn me_and_profile_updates() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me["email"], email);

    let patch = |body: Value| {
        let (app, at) = (&app, at.clone());
        async move { app.update_me(&at, &body).await }
    };
    let r = patch(json!({"display_name": "  Grace Hopper "})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["display_name"], "Grace Hopper");

    let r = patch(json!({})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["display_name"],
        "Grace Hopper",
        "absent field unchanged"
    );

    let r = patch(json!({"display_name": "x".repeat(65)})).await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(body["errors"][0]["field"], "display_name");
    let r = patch(json!({"display_name": {"$set": "x"}})).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    let r = patch(json!({"email": "new@example.com"})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = patch(json!({"nickname": "x"})).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(
        me["display_name"], "Grace Hopper",
        "rejected patches changed nothing"
    );
    assert_eq!(me["email"], email);

    let r = patch(json!({"display_name": null})).await;
    assert!(r.json::<Value>().await.unwrap()["display_name"].is_null());
}

#[tokio::test]
async fn password_change_revokes_other_sessions() {
    let app = spawn_app().await;
    let (email, a) = app.signed_in_user().await;
    let b = app.login_ok(&email, PASSWORD).await;
    let at_a = token(&a, "access_token");
    let change = |current: &'static str, new: &'static str| {
        let (app, at) = (&app, at_a.clone());
        async move { app.change_password(&at, current, new).await }
    };
    const NEW: &str = "an entirely new passphrase 77";
    let r = change("not my password at all", NEW).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let r = change(PASSWORD, "password1").await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(
        app.me_status(&token(&b, "access_token")).await,
        StatusCode::OK,
        "failed changes revoke nothing"
    );

    let r = change(PASSWORD, NEW).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&at_a).await,
        StatusCode::OK,
        "the changing session stays"
    );
    assert_eq!(
        app.me_status(&token(&b, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let r = app.refresh(&token(&b, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.login_ok(&email, NEW).await;
}

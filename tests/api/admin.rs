//! The admin API: each route, 401/403, disabling, pagination.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn admin_routes_need_a_token_and_the_role() {
    let (app, admin) = spawn_app_with_admin().await;
    let admin_at = token(&admin, "access_token");
    assert_eq!(claims_of(&admin_at)["roles"], json!(["user", "admin"]));
    let (_, user) = app.signed_in_user().await;
    let user_at = token(&user, "access_token");
    let id = user["user"]["id"].as_str().unwrap();
    let routes = [
        (reqwest::Method::GET, "/v1/admin/users".to_string()),
        (reqwest::Method::GET, format!("/v1/admin/users/{id}")),
        (reqwest::Method::PATCH, format!("/v1/admin/users/{id}")),
        (reqwest::Method::DELETE, format!("/v1/admin/users/{id}")),
        (
            reqwest::Method::DELETE,
            format!("/v1/admin/users/{id}/sessions"),
        ),
    ];
    for (method, path) in &routes {
        let send = |token: Option<&str>| {
            let mut req = app.client.request(method.clone(), app.url(path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if *method == reqwest::Method::PATCH {
                req = req.json(&json!({"disabled": true}));
            }
            req.send()
        };
        let r = send(None).await.unwrap();
        assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
        let r = send(Some(&user_at)).await.unwrap();
        assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // Nothing happened to the user.
    assert_eq!(app.me_status(&user_at).await, StatusCode::OK);
    // A user cannot make themselves admin.
    let r = app.update_me(&user_at, &json!({"roles": ["admin"]})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn admin_reads_changes_and_deletes_accounts() {
    let (app, admin) = spawn_app_with_admin().await;
    let at = token(&admin, "access_token");
    let (email, user) = app.signed_in_user().await;
    let user_at = token(&user, "access_token");
    let id = user["user"]["id"].as_str().unwrap().to_string();

    let r = app.get_authed(&format!("/v1/admin/users/{id}"), &at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["email"], email);
    assert_eq!(u["disabled"], false);
    let r = app.get_authed("/v1/admin/users/no-such-id", &at).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;

    // Roles and verification; the user's next token carries the role.
    let r = app
        .admin_patch(
            &at,
            &id,
            &json!({"roles": ["user", "editor"], "email_verified": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["roles"], json!(["editor", "user"]));
    assert_eq!(u["email_verified"], true);
    let again = app.login_ok(&email, PASSWORD).await;
    assert_eq!(
        claims_of(&token(&again, "access_token"))["roles"],
        json!(["editor", "user"])
    );
    for bad in [json!({"roles": ["Admin!"]}), json!({"roles": [""]})] {
        let r = app.admin_patch(&at, &id, &bad).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    }
    let r = app
        .admin_patch(&at, &id, &json!({"password_hash": "x"}))
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;

    // Disabling refuses live tokens at once, refresh and sign-in too (403).
    let r = app.admin_patch(&at, &id, &json!({"disabled": true})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);
    assert_eq!(app.me_status(&user_at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me_status(&token(&again, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&token(&user, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app.login(&email, PASSWORD).await;
    assert_problem(r, StatusCode::FORBIDDEN, "account-disabled").await;
    // Re-enabled: sign-in works again.
    app.admin_patch(&at, &id, &json!({"disabled": false})).await;
    let fresh = app.login_ok(&email, PASSWORD).await;
    let fresh_at = token(&fresh, "access_token");

    // Ending sessions.
    let r = app
        .delete_authed(&format!("/v1/admin/users/{id}/sessions"), &at)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&fresh_at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me_status(&at).await,
        StatusCode::OK,
        "the admin's own stay"
    );

    // Deleting: gone, and the email is free.
    let r = app
        .delete_authed(&format!("/v1/admin/users/{id}"), &at)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .delete_authed(&format!("/v1/admin/users/{id}"), &at)
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
    let r = app.get_authed(&format!("/v1/admin/users/{id}"), &at).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn listing_pages_through_an_email_prefix() {
    let (app, admin) = spawn_app_with_admin().await;
    let at = token(&admin, "access_token");
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut expected = Vec::new();
    for i in 0..7 {
        let email = format!("page-{tag}-{i}@example.com");
        app.register(&email, PASSWORD).await;
        expected.push(email);
    }
    app.register(&unique_email(), PASSWORD).await;
    let mut seen = Vec::new();
    let mut query = format!("?email_prefix=PAGE-{tag}&limit=3");
    let mut pages = 0;
    loop {
        let r = app.admin_list(&at, &query).await;
        assert_eq!(r.status(), StatusCode::OK);
        let page: Value = r.json().await.unwrap();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 3);
        for u in users {
            assert!(u.get("password_hash").is_none());
            seen.push(u["email"].as_str().unwrap().to_string());
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?email_prefix=page-{tag}&limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    let all: Value = app.admin_list(&at, "").await.json().await.unwrap();
    assert_eq!(
        all["users"].as_array().unwrap().len(),
        9,
        "7 + 1 + the admin"
    );
    for q in ["?limit=0", "?limit=101", "?cursor=!!!"] {
        let r = app.admin_list(&at, q).await;
        assert!(r.status().is_client_error(), "{q}: {}", r.status());
    }
}

//! `PATCH /v1/me` (locale, time zone, metadata, admin-only fields) and
//! `DELETE /v1/me`.

use portcullis::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn profile_fields_are_validated_and_canonicalized() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    for field in ["locale", "timezone", "metadata", "avatar_url"] {
        assert!(me[field].is_null(), "{field} unset at first: {me}");
    }
    assert_eq!(me["passkeys"], 0);

    let r = app
        .update_me(
            &at,
            &json!({
                "display_name": "  Ada  ",
                "locale": "pt-br",
                "timezone": "america/new_york",
                "metadata": {"theme": "dark", "nested": {"a": [1, 2, {"b": null}]}},
            }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["display_name"], "Ada");
    assert_eq!(u["locale"], "pt-BR");
    assert_eq!(u["timezone"], "America/New_York");
    assert_eq!(u["metadata"]["nested"]["a"][2], json!({"b": null}));
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me, u, "GET /v1/me shows what PATCH returned");

    let deep = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
    let cases = [
        (json!({"display_name": ""}), "display_name"),
        (json!({"display_name": "tab\there"}), "display_name"),
        (json!({"display_name": "x".repeat(65)}), "display_name"),
        (json!({"locale": "english"}), "locale"),
        (json!({"locale": "en_US"}), "locale"),
        (json!({"locale": "zz-ZZ"}), "locale"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"timezone": "+02:00"}), "timezone"),
        (json!({"metadata": [1, 2]}), "metadata"),
        (json!({"metadata": "text"}), "metadata"),
        (json!({"metadata": {"$where": "1"}}), "metadata"),
        (json!({"metadata": {"a.b": 1}}), "metadata"),
        (json!({"metadata": {"x": "y".repeat(4096)}}), "metadata"),
        (json!({"metadata": deep}), "metadata"),
    ];
    for (body, field) in cases {
        let r = app.update_me(&at, &body).await;
        let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(p["errors"][0]["field"], field, "{body}");
    }
    // Several bad fields: all reported, none applied (not even the good one).
    let r = app
        .update_me(
            &at,
            &json!({"display_name": "Bob", "locale": "??", "timezone": "Nowhere/X"}),
        )
        .await;
    let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 2);
    let me: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(me, u, "rejected patches changed nothing");

    // null clears.
    let r = app
        .update_me(&at, &json!({"locale": null, "metadata": null}))
        .await;
    let u: Value = r.json().await.unwrap();
    assert!(u["locale"].is_null() && u["metadata"].is_null());
    assert_eq!(u["timezone"], "America/New_York");
}

#[tokio::test]
async fn admin_only_fields_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let before: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    for (field, value) in [
        ("roles", json!(["admin"])),
        ("disabled", json!(false)),
        ("email_verified", json!(true)),
        ("email", json!("other@example.com")),
        ("roles", Value::Null),
    ] {
        let body = json!({"display_name": "Sneaky", field: value});
        let r = app.update_me(&at, &body).await;
        let p = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(p["errors"][0]["field"], field);
        assert_eq!(p["errors"][0]["code"], "admin_only");
    }
    let after: Value = app.get_authed("/v1/me", &at).await.json().await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after["roles"], json!(["user"]));
    assert_eq!(after["email"], email);
}

#[tokio::test]
async fn deleting_the_account_erases_it_and_frees_the_email() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let other = app.login_ok(&email, PASSWORD).await;
    let r = app
        .put_avatar(&at, "image/png", crate::avatar::png_bytes(32, 32))
        .await;
    let avatar_url = r.json::<Value>().await.unwrap()["avatar_url"]
        .as_str()
        .unwrap()
        .to_string();
    let old_id = tokens["user"]["id"].as_str().unwrap().to_string();

    let r = app.delete_me(&at, "not the password at all").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    // Two proofs are a 422. (`{}` relies on a recent proof on the session:
    // `stepup::routes_with_a_proof_in_the_body_accept_a_recent_one`.)
    let r = app
        .delete_authed_json(
            "/v1/me",
            &at,
            &json!({ "password": PASSWORD, "code": "123456" }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(
        app.me_status(&at).await,
        StatusCode::OK,
        "nothing deleted yet"
    );

    let r = app.delete_me(&at, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Every session and token is dead, the avatar is gone, sign-in fails.
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me_status(&token(&other, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&token(&other, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_avatar(&avatar_url, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The email can be registered again: a new account, new id, no avatar.
    let r = app.register(&email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let fresh: Value = r.json().await.unwrap();
    assert_ne!(fresh["id"], old_id);
    assert!(fresh["avatar_url"].is_null());
    app.login_ok(&email, PASSWORD).await;
}

/// A step boundary plus 5 s (codes of "this step" are unambiguous).
const START: i64 = 1_900_000_020 + 5;

#[tokio::test]
async fn an_account_with_two_factor_on_deletes_itself_with_a_current_code() {
    let app = spawn_app_at(Clock::manual(START), |_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let (secret, recovery) = app.enable_mfa(&at).await;
    let code = |p: &str| json!({ "code": p });

    // Malformed codes are the client's mistake (422); a recovery code is
    // not a `code` here. A wrong code is a 401.
    for bad in ["12", "not a code", recovery[0].as_str()] {
        let r = app.delete_me_with(&at, &code(bad)).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    }
    let right = app.totp_now(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = app.delete_me_with(&at, &code(wrong)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    // Two proofs at once: 422.
    let r = app
        .delete_me_with(&at, &json!({ "code": right, "password": PASSWORD }))
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    // A code already used (here to sign in) is refused.
    let mfa_token = app.login_mfa_token(&email).await;
    let r = app
        .login_mfa(&json!({ "mfa_token": mfa_token, "code": right }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.delete_me_with(&at, &code(&right)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    assert_eq!(app.me_status(&at).await, StatusCode::OK, "nothing deleted");

    // The next step's code works.
    app.clock.advance(30);
    let r = app
        .delete_me_with(&at, &code(&app.totp_now(&secret, 0)))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_deletion_proofs_are_throttled_whatever_their_kind() {
    // The default limit: 5 wrong checks per account in 15 minutes.
    let app = spawn_app_at(Clock::manual(START), |_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let (secret, _) = app.enable_mfa(&at).await;
    let right = app.totp_now(&secret, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // Wrong proofs of each kind share one budget, with the password check
    // of a password change.
    let r = app
        .change_password(&at, "not the password", "a whole new password 42")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for body in [
        json!({ "password": "not the password" }),
        json!({ "code": wrong }),
        json!({ "passkey": { "challenge_id": "00000000-0000-0000-0000-000000000000", "credential": {} } }),
        json!({ "password": "still not it" }),
    ] {
        let r = app.delete_me_with(&at, &body).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{body}");
    }
    // Now even the right password waits.
    let r = app.delete_me(&at, PASSWORD).await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    assert_eq!(app.me_status(&at).await, StatusCode::OK, "nothing deleted");
    // When the window has slid, the right password deletes the account
    // (with a refreshed access token: the first one has expired by then).
    app.clock.advance(15 * 60 + 1);
    let r = app.refresh(&token(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let at = token(&r.json::<Value>().await.unwrap(), "access_token");
    let r = app.delete_me(&at, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

//! Registration and password rules.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_returns_the_user_and_never_a_secret() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/v1/users",
            &json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let text = r.text().await.unwrap();
    assert!(!text.contains("$2b$"), "hash leaked");
    assert!(!text.contains(PASSWORD));
    let u: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(u["email"], "ada@example.com");
    assert_eq!(u["display_name"], "Ada");
    assert_eq!(u["email_verified"], false);
    assert_eq!(u["mfa_enabled"], false);
    assert_eq!(u["roles"], json!(["user"]));
    assert!(u["avatar_url"].is_null());
    for f in ["id", "created_at", "updated_at"] {
        assert!(u[f].is_string(), "{f}");
    }
    let keys: Vec<_> = u.as_object().unwrap().keys().cloned().collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        [
            "avatar_url",
            "created_at",
            "display_name",
            "email",
            "email_verified",
            "id",
            "is_anonymous",
            "locale",
            "metadata",
            "mfa_enabled",
            "passkeys",
            "roles",
            "timezone",
            "updated_at"
        ],
        "exactly the contract's fields"
    );
    assert_eq!(u["passkeys"], 0);
    assert_eq!(u["is_anonymous"], false);
}

#[tokio::test]
async fn same_email_in_any_case_is_a_conflict() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("dup@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let r = app.register("DUP@Example.com", PASSWORD).await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_yield_one_account() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = app.client.clone();
        let url = app.url("/v1/users");
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn invalid_email_is_a_validation_problem() {
    let app = spawn_app().await;
    for bad in ["not-an-email", "a@b", "", "a b@example.com"] {
        let r = app.register(bad, PASSWORD).await;
        let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(body["errors"][0]["field"], "email", "{bad}");
    }
}

#[tokio::test]
async fn password_rules() {
    let app = spawn_app().await;
    let cases = [
        ("short1!", "too_short"),
        (&"x".repeat(129) as &str, "too_long"),
        ("password", "too_common"),
        ("password123", "too_common"),
        ("12345678", "too_common"),
    ];
    for (pw, code) in cases {
        let r = app.register(&unique_email(), pw).await;
        let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(body["errors"][0]["field"], "password");
        assert_eq!(body["errors"][0]["code"], code, "{pw}");
    }
    // Exactly 128 characters, and a 64-emoji passphrase (256 bytes), work.
    let long: String = (0..128)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let email = unique_email();
    assert_eq!(
        app.register(&email, &long).await.status(),
        StatusCode::CREATED
    );
    app.login_ok(&email, &long).await;
    let palette: Vec<char> = "🦀🔐🌍🎉🚀🍕🐙🎸🌵🍩🦊🐝🌈🎲🧩🪐🍄🐢🦉🍋🎈🧲🛸🐳"
        .chars()
        .collect();
    let mut seed: u32 = 12345;
    let emoji: String = (0..64)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            palette[(seed >> 16) as usize % palette.len()]
        })
        .collect();
    assert_eq!(emoji.chars().count(), 64);
    let email = unique_email();
    assert_eq!(
        app.register(&email, &emoji).await.status(),
        StatusCode::CREATED
    );
    app.login_ok(&email, &emoji).await;
}

#[tokio::test]
async fn passwords_sharing_their_first_72_bytes_are_different_passwords() {
    let app = spawn_app().await;
    let prefix = "The quick brown fox jumps over the lazy dog; pack my box with five dozen";
    assert_eq!(prefix.len(), 72);
    let email = unique_email();
    let first = format!("{prefix} liquor jugs");
    assert_eq!(
        app.register(&email, &first).await.status(),
        StatusCode::CREATED
    );
    let r = app.login(&email, &format!("{prefix} other words")).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    app.login_ok(&email, &first).await;
}

#[tokio::test]
async fn nothing_is_stored_after_a_rejected_registration() {
    let app = spawn_app().await;
    let email = unique_email();
    let r = app
        .post_json(
            "/v1/users",
            &json!({"email": email, "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    let r = app
        .post_json(
            "/v1/users",
            &json!({"email": email, "password": "password"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Neither attempt created the account: registering now succeeds.
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn registration_takes_an_optional_locale() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/v1/users",
            &json!({"email": unique_email(), "password": PASSWORD, "locale": "pt-br"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let u: serde_json::Value = r.json().await.unwrap();
    assert_eq!(u["locale"], "pt-BR");
    let email = unique_email();
    let r = app
        .post_json(
            "/v1/users",
            &json!({"email": email, "password": PASSWORD, "locale": "not a tag!"}),
        )
        .await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(body["errors"][0]["field"], "locale");
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED,
        "nothing was created"
    );
}

//! Sign-in, refresh rotation and reuse, sign-out scopes, session list.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn login_returns_a_token_pair() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let r = app.login(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(body["refresh_token"].is_string());
    assert_eq!(body["user"]["email"], email);
    let header = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let header = jsonwebtoken::decode_header(body["refresh_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.typ.as_deref(), Some("refresh+jwt"));
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let wrong = app.login(&email, "wrong password entirely").await;
    let wrong_h = wrong.headers().get("www-authenticate").cloned();
    let wrong_body = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let unknown = app
        .login("nobody-here@example.com", "wrong password entirely")
        .await;
    let unknown_h = unknown.headers().get("www-authenticate").cloned();
    let unknown_body =
        assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    assert_eq!(wrong_body, unknown_body);
    assert_eq!(wrong_h, unknown_h);
    let malformed = app.login("not an email", "wrong password entirely").await;
    let body = assert_problem(malformed, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    assert_eq!(body, wrong_body);
}

#[tokio::test]
async fn bearer_errors_are_401_with_rfc6750_headers() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let r = app.client.get(app.url("/v1/me")).send().await.unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
    let r = app.get_authed("/v1/me", "not.a.token").await;
    let h = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(h.contains("error=\"invalid_token\""), "{h}");
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    // A refresh token is not an access token.
    let r = app
        .get_authed("/v1/me", &token(&tokens, "refresh_token"))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    // An access token is not a refresh token.
    let r = app.refresh(&token(&tokens, "access_token")).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_GRACE".into(), "0s".into());
    })
    .await;
    let (_, first) = app.signed_in_user().await;
    let r1 = token(&first, "refresh_token");
    let r = app.refresh(&r1).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    let r2 = token(&second, "refresh_token");
    assert_ne!(r1, r2);
    assert_eq!(
        app.me_status(&token(&second, "access_token")).await,
        StatusCode::OK
    );
    // Reusing the retired token: 401, and the whole family dies.
    let r = app.refresh(&r1).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    let r = app.refresh(&r2).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    assert_eq!(
        app.me_status(&token(&second, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me_status(&token(&first, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn within_the_grace_window_a_retired_token_yields_the_current_pair() {
    let app = spawn_app().await; // default grace: 10 s
    let (_, first) = app.signed_in_user().await;
    let r1 = token(&first, "refresh_token");
    let second: Value = app.refresh(&r1).await.json().await.unwrap();
    let again = app.refresh(&r1).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    // Both answers carry the same generation: using one retires the other.
    let third = app.refresh(&token(&again, "refresh_token")).await;
    assert_eq!(third.status(), StatusCode::OK);
    let third: Value = third.json().await.unwrap();
    assert_eq!(
        app.me_status(&token(&third, "access_token")).await,
        StatusCode::OK
    );
    assert_eq!(
        app.me_status(&token(&second, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_refreshes_never_fork_the_chain() {
    let app = spawn_app().await;
    let (_, first) = app.signed_in_user().await;
    let r1 = token(&first, "refresh_token");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/v1/sessions/refresh");
        let rt = r1.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"refresh_token": rt}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }));
    }
    let mut refresh_tokens = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        refresh_tokens.push(token(&body, "refresh_token"));
    }
    // Every racer holds the same generation: the first to use it wins,
    // and any other copy is then a retired token (one chain, not twenty).
    let claims: Vec<String> = refresh_tokens
        .iter()
        .map(|t| claims_of(t)["jti"].as_str().unwrap().to_string())
        .collect();
    assert!(
        claims.iter().all(|j| *j == claims[0]),
        "more than one chain: {claims:?}"
    );
}

#[tokio::test]
async fn logout_local_revokes_at_once() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let r = app.delete_authed("/v1/sessions", &at).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
    let r = app.refresh(&token(&tokens, "refresh_token")).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test]
async fn logout_scopes() {
    let app = spawn_app().await;
    let (email, a) = app.signed_in_user().await;
    let b = app.login_ok(&email, PASSWORD).await;
    let c = app.login_ok(&email, PASSWORD).await;
    let (_, stranger) = app.signed_in_user().await;
    let at = |v: &Value| token(v, "access_token");

    let r = app.logout(&at(&a), "others").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&at(&a)).await, StatusCode::OK);
    assert_eq!(app.me_status(&at(&b)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&at(&c)).await, StatusCode::UNAUTHORIZED);

    let d = app.login_ok(&email, PASSWORD).await;
    let r = app.logout(&at(&d), "global").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&at(&a)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&at(&d)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me_status(&at(&stranger)).await,
        StatusCode::OK,
        "other users untouched"
    );

    let e = app.login_ok(&email, PASSWORD).await;
    let r = app.logout(&at(&e), "everything").await;
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    assert_eq!(app.me_status(&at(&e)).await, StatusCode::OK);
    let r = app
        .client
        .delete(app.url("/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
}

#[tokio::test]
async fn list_and_end_sessions() {
    let app = spawn_app().await;
    let (email, a) = app.signed_in_user().await;
    let b = app.login_ok(&email, PASSWORD).await;
    let (_, stranger) = app.signed_in_user().await;
    let at_a = token(&a, "access_token");

    let r = app.sessions(&at_a).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Vec<Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let other_sid = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Someone else's session is not found, and stays alive.
    let stranger_list: Vec<Value> = app
        .sessions(&token(&stranger, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    let stranger_sid = stranger_list[0]["id"].as_str().unwrap();
    let r = app.revoke_session(&at_a, stranger_sid).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
    assert_eq!(
        app.me_status(&token(&stranger, "access_token")).await,
        StatusCode::OK
    );
    let r = app.revoke_session(&at_a, "no-such-session").await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;

    let r = app.revoke_session(&at_a, &other_sid).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&token(&b, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let list: Vec<Value> = app.sessions(&at_a).await.json().await.unwrap();
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn disabled_nothing_leaks_in_token_claims() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    use base64::Engine;
    let payload = token(&tokens, "access_token")
        .split('.')
        .nth(1)
        .unwrap()
        .to_string();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    for k in [
        "iss", "aud", "sub", "exp", "iat", "jti", "sid", "amr", "roles",
    ] {
        assert!(claims.get(k).is_some(), "claim {k} missing");
    }
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["aud"], "portcullis");
    assert!(claims.get("email").is_none() && claims.get("password_hash").is_none());
}

#[tokio::test]
async fn client_ip_comes_from_x_forwarded_for_only_behind_trusted_proxies() {
    for (trusted, expected) in [(None, "127.0.0.1"), (Some("127.0.0.0/8"), "203.0.113.7")] {
        let app = spawn_app_with(|m| {
            if let Some(t) = trusted {
                m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), t.into());
            }
        })
        .await;
        let email = unique_email();
        app.register(&email, PASSWORD).await;
        let r = app
            .client
            .post(app.url("/v1/sessions"))
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let tokens: Value = r.json().await.unwrap();
        let list: Vec<Value> = app
            .sessions(&token(&tokens, "access_token"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list[0]["ip"], expected, "trusted proxies: {trusted:?}");
    }
}

#[tokio::test]
async fn access_tokens_expire_by_the_service_clock() {
    use portcullis::clock::Clock;
    let clock = Clock::manual(Clock::system().now());
    let app = spawn_app_at(clock, |_| {}).await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    assert_eq!(app.me_status(&at).await, StatusCode::OK);
    // 15 minutes of lifetime plus the 5 s leeway, then one second more.
    app.clock.advance(15 * 60 + 6);
    let r = app.get_authed("/v1/me", &at).await;
    let body = assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    // The refresh token still works (30 days), and its pair is valid now.
    let fresh: Value = app
        .refresh(&token(&tokens, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.me_status(&token(&fresh, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_refresh_grace_window_closes_by_the_service_clock() {
    use portcullis::clock::Clock;
    let clock = Clock::manual(Clock::system().now());
    let app = spawn_app_at(clock, |_| {}).await;
    let (_, tokens) = app.signed_in_user().await;
    let first = token(&tokens, "refresh_token");
    assert_eq!(app.refresh(&first).await.status(), StatusCode::OK);
    app.clock.advance(10);
    assert_eq!(
        app.refresh(&first).await.status(),
        StatusCode::OK,
        "10 s after rotation the retired token is still within the grace window"
    );
    app.clock.advance(1);
    let r = app.refresh(&first).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

/// Access tokens carry `auth_time`, when the user last proved a
/// credential: the sign-in, not the latest refresh.
#[tokio::test]
async fn access_tokens_carry_the_sign_in_time_across_refreshes() {
    let start = 1_900_000_000;
    let clock = portcullis::clock::Clock::manual(start);
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let (_, tokens) = app.signed_in_user().await;
    let first = claims_of(&token(&tokens, "access_token"));
    assert_eq!(first["auth_time"], json!(start));
    clock.advance(600);
    let refreshed: Value = app
        .refresh(&token(&tokens, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    let later = claims_of(&token(&refreshed, "access_token"));
    assert_eq!(later["iat"], json!(start + 600));
    assert_eq!(later["auth_time"], json!(start));
}

//! What the provider refuses: wrong redirect URIs, missing or plain PKCE,
//! replayed codes, codes of another client, wrong verifiers and client
//! credentials, prompt=none without a session or consent, a denied consent.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::helpers::{assert_problem, claims_of, spawn_app_with_admin, spawn_app_with_admin_as};

async fn setup() -> (TestApp, String, Value, Value) {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = token(&admin_tokens, "access_token");
    let confidential = third_party(&app, &adm, true).await;
    let public = third_party(&app, &adm, false).await;
    (app, adm, confidential, public)
}

#[tokio::test]
async fn unknown_client_or_redirect_uri_is_a_page_never_a_redirect() {
    let (app, _, client, _) = setup().await;
    let id = client["id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    for url in [
        authorize_url("no-such-client", &challenge, &[]),
        authorize_url(
            id,
            &challenge,
            &[("redirect_uri", "https://evil.example/cb")],
        ),
        authorize_url(
            id,
            &challenge,
            &[("redirect_uri", "https://app.example/cb/extra")],
        ),
        authorize_url(id, &challenge, &[("redirect_uri", "")]),
        // Loopback matches any port, not any path or host.
        authorize_url(
            id,
            &challenge,
            &[("redirect_uri", "http://127.0.0.1:5000/other")],
        ),
        authorize_url(
            id,
            &challenge,
            &[("redirect_uri", "http://localhost:5000/loopback")],
        ),
    ] {
        let r = b.get(&app, &url).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(r.headers().get("location").is_none());
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(r.text().await.unwrap().contains("Cannot continue"));
    }
}

#[tokio::test]
async fn missing_or_plain_pkce_and_bad_requests_go_back_as_errors() {
    let (app, _, client, _) = setup().await;
    let id = client["id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    for (extra, error) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "too-short")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("response_type", "")], "invalid_request"),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("request", "eyJ.x.y")], "request_not_supported"),
    ] {
        let url = authorize_url(id, &challenge, &extra);
        let back = location(&b.get(&app, &url).await);
        assert!(back.starts_with(REDIRECT), "{back}");
        let q = query(&back);
        assert_eq!(q["error"], error, "{extra:?}");
        assert_eq!(q["state"], "st-123");
        assert!(!q.contains_key("code"));
    }
}

#[tokio::test]
async fn prompt_none_without_session_is_login_required_and_without_consent_consent_required() {
    let (app, _, client, _) = setup().await;
    let id = client["id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let back = location(
        &b.get(&app, &authorize_url(id, &challenge, &[("prompt", "none")]))
            .await,
    );
    let q = query(&back);
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st-123");
    // Signed in (for another client's request), but no consent for this one.
    let email = user(&app).await;
    let next = location(&b.get(&app, &authorize_url(id, &challenge, &[])).await);
    let after = location(&sign_in(&mut b, &app, &next, &email).await);
    assert!(after.starts_with("/consent?ar="), "{after}");
    let back = location(
        &b.get(&app, &authorize_url(id, &challenge, &[("prompt", "none")]))
            .await,
    );
    assert_eq!(query(&back)["error"], "consent_required");
    // Consent for `openid email` does not cover `profile`.
    let back = location(&consent(&mut b, &app, &after, "allow").await);
    assert!(query(&back).contains_key("code"));
    let url = authorize_url(
        id,
        &challenge,
        &[("prompt", "none"), ("scope", "openid profile")],
    );
    assert_eq!(
        query(&location(&b.get(&app, &url).await))["error"],
        "consent_required"
    );
}

#[tokio::test]
async fn a_denied_consent_is_access_denied() {
    let (app, _, client, _) = setup().await;
    let id = client["id"].as_str().unwrap();
    let email = user(&app).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let next = location(&b.get(&app, &authorize_url(id, &challenge, &[])).await);
    let consent_url = location(&sign_in(&mut b, &app, &next, &email).await);
    let back = location(&consent(&mut b, &app, &consent_url, "deny").await);
    let q = query(&back);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-123");
    assert!(!q.contains_key("code"));
    // Nothing remembered: the consent page again.
    let next = location(&b.get(&app, &authorize_url(id, &challenge, &[])).await);
    assert!(next.starts_with("/consent?ar="));
}

async fn code_for(app: &TestApp, b: &mut Browser, client: &Value, email: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let url = authorize_url(client["id"].as_str().unwrap(), &challenge, &[]);
    let back = authorize_as(b, app, &url, email).await;
    (query(&back)["code"].clone(), verifier)
}

async fn oauth_error(r: reqwest::Response, status: StatusCode, error: &str) {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_the_first_use_issued() {
    let (app, _, client, _) = setup().await;
    let email = user(&app).await;
    let mut b = Browser::default();
    let (code, verifier) = code_for(&app, &mut b, &client, &email).await;
    let r = exchange(&app, &client, &code, &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first: Value = r.json().await.unwrap();
    assert_eq!(app.userinfo(&at(&first)).await.status(), StatusCode::OK);
    let r = exchange(&app, &client, &code, &verifier, REDIRECT).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        app.userinfo(&at(&first)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_redirect_uri_and_verifier() {
    let (app, _, confidential, public) = setup().await;
    let email = user(&app).await;
    let mut b = Browser::default();
    // Of another client.
    let (code, verifier) = code_for(&app, &mut b, &confidential, &email).await;
    let r = exchange(&app, &public, &code, &verifier, REDIRECT).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Wrong redirect_uri.
    let (code, verifier) = code_for(&app, &mut b, &confidential, &email).await;
    let r = exchange(
        &app,
        &confidential,
        &code,
        &verifier,
        "http://127.0.0.1/loopback",
    )
    .await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Wrong verifier (a plain verifier equal to the challenge included).
    let (code, _) = code_for(&app, &mut b, &confidential, &email).await;
    let (other, _) = pkce();
    let r = exchange(&app, &confidential, &code, &other, REDIRECT).await;
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // No verifier at all.
    let (code, _) = code_for(&app, &mut b, &confidential, &email).await;
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", confidential["id"].as_str().unwrap()),
            (
                "client_secret",
                confidential["client_secret"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn confidential_clients_must_authenticate() {
    let (app, _, confidential, _) = setup().await;
    let email = user(&app).await;
    let mut b = Browser::default();
    let (code, verifier) = code_for(&app, &mut b, &confidential, &email).await;
    let id = confidential["id"].as_str().unwrap();
    let mut no_secret = confidential.clone();
    no_secret["client_secret"] = Value::Null;
    let r = exchange(&app, &no_secret, &code, &verifier, REDIRECT).await;
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let mut wrong = confidential.clone();
    wrong["client_secret"] = json!("pcs_wrong");
    let r = exchange(&app, &wrong, &code, &verifier, REDIRECT).await;
    let www = r.headers().get("www-authenticate").is_some();
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(www);
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some("pcs_wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The code was never taken by those attempts: the right secret works.
    let r = exchange(&app, &confidential, &code, &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_clients_api_shows_the_secret_once_and_checks_redirect_uris() {
    let (app, adm, client, _) = setup().await;
    let id = client["id"].as_str().unwrap();
    let r = app
        .get_authed(&format!("/v1/admin/clients/{id}"), &adm)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = r.json().await.unwrap();
    assert!(got.get("client_secret").is_none());
    assert_eq!(got["type"], "confidential");
    let list: Value = app
        .get_authed("/v1/admin/clients", &adm)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        !list
            .to_string()
            .contains(client["client_secret"].as_str().unwrap())
    );
    for bad in [
        json!({"name": "x", "redirect_uris": ["http://app.example/cb"]}),
        json!({"name": "x", "redirect_uris": ["myapp:/cb"]}),
        json!({"name": "x", "redirect_uris": ["https://app.example/cb#frag"]}),
        json!({"name": "x", "redirect_uris": []}),
        json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "scopes": ["admin"]}),
        json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "id_token_signed_response_alg": "none"}),
    ] {
        let r = app.post_authed_json("/v1/admin/clients", &adm, &bad).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    }
    let ok = create_client(
        &app,
        &adm,
        &json!({"name": "Native", "redirect_uris": ["com.example.app:/cb", "http://[::1]/cb"]}),
    )
    .await;
    let nid = ok["id"].as_str().unwrap();
    let r = app
        .patch_authed(
            &format!("/v1/admin/clients/{nid}"),
            &adm,
            &json!({"name": "Renamed", "audience": "https://api.example"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["audience"], "https://api.example");
    let r = app
        .delete_authed(&format!("/v1/admin/clients/{nid}"), &adm)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .get_authed(&format!("/v1/admin/clients/{nid}"), &adm)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Not for users without the admin role.
    let (_, tokens) = app.signed_in_user().await;
    let r = app.get_authed("/v1/admin/clients", &at(&tokens)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let _ = claims_of;
}

#[tokio::test]
async fn withdrawing_a_consent_needs_a_recent_proof() {
    let app = spawn_app_with_admin_as("op-admin@example.com", |m| {
        m.insert("PORTCULLIS_REAUTH_WINDOW".into(), "1s".into());
    })
    .await;
    let adm = at(&app.login_ok("op-admin@example.com", PASSWORD).await);
    let client = third_party(&app, &adm, false).await;
    let email = user(&app).await;
    let mut b = Browser::default();
    let _ = tokens_for(&app, &mut b, &client, &email, &[]).await;
    let me = at(&app.login_ok(&email, PASSWORD).await);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let id = client["id"].as_str().unwrap();
    let r = app
        .delete_authed(&format!("/v1/me/consents/{id}"), &me)
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "reauthentication-required").await;
    let r = app.get_authed("/v1/me/consents", &me).await;
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing withdrawn");
}

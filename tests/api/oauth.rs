//! Standard OAuth endpoints and honest discovery.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const INTROSPECTION: &str = "resource-server-credential-1";

async fn app_with_introspection() -> TestApp {
    spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_INTROSPECTION_TOKEN".into(),
            INTROSPECTION.into(),
        );
    })
    .await
}

async fn oauth_error(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    body["error"].as_str().unwrap().to_string()
}

/// Discovery lists only endpoints that exist, and each answers its own
/// protocol (no 404, 405 or 415 for a well-formed request).
#[tokio::test]
async fn every_url_discovery_lists_answers() {
    for introspection in [false, true] {
        let app = if introspection {
            app_with_introspection().await
        } else {
            spawn_app().await
        };
        let (_, tokens) = app.signed_in_user().await;
        let at = token(&tokens, "access_token");
        let rt = token(&tokens, "refresh_token");
        let d = app.get_json("/.well-known/openid-configuration").await;
        assert_eq!(
            d["grant_types_supported"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(d.get("introspection_endpoint").is_some(), introspection);
        let mut checked = 0;
        for (field, url) in d.as_object().unwrap() {
            let Some(url) = url.as_str().filter(|u| u.starts_with("http")) else {
                continue;
            };
            if field == "issuer" {
                continue;
            }
            assert!(url.starts_with(&app.addr.replace("127.0.0.1", "localhost")));
            let path = &url[url
                .find("/.well-known")
                .or_else(|| url.find("/oauth"))
                .unwrap()..];
            let status = match field.as_str() {
                "jwks_uri" => app.status_of(path).await,
                "token_endpoint" => app.oauth_refresh(&rt).await.status(),
                "revocation_endpoint" => app.oauth_revoke("not-a-token").await.status(),
                "userinfo_endpoint" => app.userinfo(&at).await.status(),
                "introspection_endpoint" => app
                    .oauth_introspect(Some(INTROSPECTION), &at)
                    .await
                    .status(),
                // Without parameters: the problem page (no client), not 404/405.
                "authorization_endpoint" => {
                    assert_eq!(app.status_of(path).await, StatusCode::BAD_REQUEST);
                    StatusCode::OK
                }
                // Nobody signed in: the "signed out" page.
                "end_session_endpoint" => app.status_of(path).await,
                other => panic!("discovery lists an endpoint nobody checked: {other}"),
            };
            assert_eq!(status, StatusCode::OK, "{field} {url}");
            checked += 1;
        }
        assert_eq!(checked, if introspection { 7 } else { 6 });
    }
}

#[tokio::test]
async fn refresh_grant_rotates_and_reports_rfc6749_errors() {
    // No grace window: a retired token is reuse at once.
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_GRACE".into(), "0s".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let rt = token(&tokens, "refresh_token");
    let r = app.oauth_refresh(&rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let new_at = token(&body, "access_token");
    assert_eq!(app.me_status(&new_at).await, StatusCode::OK);
    // The JSON route and the OAuth route share one rotation.
    let next = token(&body, "refresh_token");
    assert_eq!(app.refresh(&next).await.status(), StatusCode::OK);
    assert_eq!(
        oauth_error(app.oauth_refresh(&next).await).await,
        "invalid_grant"
    );
    assert_eq!(
        oauth_error(app.oauth_refresh("garbage").await).await,
        "invalid_grant"
    );
    let r = app
        .post_form(
            "/oauth/token",
            None,
            &[("grant_type", "password"), ("username", "x")],
        )
        .await;
    assert_eq!(oauth_error(r).await, "unsupported_grant_type");
    let r = app
        .post_form("/oauth/token", None, &[("grant_type", "refresh_token")])
        .await;
    assert_eq!(oauth_error(r).await, "invalid_request");
}

#[tokio::test]
async fn revocation_ends_the_session() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let rt = token(&tokens, "refresh_token");
    assert_eq!(app.oauth_revoke(&rt).await.status(), StatusCode::OK);
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        oauth_error(app.oauth_refresh(&rt).await).await,
        "invalid_grant"
    );
    // Revoking again, or revoking nonsense, is fine (RFC 7009 §2.2).
    assert_eq!(app.oauth_revoke(&rt).await.status(), StatusCode::OK);
    // An access token revokes its session too.
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    assert_eq!(app.oauth_revoke(&at).await.status(), StatusCode::OK);
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn userinfo_speaks_oidc() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let r = app.userinfo(&at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["sub"], tokens["user"]["id"]);
    assert_eq!(info["email"], email);
    assert_eq!(info["email_verified"], false);
    let r = app.userinfo("not-a-token").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test]
async fn introspection_turns_inactive_at_sign_out() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    // Off unless configured.
    let r = app.oauth_introspect(Some("anything"), &at).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let app = app_with_introspection().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let rt = token(&tokens, "refresh_token");
    let r = app.oauth_introspect(None, &at).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
    let r = app.oauth_introspect(Some("wrong"), &at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.oauth_introspect(Some(INTROSPECTION), &at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], tokens["user"]["id"]);
    assert_eq!(body["sid"], claims_of(&at)["sid"]);
    assert!(body["exp"].as_u64().is_some());
    let r = app.oauth_introspect(Some(INTROSPECTION), &rt).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");
    // Sign-out: inactive at once, though the JWT has not expired.
    assert_eq!(
        app.logout(&at, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    for t in [&at, &rt] {
        let body: Value = app
            .oauth_introspect(Some(INTROSPECTION), t)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body, serde_json::json!({"active": false}));
    }
    let body: Value = app
        .oauth_introspect(Some(INTROSPECTION), "garbage")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["active"], false);
}

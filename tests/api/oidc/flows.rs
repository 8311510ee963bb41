//! The code flow end to end: confidential and public clients, ID token
//! claims, scopes at userinfo, refresh, consent remembered, prompt=none
//! with the session cookie, max_age, logout, consents.

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::helpers::{ADMIN_EMAIL, claims_of, spawn_app_with_admin};

fn admin(tokens: &Value) -> String {
    token(tokens, "access_token")
}

/// Verifies an ID token against the published JWKS; returns its claims.
async fn verified_id_token(app: &TestApp, id_token: &str, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(format!("{:?}", header.alg), "RS256", "RS256 by default");
    let jwks: JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let mut v = Validation::new(header.alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[
        app.get_json("/.well-known/openid-configuration").await["issuer"]
            .as_str()
            .unwrap(),
    ]);
    jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn confidential_client_code_flow_id_token_and_scoped_userinfo() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = admin(&admin_tokens);
    let client = third_party(&app, &adm, true).await;
    let id = client["id"].as_str().unwrap();
    assert!(client["client_secret"].as_str().unwrap().len() > 30);
    let email = user(&app).await;
    let mut b = Browser::default();
    let body = tokens_for(&app, &mut b, &client, &email, &[]).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "email openid");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access, not first-party"
    );
    let access = at(&body);
    let ac = claims_of(&access);
    assert_eq!(ac["aud"], id, "an OAuth client's tokens carry its audience");
    assert_eq!(ac["client_id"], id);
    // The ID token.
    let idt = body["id_token"].as_str().unwrap();
    let c = verified_id_token(&app, idt, id).await;
    assert_eq!(c["azp"], id);
    assert_eq!(c["nonce"], "n-456");
    assert_eq!(c["email"], email);
    assert_eq!(c["email_verified"], false);
    assert_eq!(c["amr"], json!(["pwd"]));
    assert!(
        c.get("name").is_none() && c.get("updated_at").is_none(),
        "no profile scope"
    );
    for k in ["sub", "iat", "exp", "auth_time", "sid", "at_hash"] {
        assert!(c.get(k).is_some(), "{k} in {c}");
    }
    // at_hash: left half of SHA-256 of the access token.
    let digest = Sha256::digest(access.as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    assert_eq!(c["at_hash"], expected);
    // The browser session cookie: opaque, HttpOnly, SameSite=Lax, Path=/,
    // not Secure on http://localhost.
    let set = b
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-portcullis="))
        .unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"));
    assert!(!set.contains("Secure"), "{set}");
    assert!(!b.session().unwrap().contains(&email));
    // Userinfo: the granted scopes only (email, no profile).
    let r = app.userinfo(&access).await;
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["sub"], c["sub"]);
    assert_eq!(info["email"], email);
    assert!(
        info.get("name").is_none() && info.get("locale").is_none(),
        "{info}"
    );
    // The service's own routes refuse a third party's token (its audience).
    assert_eq!(app.me_status(&access).await, StatusCode::UNAUTHORIZED);
    // client_secret_basic works too, on a new code (consent remembered: no
    // consent page this time).
    let (verifier, challenge) = pkce();
    let url = authorize_url(id, &challenge, &[]);
    let back = location(&b.get(&app, &url).await);
    assert!(
        back.starts_with(REDIRECT),
        "silent with session and consent: {back}"
    );
    let code = query(&back)["code"].clone();
    let secret = client["client_secret"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn public_client_with_profile_and_offline_access_refreshes_on_loopback() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = admin(&admin_tokens);
    let client = third_party(&app, &adm, false).await;
    assert!(client.get("client_secret").is_none());
    let id = client["id"].as_str().unwrap();
    let email = user(&app).await;
    let mut b = Browser::default();
    // A loopback redirect on a port that was not registered (RFC 8252 §7.3).
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:49152/loopback";
    let url = authorize_url(
        id,
        &challenge,
        &[
            ("redirect_uri", redirect),
            ("scope", "openid profile offline_access"),
        ],
    );
    let back = authorize_as(&mut b, &app, &url, &email).await;
    assert!(back.starts_with(redirect), "{back}");
    let q = query(&back);
    assert_eq!(
        q["iss"],
        app.get_json("/.well-known/openid-configuration").await["issuer"]
    );
    let r = exchange(&app, &client, &q["code"], &verifier, redirect).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let c = claims_of(body["id_token"].as_str().unwrap());
    assert!(
        c.get("updated_at").is_some() && c.get("email").is_none(),
        "{c}"
    );
    let info: Value = app.userinfo(&at(&body)).await.json().await.unwrap();
    assert!(
        info.get("email").is_none() && info.get("updated_at").is_some(),
        "{info}"
    );
    // offline_access: a refresh token, which refreshes with the client's audience.
    let rt = token(&body, "refresh_token");
    let refresh = |client_id: String, rt: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/oauth/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                    ("client_id", client_id.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    // Only for its own client: not without a client id, not for another
    // client, not through the JSON API's refresh.
    assert_eq!(
        app.oauth_refresh(&rt).await.status(),
        StatusCode::BAD_REQUEST
    );
    let other = third_party(&app, &adm, false).await;
    let r = refresh(other["id"].as_str().unwrap().to_string(), rt.clone()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(app.refresh(&rt).await.status(), StatusCode::UNAUTHORIZED);
    let r = refresh(id.to_string(), rt.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(claims_of(&at(&again))["aud"], id);
    // A removed client refreshes no more.
    let r = app
        .delete_authed(&format!("/v1/admin/clients/{id}"), &adm)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = refresh(id.to_string(), token(&again, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn first_party_skips_consent_and_always_gets_a_refresh_token() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = admin(&admin_tokens);
    let client = create_client(
        &app,
        &adm,
        &json!({"name": "Our app", "redirect_uris": [REDIRECT], "first_party": true}),
    )
    .await;
    let email = user(&app).await;
    let mut b = Browser::default();
    let (verifier, challenge) = pkce();
    let url = authorize_url(client["id"].as_str().unwrap(), &challenge, &[]);
    let login = location(&b.get(&app, &url).await);
    assert!(login.starts_with("/login?ar="));
    let back = location(&sign_in(&mut b, &app, &login, &email).await);
    assert!(back.starts_with(REDIRECT), "no consent page: {back}");
    let r = exchange(&app, &client, &query(&back)["code"], &verifier, REDIRECT).await;
    let body: Value = r.json().await.unwrap();
    assert!(body["refresh_token"].is_string());
    // First-party tokens work on the JSON API (the service's audience).
    assert_eq!(app.me_status(&at(&body)).await, StatusCode::OK);
}

#[tokio::test]
async fn prompt_none_uses_the_session_cookie_until_the_session_is_revoked() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = admin(&admin_tokens);
    let client = third_party(&app, &adm, false).await;
    let id = client["id"].as_str().unwrap();
    let email = user(&app).await;
    let mut b = Browser::default();
    let body = tokens_for(&app, &mut b, &client, &email, &[]).await;
    let sid = claims_of(body["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    // Silent renew.
    let (_, challenge) = pkce();
    let silent = authorize_url(id, &challenge, &[("prompt", "none")]);
    let back = location(&b.get(&app, &silent).await);
    assert!(query(&back).contains_key("code"), "{back}");
    // prompt=consent shows the consent page even though consent was given.
    let back = location(
        &b.get(
            &app,
            &authorize_url(id, &challenge, &[("prompt", "consent")]),
        )
        .await,
    );
    assert!(back.starts_with("/consent?ar="), "{back}");
    // The user ends that session from the JSON API: the cookie is dead.
    let json = app.login_ok(&email, PASSWORD).await;
    let r = app.revoke_session(&at(&json), &sid).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let back = location(&b.get(&app, &silent).await);
    let q = query(&back);
    assert_eq!(q["error"], "login_required", "{back}");
    assert_eq!(q["state"], "st-123");
}

#[tokio::test]
async fn max_age_zero_and_prompt_login_force_a_new_sign_in() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = admin(&admin_tokens);
    let client = third_party(&app, &adm, false).await;
    let id = client["id"].as_str().unwrap();
    let email = user(&app).await;
    let mut b = Browser::default();
    let first = tokens_for(&app, &mut b, &client, &email, &[]).await;
    let first_auth = claims_of(first["id_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    let first_cookie = b.session().unwrap().clone();
    for extra in [("max_age", "0"), ("prompt", "login")] {
        let (_, challenge) = pkce();
        let url = authorize_url(id, &challenge, &[extra]);
        let next = location(&b.get(&app, &url).await);
        assert!(
            next.starts_with("/login?ar="),
            "{extra:?} forces sign-in: {next}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let back = location(&sign_in(&mut b, &app, &next, &email).await);
        assert!(back.starts_with(REDIRECT), "{back}");
    }
    // max_age=0 with prompt=none: login_required, never a code.
    let (verifier, challenge) = pkce();
    let url = authorize_url(id, &challenge, &[("max_age", "0"), ("prompt", "none")]);
    assert_eq!(
        query(&location(&b.get(&app, &url).await))["error"],
        "login_required"
    );
    // A large max_age is satisfied by the session: auth_time is the new sign-in's.
    let url = authorize_url(id, &challenge, &[("max_age", "10000")]);
    let back = location(&b.get(&app, &url).await);
    let r = exchange(&app, &client, &query(&back)["code"], &verifier, REDIRECT).await;
    let body: Value = r.json().await.unwrap();
    let auth_time = claims_of(body["id_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    assert!(
        auth_time > first_auth,
        "a new sign-in: {auth_time} > {first_auth}"
    );
    // The earlier browser session was replaced, not kept alongside.
    assert_ne!(b.session().unwrap(), &first_cookie);
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_browser_session() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = admin(&admin_tokens);
    let client = third_party(&app, &adm, true).await;
    let id = client["id"].as_str().unwrap();
    let email = user(&app).await;
    let mut b = Browser::default();
    let body = tokens_for(&app, &mut b, &client, &email, &[]).await;
    let hint = body["id_token"].as_str().unwrap();
    // An unregistered post-logout redirect: a page, nothing ends.
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", hint)
        .append_pair("post_logout_redirect_uri", "https://evil.example/")
        .finish();
    let r = b.get(&app, &format!("/oauth/logout?{q}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(b.session().is_some());
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", hint)
        .append_pair("post_logout_redirect_uri", LOGOUT_REDIRECT)
        .append_pair("state", "bye-1")
        .finish();
    let r = b.get(&app, &format!("/oauth/logout?{q}")).await;
    assert_eq!(location(&r), format!("{LOGOUT_REDIRECT}?state=bye-1"));
    assert!(b.session().is_none(), "cookie cleared");
    // The session itself ended: an old copy of the cookie is worthless.
    let (_, challenge) = pkce();
    let mut old = Browser::default();
    old.jar.insert(
        "__Host-portcullis".into(),
        b.set_cookies
            .iter()
            .find(|c| c.starts_with("__Host-portcullis=") && !c.contains("Max-Age=0"))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("__Host-portcullis=")
            .to_string(),
    );
    let back = location(
        &old.get(&app, &authorize_url(id, &challenge, &[("prompt", "none")]))
            .await,
    );
    assert_eq!(query(&back)["error"], "login_required");
    // Without a hint, the user is asked to confirm.
    let mut c = Browser::default();
    let _ = tokens_for(&app, &mut c, &client, &email, &[]).await;
    let r = c.get(&app, "/oauth/logout").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("Do you want to sign out?"));
    let csrf = field(&html, "csrf");
    let r = c.post(&app, "/oauth/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(c.session().is_none());
}

#[tokio::test]
async fn consents_are_listed_and_withdrawing_one_ends_that_clients_sessions() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let adm = admin(&admin_tokens);
    let client = third_party(&app, &adm, false).await;
    let id = client["id"].as_str().unwrap();
    let email = user(&app).await;
    let mut b = Browser::default();
    let body = tokens_for(
        &app,
        &mut b,
        &client,
        &email,
        &[("scope", "openid email offline_access")],
    )
    .await;
    let json = app.login_ok(&email, PASSWORD).await;
    let me = at(&json);
    let r = app.get_authed("/v1/me/consents", &me).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list[0]["client_id"], id);
    assert_eq!(list[0]["client_name"], "Third Party App");
    assert_eq!(
        list[0]["scopes"],
        json!(["email", "offline_access", "openid"])
    );
    let r = app
        .delete_authed(&format!("/v1/me/consents/{id}"), &me)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.userinfo(&at(&body)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let rt = token(&body, "refresh_token");
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("client_id", id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = app
        .delete_authed(&format!("/v1/me/consents/{id}"), &me)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The next authorization asks again.
    let (_, challenge) = pkce();
    let next = location(&b.get(&app, &authorize_url(id, &challenge, &[])).await);
    assert!(next.starts_with("/consent?ar="), "{next}");
    // Audit: consent.granted then consent.revoked.
    let mut kinds = Vec::new();
    for _ in 0..50 {
        kinds = app
            .all_activity(&me)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        if kinds.iter().any(|k| k == "consent.revoked") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(kinds.iter().any(|k| k == "consent.granted"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "consent.revoked"), "{kinds:?}");
    let _ = ADMIN_EMAIL;
}

#[tokio::test]
async fn discovery_lists_the_provider_fields() {
    let (app, _) = spawn_app_with_admin().await;
    let d = app.get_json("/.well-known/openid-configuration").await;
    let base = d["issuer"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(
        d["authorization_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/oauth/authorize")
    );
    assert!(
        d["end_session_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/oauth/logout")
    );
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(
        d["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["scopes_supported"],
        json!(["openid", "email", "profile", "offline_access"])
    );
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(
        d["prompt_values_supported"],
        json!(["none", "login", "consent"])
    );
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["none", "client_secret_basic", "client_secret_post"])
    );
    let algs = d["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        algs.contains(&json!("RS256")),
        "RS256 key kept beside the signing key"
    );
    for c in [
        "auth_time",
        "nonce",
        "at_hash",
        "email_verified",
        "zoneinfo",
        "updated_at",
    ] {
        assert!(
            d["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(c)),
            "{c}"
        );
    }
    let _ = base;
}

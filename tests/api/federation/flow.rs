//! The redirect flow: authorize (state, nonce and PKCE kept server-side),
//! the provider (query or Apple's `form_post`), the callback, and the
//! exchange of the one-time code with the client's PKCE verifier.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use super::{Issuers, SPA, fed_app, fresh, person};
use crate::helpers::issuer::WEB_CLIENT;
use crate::helpers::*;

fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::FOUND, "a redirect");
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The value of `name="<field>" value="..."` in an HTML form.
fn form_field(html: &str, field: &str) -> Option<String> {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

impl TestApp {
    /// `GET /v1/federation/{provider}/authorize`.
    async fn authorize(
        &self,
        provider: &str,
        redirect_to: &str,
        challenge: &str,
        intent: &str,
    ) -> reqwest::Response {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_to", redirect_to)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("intent", intent)
            .finish();
        self.client
            .get(self.url(&format!("/v1/federation/{provider}/authorize?{q}")))
            .send()
            .await
            .unwrap()
    }

    /// Runs a redirect through the provider (which logs in its scripted
    /// account) and the callback; returns where Portcullis sent the
    /// browser back to.
    async fn through_provider(&self, provider: &str, challenge: &str, intent: &str) -> String {
        let r = self.authorize(provider, SPA, challenge, intent).await;
        let to_provider = location(&r);
        let r = self.client.get(&to_provider).send().await.unwrap();
        let back = if r.status() == StatusCode::FOUND {
            let callback = location(&r);
            // Under the public URL (`http://localhost:<port>` in tests).
            assert!(callback.contains(&format!("/v1/federation/{provider}/callback?")));
            self.client.get(&callback).send().await.unwrap()
        } else {
            // form_post: the provider's page posts a form to the callback.
            let html = r.text().await.unwrap();
            let action = {
                let start = html.find("action=\"").unwrap() + 8;
                html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&")
            };
            let mut fields = vec![("state", form_field(&html, "state").unwrap())];
            fields.push(("code", form_field(&html, "code").unwrap()));
            if let Some(user) = form_field(&html, "user") {
                fields.push(("user", user));
            }
            self.client
                .post(&action)
                .form(&fields)
                .send()
                .await
                .unwrap()
        };
        location(&back)
    }

    async fn exchange(&self, code: &str, verifier: &str) -> reqwest::Response {
        self.post_json(
            "/v1/sessions/federation",
            &json!({"code": code, "code_verifier": verifier}),
        )
        .await
    }
}

/// A Google-like provider by redirect: the code works once, only with the
/// verifier of the challenge the flow began with; the state works once.
#[tokio::test]
async fn redirect_sign_in_with_pkce_and_single_use_code_and_state() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let email = unique_email();
    is.google.set_account(person(&fresh("rg"), &email));
    let (verifier, challenge) = pkce();
    let r = app.authorize("google", SPA, &challenge, "signin").await;
    let to_provider = location(&r);
    assert!(to_provider.starts_with(&format!("{}/authorize?", is.google.url)));
    let q = query_of(&to_provider);
    assert_eq!(q["client_id"], WEB_CLIENT);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_ne!(
        q["code_challenge"], challenge,
        "our own PKCE toward the provider"
    );
    assert!(q["nonce"].len() >= 20 && q["state"].len() >= 32);
    // Run it by hand to replay the callback afterwards.
    let r = app.client.get(&to_provider).send().await.unwrap();
    let callback = location(&r);
    let back = location(&app.client.get(&callback).send().await.unwrap());
    assert!(back.starts_with(&format!("{SPA}?")));
    let code = query_of(&back)["code"].clone();
    // The callback's state is spent.
    let r = app.client.get(&callback).send().await.unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "state-invalid").await;

    let r = app.exchange(&code, &verifier).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["email"], email);
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["fed"]));
    assert_eq!(claims["idp"], "google");
    let r = app.exchange(&code, &verifier).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "code-invalid").await;

    // A wrong verifier gets nothing.
    let (_, challenge) = pkce();
    let back = app.through_provider("google", &challenge, "signin").await;
    let code = query_of(&back)["code"].clone();
    let (other_verifier, _) = pkce();
    let r = app.exchange(&code, &other_verifier).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "code-invalid").await;
}

/// The requests refused before leaving for the provider.
#[tokio::test]
async fn authorize_refuses_unknown_providers_redirects_and_missing_pkce() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let (_, challenge) = pkce();
    let r = app.authorize("facebook", SPA, &challenge, "signin").await;
    assert_problem(r, StatusCode::BAD_REQUEST, "unknown-provider").await;
    for bad in [
        "https://evil.example/callback",
        "https://spa.example/callback2",
        "",
    ] {
        let r = app.authorize("google", bad, &challenge, "signin").await;
        assert_problem(r, StatusCode::BAD_REQUEST, "redirect-not-allowed").await;
    }
    let r = app.authorize("google", SPA, "short", "signin").await;
    assert_problem(r, StatusCode::BAD_REQUEST, "pkce-required").await;
    let plain = app
        .client
        .get(app.url(&format!(
            "/v1/federation/google/authorize?redirect_to={}&code_challenge={challenge}&code_challenge_method=plain",
            url::form_urlencoded::byte_serialize(SPA.as_bytes()).collect::<String>()
        )))
        .send()
        .await
        .unwrap();
    assert_problem(plain, StatusCode::BAD_REQUEST, "pkce-required").await;
    // A custom scheme of a native app, allowed by prefix.
    let r = app
        .authorize("google", "com.example.app:/auth/done", &challenge, "signin")
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
}

/// An Apple-like provider: `form_post`, the name only at the first
/// authorization (the `user` field), a private-relay address verified
/// as the string `"true"`, and a client secret minted from the `.p8`.
#[tokio::test]
async fn apple_form_post_with_first_time_name_and_minted_secret() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let relay = format!("{}@privaterelay.appleid.com", uuid::Uuid::new_v4().simple());
    let sub = fresh("apple");
    is.apple.set_account(
        json!({"sub": sub, "email": relay, "email_verified": "true", "is_private_email": "true"}),
    );
    is.apple.set_apple_user(Some(
        json!({"name": {"firstName": "Grace", "lastName": "Hopper"}, "email": relay}),
    ));
    let (verifier, challenge) = pkce();
    let back = app.through_provider("apple", &challenge, "signin").await;
    let r = app.exchange(&query_of(&back)["code"], &verifier).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["email"], relay);
    assert_eq!(body["user"]["display_name"], "Grace Hopper");
    let uid = body["user"]["id"].clone();

    // The second authorization has no name; the account keeps its own.
    let (verifier, challenge) = pkce();
    let back = app.through_provider("apple", &challenge, "signin").await;
    let again: Value = app
        .exchange(&query_of(&back)["code"], &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["user"]["id"], uid);
    assert_eq!(again["user"]["display_name"], "Grace Hopper");

    // The client secret: an ES256 JWT by the .p8 key, minted once.
    let secrets = is.apple.secrets_seen();
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[0], secrets[1], "kept until near its expiry");
    let header = jsonwebtoken::decode_header(&secrets[0]).unwrap();
    assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(is.apple_jwk.clone()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[is.apple.url.as_str()]);
    v.set_issuer(&["TEAM123456"]);
    let data = jsonwebtoken::decode::<Value>(
        &secrets[0],
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims["sub"], WEB_CLIENT);
    let ttl = data.claims["exp"].as_u64().unwrap() - data.claims["iat"].as_u64().unwrap();
    assert!(ttl <= 180 * 24 * 3600, "within Apple's six months");
}

/// Refusals come back to the SPA as `error=<slug>`: `link-required` with
/// its `link_token` (which the owner then posts), an unverified email.
#[tokio::test]
async fn redirect_refusals_return_to_the_app_with_a_slug() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    is.acme.set_account(person(&fresh("lr"), &email));
    let (_, challenge) = pkce();
    let back = app.through_provider("acme", &challenge, "signin").await;
    let q = query_of(&back);
    assert_eq!(q["error"], "link-required");
    assert!(q.contains_key("error_description"));
    let access = tokens["access_token"].as_str().unwrap();
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            access,
            &json!({"link_token": q["link_token"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    is.acme
        .set_account(json!({"sub": fresh("nv"), "email": unique_email(), "email_verified": false}));
    let back = app.through_provider("acme", &challenge, "signin").await;
    assert_eq!(query_of(&back)["error"], "provider-email-unverified");
}

/// `intent=link`: the code links to the signed-in caller and cannot sign in.
#[tokio::test]
async fn redirect_with_intent_link_links_to_the_caller() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let (_, tokens) = app.signed_in_user().await;
    let access = tokens["access_token"].as_str().unwrap();
    is.google.set_account(person(&fresh("il"), &unique_email()));
    let (verifier, challenge) = pkce();
    let back = app.through_provider("google", &challenge, "link").await;
    let code = query_of(&back)["code"].clone();
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            access,
            &json!({"code": code, "code_verifier": verifier}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (verifier, challenge) = pkce();
    let back = app.through_provider("google", &challenge, "link").await;
    let r = app.exchange(&query_of(&back)["code"], &verifier).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "code-invalid").await;
}

/// GitHub (plain OAuth 2, the verified primary email from its API),
/// against a stand-in of its three endpoints.
#[tokio::test]
async fn github_by_its_api_with_verified_emails_only() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let email = unique_email();
    is.acme.set_github(
        json!({"id": 4242, "login": "octocat", "name": "The Octocat"}),
        json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": email, "primary": true, "verified": true},
        ]),
    );
    let (verifier, challenge) = pkce();
    let back = app.through_provider("github", &challenge, "signin").await;
    let r = app.exchange(&query_of(&back)["code"], &verifier).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["email"], email);
    assert_eq!(body["user"]["display_name"], "The Octocat");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["idp"],
        "github"
    );

    is.acme.set_github(
        json!({"id": 5151, "login": "unverified"}),
        json!([{"email": unique_email(), "primary": true, "verified": false}]),
    );
    let back = app.through_provider("github", &challenge, "signin").await;
    assert_eq!(query_of(&back)["error"], "provider-email-unverified");
}

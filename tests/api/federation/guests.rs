//! A guest (anonymous user) links an identity: by any of the three forms
//! of `POST /v1/me/identities` (an ID token, an `intent=link` flow's code,
//! a link token) it becomes a full account in place: same id, the
//! provider's verified address, no password, `is_anonymous` gone after a
//! refresh, and it signs in by the provider later. Refusals leave it a
//! guest with nothing linked.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Issuers, SPA, fed_app, fresh, person};
use crate::helpers::*;
use crate::oidc::{pkce, query};

async fn guest_app(is: &Issuers) -> TestApp {
    fed_app(is, |m| {
        m.insert("PORTCULLIS_ANONYMOUS".into(), "true".into());
    })
    .await
}

impl TestApp {
    async fn guest(&self) -> Value {
        let r = self.post_json("/v1/sessions/anonymous", &json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            claims_of(&token(&body, "access_token"))["is_anonymous"],
            true
        );
        body
    }

    /// An `intent=link` redirect through `issuer`'s scripted account; the
    /// one-time code it ends with.
    async fn link_code(&self, provider: &str, challenge: &str) -> String {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_to", SPA)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("intent", "link")
            .finish();
        let mut url = self.url(&format!("/v1/federation/{provider}/authorize?{q}"));
        for _ in 0..3 {
            let r = self.client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FOUND);
            url = r.headers()["location"].to_str().unwrap().to_string();
        }
        assert!(url.starts_with(SPA), "{url}");
        query(&url)["code"].clone()
    }

    /// After a refresh: the guest's new access token and `/v1/me`.
    async fn after_refresh(&self, guest: &Value) -> (Value, Value) {
        let r = self.refresh(&token(guest, "refresh_token")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let at = token(&body, "access_token");
        let me: Value = self.get_authed("/v1/me", &at).await.json().await.unwrap();
        (claims_of(&at), me)
    }
}

/// By a native ID token and by an `intent=link` flow's code: same id,
/// the provider's address (verified), not anonymous after a refresh, no
/// password; the provider signs in to it later.
#[tokio::test]
async fn a_guest_linking_an_identity_becomes_a_full_account_in_place() {
    let is = Issuers::start().await;
    let app = guest_app(&is).await;

    // The ID-token form.
    let guest = app.guest().await;
    let id = guest["user"]["id"].as_str().unwrap().to_string();
    let at = token(&guest, "access_token");
    let email = unique_email();
    let sub = fresh("gl");
    let nonce = app.fed_nonce().await;
    let mut claims = person(&sub, &email);
    claims["nonce"] = json!(nonce);
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            &at,
            &json!({"provider": "google", "id_token": is.google.id_token(claims), "nonce": nonce}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let linked: Value = r.json().await.unwrap();
    assert_eq!(linked["provider"], "google");
    let (claims, me) = app.after_refresh(&guest).await;
    assert!(
        claims.get("is_anonymous").is_none_or(|v| v == false),
        "{claims}"
    );
    assert_eq!(me["id"], id);
    assert_eq!(me["is_anonymous"], false);
    assert_eq!(me["email"], email);
    assert_eq!(me["email_verified"], true);
    // Later, the provider signs in to the same account.
    let again = app
        .native_ok(&is.google, "google", person(&sub, &email))
        .await;
    assert_eq!(again["user"]["id"], id);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED,
        "no password was set"
    );

    // The code form (`intent=link`), later than the guest signed in: a
    // guest has no proof to give and needs none (as for the upgrade).
    let guest = app.guest().await;
    let id = guest["user"]["id"].as_str().unwrap().to_string();
    // Past the step-up window (5 minutes); the issuers sign at the real
    // time, so not much further.
    app.clock.advance(600);
    let r = app.refresh(&token(&guest, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let guest: Value = r.json().await.unwrap();
    let email = unique_email();
    let sub = fresh("gc");
    is.acme.set_account(person(&sub, &email));
    let (verifier, challenge) = pkce();
    let code = app.link_code("acme", &challenge).await;
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            &token(&guest, "access_token"),
            &json!({"code": code, "code_verifier": verifier}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, me) = app.after_refresh(&guest).await;
    assert_eq!(
        (me["id"].as_str().unwrap(), me["email"].as_str().unwrap()),
        (id.as_str(), email.as_str())
    );
    assert_eq!(me["is_anonymous"], false);
    let again = app.native_ok(&is.acme, "acme", person(&sub, &email)).await;
    assert_eq!(again["user"]["id"], id);
}

/// A guest's refusals: an address another account holds (409, as the
/// upgrade answers; a link token of that account's address too), no
/// verified address (422). The guest stays a guest with nothing linked,
/// and the identity stays free.
#[tokio::test]
async fn a_guest_link_refused_leaves_a_guest_with_nothing_linked() {
    let is = Issuers::start().await;
    let app = guest_app(&is).await;
    let guest = app.guest().await;
    let at = token(&guest, "access_token");
    let link = |claims: Value| {
        let app = &app;
        let at = at.clone();
        let is = &is;
        async move {
            let nonce = app.fed_nonce().await;
            let mut claims = claims;
            claims["nonce"] = json!(nonce);
            app.post_authed_json(
                "/v1/me/identities",
                &at,
                &json!({"provider": "google", "id_token": is.google.id_token(claims), "nonce": nonce}),
            )
            .await
        }
    };
    let (taken, _) = app.signed_in_user().await;
    let sub = fresh("gt");
    assert_problem(
        link(person(&sub, &taken)).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let unverified = json!({"sub": fresh("gu"), "email": unique_email(), "email_verified": false});
    assert_problem(
        link(unverified).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "provider-email-unverified",
    )
    .await;

    // A link token (from a sign-in that met the taken address).
    let r = app.native(&is.google, "google", person(&sub, &taken)).await;
    let body = assert_problem(r, StatusCode::CONFLICT, "link-required").await;
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            &at,
            &json!({"link_token": body["link_token"]}),
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;

    let list: Value = app
        .get_authed("/v1/me/identities", &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    let (_, me) = app.after_refresh(&guest).await;
    assert_eq!(me["is_anonymous"], true);
    // The identity is nobody's: with its own free address it signs up.
    let free = unique_email();
    let r = app
        .native_ok(&is.google, "google", person(&sub, &free))
        .await;
    assert_ne!(r["user"]["id"], guest["user"]["id"]);
}

/// `hosted` (the hosted page's kind of flow) is no public `intent`, and a
/// full account still needs its recent proof to link.
#[tokio::test]
async fn the_hosted_intent_is_not_public_and_full_accounts_still_prove() {
    let is = Issuers::start().await;
    let app = guest_app(&is).await;
    let (_, challenge) = pkce();
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("redirect_to", SPA)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("intent", "hosted")
        .finish();
    let r = app
        .client
        .get(app.url(&format!("/v1/federation/google/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let (_, tokens) = app.signed_in_user().await;
    // Past the step-up window (5 minutes), within the access token's life.
    app.clock.advance(600);
    let nonce = app.fed_nonce().await;
    let mut claims = person(&fresh("fp"), &unique_email());
    claims["nonce"] = json!(nonce);
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            &token(&tokens, "access_token"),
            &json!({"provider": "google", "id_token": is.google.id_token(claims), "nonce": nonce}),
        )
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "reauthentication-required").await;
}

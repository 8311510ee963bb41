//! Federated sign-in (DESIGN "Federated sign-in"): every rule against real
//! issuers on loopback (`helpers::issuer`: discovery, JWKS of real P-256
//! keys, signed ID tokens, an authorization and a token endpoint): a
//! Google-like, an Apple-like (`form_post`, the first-time name, a
//! private-relay address, `email_verified` as the string `"true"`) and a
//! generic one, plus a stand-in of GitHub's three endpoints. Runs on the
//! backend `PORTCULLIS_TEST_BACKEND` names. This file: native ID-token
//! sign-in, linking and unlinking; `federation/flow.rs`: the redirect flow.

mod flow;
mod guests;
mod hosted;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::issuer::{CLIENT_SECRET, IOS_CLIENT, TestIssuer, WEB_CLIENT};
use crate::helpers::*;

pub const SPA: &str = "https://spa.example/callback";

/// Three issuers: Google-like, Apple-like, generic (`acme`), the generic
/// one also standing in for GitHub's endpoints.
pub struct Issuers {
    pub google: TestIssuer,
    pub apple: TestIssuer,
    pub acme: TestIssuer,
    /// Apple's `.p8` public key (to check the minted client secret).
    pub apple_jwk: Value,
    _p8: tempfile::NamedTempFile,
}

impl Issuers {
    pub async fn start() -> Self {
        let (pem, apple_jwk) = TestIssuer::apple_p8();
        let p8 = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(p8.path(), pem).unwrap();
        Self {
            google: TestIssuer::start().await,
            apple: TestIssuer::start().await,
            acme: TestIssuer::start().await,
            apple_jwk,
            _p8: p8,
        }
    }

    /// The `PORTCULLIS_*` keys of the four providers.
    pub fn configure(&self, m: &mut BTreeMap<String, String>) {
        let mut set = |k: &str, v: &str| {
            m.insert(k.to_string(), v.to_string());
        };
        set("PORTCULLIS_PROVIDERS", "google,apple,acme,github");
        set(
            "PORTCULLIS_REDIRECT_URLS",
            &format!("{SPA},com.example.app:/auth*"),
        );
        for (id, issuer) in [
            ("GOOGLE", &self.google),
            ("APPLE", &self.apple),
            ("ACME", &self.acme),
        ] {
            set(&format!("PORTCULLIS_PROVIDER_{id}_ISSUER"), &issuer.url);
            set(&format!("PORTCULLIS_PROVIDER_{id}_CLIENT_ID"), WEB_CLIENT);
            set(
                &format!("PORTCULLIS_PROVIDER_{id}_NATIVE_CLIENT_IDS"),
                IOS_CLIENT,
            );
        }
        set("PORTCULLIS_PROVIDER_GOOGLE_CLIENT_SECRET", CLIENT_SECRET);
        set("PORTCULLIS_PROVIDER_ACME_CLIENT_SECRET", CLIENT_SECRET);
        set("PORTCULLIS_PROVIDER_ACME_NAME", "Acme SSO");
        set("PORTCULLIS_PROVIDER_APPLE_TEAM_ID", "TEAM123456");
        set("PORTCULLIS_PROVIDER_APPLE_KEY_ID", "KEY1234567");
        set(
            "PORTCULLIS_PROVIDER_APPLE_PRIVATE_KEY_FILE",
            &self._p8.path().display().to_string(),
        );
        set("PORTCULLIS_PROVIDER_GITHUB_CLIENT_ID", WEB_CLIENT);
        set("PORTCULLIS_PROVIDER_GITHUB_CLIENT_SECRET", CLIENT_SECRET);
        set("PORTCULLIS_PROVIDER_GITHUB_API_URL", &self.acme.url);
        set(
            "PORTCULLIS_PROVIDER_GITHUB_AUTHORIZE_URL",
            &format!("{}/authorize", self.acme.url),
        );
        set(
            "PORTCULLIS_PROVIDER_GITHUB_TOKEN_URL",
            &format!("{}/login/oauth/access_token", self.acme.url),
        );
    }
}

/// A server with the four providers, adjusted by `extra`.
pub async fn fed_app(
    issuers: &Issuers,
    extra: impl FnOnce(&mut BTreeMap<String, String>),
) -> TestApp {
    // A manual clock (at the real time: the issuers sign with it) that
    // tests can move past the step-up window or a TOTP step.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = portcullis::clock::Clock::manual(i64::try_from(now).unwrap());
    spawn_app_at(clock, |m| {
        issuers.configure(m);
        extra(m);
    })
    .await
}

impl TestApp {
    pub async fn fed_nonce(&self) -> String {
        let r = self.post_json("/v1/federation/nonce", &json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["expires_in"], 600);
        body["nonce"].as_str().unwrap().to_string()
    }

    pub async fn id_token_sign_in(
        &self,
        provider: &str,
        id_token: &str,
        nonce: &str,
    ) -> reqwest::Response {
        self.post_json(
            "/v1/sessions/id-token",
            &json!({"provider": provider, "id_token": id_token, "nonce": nonce}),
        )
        .await
    }

    /// A native sign-in of `claims` at `issuer` as `provider`, with a fresh
    /// server nonce; the response.
    pub async fn native(
        &self,
        issuer: &TestIssuer,
        provider: &str,
        mut claims: Value,
    ) -> reqwest::Response {
        let nonce = self.fed_nonce().await;
        claims["nonce"] = json!(nonce);
        let t = issuer.id_token(claims);
        self.id_token_sign_in(provider, &t, &nonce).await
    }

    pub async fn native_ok(&self, issuer: &TestIssuer, provider: &str, claims: Value) -> Value {
        let r = self.native(issuer, provider, claims).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

fn person(sub: &str, email: &str) -> Value {
    json!({"sub": sub, "email": email, "email_verified": true})
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Rules 1, 2 and 7: a new verified identity makes an account (verified,
/// no password); the same `(iss, sub)` signs in to it again whatever its
/// email becomes; tokens say `amr: ["fed"]` and `idp`.
#[tokio::test]
async fn a_new_identity_signs_up_and_then_signs_in_by_sub() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let r = app.get_json("/v1/providers").await;
    assert_eq!(
        r,
        json!([
            {"id": "google", "kind": "google", "name": "Google"},
            {"id": "apple", "kind": "apple", "name": "Apple"},
            {"id": "acme", "kind": "oidc", "name": "Acme SSO"},
            {"id": "github", "kind": "github", "name": "GitHub"},
        ])
    );
    let email = unique_email();
    let sub = fresh("g");
    let body = app
        .native_ok(&is.google, "google", person(&sub, &email))
        .await;
    assert_eq!(body["user"]["email"], email);
    assert_eq!(body["user"]["email_verified"], true);
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["fed"]));
    assert_eq!(claims["idp"], "google");
    let uid = body["user"]["id"].as_str().unwrap().to_string();
    // The refresh keeps `idp`.
    let r = app.refresh(body["refresh_token"].as_str().unwrap()).await;
    let refreshed: Value = r.json().await.unwrap();
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().unwrap())["idp"],
        "google"
    );
    // No password was set: a password sign-in with anything fails.
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Rule 1: the email changed at the provider (even to another account's
    // address): the identity still signs in to its own account.
    let (other, _) = app.signed_in_user().await;
    let again = app
        .native_ok(&is.google, "google", person(&sub, &other))
        .await;
    assert_eq!(again["user"]["id"], uid);
    // Native client ids are accepted audiences too.
    let native = app
        .native_ok(&is.google, "google", json!({"sub": sub, "aud": IOS_CLIENT}))
        .await;
    assert_eq!(native["user"]["id"], uid);

    // The same sub at another provider is another identity.
    let acme = app
        .native_ok(&is.acme, "acme", person(&sub, &unique_email()))
        .await;
    assert_ne!(acme["user"]["id"], uid);

    let token = body["access_token"].as_str().unwrap();
    let list: Value = app
        .get_authed("/v1/me/identities", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["provider"], "google");
    assert!(list[0]["last_used_at"].is_string());
}

/// Rule 5: each ID token once; the audience; a nonce in the token that is
/// a fresh server nonce, raw or SHA-256 hex, and used once; expiry; the
/// issuer and key of the configured provider.
#[tokio::test]
async fn id_tokens_are_checked_and_accepted_once() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let sub = fresh("r");
    let email = unique_email();
    let invalid =
        |r: reqwest::Response| assert_problem(r, StatusCode::UNAUTHORIZED, "id-token-invalid");

    // Replay: the very same token and nonce again.
    let nonce = app.fed_nonce().await;
    let t = is
        .google
        .id_token(json!({"sub": sub, "email": email, "email_verified": true, "nonce": nonce}));
    assert_eq!(
        app.id_token_sign_in("google", &t, &nonce).await.status(),
        StatusCode::OK
    );
    invalid(app.id_token_sign_in("google", &t, &nonce).await).await;
    // A used nonce in a new token.
    let t2 = is.google.id_token(json!({"sub": sub, "nonce": nonce}));
    invalid(app.id_token_sign_in("google", &t2, &nonce).await).await;

    // Wrong audience.
    let n = app.fed_nonce().await;
    let t = is
        .google
        .id_token(json!({"sub": sub, "nonce": n, "aud": "someone-else"}));
    invalid(app.id_token_sign_in("google", &t, &n).await).await;
    // No nonce in the token.
    let n = app.fed_nonce().await;
    let t = is.google.id_token(json!({"sub": sub}));
    invalid(app.id_token_sign_in("google", &t, &n).await).await;
    // A nonce the server never issued (in the token and the request alike).
    let made_up = "made-up-nonce-0123456789";
    let t = is.google.id_token(json!({"sub": sub, "nonce": made_up}));
    invalid(app.id_token_sign_in("google", &t, made_up).await).await;
    // A token whose nonce is another server nonce than the one sent.
    let (n1, n2) = (app.fed_nonce().await, app.fed_nonce().await);
    let t = is.google.id_token(json!({"sub": sub, "nonce": n1}));
    invalid(app.id_token_sign_in("google", &t, &n2).await).await;
    // Expired.
    let n = app.fed_nonce().await;
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let t = is
        .google
        .id_token(json!({"sub": sub, "nonce": n, "iat": past - 600, "exp": past}));
    invalid(app.id_token_sign_in("google", &t, &n).await).await;
    // A token of an issuer that is not configured, sent as google.
    let stranger = TestIssuer::start().await;
    let n = app.fed_nonce().await;
    let t = stranger.id_token(json!({"sub": sub, "nonce": n}));
    invalid(app.id_token_sign_in("google", &t, &n).await).await;
    // google's issuer name but a key google never published.
    let n = app.fed_nonce().await;
    let t = is.google.foreign_token(json!({"sub": sub, "nonce": n}));
    invalid(app.id_token_sign_in("google", &t, &n).await).await;
    // Another configured provider's token sent as google (wrong issuer).
    let n = app.fed_nonce().await;
    let t = is.acme.id_token(json!({"sub": sub, "nonce": n}));
    invalid(app.id_token_sign_in("google", &t, &n).await).await;
    // A provider that is not configured.
    let n = app.fed_nonce().await;
    let t = is.google.id_token(json!({"sub": sub, "nonce": n}));
    invalid(app.id_token_sign_in("facebook", &t, &n).await).await;
    // An unsigned token.
    let n = app.fed_nonce().await;
    let unsigned = {
        use base64::Engine;
        let e = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", e(json!({"alg": "none"})), e(claims_of(&t)))
    };
    invalid(app.id_token_sign_in("google", &unsigned, &n).await).await;

    // The hashed nonce (as iOS SDKs send it) signs in.
    let n = app.fed_nonce().await;
    let hashed = {
        use sha2::Digest;
        sha2::Sha256::digest(n.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let t = is.google.id_token(json!({"sub": sub, "nonce": hashed}));
    let r = app.id_token_sign_in("google", &t, &n).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Rule 4: no verified email and no linked identity: 422, nothing made.
/// Rule 2's switch: signup off gives 403.
#[tokio::test]
async fn unverified_or_missing_email_creates_nothing_and_signup_can_be_off() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let email = unique_email();
    let sub = fresh("u");
    let r = app
        .native(
            &is.acme,
            "acme",
            json!({"sub": sub, "email": email, "email_verified": false}),
        )
        .await;
    assert_problem(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "provider-email-unverified",
    )
    .await;
    let r = app.native(&is.acme, "acme", json!({"sub": sub})).await;
    assert_problem(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "provider-email-unverified",
    )
    .await;
    // Nothing was created: the address is free for a registration.
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );

    let off = fed_app(&is, |m| {
        m.insert("PORTCULLIS_FEDERATION_SIGNUP".into(), "false".into());
    })
    .await;
    let r = off
        .native(&is.google, "google", person(&fresh("s"), &unique_email()))
        .await;
    assert_problem(r, StatusCode::FORBIDDEN, "signup-disabled").await;
}

/// Rule 3 against pre-account takeover: an attacker registers the
/// victim's address with a password and never verifies it. The victim's
/// verified identity is never linked to that account nor signed into it,
/// even with TRUST_EMAIL on; it gets `link-required` and nothing changes.
#[tokio::test]
async fn an_unverified_local_account_is_never_linked_or_entered() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |m| {
        m.insert(
            "PORTCULLIS_PROVIDER_GOOGLE_TRUST_EMAIL".into(),
            "true".into(),
        );
    })
    .await;
    let victim = unique_email();
    assert_eq!(
        app.register(&victim, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let attacker = app.login_ok(&victim, PASSWORD).await;
    let sub = fresh("victim");
    for provider in ["google", "acme"] {
        let issuer = if provider == "google" {
            &is.google
        } else {
            &is.acme
        };
        let r = app.native(issuer, provider, person(&sub, &victim)).await;
        let p = assert_problem(r, StatusCode::CONFLICT, "link-required").await;
        assert!(p["link_token"].as_str().unwrap().len() >= 32);
    }
    let token = attacker["access_token"].as_str().unwrap();
    let list: Value = app
        .get_authed("/v1/me/identities", token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]), "nothing linked to the attacker's account");
    let me: Value = app.get_authed("/v1/me", token).await.json().await.unwrap();
    assert_eq!(me["email_verified"], false);
}

/// TRUST_EMAIL links at once only to an account whose own address is verified.
#[tokio::test]
async fn trusted_email_links_a_verified_account_at_once() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |m| {
        m.insert(
            "PORTCULLIS_PROVIDER_GOOGLE_TRUST_EMAIL".into(),
            "true".into(),
        );
    })
    .await;
    let (email, tokens) = app.signed_in_user().await;
    let uid = portcullis::domain::UserId::from(tokens["user"]["id"].as_str().unwrap());
    let update = portcullis::store::AdminUpdate {
        email_verified: Some(true),
        ..Default::default()
    };
    app.store.admin_update(&uid, &update, 1).await.unwrap();
    let body = app
        .native_ok(&is.google, "google", person(&fresh("t"), &email))
        .await;
    assert_eq!(body["user"]["id"], uid.as_str());
    // acme does not trust emails: link-required.
    let r = app
        .native(&is.acme, "acme", person(&fresh("t"), &email))
        .await;
    assert_problem(r, StatusCode::CONFLICT, "link-required").await;
}

/// Rule 3's way forward and rule 7: `link-required`, then the owner signs
/// in with password and TOTP and links with the token; afterwards the
/// identity signs in, and the account's second factor is still asked for.
#[tokio::test]
async fn link_required_then_linked_after_password_and_totp() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    let (secret, _) = app
        .enable_mfa(tokens["access_token"].as_str().unwrap())
        .await;
    let sub = fresh("owner");
    let r = app.native(&is.google, "google", person(&sub, &email)).await;
    let p = assert_problem(r, StatusCode::CONFLICT, "link-required").await;
    let link_token = p["link_token"].as_str().unwrap().to_string();

    // The owner signs in: password, then the second factor.
    let mfa_token = app.login_mfa_token(&email).await;
    let r = app
        .login_mfa(&json!({"mfa_token": mfa_token, "code": app.totp_now(&secret, 0)}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let signed: Value = r.json().await.unwrap();
    let access = signed["access_token"].as_str().unwrap();
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            access,
            &json!({"link_token": link_token}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let linked: Value = r.json().await.unwrap();
    assert_eq!(linked["provider"], "google");
    // The link token worked once.
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            access,
            &json!({"link_token": link_token}),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "token-invalid-or-expired").await;

    // Now the identity signs in, and the account's TOTP is asked for.
    app.clock.advance(30);
    let body = app
        .native_ok(&is.google, "google", person(&sub, &email))
        .await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none());
    let r = app
        .login_mfa(&json!({"mfa_token": body["mfa_token"], "code": app.totp_now(&secret, 0)}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let done: Value = r.json().await.unwrap();
    let claims = claims_of(done["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["fed", "otp"]));
    assert_eq!(claims["idp"], "google");
    assert_eq!(done["user"]["id"], signed["user"]["id"]);

    // The audit log and the notice mail.
    let events = app.all_activity(access).await;
    assert!(
        events.iter().any(|e| e["type"] == "identity.linked"),
        "{events:?}"
    );
    app.wait_for_email(&email, "A sign-in provider was linked to your account")
        .await;
}

/// Linking needs a recent proof; unlinking the last way in is refused;
/// an identity linked elsewhere is a conflict.
#[tokio::test]
async fn linking_needs_a_proof_and_the_last_credential_stays() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let email = unique_email();
    let sub = fresh("only");
    let body = app
        .native_ok(&is.apple, "apple", person(&sub, &email))
        .await;
    let access = body["access_token"].as_str().unwrap().to_string();
    let list: Value = app
        .get_authed("/v1/me/identities", &access)
        .await
        .json()
        .await
        .unwrap();
    let only = list[0]["id"].as_str().unwrap().to_string();
    // The one identity of a password-less account cannot go.
    let r = app
        .delete_authed(&format!("/v1/me/identities/{only}"), &access)
        .await;
    assert_problem(r, StatusCode::CONFLICT, "last-credential").await;
    let r = app
        .delete_authed("/v1/me/identities/no-such-id", &access)
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;

    // Link a second one (native token through the link route).
    let nonce = app.fed_nonce().await;
    let t = is
        .acme
        .id_token(json!({"sub": sub, "nonce": nonce, "email": email, "email_verified": true}));
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            &access,
            &json!({"provider": "acme", "id_token": t, "nonce": nonce}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Now the first may go, and then the second is the last.
    let r = app
        .delete_authed(&format!("/v1/me/identities/{only}"), &access)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let list: Value = app
        .get_authed("/v1/me/identities", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let second = list[0]["id"].as_str().unwrap();
    let r = app
        .delete_authed(&format!("/v1/me/identities/{second}"), &access)
        .await;
    assert_problem(r, StatusCode::CONFLICT, "last-credential").await;
    let events = app.all_activity(&access).await;
    assert!(events.iter().any(|e| e["type"] == "identity.unlinked"));

    // Another account cannot take the acme identity.
    let (_, other) = app.signed_in_user().await;
    let other_access = other["access_token"].as_str().unwrap();
    let nonce = app.fed_nonce().await;
    let t = is.acme.id_token(json!({"sub": sub, "nonce": nonce}));
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            other_access,
            &json!({"provider": "acme", "id_token": t, "nonce": nonce}),
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT, "identity-taken").await;

    // Past the step-up window, linking needs a proof in the request.
    app.clock.advance(600);
    let nonce = app.fed_nonce().await;
    let fresh_sub = fresh("late");
    let t = is
        .google
        .id_token(json!({"sub": fresh_sub, "nonce": nonce}));
    let offer = json!({"provider": "google", "id_token": t, "nonce": nonce});
    let r = app
        .post_authed_json("/v1/me/identities", other_access, &offer)
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "reauthentication-required").await;
    let mut with_password = offer.clone();
    with_password["password"] = json!(PASSWORD);
    let r = app
        .post_authed_json("/v1/me/identities", other_access, &with_password)
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "the nonce and token were not spent by the refusal"
    );
}

/// Rule 6 natively: Apple's name in the request fills an empty display
/// name; a private-relay address with `email_verified: "true"` (a string)
/// is an ordinary verified address.
#[tokio::test]
async fn apple_native_name_and_private_relay() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let relay = format!("{}@privaterelay.appleid.com", uuid::Uuid::new_v4().simple());
    let nonce = app.fed_nonce().await;
    let t = is.apple.id_token(json!({
        "sub": fresh("apple"), "nonce": nonce, "email": relay,
        "email_verified": "true", "is_private_email": "true", "aud": IOS_CLIENT,
    }));
    let r = app
        .post_json(
            "/v1/sessions/id-token",
            &json!({"provider": "apple", "id_token": t, "nonce": nonce,
                    "name": {"given_name": "Ada", "family_name": "Lovelace"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["email"], relay);
    assert_eq!(body["user"]["display_name"], "Ada Lovelace");
}

/// The upstream's keys are fetched once and cached; a rotated key is
/// fetched once; an upstream that is down is a 502 problem, not a hang.
#[tokio::test]
async fn keys_are_cached_rotation_refetches_and_a_down_upstream_is_502() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    for _ in 0..3 {
        app.native_ok(&is.acme, "acme", person(&fresh("c"), &unique_email()))
            .await;
    }
    assert_eq!(is.acme.fetches(), (1, 1), "discovery and JWKS fetched once");
    // Made-up kids do not make a request each.
    for _ in 0..3 {
        let n = app.fed_nonce().await;
        let t = is.acme.foreign_token(json!({"sub": "x", "nonce": n}));
        let _ = app.id_token_sign_in("acme", &t, &n).await;
    }
    let (_, jwks) = is.acme.fetches();
    assert!(jwks <= 3, "at most one refetch per floor: {jwks}");
    is.acme.rotate();
    let started = std::time::Instant::now();
    app.native_ok(&is.acme, "acme", person(&fresh("c"), &unique_email()))
        .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (_, after) = is.acme.fetches();
    assert_eq!(after, jwks + 1, "the rotated key was fetched once");

    let down = TestIssuer::start().await;
    down.set_down(true);
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_PROVIDERS".into(), "acme".into());
        m.insert("PORTCULLIS_PROVIDER_ACME_ISSUER".into(), down.url.clone());
        m.insert(
            "PORTCULLIS_PROVIDER_ACME_CLIENT_ID".into(),
            WEB_CLIENT.into(),
        );
    })
    .await;
    let n = app.fed_nonce().await;
    let t = down.id_token(json!({"sub": "x", "nonce": n}));
    let r = app.id_token_sign_in("acme", &t, &n).await;
    assert_problem(r, StatusCode::BAD_GATEWAY, "provider-unavailable").await;
}

/// The admin view of an account lists its identities; deleting the
/// account unlinks them (the identity then makes a new account).
#[tokio::test]
async fn admin_sees_identities_and_account_deletion_unlinks() {
    let is = Issuers::start().await;
    let app = spawn_app_with_admin_as("fed-admin@example.com", |m| is.configure(m)).await;
    let admin = app.login_ok("fed-admin@example.com", PASSWORD).await;
    let admin_token = admin["access_token"].as_str().unwrap();
    let sub = fresh("adm");
    let email = unique_email();
    let body = app
        .native_ok(&is.google, "google", person(&sub, &email))
        .await;
    let uid = body["user"]["id"].as_str().unwrap().to_string();
    let view: Value = app
        .get_authed(&format!("/v1/admin/users/{uid}"), admin_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["identities"][0]["provider"], "google");
    let r = app
        .delete_authed(&format!("/v1/admin/users/{uid}"), admin_token)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let again = app
        .native_ok(&is.google, "google", person(&sub, &email))
        .await;
    assert_ne!(again["user"]["id"], uid);
}

/// A squatter who registered someone's address, never verified it, and
/// linked their own identity to the account loses that identity when the
/// owner of the address resets the password (the claim of the account).
#[tokio::test]
async fn a_reset_claiming_an_unverified_account_unlinks_the_squatters_identity() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let (victim, squatter) = app.signed_in_user().await;
    let access = squatter["access_token"].as_str().unwrap();
    let sub = fresh("squat");
    let nonce = app.fed_nonce().await;
    let t = is.google.id_token(
        json!({"sub": sub, "nonce": nonce, "email": unique_email(), "email_verified": true}),
    );
    let r = app
        .post_authed_json(
            "/v1/me/identities",
            access,
            &json!({"provider": "google", "id_token": t, "nonce": nonce}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.forgot(&victim).await.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_email(&victim, "Reset your password").await;
    let r = app
        .reset_with_token(&mail.token(), "the owner's own passphrase 77")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The squatter's identity no longer opens the account.
    let body = app
        .native_ok(
            &is.google,
            "google",
            json!({"sub": sub, "email": unique_email(), "email_verified": true}),
        )
        .await;
    assert_ne!(body["user"]["email"], victim);
    let owner = app.login_ok(&victim, "the owner's own passphrase 77").await;
    let list: Value = app
        .get_authed("/v1/me/identities", owner["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
}

/// One new identity signing in from several devices at once makes one
/// account, and every sign-in lands in it.
#[tokio::test]
async fn racing_first_sign_ins_of_one_identity_make_one_account() {
    let is = Issuers::start().await;
    let app = fed_app(&is, |_| {}).await;
    let sub = fresh("race");
    let email = unique_email();
    let mut offers = Vec::new();
    for _ in 0..5 {
        let nonce = app.fed_nonce().await;
        let t = is
            .google
            .id_token(json!({"sub": sub, "nonce": nonce, "email": email, "email_verified": true}));
        offers.push((t, nonce));
    }
    let results = futures_util::future::join_all(
        offers
            .iter()
            .map(|(t, n)| app.id_token_sign_in("google", t, n)),
    )
    .await;
    let mut ids = std::collections::BTreeSet::new();
    for r in results {
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        ids.insert(body["user"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "one account: {ids:?}");
}

//! Passkeys end to end with the webauthn-rs project's software
//! authenticator (`webauthn-authenticator-rs`, `SoftPasskey`): it builds and
//! signs real WebAuthn registrations and assertions, with the origin and RP
//! id a browser would use. It cannot store discoverable credentials, so
//! usernameless sign-in is proven in the browser test
//! (`interop/passkeys.mjs`, Chromium's virtual authenticator).

use reqwest::StatusCode;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use crate::helpers::*;

mod accounts;

/// A software authenticator that performs user verification.
pub(crate) fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// What the browser's `navigator.credentials.create` returns, as JSON.
pub(crate) fn create(auth: &mut SoftPasskey, origin: &str, public_key: &Value) -> Value {
    let options: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": public_key })).unwrap();
    let cred = auth
        .do_registration(Url::parse(origin).unwrap(), options)
        .unwrap();
    serde_json::to_value(cred).unwrap()
}

/// What the browser's `navigator.credentials.get` returns, as JSON.
pub(crate) fn get(auth: &mut SoftPasskey, origin: &str, public_key: &Value) -> Value {
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": public_key })).unwrap();
    let cred = auth
        .do_authentication(Url::parse(origin).unwrap(), options)
        .unwrap();
    serde_json::to_value(cred).unwrap()
}

pub(crate) async fn json_ok(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    r.json().await.unwrap()
}

/// Registers a passkey made by `auth` for the signed-in user; returns the
/// passkey view.
pub(crate) async fn register(app: &TestApp, auth: &mut SoftPasskey, token: &str) -> Value {
    let options = json_ok(
        app.passkey_registration_options(token).await,
        StatusCode::OK,
    )
    .await;
    let credential = create(auth, &app.origin(), &options["public_key"]);
    let body = json!({
        "challenge_id": options["challenge_id"], "credential": credential, "name": "Laptop"
    });
    json_ok(app.add_passkey(token, &body).await, StatusCode::CREATED).await
}

/// Sign-in options for `email`.
pub(crate) async fn sign_in_options(app: &TestApp, email: &str) -> Value {
    json_ok(
        app.passkey_sign_in_options(&json!({ "email": email }))
            .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn register_sign_in_list_and_delete() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();

    // Registration options: the RP is the public URL's host; UV required;
    // a discoverable credential preferred.
    let options = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
    let pk = &options["public_key"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "preferred");
    assert!(pk["challenge"].as_str().unwrap().len() >= 43, "{pk}");
    let credential = create(&mut auth, &app.origin(), pk);
    let body = json!({ "challenge_id": options["challenge_id"], "credential": credential, "name": "Laptop" });
    let added = json_ok(app.add_passkey(&at, &body).await, StatusCode::CREATED).await;
    assert_eq!(added["name"], "Laptop");
    assert!(added["created_at"].is_string());
    assert!(added["last_used_at"].is_null());
    // The same answer again: the challenge is spent.
    let r = app.add_passkey(&at, &body).await;
    let p = assert_problem(r, StatusCode::BAD_REQUEST, "passkey-invalid").await;
    assert!(
        p["detail"].as_str().unwrap().contains("already used"),
        "{p}"
    );

    // Adding a passkey revoked nothing: the session still works, and the
    // user body counts the passkey.
    let me = json_ok(app.get_authed("/v1/me", &at).await, StatusCode::OK).await;
    assert_eq!(me["passkeys"], 1);
    let list = json_ok(app.list_passkeys(&at).await, StatusCode::OK).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], added["id"]);
    assert!(
        !list.to_string().contains("cred_id"),
        "no key material: {list}"
    );

    // Sign in with the email: its credential is listed.
    let options = sign_in_options(&app, &email).await;
    let allowed = options["public_key"]["allowCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(allowed.len(), 1);
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await;
    let signed_in = json_ok(r, StatusCode::OK).await;
    let claims = claims_of(signed_in["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["hwk", "user"]));
    assert_eq!(claims["sub"], me["id"]);
    assert_eq!(signed_in["user"]["passkeys"], 1);
    let sessions = json_ok(
        app.sessions(signed_in["access_token"].as_str().unwrap())
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(sessions.as_array().unwrap().len(), 2);
    let list = json_ok(app.list_passkeys(&at).await, StatusCode::OK).await;
    assert!(list[0]["last_used_at"].is_string(), "{list}");

    // A second passkey on another authenticator; then remove the first.
    let mut other = authenticator();
    let second = register(&app, &mut other, &at).await;
    assert_eq!(second["name"], "Laptop");
    let id = added["id"].as_str().unwrap();
    assert_eq!(
        app.delete_passkey(&at, id).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = app.delete_passkey(&at, id).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
    let r = app.delete_passkey(&at, "../../$where").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let me = json_ok(app.get_authed("/v1/me", &at).await, StatusCode::OK).await;
    assert_eq!(me["passkeys"], 1);
    // The removed passkey no longer signs in.
    let options = sign_in_options(&app, &email).await;
    assert_eq!(
        options["public_key"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = app
        .passkey_sign_in(&json!({
            "challenge_id": options["challenge_id"],
            "credential": get(&mut other, &app.origin(), &options["public_key"]),
        }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "the remaining one does");
    // And the password still works: a passkey is an addition.
    app.login_ok(&email, PASSWORD).await;
}

#[tokio::test]
async fn an_authenticator_is_registered_once() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    register(&app, &mut auth, &at).await;
    // The options exclude the registered credential...
    let options = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
    let excluded = options["public_key"]["excludeCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(excluded.len(), 1);
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let mut auth = authenticator();
    register(&app, &mut auth, &token(&tokens, "access_token")).await;
    let options = sign_in_options(&app, &email).await;
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    let body = json!({ "challenge_id": options["challenge_id"], "credential": assertion });
    assert_eq!(app.passkey_sign_in(&body).await.status(), StatusCode::OK);
    // The same request again: the challenge was used.
    let r = app.passkey_sign_in(&body).await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(
        p["detail"].as_str().unwrap().contains("already used"),
        "{p}"
    );
    // The old assertion against a fresh challenge: it signed another one.
    let fresh = sign_in_options(&app, &email).await;
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": fresh["challenge_id"], "credential": body["credential"] }),
        )
        .await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(
        p["detail"].as_str().unwrap().contains("another challenge"),
        "{p}"
    );
}

#[tokio::test]
async fn a_signature_counter_that_goes_back_is_a_clone_signal() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let mut auth = authenticator();
    register(&app, &mut auth, &token(&tokens, "access_token")).await;
    // Two assertions; the later one (higher counter) is used first, as a
    // cloned authenticator racing the original would.
    let first = sign_in_options(&app, &email).await;
    let early = get(&mut auth, &app.origin(), &first["public_key"]);
    let second = sign_in_options(&app, &email).await;
    let late = get(&mut auth, &app.origin(), &second["public_key"]);
    let r = app
        .passkey_sign_in(&json!({ "challenge_id": second["challenge_id"], "credential": late }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .passkey_sign_in(&json!({ "challenge_id": first["challenge_id"], "credential": early }))
        .await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(p["detail"].as_str().unwrap().contains("cloned"), "{p}");
}

#[tokio::test]
async fn a_credential_from_another_origin_is_refused() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    // A page on another origin (a subdomain, so the authenticator itself
    // accepts the RP id) asks to register: the server refuses.
    let port = app.origin().rsplit(':').next().unwrap().to_string();
    let evil = format!("https://evil.localhost:{port}");
    let options = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
    let credential = create(&mut auth, &evil, &options["public_key"]);
    let r = app
        .add_passkey(
            &at,
            &json!({ "challenge_id": options["challenge_id"], "credential": credential }),
        )
        .await;
    let p = assert_problem(r, StatusCode::BAD_REQUEST, "passkey-invalid").await;
    assert!(p["detail"].as_str().unwrap().contains("origin"), "{p}");
    let me = json_ok(app.get_authed("/v1/me", &at).await, StatusCode::OK).await;
    assert_eq!(me["passkeys"], 0, "nothing stored");
    // Same for a sign-in.
    register(&app, &mut auth, &at).await;
    let options = sign_in_options(&app, &email).await;
    let assertion = get(&mut auth, &evil, &options["public_key"]);
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(p["detail"].as_str().unwrap().contains("origin"), "{p}");
}

#[tokio::test]
async fn an_spa_origin_listed_in_the_settings_works_and_a_wrong_rp_id_does_not() {
    let app = spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_WEBAUTHN_ORIGINS".into(),
            "https://app.localhost".into(),
        );
    })
    .await;
    let (email, tokens) = app.signed_in_user().await;
    let mut auth = authenticator();
    let spa = "https://app.localhost";
    // Registered and used from the SPA's origin, for the RP id `localhost`.
    let options = json_ok(
        app.passkey_registration_options(&token(&tokens, "access_token"))
            .await,
        StatusCode::OK,
    )
    .await;
    let credential = create(&mut auth, spa, &options["public_key"]);
    let r = app
        .add_passkey(
            &token(&tokens, "access_token"),
            &json!({ "challenge_id": options["challenge_id"], "credential": credential }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let options = sign_in_options(&app, &email).await;
    let assertion = get(&mut auth, spa, &options["public_key"]);
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The page asks the authenticator for its own host as RP id instead:
    // the signature covers `app.localhost`, which is not this RP.
    let options = sign_in_options(&app, &email).await;
    let mut tampered = options["public_key"].clone();
    tampered["rpId"] = json!("app.localhost");
    let assertion = get(&mut auth, spa, &tampered);
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(
        p["detail"].as_str().unwrap().contains("relying party id"),
        "{p}"
    );
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let clock = portcullis::clock::Clock::manual(1_900_000_000);
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    let options = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
    let credential = create(&mut auth, &app.origin(), &options["public_key"]);
    clock.advance(301);
    // (The sign-in's proof is not recent any more either: the password
    // goes with the answer, so the challenge is what is refused.)
    let r = app
        .add_passkey(
            &at,
            &json!({ "challenge_id": options["challenge_id"], "credential": credential, "password": PASSWORD }),
        )
        .await;
    let p = assert_problem(r, StatusCode::BAD_REQUEST, "passkey-invalid").await;
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    // Within the five minutes it works; a sign-in challenge expires alike.
    let r = app
        .post_authed_json(
            "/v1/me/reauthenticate",
            &at,
            &json!({ "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    register(&app, &mut auth, &at).await;
    let options = sign_in_options(&app, &email).await;
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    clock.advance(299);
    let fresh = sign_in_options(&app, &email).await;
    let fresh_assertion = get(&mut auth, &app.origin(), &fresh["public_key"]);
    clock.advance(2);
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": fresh["challenge_id"], "credential": fresh_assertion }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_an_email_the_options_are_for_discoverable_credentials() {
    let app = spawn_app().await;
    // (With an unknown email they look like those of an account with
    // passkeys instead: `stepup::passkey_options_do_not_tell_addresses_apart`.)
    for body in [json!({})] {
        let options = json_ok(app.passkey_sign_in_options(&body).await, StatusCode::OK).await;
        assert!(options["challenge_id"].is_string());
        let allowed = &options["public_key"]["allowCredentials"];
        assert!(
            allowed.is_null() || allowed.as_array().is_some_and(Vec::is_empty),
            "{options}"
        );
        assert_eq!(options["public_key"]["userVerification"], "required");
        assert_eq!(options["public_key"]["rpId"], "localhost");
    }
    let options = json_ok(
        app.passkey_sign_in_options(&json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(options["mediation"], "conditional");
}

#[tokio::test]
async fn ceremony_failures_are_clear_problems() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let options = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
    for credential in [
        json!("nope"),
        json!({"id": 1}),
        json!({"id": "x", "rawId": "!!", "response": {}, "type": "public-key"}),
    ] {
        let r = app
            .add_passkey(
                &at,
                &json!({ "challenge_id": options["challenge_id"], "credential": credential }),
            )
            .await;
        let p = assert_problem(r, StatusCode::BAD_REQUEST, "passkey-invalid").await;
        assert!(p["detail"].as_str().unwrap().len() > 20, "{p}");
    }
    for body in [
        json!({ "challenge_id": "no-such-challenge", "credential": {} }),
        json!({ "challenge_id": options["challenge_id"], "credential": {"id": "x"} }),
    ] {
        let r = app.passkey_sign_in(&body).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    }
    let r = app.passkey_sign_in(&json!({ "challenge_id": "x" })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = app.passkey_sign_in(&json!({ "credential": {} })).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    let r = app
        .passkey_sign_in_options(&json!({ "email": "not an email" }))
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = app
        .passkey_sign_in_options(&json!({ "mfa_token": "not.a.token" }))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token-invalid").await;
    let r = app
        .add_passkey(
            &at,
            &json!({ "challenge_id": options["challenge_id"], "credential": {}, "name": "" }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = app
        .client
        .post(app.url("/v1/me/passkeys/options"))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "authentication-required").await;
}

#[tokio::test]
async fn the_options_routes_are_throttled() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_RATE_LIMIT".into(), "on".into());
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(app.passkey_sign_in_options(&json!({})).await.status());
    }
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let r = app.passkey_sign_in_options(&json!({})).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
}

#[tokio::test]
async fn association_files_come_from_the_settings() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/apple-app-site-association",
        "/.well-known/assetlinks.json",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
    }
    let fp = "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5";
    let fp2 = fp.replace("14:", "15:");
    let apps = format!("com.example.app:{fp},com.example.app:{fp2},com.example.other:{fp}");
    let app = spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_APPLE_APP_IDS".into(),
            "ABCDE12345.com.example.app".into(),
        );
        m.insert("PORTCULLIS_ANDROID_APPS".into(), apps);
    })
    .await;
    let r = app
        .client
        .get(app.url("/.well-known/apple-app-site-association"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let aasa = json_ok(r, StatusCode::OK).await;
    assert_eq!(
        aasa["webcredentials"]["apps"],
        json!(["ABCDE12345.com.example.app"])
    );
    assert_eq!(
        aasa["applinks"]["details"][0]["appIDs"],
        json!(["ABCDE12345.com.example.app"])
    );
    let links = app.get_json("/.well-known/assetlinks.json").await;
    let links = links.as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["target"]["package_name"], "com.example.app");
    assert_eq!(
        links[0]["target"]["sha256_cert_fingerprints"],
        json!([fp, fp2])
    );
    assert!(
        links[0]["relation"]
            .as_array()
            .unwrap()
            .contains(&json!("delegate_permission/common.get_login_creds"))
    );
}

/// A ceremony begun on one replica is finished on another (one MongoDB
/// database): the challenge lives in the store, not in a process.
#[tokio::test]
async fn a_ceremony_begun_on_one_replica_finishes_on_another() {
    if std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() != Ok("mongo") {
        eprintln!("SKIPPED: two replicas need the MongoDB backend");
        return;
    }
    let db = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
    // One deployment: one database, one key set, one public URL (hence
    // one RP id and origin).
    let public = "http://localhost:18443";
    let db_a = db.clone();
    let a = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MONGODB_DB".into(), db_a);
        m.insert("PORTCULLIS_PUBLIC_URL".into(), public.into());
    })
    .await;
    let keys = a.keys_path().display().to_string();
    let b = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MONGODB_DB".into(), db);
        m.insert("PORTCULLIS_KEYS_DIR".into(), keys);
        m.insert("PORTCULLIS_PUBLIC_URL".into(), public.into());
    })
    .await;
    let (email, tokens) = a.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    let options = json_ok(a.passkey_registration_options(&at).await, StatusCode::OK).await;
    let credential = create(&mut auth, public, &options["public_key"]);
    let body = json!({ "challenge_id": options["challenge_id"], "credential": credential });
    assert_eq!(
        b.add_passkey(&at, &body).await.status(),
        StatusCode::CREATED
    );
    // Used once across the deployment.
    let r = a.add_passkey(&at, &body).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "passkey-invalid").await;
    let options = json_ok(
        b.passkey_sign_in_options(&json!({ "email": email })).await,
        StatusCode::OK,
    )
    .await;
    let assertion = get(&mut auth, public, &options["public_key"]);
    let body = json!({ "challenge_id": options["challenge_id"], "credential": assertion });
    let signed_in = json_ok(a.passkey_sign_in(&body).await, StatusCode::OK).await;
    assert_eq!(
        claims_of(signed_in["access_token"].as_str().unwrap())["amr"],
        json!(["hwk", "user"])
    );
    let r = b.passkey_sign_in(&body).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
}

/// `{passkey: {challenge_id, credential}}` for options from `options`.
pub(crate) fn passkey_proof(options: &Value, credential: &Value) -> Value {
    json!({ "passkey": { "challenge_id": options["challenge_id"], "credential": credential } })
}

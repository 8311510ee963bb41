//! Recent authentication (step-up) and credential safety:
//! a bare access token never adds or removes a credential (findings H1,
//! H2), `POST /v1/me/reauthenticate`, the window and where it applies, the
//! claim of an unverified account by a password reset, the mails that
//! list passkeys, `PORTCULLIS_MAX_PASSKEYS` (L11), passkey sign-in and
//! `PORTCULLIS_REQUIRE_VERIFIED_EMAIL` (L3), and passkey options that do
//! not tell addresses apart (L4).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::passkeys::{authenticator, create, get, json_ok, passkey_proof, register};

mod credentials;

const START: i64 = 1_900_000_000;
/// The default window, `PORTCULLIS_REAUTH_WINDOW=5m`.
const WINDOW: i64 = 300;

/// A server on a manual clock (expiry rules follow `app.clock`).
async fn app_at(
    configure: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) -> TestApp {
    spawn_app_at(portcullis::clock::Clock::manual(START), configure).await
}

/// `POST /v1/me/reauthenticate`.
async fn reauthenticate(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post_authed_json("/v1/me/reauthenticate", token, body)
        .await
}

/// The 401 a change without a recent proof gets; returns its `methods`.
async fn assert_reauth_required(r: reqwest::Response) -> Vec<String> {
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "reauthentication-required").await;
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains("insufficient_user_authentication"),
        "{challenge}"
    );
    p["methods"]
        .as_array()
        .unwrap_or_else(|| panic!("no methods: {p}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// H1: an access token whose session proved nothing recently (stolen a
/// few minutes after its sign-in) cannot add a passkey; after a proof on
/// that session it can.
#[tokio::test]
async fn a_stolen_token_cannot_add_a_passkey_without_a_recent_proof() {
    let app = app_at(|m| {
        m.insert("PORTCULLIS_REAUTH_WINDOW".into(), "2m".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let stolen = token(&tokens, "access_token");
    app.clock.advance(121);
    // The access token is still valid (15 minutes) ...
    assert_eq!(app.me_status(&stolen).await, StatusCode::OK);
    // ... but cannot begin or finish a registration.
    let methods = assert_reauth_required(app.passkey_registration_options(&stolen).await).await;
    assert_eq!(methods, vec!["password"]);
    let mut evil = authenticator();
    let r = app
        .add_passkey(
            &stolen,
            &json!({ "challenge_id": "made-up", "credential": { "id": "x" } }),
        )
        .await;
    assert_reauth_required(r).await;
    let me = json_ok(app.get_authed("/v1/me", &stolen).await, StatusCode::OK).await;
    assert_eq!(me["passkeys"], 0);

    // With a proof on the session, it works: the password through
    // reauthenticate, then the ceremony.
    let r = reauthenticate(&app, &stolen, &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let options = json_ok(
        app.passkey_registration_options(&stolen).await,
        StatusCode::OK,
    )
    .await;
    let credential = create(&mut evil, &app.origin(), &options["public_key"]);
    let body = json!({ "challenge_id": options["challenge_id"], "credential": credential });
    // The window closes between the options and the answer: the answer
    // needs a proof of its own (inline), and a wrong one changes nothing.
    app.clock.advance(121);
    assert_reauth_required(app.add_passkey(&stolen, &body).await).await;
    let mut wrong = body.clone();
    wrong["password"] = json!("not the password at all");
    let r = app.add_passkey(&stolen, &wrong).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let mut right = body.clone();
    right["password"] = json!(PASSWORD);
    assert_eq!(
        app.add_passkey(&stolen, &right).await.status(),
        StatusCode::CREATED
    );
    // Removing one needs the proof too.
    let list = json_ok(app.list_passkeys(&stolen).await, StatusCode::OK).await;
    let id = list[0]["id"].as_str().unwrap();
    app.clock.advance(121);
    let methods = assert_reauth_required(app.delete_passkey(&stolen, id).await).await;
    assert_eq!(methods, vec!["password", "passkey"]);
}

/// H2: a stolen token cannot turn TOTP on (neither begin nor activate).
#[tokio::test]
async fn a_stolen_token_cannot_turn_totp_on() {
    let app = app_at(|_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    let victim = app.login_ok(&email, PASSWORD).await;
    let stolen = token(&tokens, "access_token");
    app.clock.advance(WINDOW + 1);
    assert_reauth_required(app.totp_begin(&stolen).await).await;
    // A setup begun while the session was fresh cannot be finished later
    // without a proof either.
    let fresh = app.login_ok(&email, PASSWORD).await;
    let fresh_at = token(&fresh, "access_token");
    let begun = json_ok(app.totp_begin(&fresh_at).await, StatusCode::OK).await;
    let secret = begun["secret"].as_str().unwrap().to_string();
    app.clock.advance(WINDOW + 1);
    let r = app
        .totp_activate(&fresh_at, &app.totp_now(&secret, 0))
        .await;
    assert_reauth_required(r).await;
    // Nothing changed: the owner's other session lives, sign-in needs no code.
    assert_eq!(
        app.me_status(&token(&victim, "access_token")).await,
        StatusCode::OK
    );
    let again = app.login_ok(&email, PASSWORD).await;
    assert!(again["access_token"].is_string(), "{again}");
    // With the password inline, activation works.
    let r = app
        .post_authed_json(
            "/v1/me/mfa/totp/activate",
            &fresh_at,
            &json!({ "code": app.totp_now(&secret, 0), "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn reauthenticate_with_a_password_a_code_or_a_passkey() {
    let app = app_at(|m| {
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "20".into());
        // One access token across the three windows below.
        m.insert("PORTCULLIS_ACCESS_TTL".into(), "1h".into());
    })
    .await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    register(&app, &mut auth, &at).await;
    let (secret, _) = app.enable_mfa(&at).await;

    // Malformed bodies: no proof, two proofs.
    let r = reauthenticate(&app, &at, &json!({})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = reauthenticate(
        &app,
        &at,
        &json!({ "password": PASSWORD, "code": "123456" }),
    )
    .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;

    // Password.
    app.clock.advance(WINDOW + 1);
    let methods =
        assert_reauth_required(app.regenerate_recovery_codes(&at, &json!({})).await).await;
    assert_eq!(methods, vec!["password", "totp", "passkey"]);
    let r = reauthenticate(&app, &at, &json!({ "password": "wrong wrong wrong" })).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let r = reauthenticate(&app, &at, &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.regenerate_recovery_codes(&at, &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);

    // A current TOTP code (used once).
    app.clock.advance(WINDOW + 1);
    assert_reauth_required(app.regenerate_recovery_codes(&at, &json!({})).await).await;
    let code = app.totp_now(&secret, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = reauthenticate(&app, &at, &json!({ "code": wrong })).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    let r = reauthenticate(&app, &at, &json!({ "code": code })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = reauthenticate(&app, &at, &json!({ "code": code })).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;
    let r = app.regenerate_recovery_codes(&at, &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);

    // A passkey assertion, options as for `DELETE /v1/me`.
    app.clock.advance(WINDOW + 1);
    assert_reauth_required(app.regenerate_recovery_codes(&at, &json!({})).await).await;
    let options = json_ok(
        app.passkey_sign_in_options(&json!({ "email": email }))
            .await,
        StatusCode::OK,
    )
    .await;
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    let proof = passkey_proof(&options, &assertion);
    let r = reauthenticate(&app, &at, &proof).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The ceremony is spent.
    let r = reauthenticate(&app, &at, &proof).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    let r = app.regenerate_recovery_codes(&at, &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Each outcome is in the user's activity: successes as
    // `login.succeeded` with `step_up`, failures as `login.failed`.
    let events = app.all_activity(&at).await;
    let step_ups = events
        .iter()
        .filter(|e| e["type"] == "login.succeeded" && e["details"]["step_up"] == "true")
        .count();
    assert_eq!(step_ups, 3, "{events:?}");
    let failed = events
        .iter()
        .filter(|e| {
            e["type"] == "login.failed" && e["details"]["reason"] == "reauthentication_failed"
        })
        .count();
    assert!(failed >= 3, "{events:?}");
}

/// The window: a sign-in opens it, it closes after `PORTCULLIS_REAUTH_WINDOW`,
/// and a refresh neither extends nor reopens it.
#[tokio::test]
async fn the_window_expires_and_a_refresh_does_not_renew_it() {
    let app = app_at(|_| {}).await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    app.clock.advance(WINDOW - 1);
    assert_eq!(app.totp_begin(&at).await.status(), StatusCode::OK);
    let refreshed = json_ok(
        app.refresh(&token(&tokens, "refresh_token")).await,
        StatusCode::OK,
    )
    .await;
    let new_at = token(&refreshed, "access_token");
    app.clock.advance(2);
    assert_reauth_required(app.totp_begin(&new_at).await).await;
    assert_reauth_required(app.totp_begin(&at).await).await;
    // A proof reopens it, for every token of the session.
    let r = reauthenticate(&app, &at, &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.totp_begin(&new_at).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_proof_on_one_session_does_not_count_for_another() {
    let app = app_at(|_| {}).await;
    let (email, a) = app.signed_in_user().await;
    let b = app.login_ok(&email, PASSWORD).await;
    let (a, b) = (token(&a, "access_token"), token(&b, "access_token"));
    app.clock.advance(WINDOW + 1);
    let r = reauthenticate(&app, &a, &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.totp_begin(&a).await.status(), StatusCode::OK);
    assert_reauth_required(app.totp_begin(&b).await).await;
}

/// The routes that took a proof in the body take a recent one instead;
/// without either they answer 401 `reauthentication-required` (for
/// `DELETE /v1/me {}` that used to be 422).
#[tokio::test]
async fn routes_with_a_proof_in_the_body_accept_a_recent_one() {
    let app = app_at(|_| {}).await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    // Email change.
    app.clock.advance(WINDOW + 1);
    let r = app
        .post_authed_json("/v1/me/email", &at, &json!({ "new_email": unique_email() }))
        .await;
    assert_reauth_required(r).await;
    let r = app
        .post_authed_json(
            "/v1/me/email",
            &at,
            &json!({ "new_email": unique_email(), "password": PASSWORD, "code": "123456" }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let fresh = token(&app.login_ok(&email, PASSWORD).await, "access_token");
    let r = app
        .post_authed_json(
            "/v1/me/email",
            &fresh,
            &json!({ "new_email": unique_email() }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Turning TOTP off.
    app.enable_mfa(&fresh).await;
    app.clock.advance(WINDOW + 1);
    let methods = assert_reauth_required(app.totp_disable(&fresh, &json!({})).await).await;
    assert_eq!(methods, vec!["password", "totp"]);
    let r = reauthenticate(&app, &fresh, &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.totp_disable(&fresh, &json!({})).await.status(),
        StatusCode::NO_CONTENT
    );
    // Deleting the account: `{}` is 401 without a recent proof, two
    // proofs stay 422, and `{}` with a recent proof deletes.
    app.clock.advance(WINDOW + 1);
    assert_reauth_required(app.delete_me_with(&fresh, &json!({})).await).await;
    let r = app
        .delete_me_with(&fresh, &json!({ "password": PASSWORD, "code": "123456" }))
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(app.me_status(&fresh).await, StatusCode::OK);
    let r = reauthenticate(&app, &fresh, &json!({ "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.delete_me_with(&fresh, &json!({})).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me_status(&fresh).await, StatusCode::UNAUTHORIZED);
}

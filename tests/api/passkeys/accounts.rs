//! Passkeys in an account's life: a second factor after a password, and
//! deleting an account (passkey-only or with a password) with an assertion.

use super::*;

#[tokio::test]
async fn a_passkey_is_a_second_factor_after_a_password() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    register(&app, &mut auth, &at).await;
    app.enable_mfa(&at).await;
    // The password is right: two-factor is on, and the user has a passkey.
    let step = app.login_ok(&email, PASSWORD).await;
    assert_eq!(step["mfa_required"], true, "{step}");
    let methods: Vec<&str> = step["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(methods.contains(&"passkey"), "{methods:?}");
    let mfa_token = token(&step, "mfa_token");
    let options = json_ok(
        app.passkey_sign_in_options(&json!({ "mfa_token": mfa_token }))
            .await,
        StatusCode::OK,
    )
    .await;
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    let body = json!({
        "mfa_token": mfa_token,
        "passkey": { "challenge_id": options["challenge_id"], "credential": assertion },
    });
    let tokens = json_ok(app.login_mfa(&body).await, StatusCode::OK).await;
    assert_eq!(
        claims_of(&token(&tokens, "access_token"))["amr"],
        json!(["pwd", "hwk"])
    );
    // Replayed: the ceremony and the mfa token were used.
    let r = app.login_mfa(&body).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A ceremony begun for another account's sign-in does not finish this one.
    let (other_email, other_tokens) = app.signed_in_user().await;
    let other_at = token(&other_tokens, "access_token");
    let mut other_auth = authenticator();
    register(&app, &mut other_auth, &other_at).await;
    app.enable_mfa(&other_at).await;
    let other_step = app.login_ok(&other_email, PASSWORD).await;
    let other_options = json_ok(
        app.passkey_sign_in_options(&json!({ "mfa_token": token(&other_step, "mfa_token") }))
            .await,
        StatusCode::OK,
    )
    .await;
    let mine = token(&app.login_ok(&email, PASSWORD).await, "mfa_token");
    // The other account's own assertion, sent with this account's token.
    let foreign = get(&mut other_auth, &app.origin(), &other_options["public_key"]);
    let r = app
        .login_mfa(&json!({
            "mfa_token": mine,
            "passkey": { "challenge_id": other_options["challenge_id"], "credential": foreign },
        }))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Turns the signed-in user `id` into a passkey-only account: no password,
/// as an import without `password_hash` leaves one (the API cannot).
async fn drop_password(app: &TestApp, id: &str) {
    let id = &portcullis::domain::UserId::from(id);
    assert!(
        app.store
            .set_password_hash(id, "", app.clock.now())
            .await
            .unwrap()
    );
    let creds = app.store.credentials(id).await.unwrap().unwrap();
    assert!(!creds.has_password() && creds.passkeys.len() == 1);
}

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one account's story, each refusal checked against the state the previous step left"
)]
async fn a_passkey_only_account_deletes_itself_with_an_assertion() {
    // Room for every refusal below before the throttle answers 429 (the
    // throttle has its own test in `profile`).
    let app = spawn_app_at(portcullis::clock::Clock::manual(1_900_000_000), |m| {
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "50".into());
    })
    .await;
    let (email, tokens) = app.signed_in_user().await;
    let id = tokens["user"]["id"].as_str().unwrap().to_string();
    let mut auth = authenticator();
    let passkey = register(&app, &mut auth, &token(&tokens, "access_token")).await;
    drop_password(&app, &id).await;

    // The account signs in with its passkey only.
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let options = sign_in_options(&app, &email).await;
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    let signed_in = json_ok(
        app.passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let at = token(&signed_in, "access_token");
    // Its last passkey cannot be removed: that would lock it out.
    let r = app
        .delete_passkey(&at, passkey["id"].as_str().unwrap())
        .await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;

    // No proof once the sign-in's is no longer recent (step-up), two
    // proofs, an unknown field: problems, nothing deleted.
    app.clock.advance(301);
    let r = app.delete_me_with(&at, &json!({})).await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "reauthentication-required").await;
    assert_eq!(p["methods"], json!(["passkey"]), "{p}");
    let fresh = sign_in_options(&app, &email).await;
    let mine = get(&mut auth, &app.origin(), &fresh["public_key"]);
    let mut two = passkey_proof(&fresh, &mine);
    two["password"] = json!(PASSWORD);
    let r = app.delete_me_with(&at, &two).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let r = app.delete_me_with(&at, &json!({ "pin": "1234" })).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A proof of a kind the account does not have: 401.
    let r = app.delete_me(&at, PASSWORD).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-credentials").await;
    let r = app.delete_me_with(&at, &json!({ "code": "123456" })).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid-code").await;

    // Another account's assertion, for a ceremony begun for that account.
    let (other_email, other_tokens) = app.signed_in_user().await;
    let other_at = token(&other_tokens, "access_token");
    let mut other_auth = authenticator();
    register(&app, &mut other_auth, &other_at).await;
    let theirs = sign_in_options(&app, &other_email).await;
    let foreign = get(&mut other_auth, &app.origin(), &theirs["public_key"]);
    let r = app
        .delete_me_with(&at, &passkey_proof(&theirs, &foreign))
        .await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(
        p["detail"].as_str().unwrap().contains("another account"),
        "{p}"
    );
    // ... and for a ceremony that names no account (discoverable): the
    // software authenticator needs the credential listed to answer, so the
    // other account's descriptor is put into those options.
    let open = json_ok(
        app.passkey_sign_in_options(&json!({})).await,
        StatusCode::OK,
    )
    .await;
    let theirs = sign_in_options(&app, &other_email).await;
    let mut pk = open["public_key"].clone();
    pk["allowCredentials"] = theirs["public_key"]["allowCredentials"].clone();
    let foreign = get(&mut other_auth, &app.origin(), &pk);
    let r = app
        .delete_me_with(&at, &passkey_proof(&open, &foreign))
        .await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(
        p["detail"].as_str().unwrap().contains("not registered"),
        "{p}"
    );
    // The caller's own assertion, but used already (it signed in), and
    // sent against a challenge it did not sign.
    let used = sign_in_options(&app, &email).await;
    let assertion = get(&mut auth, &app.origin(), &used["public_key"]);
    let body = passkey_proof(&used, &assertion);
    assert_eq!(
        app.passkey_sign_in(&body["passkey"]).await.status(),
        StatusCode::OK
    );
    let r = app.delete_me_with(&at, &body).await;
    let p = assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert!(
        p["detail"].as_str().unwrap().contains("already used"),
        "{p}"
    );
    let other_challenge = sign_in_options(&app, &email).await;
    let r = app
        .delete_me_with(&at, &passkey_proof(&other_challenge, &assertion))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    // Nothing was deleted, on either side.
    assert_eq!(app.me_status(&at).await, StatusCode::OK);
    assert_eq!(app.me_status(&other_at).await, StatusCode::OK);

    // A sign-in ceremony left pending, to try once the account is gone.
    let pending = sign_in_options(&app, &email).await;
    let later = get(&mut auth, &app.origin(), &pending["public_key"]);
    // The real proof: a fresh assertion by the caller's own passkey.
    let proof = sign_in_options(&app, &email).await;
    let real_id = proof["public_key"]["allowCredentials"][0]["id"].clone();
    let assertion = get(&mut auth, &app.origin(), &proof["public_key"]);
    let r = app
        .delete_me_with(&at, &passkey_proof(&proof, &assertion))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Gone: the token, the passkey sign-in, the credentials.
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
    let r = app
        .passkey_sign_in(&json!({ "challenge_id": pending["challenge_id"], "credential": later }))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    let after = sign_in_options(&app, &email).await;
    // (Made-up ids are listed for an address without passkeys, L4.)
    assert!(
        !after["public_key"]["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == real_id),
        "no passkey of a deleted account listed: {after}"
    );
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(
        app.store
            .credentials(&id.as_str().into())
            .await
            .unwrap()
            .is_none()
    );
    // The other account is untouched.
    assert_eq!(app.me_status(&other_at).await, StatusCode::OK);
}

#[tokio::test]
async fn an_account_with_a_password_may_delete_itself_with_a_passkey_too() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    register(&app, &mut auth, &at).await;
    let options = sign_in_options(&app, &email).await;
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    let r = app
        .delete_me_with(&at, &passkey_proof(&options, &assertion))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

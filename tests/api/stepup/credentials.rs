//! Credential safety around step-up: a reset that claims an unverified
//! account, reset mails that list passkeys, the passkey cap (also under a
//! race), passkey sign-in and verified addresses, options that do not tell
//! addresses apart, and "not me" on a verified account.

use super::*;

/// H1 repro 3: someone registers the victim's address first (it is never
/// verified), adds a passkey and turns TOTP on. The owner's password reset
/// claims the account: the squatter's passkey, second factor and sessions
/// are gone, and no second factor was asked for.
#[tokio::test]
async fn a_reset_of_an_unverified_account_claims_it() {
    let app = spawn_app().await;
    let (victim, squatter) = app.signed_in_user().await;
    let squatter_at = token(&squatter, "access_token");
    let mut evil = authenticator();
    register(&app, &mut evil, &squatter_at).await;
    app.enable_mfa(&squatter_at).await;
    assert_eq!(
        app.register(&victim, PASSWORD).await.status(),
        StatusCode::CONFLICT
    );

    // A sign-in the squatter prepares now, to try after the reset.
    let options = json_ok(
        app.passkey_sign_in_options(&json!({ "email": victim }))
            .await,
        StatusCode::OK,
    )
    .await;
    let assertion = get(&mut evil, &app.origin(), &options["public_key"]);

    // The owner resets: the mail says what the reset will do.
    assert_eq!(app.forgot(&victim).await.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_email(&victim, "Reset your password").await;
    assert!(mail.text.contains("never confirmed"), "{}", mail.text);
    let new_password = "the owner's own passphrase 77";
    // No `mfa_code`: the mail proves the address.
    let r = app.reset_with_token(&mail.token(), new_password).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // The squatter's passkey no longer signs in, nor does their session.
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "passkey-rejected").await;
    assert_eq!(app.me_status(&squatter_at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&token(&squatter, "refresh_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(&victim, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The owner signs in with the password alone: no second factor left.
    let owner = app.login_ok(&victim, new_password).await;
    assert!(owner["access_token"].is_string(), "{owner}");
    assert_eq!(owner["user"]["passkeys"], 0);
    assert_eq!(owner["user"]["mfa_enabled"], false);
    assert_eq!(owner["user"]["email_verified"], true);
    let notice = app.wait_for_email(&victim, "Your password was reset").await;
    assert!(
        notice.text.contains("never been confirmed"),
        "{}",
        notice.text
    );
}

/// A reset of a verified account still asks for the second factor, ends
/// every session, and its mails list the passkeys with their dates.
#[tokio::test]
async fn reset_mails_of_a_verified_account_list_its_passkeys() {
    let app = spawn_app().await;
    let (email, tokens) = app.signed_in_user().await;
    let verify = app.wait_for_email(&email, "Confirm your email").await;
    assert_eq!(
        app.verify_email_token(&verify.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    let at = token(&tokens, "access_token");
    let mut auth = authenticator();
    register(&app, &mut auth, &at).await;
    let today = time::OffsetDateTime::from_unix_timestamp(app.clock.now())
        .unwrap()
        .date()
        .to_string();

    assert_eq!(app.forgot(&email).await.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_email(&email, "Reset your password").await;
    for body in [&mail.text, &mail.html] {
        assert!(body.contains("Laptop"), "{body}");
        assert!(body.contains(&format!("added {today}")), "{body}");
        assert!(body.contains("last used never"), "{body}");
    }
    assert!(!mail.text.contains("never confirmed"), "{}", mail.text);
    let r = app
        .reset_with_token(&mail.token(), "a brand new passphrase 99")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
    let notice = app.wait_for_email(&email, "Your password was reset").await;
    assert!(notice.text.contains("Laptop"), "{}", notice.text);
    assert!(
        notice.text.contains(&format!("added {today}")),
        "{}",
        notice.text
    );
    // The passkey was kept (the owner decides).
    let signed_in = app.login_ok(&email, "a brand new passphrase 99").await;
    assert_eq!(signed_in["user"]["passkeys"], 1);
}

/// L11: `PORTCULLIS_MAX_PASSKEYS`; the options refuse, and so does the
/// finishing write for a ceremony begun while there was room.
#[tokio::test]
async fn passkeys_are_capped() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MAX_PASSKEYS".into(), "2".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    register(&app, &mut authenticator(), &at).await;
    // Two ceremonies begun with one passkey stored: both may start.
    let mut a = authenticator();
    let mut b = authenticator();
    let oa = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
    let ob = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
    let ca = create(&mut a, &app.origin(), &oa["public_key"]);
    let cb = create(&mut b, &app.origin(), &ob["public_key"]);
    let r = app
        .add_passkey(
            &at,
            &json!({ "challenge_id": oa["challenge_id"], "credential": ca }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .add_passkey(
            &at,
            &json!({ "challenge_id": ob["challenge_id"], "credential": cb }),
        )
        .await;
    let p = assert_problem(r, StatusCode::CONFLICT, "passkey-limit").await;
    assert!(p["detail"].as_str().unwrap().contains('2'), "{p}");
    let r = app.passkey_registration_options(&at).await;
    assert_problem(r, StatusCode::CONFLICT, "passkey-limit").await;
    let me = json_ok(app.get_authed("/v1/me", &at).await, StatusCode::OK).await;
    assert_eq!(me["passkeys"], 2);
    // The problem type describes itself.
    assert_eq!(
        app.status_of("/problems/passkey-limit").await,
        StatusCode::OK
    );
    assert_eq!(
        app.status_of("/problems/reauthentication-required").await,
        StatusCode::OK
    );
}

/// L3: passkey sign-in honours `PORTCULLIS_REQUIRE_VERIFIED_EMAIL`, like a
/// password sign-in.
#[tokio::test]
async fn passkey_sign_in_needs_a_verified_address_when_required() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REQUIRE_VERIFIED_EMAIL".into(), "true".into());
    })
    .await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::ACCEPTED
    );
    let verify = app.wait_for_email(&email, "Confirm your email").await;
    assert_eq!(
        app.verify_email_token(&verify.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    let tokens = app.login_ok(&email, PASSWORD).await;
    let mut auth = authenticator();
    register(&app, &mut auth, &token(&tokens, "access_token")).await;
    // The address becomes unverified (as a server switching the setting on
    // finds older accounts).
    let user = app.store.user_by_email(&email).await.unwrap().unwrap();
    let update = portcullis::store::ProfileUpdate {
        email_verified: Some(false),
        ..Default::default()
    };
    app.store
        .update_profile(&user.id, &update, app.clock.now())
        .await
        .unwrap();
    assert_problem(
        app.login(&email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email-unverified",
    )
    .await;
    let options = json_ok(
        app.passkey_sign_in_options(&json!({ "email": email }))
            .await,
        StatusCode::OK,
    )
    .await;
    let assertion = get(&mut auth, &app.origin(), &options["public_key"]);
    let r = app
        .passkey_sign_in(
            &json!({ "challenge_id": options["challenge_id"], "credential": assertion }),
        )
        .await;
    assert_problem(r, StatusCode::FORBIDDEN, "email-unverified").await;
}

/// The structure of a JSON value: leaves by type, arrays by their first
/// element.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// L4: options for an email look the same for an unknown address, an
/// account without passkeys and one with passkeys; the made-up ids are
/// stable per address.
#[tokio::test]
async fn passkey_options_do_not_tell_addresses_apart() {
    let app = spawn_app().await;
    let (with, tokens) = app.signed_in_user().await;
    let mut auth = authenticator();
    register(&app, &mut auth, &token(&tokens, "access_token")).await;
    let (without, _) = app.signed_in_user().await;
    let unknown = unique_email();
    let options = |email: String| {
        let app = &app;
        async move {
            json_ok(
                app.passkey_sign_in_options(&json!({ "email": email }))
                    .await,
                StatusCode::OK,
            )
            .await
        }
    };
    let real = options(with.clone()).await;
    let none = options(without.clone()).await;
    let stranger = options(unknown.clone()).await;
    for o in [&real, &none, &stranger] {
        assert_eq!(shape(o), shape(&real), "{o}");
        assert!(o.get("mediation").is_none(), "{o}");
        let allowed = o["public_key"]["allowCredentials"].as_array().unwrap();
        assert!(!allowed.is_empty(), "{o}");
        for c in allowed {
            let mut keys: Vec<&String> = c.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["id", "type"], "{c}");
        }
        assert_eq!(o["public_key"]["userVerification"], "required");
    }
    // Stable per address, different between addresses.
    let ids = |o: &Value| o["public_key"]["allowCredentials"].clone();
    assert_eq!(ids(&options(unknown.clone()).await), ids(&stranger));
    assert_eq!(ids(&options(without.clone()).await), ids(&none));
    assert_ne!(ids(&stranger), ids(&none));
    assert_ne!(
        ids(&options(unique_email()).await),
        ids(&stranger),
        "another address, other ids"
    );
    // The real options still sign in.
    let assertion = get(&mut auth, &app.origin(), &real["public_key"]);
    let r = app
        .passkey_sign_in(&json!({ "challenge_id": real["challenge_id"], "credential": assertion }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// L11 under a race: N ceremonies begun while there was room, finished at
/// once: exactly the cap's worth are stored, the rest get `passkey-limit`.
#[tokio::test]
async fn racing_passkey_adds_stop_at_the_cap() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_MAX_PASSKEYS".into(), "2".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let at = token(&tokens, "access_token");
    let mut bodies = Vec::new();
    for _ in 0..6 {
        let o = json_ok(app.passkey_registration_options(&at).await, StatusCode::OK).await;
        let c = create(&mut authenticator(), &app.origin(), &o["public_key"]);
        bodies.push(json!({ "challenge_id": o["challenge_id"], "credential": c }));
    }
    let app = std::sync::Arc::new(app);
    let racers: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (app, at) = (app.clone(), at.clone());
            tokio::spawn(async move { app.add_passkey(&at, &body).await.status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in racers {
        statuses.push(r.await.unwrap());
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (2, 4), "{statuses:?}");
    let list = json_ok(app.list_passkeys(&at).await, StatusCode::OK).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let me = json_ok(app.get_authed("/v1/me", &at).await, StatusCode::OK).await;
    assert_eq!(me["passkeys"], 2);
}

/// "Not me" on a verified account ends every session and its reset mail
/// lists the account's passkeys with their dates.
#[tokio::test]
async fn the_reset_mail_after_not_me_lists_the_passkeys() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let verify = app.wait_for_email(&email, "Confirm your email").await;
    assert_eq!(
        app.verify_email_token(&verify.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
    let r = app
        .login_from(&email, PASSWORD, "203.0.113.10", firefox)
        .await;
    let mine: Value = r.json().await.unwrap();
    let at = token(&mine, "access_token");
    register(&app, &mut authenticator(), &at).await;
    let r = app
        .login_from(&email, PASSWORD, "203.0.113.10", chrome)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let notice = app.wait_for_email(&email, "New sign-in").await;
    assert_eq!(
        app.not_me(&notice.token()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me_status(&at).await, StatusCode::UNAUTHORIZED);
    let reset = app.wait_for_email(&email, "Reset your password").await;
    let today = time::OffsetDateTime::from_unix_timestamp(app.clock.now())
        .unwrap()
        .date()
        .to_string();
    assert!(reset.text.contains("Laptop"), "{}", reset.text);
    assert!(
        reset.text.contains(&format!("added {today}")),
        "{}",
        reset.text
    );
}

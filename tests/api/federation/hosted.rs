//! The hosted `/login` page's provider buttons: authorize → `/login` →
//! a button → the provider → the callback → the hosted page that ends in
//! the browser session → consent or code → token exchange (ID token with
//! `amr: ["fed"]`, the client's session with `idp`); the federation rules
//! shown on the sign-in page; the second factor; the binding of a flow to
//! the browser that began it.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Issuers, fresh, person};
use crate::helpers::*;
use crate::oidc::{
    Browser, REDIRECT, authorize_url, consent, create_client, exchange, location, pkce, query,
};

/// The federation server with an administrator; a public third-party
/// client (consent asked) made by it.
async fn hosted_app(is: &Issuers) -> (TestApp, Value) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = portcullis::clock::Clock::manual(i64::try_from(now).unwrap());
    let app = spawn_app_prepared(
        clock,
        |m: &mut BTreeMap<String, String>| is.configure(m),
        |env| {
            let (ok, out, err) = run_cli(
                env,
                &[("PORTCULLIS_ADMIN_PASSWORD", ADMIN_PASSWORD)],
                &["admin", "create", ADMIN_EMAIL],
                "",
            );
            assert!(ok, "admin create failed: {out} {err}");
        },
    )
    .await;
    let admin = token(
        &app.login_ok(ADMIN_EMAIL, ADMIN_PASSWORD).await,
        "access_token",
    );
    let client = create_client(
        &app,
        &admin,
        &json!({
            "name": "Third Party App",
            "redirect_uris": [REDIRECT],
            "type": "public",
        }),
    )
    .await;
    (app, client)
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// The provider buttons of a sign-in page: label → URL.
fn buttons(html: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for part in html.split("<a class=\"button\" href=\"").skip(1) {
        let (href, rest) = part.split_once('"').unwrap();
        let label = rest
            .split_once("Continue with ")
            .unwrap()
            .1
            .split_once("</a>")
            .unwrap()
            .0;
        out.insert(label.to_string(), unescape(href));
    }
    out
}

/// From `/oauth/authorize` to the sign-in page: its URL and HTML.
async fn login_page(b: &mut Browser, app: &TestApp, client: &Value, challenge: &str) -> String {
    let login = location(
        &b.get(
            app,
            &authorize_url(client["id"].as_str().unwrap(), challenge, &[]),
        )
        .await,
    );
    assert!(login.starts_with("/login?ar="), "{login}");
    let page = b.get(app, &login).await;
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

/// Presses the button of `label` on `html`, goes through the provider and
/// its callback; returns the hosted page's URL the callback sent the
/// browser to.
async fn through_button(b: &mut Browser, app: &TestApp, html: &str, label: &str) -> String {
    let button = buttons(html)[label].clone();
    assert!(button.starts_with("/login/provider?provider="), "{button}");
    let r = b.get(app, &button).await;
    let to_provider = location(&r);
    assert!(
        b.jar.contains_key("__Host-portcullis-fed"),
        "the flow is bound to this browser"
    );
    // The provider logs its scripted account in and redirects back.
    let r = app.client.get(&to_provider).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.contains("/callback?"), "{callback}");
    let r = b.get(app, &callback).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let done = r.headers()["location"].to_str().unwrap().to_string();
    assert!(done.contains("/login/provider/done?"), "{done}");
    done
}

/// The whole way: a new identity by a provider button ends in the browser
/// session and the pending request (consent, then a code); the ID token
/// says `amr: ["fed"]`, the client's access token `idp`; the browser
/// session serves the next request without a sign-in.
#[tokio::test]
async fn a_provider_button_signs_in_and_continues_the_request() {
    let is = Issuers::start().await;
    let (app, client) = hosted_app(&is).await;
    let email = unique_email();
    let sub = fresh("hb");
    is.google.set_account(person(&sub, &email));
    let mut b = Browser::default();
    let (verifier, challenge) = pkce();
    let html = login_page(&mut b, &app, &client, &challenge).await;
    let all = buttons(&html);
    assert_eq!(
        all.keys().cloned().collect::<Vec<_>>(),
        ["Acme SSO", "Apple", "GitHub", "Google"],
        "one button per configured provider"
    );
    let done = through_button(&mut b, &app, &html, "Google").await;
    assert!(b.session().is_none());
    let r = b.get(&app, &done).await;
    let next = location(&r);
    assert!(b.session().is_some(), "the browser session cookie is set");
    assert!(
        !b.jar.contains_key("__Host-portcullis-fed"),
        "the binding cookie is spent"
    );
    assert!(next.starts_with("/consent?ar="), "{next}");
    let back = location(&consent(&mut b, &app, &next, "allow").await);
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert_eq!(q["state"], "st-123");
    let r = exchange(&app, &client, &q["code"], &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let id_token = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(id_token["amr"], json!(["fed"]));
    assert_eq!(id_token["email"], email);
    let access = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(access["idp"], "google", "the browser session's idp");
    // The account is the identity's: a native sign-in finds it.
    let native = app
        .native_ok(&is.google, "google", json!({"sub": sub}))
        .await;
    assert_eq!(native["user"]["id"], id_token["sub"]);

    // The next request of the same browser: no sign-in, straight to a code.
    let (_, challenge) = pkce();
    let r = b
        .get(
            &app,
            &authorize_url(client["id"].as_str().unwrap(), &challenge, &[]),
        )
        .await;
    assert!(location(&r).starts_with(REDIRECT));
}

/// The rules on the sign-in page: an account's address (rule 3) shows
/// the link-required message, an unverified address (rule 4) its own, and
/// neither signs the browser in or makes an account; a flow's code used in
/// another browser (no binding cookie) signs nobody in there.
#[tokio::test]
async fn refusals_show_on_the_sign_in_page_and_a_flow_is_bound_to_its_browser() {
    let is = Issuers::start().await;
    let (app, client) = hosted_app(&is).await;
    let (_, challenge) = pkce();

    // Rule 3: the address is a password account's.
    let (taken, _) = app.signed_in_user().await;
    is.google.set_account(person(&fresh("lr"), &taken));
    let mut b = Browser::default();
    let html = login_page(&mut b, &app, &client, &challenge).await;
    let done = through_button(&mut b, &app, &html, "Google").await;
    assert_eq!(query(&done)["error"], "link-required");
    let r = b.get(&app, &done).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("An account with this email address already exists"),
        "{page}"
    );
    assert!(
        page.contains("name=\"password\""),
        "the sign-in form is there"
    );
    assert!(b.session().is_none());

    // Rule 4: no verified address.
    let unverified = unique_email();
    is.acme
        .set_account(json!({"sub": fresh("uv"), "email": unverified, "email_verified": false}));
    let mut b = Browser::default();
    let html = login_page(&mut b, &app, &client, &challenge).await;
    let done = through_button(&mut b, &app, &html, "Acme SSO").await;
    let r = b.get(&app, &done).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("did not confirm an email address")
    );
    assert!(b.session().is_none());
    assert_eq!(
        app.login(&unverified, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Login CSRF: the way back of one browser's flow, opened in another.
    let email = unique_email();
    is.google.set_account(person(&fresh("cs"), &email));
    let mut b = Browser::default();
    let html = login_page(&mut b, &app, &client, &challenge).await;
    let done = through_button(&mut b, &app, &html, "Google").await;
    let mut other = Browser::default();
    let r = other.get(&app, &done).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("did not work"));
    assert!(other.session().is_none());
    // The code was spent by that attempt: the right browser starts again.
    let r = b.get(&app, &done).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(b.session().is_none());

    // Not a configured provider.
    let ar = query(&buttons(&html)["Google"])["ar"].clone();
    let r = b
        .get(
            &app,
            &format!("/login/provider?provider=nope&ar={}", urlencode(&ar)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!b.jar.contains_key("__Host-portcullis-fed"));
    // An expired or forged request.
    let r = b
        .get(&app, "/login/provider?provider=google&ar=forged")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Rule 7 on the hosted page: an identity whose account has TOTP goes to
/// the second-factor step; the code ends in the browser session, and the
/// client's tokens keep `fed` and `idp`.
#[tokio::test]
async fn an_account_with_totp_takes_the_second_factor_step() {
    let is = Issuers::start().await;
    let (app, client) = hosted_app(&is).await;
    let email = unique_email();
    let sub = fresh("mf");
    let body = app
        .native_ok(&is.google, "google", person(&sub, &email))
        .await;
    let (secret, _) = app.enable_mfa(&token(&body, "access_token")).await;
    is.google.set_account(person(&sub, &email));
    let mut b = Browser::default();
    let (verifier, challenge) = pkce();
    let html = login_page(&mut b, &app, &client, &challenge).await;
    let done = through_button(&mut b, &app, &html, "Google").await;
    let r = b.get(&app, &done).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("action=\"/login/mfa\"") || page.contains("action=\"&#x2f;login&#x2f;mfa\""),
        "{page}"
    );
    assert!(
        b.session().is_none(),
        "not signed in before the second factor"
    );
    let ar = crate::oidc::field(&page, "ar");
    let csrf = crate::oidc::field(&page, "csrf");
    let mfa_token = crate::oidc::field(&page, "mfa_token");
    let code = app.totp_now(&secret, 0);
    let r = b
        .post(
            &app,
            "/login/mfa",
            &[
                ("ar", &ar),
                ("csrf", &csrf),
                ("mfa_token", &mfa_token),
                ("code", &code),
            ],
        )
        .await;
    let next = location(&r);
    assert!(b.session().is_some());
    let back = location(&consent(&mut b, &app, &next, "allow").await);
    let q = query(&back);
    let r = exchange(&app, &client, &q["code"], &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let amr = claims_of(body["id_token"].as_str().unwrap())["amr"].clone();
    assert_eq!(amr[0], "fed", "{amr}");
    assert!(amr.as_array().unwrap().iter().any(|m| m == "otp"), "{amr}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["idp"],
        "google"
    );
}

/// Apple's `form_post` through a button: the provider's page posts to the
/// callback, which sends the browser to the hosted page (a top-level GET,
/// so the `SameSite=Lax` binding cookie goes along); the first-time name
/// fills the new account's display name (rule 6).
#[tokio::test]
async fn an_apple_button_with_form_post_ends_in_the_browser_session() {
    let is = Issuers::start().await;
    let (app, client) = hosted_app(&is).await;
    let email = unique_email();
    let sub = fresh("ap");
    is.apple.set_account(person(&sub, &email));
    is.apple.set_apple_user(Some(
        json!({"name": {"firstName": "Ada", "lastName": "Lovelace"}}),
    ));
    let mut b = Browser::default();
    let (verifier, challenge) = pkce();
    let html = login_page(&mut b, &app, &client, &challenge).await;
    let r = b.get(&app, &buttons(&html)["Apple"]).await;
    let to_provider = location(&r);
    let page = app.client.get(&to_provider).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "Apple answers by form_post");
    let form = page.text().await.unwrap();
    let value = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = form.find(&marker).map(|i| i + marker.len())?;
        let end = start + form[start..].find('"')?;
        Some(
            form[start..end]
                .replace("&quot;", "\"")
                .replace("&amp;", "&"),
        )
    };
    let action = {
        let start = form.find("action=\"").unwrap() + 8;
        form[start..start + form[start..].find('"').unwrap()].replace("&amp;", "&")
    };
    let mut fields = vec![
        ("state", value("state").unwrap()),
        ("code", value("code").unwrap()),
    ];
    if let Some(user) = value("user") {
        fields.push(("user", user));
    }
    // A cross-site POST: no cookies of Portcullis go with it.
    let r = app.client.post(&action).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let done = r.headers()["location"].to_str().unwrap().to_string();
    assert!(done.contains("/login/provider/done?"), "{done}");
    let next = location(&b.get(&app, &done).await);
    assert!(b.session().is_some());
    let back = location(&consent(&mut b, &app, &next, "allow").await);
    let q = query(&back);
    let r = exchange(&app, &client, &q["code"], &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let at = token(&body, "access_token");
    assert_eq!(claims_of(&at)["idp"], "apple");
    let me: Value = app.userinfo(&at).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    let id_token = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(id_token["amr"], json!(["fed"]));
    let native = app
        .native_ok(&is.apple, "apple", person(&sub, &email))
        .await;
    assert_eq!(native["user"]["display_name"], "Ada Lovelace");
}

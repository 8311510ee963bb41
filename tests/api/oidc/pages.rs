//! The hosted pages: CSRF, clickjacking, second factor, the CLI.

use portcullis::clock::Clock;
use reqwest::StatusCode;
use serde_json::Value;

use super::*;
use crate::helpers::{run_cli, spawn_app_prepared, spawn_app_with_admin};

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: the form's CSRF token, then each framing header"
)]
async fn login_form_needs_its_csrf_token_and_pages_cannot_be_framed() {
    let (app, admin_tokens) = spawn_app_with_admin().await;
    let client = third_party(&app, &token(&admin_tokens, "access_token"), false).await;
    let email = user(&app).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = location(
        &b.get(
            &app,
            &authorize_url(
                client["id"].as_str().unwrap(),
                &challenge,
                &[("login_hint", &email)],
            ),
        )
        .await,
    );
    let page = b.get(&app, &login).await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        csp.contains("form-action 'self' https://app.example"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    // Accessible form: labelled fields, the hint prefilled, a forgot link.
    assert!(html.contains("<label for=\"email\">") && html.contains("<label for=\"password\">"));
    assert!(
        html.contains(&format!("value=\"{email}\"")),
        "login_hint prefills"
    );
    assert!(
        html.contains("href=\"&#x2f;login&#x2f;forgot?ar="),
        "a forgot-password link"
    );
    assert!(!html.contains("<script>"), "no inline script");
    let ar = field(&html, "ar");
    let csrf = field(&html, "csrf");
    // Without the token, with a wrong one, or without the cookie: refused,
    // nothing signed in.
    for (form_csrf, keep_cookie) in [
        ("", true),
        ("x".repeat(43).as_str(), true),
        (csrf.as_str(), false),
    ] {
        let mut other = Browser::default();
        if keep_cookie {
            other.jar = b.jar.clone();
        }
        let r = other
            .post(
                &app,
                "/login",
                &[
                    ("ar", &ar),
                    ("csrf", form_csrf),
                    ("email", &email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(other.session().is_none());
        let body = r.text().await.unwrap();
        assert!(body.contains("role=\"alert\""));
    }
    // A wrong password: the error is announced, the address kept.
    let r = b
        .post(
            &app,
            "/login",
            &[
                ("ar", &ar),
                ("csrf", &csrf),
                ("email", &email),
                ("password", "wrong password 1234"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains("aria-invalid=\"true\""));
    // A tampered request token: refused.
    let r = b
        .post(
            &app,
            "/login",
            &[
                ("ar", &format!("{ar}x")),
                ("csrf", &csrf),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(b.session().is_none());
    // The consent form is CSRF-checked too.
    let next = location(&sign_in(&mut b, &app, &login, &email).await);
    let page = b.get(&app, &next).await;
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.unwrap();
    let r = b
        .post(
            &app,
            "/consent",
            &[
                ("ar", &field(&html, "ar")),
                ("csrf", "nope"),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_cli_registers_clients_and_the_hosted_login_asks_for_the_second_factor() {
    let clock = Clock::manual(1_900_000_000);
    let mut printed = (String::new(), String::new());
    let app = spawn_app_prepared(
        clock,
        |_| {},
        |env| {
            let (ok, out, err) = run_cli(
                env,
                &[],
                &[
                    "clients",
                    "create",
                    "CLI App",
                    "--redirect-uri",
                    REDIRECT,
                    "--confidential",
                ],
                "",
            );
            assert!(ok, "{out} {err}");
            let mut lines = out.lines();
            printed = (
                lines.next().unwrap().to_string(),
                lines.next().unwrap().to_string(),
            );
            let (ok, _, err) = run_cli(
                env,
                &[],
                &[
                    "clients",
                    "create",
                    "Bad",
                    "--redirect-uri",
                    "http://app.example/cb",
                ],
                "",
            );
            assert!(!ok && err.contains("redirect_uris"), "{err}");
        },
    )
    .await;
    let (id, secret) = printed;
    assert!(secret.starts_with("pcs_"));
    let client = serde_json::json!({"id": id, "client_secret": secret});
    let stored = app.store.client(&id).await.unwrap().unwrap();
    assert_ne!(
        stored.secret_hash.as_deref(),
        Some(secret.as_str()),
        "stored hashed"
    );
    // A user with two-factor sign-in on.
    let (email, tokens) = app.signed_in_user().await;
    let (totp, _) = app.enable_mfa(&at(&tokens)).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::default();
    let login = location(&b.get(&app, &authorize_url(&id, &challenge, &[])).await);
    let r = sign_in(&mut b, &app, &login, &email).await;
    assert_eq!(r.status(), StatusCode::OK, "the second-factor step");
    assert!(b.session().is_none(), "no session before the second factor");
    let html = r.text().await.unwrap();
    assert!(html.contains("<label for=\"code\">"));
    let form = [
        ("ar", field(&html, "ar")),
        ("csrf", field(&html, "csrf")),
        ("mfa_token", field(&html, "mfa_token")),
    ];
    let mut wrong: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wrong.push(("code", "000000"));
    let r = b.post(&app, "/login/mfa", &wrong).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let code = app.totp_now(&totp, 0);
    let mut right: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    right.push(("code", &code));
    let next = location(&b.post(&app, "/login/mfa", &right).await);
    let back = location(&consent(&mut b, &app, &next, "allow").await);
    let r = exchange(&app, &client, &query(&back)["code"], &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let c = crate::helpers::claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(c["amr"], serde_json::json!(["pwd", "otp"]));
}

#[tokio::test]
async fn a_code_expires_after_sixty_seconds() {
    let clock = Clock::manual(1_900_000_000);
    let mut printed = String::new();
    let app = spawn_app_prepared(
        clock,
        |_| {},
        |env| {
            let (ok, out, err) = run_cli(
                env,
                &[],
                &[
                    "clients",
                    "create",
                    "Public",
                    "--redirect-uri",
                    REDIRECT,
                    "--first-party",
                ],
                "",
            );
            assert!(ok, "{err}");
            printed = out.lines().next().unwrap().to_string();
        },
    )
    .await;
    let client = serde_json::json!({"id": printed});
    let (email, _) = app.signed_in_user().await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::default();
    let back = authorize_as(
        &mut b,
        &app,
        &authorize_url(&printed, &challenge, &[]),
        &email,
    )
    .await;
    app.clock.advance(61);
    let r = exchange(&app, &client, &query(&back)["code"], &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pages_are_localized_by_overridable_templates_and_themed() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(templates.path().join("fr")).unwrap();
    std::fs::write(
        templates.path().join("fr/page_login.html"),
        "{% extends layout %}{% block title %}Connexion{% endblock %}{% block heading %}Connexion{% endblock %}{% block content %}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"ar\" value=\"{{ ar }}\"><input type=\"hidden\" name=\"csrf\" value=\"{{ csrf }}\"><label for=\"email\">Adresse</label><input id=\"email\" name=\"email\"></form>{% endblock %}",
    )
    .unwrap();
    let css = templates.path().join("theme.css");
    std::fs::write(&css, "body{background:#fafaf0}").unwrap();
    let dir = templates.path().display().to_string();
    let css_path = css.display().to_string();
    let app = crate::helpers::spawn_app_with_admin_as("pages-admin@example.com", move |m| {
        m.insert("PORTCULLIS_TEMPLATES_DIR".into(), dir);
        m.insert("PORTCULLIS_PAGES_CSS".into(), css_path);
        m.insert(
            "PORTCULLIS_PAGES_LOGO_URL".into(),
            "https://cdn.example/logo.svg".into(),
        );
    })
    .await;
    let adm = at(&app.login_ok("pages-admin@example.com", PASSWORD).await);
    let client = third_party(&app, &adm, false).await;
    let id = client["id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = location(
        &b.get(
            &app,
            &authorize_url(id, &challenge, &[("ui_locales", "fr-CA en")]),
        )
        .await,
    );
    let page = b.get(&app, &login).await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<h1>Connexion</h1>") && html.contains("lang=\"fr\""),
        "{html}"
    );
    assert!(html.contains("body{background:#fafaf0}"));
    assert!(
        html.contains("src=\"https:&#x2f;&#x2f;cdn.example&#x2f;logo.svg\""),
        "{html}"
    );
    assert!(csp.contains("img-src 'self' https://cdn.example"), "{csp}");
    assert_eq!(
        csp.matches("'sha256-").count(),
        2,
        "built-in and theme styles by hash: {csp}"
    );
    // Without a French request: the built-in English page.
    let (_, challenge) = pkce();
    let mut en = Browser::default();
    let login = location(&en.get(&app, &authorize_url(id, &challenge, &[])).await);
    let html = en.get(&app, &login).await.text().await.unwrap();
    assert!(html.contains("<h1>Sign in</h1>"));
}

/// The page signs in through the JSON API's use case: its failures count
/// in the same throttle (and the other way round).
#[tokio::test]
async fn the_login_page_shares_the_sign_in_throttle() {
    let app = crate::helpers::spawn_app_with_admin_as("throttle-admin@example.com", |m| {
        m.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "2".into());
        m.insert("PORTCULLIS_CAPTCHA".into(), "off".into());
    })
    .await;
    let adm = at(&app.login_ok("throttle-admin@example.com", PASSWORD).await);
    let client = third_party(&app, &adm, false).await;
    let email = user(&app).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = location(
        &b.get(
            &app,
            &authorize_url(client["id"].as_str().unwrap(), &challenge, &[]),
        )
        .await,
    );
    let html = b.get(&app, &login).await.text().await.unwrap();
    let (ar, csrf) = (field(&html, "ar"), field(&html, "csrf"));
    for _ in 0..2 {
        let r = b
            .post(
                &app,
                "/login",
                &[
                    ("ar", &ar),
                    ("csrf", &csrf),
                    ("email", &email),
                    ("password", "wrong password 0000"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The JSON API now refuses even the right password for a while…
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // …and so does the page, which says so.
    let r = b
        .post(
            &app,
            "/login",
            &[
                ("ar", &ar),
                ("csrf", &csrf),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().await.unwrap().contains("Too many attempts"));
    assert!(b.session().is_none());
}

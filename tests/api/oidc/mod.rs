//! Portcullis as an OpenID provider, over HTTP: a browser (cookies kept by
//! hand, redirects followed one at a time) drives `/oauth/authorize` and
//! the hosted pages; the client side exchanges codes at `/oauth/token`.

mod flows;
mod negative;
mod pages;

use std::collections::BTreeMap;

use base64::Engine;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{PASSWORD, TestApp, token, unique_email};

pub const REDIRECT: &str = "https://app.example/cb";
pub const LOGOUT_REDIRECT: &str = "https://app.example/bye";

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!(
        "v{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Registers a client through the admin API; returns its view (with the
/// secret of a confidential client).
pub async fn create_client(app: &TestApp, admin: &str, body: &Value) -> Value {
    let r = app.post_authed_json("/v1/admin/clients", admin, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

pub async fn third_party(app: &TestApp, admin: &str, confidential: bool) -> Value {
    create_client(
        app,
        admin,
        &json!({
            "name": "Third Party App",
            "redirect_uris": [REDIRECT, "http://127.0.0.1/loopback"],
            "post_logout_redirect_uris": [LOGOUT_REDIRECT],
            "type": if confidential { "confidential" } else { "public" },
        }),
    )
    .await
}

/// A user with an account; returns the email.
pub async fn user(app: &TestApp) -> String {
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    email
}

/// A browser: cookies of the Portcullis origin.
#[derive(Default)]
pub struct Browser {
    pub jar: BTreeMap<String, String>,
    pub set_cookies: Vec<String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap().to_string();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_string(), val.to_string());
            }
            self.set_cookies.push(v);
        }
    }

    pub async fn get(&mut self, app: &TestApp, path_or_url: &str) -> Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            app.url(path_or_url)
        };
        let r = app
            .client
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    pub async fn post(&mut self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> Response {
        let r = app
            .client
            .post(app.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    /// The browser session cookie's value, if any.
    pub fn session(&self) -> Option<&String> {
        self.jar.get("__Host-portcullis")
    }
}

pub fn location(r: &Response) -> String {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "expected a redirect");
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The value of a hidden (or other) input named `name` in a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// Query parameters of a URL.
pub fn query(url: &str) -> BTreeMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

/// The authorization request's query.
pub fn authorize_url(client_id: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(p, _)| p != k);
        params.push((k, v));
    }
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    format!("/oauth/authorize?{q}")
}

/// Signs in on the hosted page that `login_url` (a `/login?ar=…` path)
/// shows; returns the answer to the form.
pub async fn sign_in(b: &mut Browser, app: &TestApp, login_url: &str, email: &str) -> Response {
    let page = b.get(app, login_url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let ar = field(&html, "ar");
    let csrf = field(&html, "csrf");
    b.post(
        app,
        "/login",
        &[
            ("ar", &ar),
            ("csrf", &csrf),
            ("email", email),
            ("password", PASSWORD),
        ],
    )
    .await
}

/// Answers the consent page at `consent_url` with `decision`.
pub async fn consent(
    b: &mut Browser,
    app: &TestApp,
    consent_url: &str,
    decision: &str,
) -> Response {
    let page = b.get(app, consent_url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let ar = field(&html, "ar");
    let csrf = field(&html, "csrf");
    b.post(
        app,
        "/consent",
        &[("ar", &ar), ("csrf", &csrf), ("decision", decision)],
    )
    .await
}

/// The whole browser side for a fresh browser: authorize, sign in,
/// consent (allow) when asked; returns the final redirect to the client.
pub async fn authorize_as(b: &mut Browser, app: &TestApp, url: &str, email: &str) -> String {
    let mut next = location(&b.get(app, url).await);
    loop {
        if next.starts_with("/login") {
            next = location(&sign_in(b, app, &next, email).await);
        } else if next.starts_with("/consent") {
            next = location(&consent(b, app, &next, "allow").await);
        } else {
            return next;
        }
    }
}

/// `POST /oauth/token` with a code.
pub async fn exchange(
    app: &TestApp,
    client: &Value,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Response {
    let id = client["id"].as_str().unwrap();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("redirect_uri", redirect_uri),
        ("client_id", id),
    ];
    if let Some(secret) = client["client_secret"].as_str() {
        form.push(("client_secret", secret));
    }
    app.client
        .post(app.url("/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A full flow for `client`; returns the token response body.
pub async fn tokens_for(
    app: &TestApp,
    b: &mut Browser,
    client: &Value,
    email: &str,
    extra: &[(&str, &str)],
) -> Value {
    let (verifier, challenge) = pkce();
    let url = authorize_url(client["id"].as_str().unwrap(), &challenge, extra);
    let back = authorize_as(b, app, &url, email).await;
    assert!(back.starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert_eq!(q["state"], "st-123");
    let r = exchange(app, client, &q["code"], &verifier, REDIRECT).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

pub fn at(body: &Value) -> String {
    token(body, "access_token")
}

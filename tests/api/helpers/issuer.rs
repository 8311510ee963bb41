//! A small OpenID provider on loopback for the federation tests: a real
//! one, in the sense that matters to a relying party. It publishes a
//! discovery document and a JWKS of real P-256 keys (generated per
//! issuer), signs real ES256 ID tokens, runs an authorization endpoint
//! that "logs in" a scripted account at once (query or Apple's
//! `form_post`, with Apple's first-time `user` field), and a token
//! endpoint that checks the client, the redirect URI and PKCE S256. It
//! also stands in for GitHub's three endpoints (OAuth token, `/user`,
//! `/user/emails`). Nothing of Portcullis is used to build it.
//!
//! The redirect flow against panva's `oidc-provider` (a certified OP) runs
//! in `interop/federation.mjs`; these tests cover every rule on both
//! backends without Node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form, Json, Query};
use poem::{EndpointExt, IntoResponse, Response, Route, get, handler, post};
use serde_json::{Value, json};
use sha2::Digest;

pub const WEB_CLIENT: &str = "web-client";
pub const IOS_CLIENT: &str = "ios-client";
pub const CLIENT_SECRET: &str = "test-client-secret";

/// One signing key: its id, private key and public JWK.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    pkcs8: Vec<u8>,
}

fn new_key(kid: &str) -> SigningKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let public = pair.public_key().as_ref().to_vec();
    assert_eq!(public.len(), 65, "uncompressed P-256 point");
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "use": "sig",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
    });
    SigningKey {
        kid: kid.to_string(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
        pkcs8: pkcs8.as_ref().to_vec(),
    }
}

/// A granted authorization waiting for its token request.
struct Grant {
    claims: Value,
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
}

#[derive(Default)]
struct State {
    url: String,
    keys: Vec<SigningKey>,
    /// Keys published in the JWKS (by index into `keys`).
    published: Vec<usize>,
    /// The key that signs.
    active: usize,
    /// The claims of the account the next authorization logs in.
    account: Value,
    /// Apple's first-time `user` field for the next `form_post` answer.
    apple_user: Option<String>,
    /// Answer authorizations with `response_mode=form_post` as a form.
    grants: HashMap<String, Grant>,
    jwks_fetches: usize,
    discovery_fetches: usize,
    /// The client secrets the token endpoint saw (Apple's minted JWT).
    secrets_seen: Vec<String>,
    /// GitHub stand-in: the user and emails `/user`, `/user/emails` return.
    github_user: Value,
    github_emails: Value,
    /// Answer every request with 503 (an upstream that is down).
    down: bool,
}

/// The running issuer; stops with the test's runtime.
#[derive(Clone)]
pub struct TestIssuer {
    state: Arc<Mutex<State>>,
    pub url: String,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl TestIssuer {
    /// Starts an issuer on a random loopback port.
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().cloned().unwrap();
        let url = format!("http://127.0.0.1:{}", addr.port());
        let state = Arc::new(Mutex::new(State {
            url: url.clone(),
            keys: vec![new_key("key-1")],
            published: vec![0],
            account: json!({"sub": "default", "email": "default@example.com", "email_verified": true}),
            ..State::default()
        }));
        let app = Route::new()
            .at("/.well-known/openid-configuration", get(discovery))
            .at("/jwks", get(jwks))
            .at("/authorize", get(authorize))
            .at("/token", post(token_endpoint))
            .at("/login/oauth/access_token", post(token_endpoint))
            .at("/user", get(github_user))
            .at("/user/emails", get(github_emails))
            .data(state.clone());
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self { state, url }
    }

    /// The account the next authorization logs in (its ID-token claims
    /// beyond `iss`, `aud`, `exp`, `iat`, `nonce`).
    pub fn set_account(&self, claims: Value) {
        self.state.lock().unwrap().account = claims;
    }

    /// Apple's first-time `user` field for the next `form_post` answer.
    pub fn set_apple_user(&self, user: Option<Value>) {
        self.state.lock().unwrap().apple_user = user.map(|u| u.to_string());
    }

    /// The GitHub stand-in's `/user` and `/user/emails`.
    pub fn set_github(&self, user: Value, emails: Value) {
        let mut s = self.state.lock().unwrap();
        s.github_user = user;
        s.github_emails = emails;
    }

    /// Makes every endpoint answer 503.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// How many times the JWKS and the discovery document were fetched.
    pub fn fetches(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.discovery_fetches, s.jwks_fetches)
    }

    /// Client secrets the token endpoint received.
    pub fn secrets_seen(&self) -> Vec<String> {
        self.state.lock().unwrap().secrets_seen.clone()
    }

    /// Rotates: a new key signs from now on and is published beside the old.
    pub fn rotate(&self) {
        let mut s = self.state.lock().unwrap();
        let n = s.keys.len() + 1;
        s.keys.push(new_key(&format!("key-{n}")));
        s.active = n - 1;
        let idx = n - 1;
        s.published.push(idx);
    }

    /// A PEM of a fresh P-256 key as Apple's `.p8` (PKCS#8), and its JWK.
    pub fn apple_p8() -> (String, Value) {
        let k = new_key("apple-key");
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", k.pkcs8.clone()));
        (pem, k.jwk)
    }

    /// An ID token signed by the active key: `claims` over the defaults
    /// (`iss` this issuer, `aud` the web client, `iat` now, `exp` in 10 min).
    pub fn id_token(&self, claims: Value) -> String {
        let s = self.state.lock().unwrap();
        sign(&s, &s.url.clone(), claims)
    }

    /// An ID token signed by a key this issuer never published.
    pub fn foreign_token(&self, claims: Value) -> String {
        let s = self.state.lock().unwrap();
        let key = new_key("key-1");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        let body = merged(&s.url, claims);
        jsonwebtoken::encode(&header, &body, &key.encoding).unwrap()
    }
}

fn merged(url: &str, claims: Value) -> Value {
    let now = unix_now();
    let mut body = json!({
        "iss": url,
        "aud": WEB_CLIENT,
        "iat": now,
        "exp": now + 600,
    });
    for (k, v) in claims.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(&k);
        } else {
            body[k] = v;
        }
    }
    body
}

fn sign(s: &State, url: &str, claims: Value) -> String {
    let key = &s.keys[s.active];
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &merged(url, claims), &key.encoding).unwrap()
}

fn unavailable() -> Response {
    Response::builder()
        .status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
        .body("down")
}

#[handler]
fn discovery(state: Data<&Arc<Mutex<State>>>) -> Response {
    let mut s = state.lock().unwrap();
    if s.down {
        return unavailable();
    }
    s.discovery_fetches += 1;
    let url = s.url.clone();
    Json(json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

#[handler]
fn jwks(state: Data<&Arc<Mutex<State>>>) -> Response {
    let mut s = state.lock().unwrap();
    if s.down {
        return unavailable();
    }
    s.jwks_fetches += 1;
    let keys: Vec<Value> = s.published.iter().map(|i| s.keys[*i].jwk.clone()).collect();
    Json(json!({ "keys": keys })).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[handler]
fn authorize(state: Data<&Arc<Mutex<State>>>, q: Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    let q = q.0;
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let code = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    let grant = Grant {
        claims: s.account.clone(),
        client_id: q.get("client_id").cloned().unwrap_or_default(),
        redirect_uri: redirect_uri.clone(),
        code_challenge: q.get("code_challenge").cloned(),
        nonce: q.get("nonce").cloned(),
    };
    s.grants.insert(code.clone(), grant);
    let state_param = q.get("state").cloned().unwrap_or_default();
    if q.get("response_mode").map(String::as_str) == Some("form_post") {
        let mut fields = vec![("code", code), ("state", state_param)];
        if let Some(user) = s.apple_user.take() {
            fields.push(("user", user));
        }
        let inputs: String = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    html_escape(v)
                )
            })
            .collect();
        let page = format!(
            "<!doctype html><html><body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">{inputs}<noscript><button>Continue</button></noscript></form></body></html>",
            html_escape(&redirect_uri)
        );
        return Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(page);
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &state_param)
        .finish();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    Response::builder()
        .status(poem::http::StatusCode::FOUND)
        .header("Location", format!("{redirect_uri}{sep}{query}"))
        .finish()
}

fn oauth_error(code: &str) -> Response {
    Response::builder()
        .status(poem::http::StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .body(json!({ "error": code }).to_string())
}

#[handler]
fn token_endpoint(
    state: Data<&Arc<Mutex<State>>>,
    form: Form<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap();
    if s.down {
        return unavailable();
    }
    let f = form.0;
    let Some(grant) = f.get("code").and_then(|c| s.grants.remove(c)) else {
        return oauth_error("invalid_grant");
    };
    if f.get("client_id") != Some(&grant.client_id)
        || f.get("redirect_uri") != Some(&grant.redirect_uri)
    {
        return oauth_error("invalid_grant");
    }
    let secret = f.get("client_secret").cloned().unwrap_or_default();
    s.secrets_seen.push(secret.clone());
    if secret.is_empty() {
        return oauth_error("invalid_client");
    }
    if let Some(challenge) = &grant.code_challenge {
        let verifier = f.get("code_verifier").cloned().unwrap_or_default();
        let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        if &computed != challenge {
            return oauth_error("invalid_grant");
        }
    }
    let mut claims = grant.claims.clone();
    claims["aud"] = json!(grant.client_id);
    if let Some(n) = grant.nonce {
        claims["nonce"] = json!(n);
    }
    let url = s.url.clone();
    let id_token = sign(&s, &url, claims);
    Json(json!({
        "access_token": format!("at-{}", uuid::Uuid::new_v4().simple()),
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }))
    .into_response()
}

fn bearer_ok(req: &poem::Request) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer at-"))
}

#[handler]
fn github_user(req: &poem::Request, state: Data<&Arc<Mutex<State>>>) -> Response {
    if !bearer_ok(req) {
        return Response::builder()
            .status(poem::http::StatusCode::UNAUTHORIZED)
            .finish();
    }
    Json(state.lock().unwrap().github_user.clone()).into_response()
}

#[handler]
fn github_emails(req: &poem::Request, state: Data<&Arc<Mutex<State>>>) -> Response {
    if !bearer_ok(req) {
        return Response::builder()
            .status(poem::http::StatusCode::UNAUTHORIZED)
            .finish();
    }
    Json(state.lock().unwrap().github_emails.clone()).into_response()
}

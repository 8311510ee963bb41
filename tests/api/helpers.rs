//! `spawn_app()` and request helpers.

use std::collections::BTreeMap;

use portcullis::clock::Clock;
use portcullis::{Application, Settings};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple 42";

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    /// The clock the server reads (system time unless the test chose one).
    pub clock: Clock,
    _data_dir: TempDir,
    pub keys_dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Which store the suite runs on, from the environment.
pub fn backend_settings(map: &mut BTreeMap<String, String>) {
    if std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo") {
        let uri = std::env::var("PORTCULLIS_TEST_MONGODB_URI")
            .expect("PORTCULLIS_TEST_BACKEND=mongo needs PORTCULLIS_TEST_MONGODB_URI");
        map.insert("PORTCULLIS_MONGODB_URI".into(), uri);
        map.insert(
            "PORTCULLIS_MONGODB_DB".into(),
            format!("portcullis_test_{}", uuid::Uuid::new_v4().simple()),
        );
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server with test settings, adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut BTreeMap<String, String>)) -> TestApp {
    spawn_app_at(Clock::system(), configure).await
}

/// Starts a server whose expiry rules read `clock` (e.g. `Clock::manual`).
pub async fn spawn_app_at(
    clock: Clock,
    configure: impl FnOnce(&mut BTreeMap<String, String>),
) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        portcullis::telemetry::init(portcullis::config::LogFormat::Pretty);
    }
    let data_dir = tempfile::tempdir().unwrap();
    let keys_dir = tempfile::tempdir().unwrap();
    let mut map = BTreeMap::new();
    map.insert("PORTCULLIS_LISTEN".into(), "127.0.0.1:0".into());
    map.insert(
        "PORTCULLIS_DATA_DIR".into(),
        data_dir.path().display().to_string(),
    );
    map.insert(
        "PORTCULLIS_KEYS_DIR".into(),
        keys_dir.path().display().to_string(),
    );
    map.insert("PORTCULLIS_BCRYPT_COST".into(), "4".into());
    map.insert("PORTCULLIS_RATE_LIMIT".into(), "off".into());
    map.insert("PORTCULLIS_LOG_FORMAT".into(), "json".into());
    // Cheap CAPTCHAs for tests (the default costs a browser about a second).
    map.insert("PORTCULLIS_CAPTCHA_DIFFICULTY".into(), "5000".into());
    backend_settings(&mut map);
    configure(&mut map);
    let settings = Settings::from_map(&map).unwrap();
    // A test that sets a key the service does not know has a typo in it.
    settings.refuse_unknown_keys().unwrap();
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .unwrap();
    let addr = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
        _data_dir: data_dir,
        keys_dir,
        stop: Some(tx),
        server: Some(server),
    }
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub fn keys_path(&self) -> &std::path::Path {
        self.keys_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json("/v1/users", &json!({"email": email, "password": password}))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/v1/sessions",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers a fresh user and signs in; returns (email, tokens body).
    pub async fn signed_in_user(&self) -> (String, Value) {
        let email = unique_email();
        assert_eq!(
            self.register(&email, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        let tokens = self.login_ok(&email, PASSWORD).await;
        (email, tokens)
    }

    pub async fn login_ok(&self, email: &str, password: &str) -> Value {
        let r = self.login(email, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/v1/sessions/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_authed(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Body of an unauthenticated GET, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Status of an unauthenticated GET.
    pub async fn status_of(&self, path: &str) -> StatusCode {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn me_status(&self, token: &str) -> StatusCode {
        self.get_authed("/v1/me", token).await.status()
    }

    /// POST with a bearer token and a JSON body.
    pub async fn post_authed_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// PATCH with a bearer token and a JSON body.
    pub async fn patch_authed(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH /v1/me`.
    pub async fn update_me(&self, token: &str, body: &Value) -> Response {
        self.patch_authed("/v1/me", token, body).await
    }

    /// `POST /v1/me/password`.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        self.post_authed_json(
            "/v1/me/password",
            token,
            &json!({"current_password": current, "new_password": new}),
        )
        .await
    }

    /// `DELETE /v1/sessions?scope=...`.
    pub async fn logout(&self, token: &str, scope: &str) -> Response {
        self.delete_authed(&format!("/v1/sessions?scope={scope}"), token)
            .await
    }

    /// `GET /v1/sessions`.
    pub async fn sessions(&self, token: &str) -> Response {
        self.get_authed("/v1/sessions", token).await
    }

    /// `DELETE /v1/sessions/{sid}`.
    pub async fn revoke_session(&self, token: &str, sid: &str) -> Response {
        self.delete_authed(&format!("/v1/sessions/{sid}"), token)
            .await
    }

    /// `GET /v1/captcha`.
    pub async fn captcha(&self) -> Value {
        self.get_json("/v1/captcha").await
    }

    // -- hardening (issue 9) --

    /// `POST /v1/sessions` as relayed by a proxy that wrote `X-Forwarded-For`.
    pub async fn login_via_proxy(&self, email: &str, password: &str, xff: &str) -> Response {
        self.client
            .post(self.url("/v1/sessions"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// `GET /metrics`, with a bearer token and an `X-Forwarded-For` if given.
    pub async fn metrics(&self, token: Option<&str>, xff: Option<&str>) -> Response {
        let mut r = self.client.get(self.url("/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        r.send().await.unwrap()
    }

    /// A request with an `Origin` header.
    pub async fn with_origin(&self, method: reqwest::Method, path: &str, origin: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .header("origin", origin)
            .send()
            .await
            .unwrap()
    }

    /// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`).
    pub async fn preflight(&self, path: &str, origin: &str, method: &str) -> Response {
        self.client
            .request(reqwest::Method::OPTIONS, self.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap()
    }

    /// A form POST (`application/x-www-form-urlencoded`), with an optional bearer.
    pub async fn post_form(
        &self,
        path: &str,
        bearer: Option<&str>,
        form: &[(&str, &str)],
    ) -> Response {
        let mut r = self.client.post(self.url(path)).form(form);
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    /// `POST /oauth/token` with the refresh grant.
    pub async fn oauth_refresh(&self, refresh_token: &str) -> Response {
        self.post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// `POST /oauth/revoke`.
    pub async fn oauth_revoke(&self, token: &str) -> Response {
        self.post_form("/oauth/revoke", None, &[("token", token)])
            .await
    }

    /// `POST /oauth/introspect` as a resource server holding `credential`.
    pub async fn oauth_introspect(&self, credential: Option<&str>, token: &str) -> Response {
        self.post_form("/oauth/introspect", credential, &[("token", token)])
            .await
    }

    /// `GET /oauth/userinfo`.
    pub async fn userinfo(&self, token: &str) -> Response {
        self.get_authed("/oauth/userinfo", token).await
    }
}

pub fn token(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap().to_string()
}

/// The claims of a JWT (payload decoded, signature not checked).
pub fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts a problem+json response of the given status and slug; returns the body.
pub async fn assert_problem(r: Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(r.status(), status, "status");
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json",
        "content type"
    );
    if status == StatusCode::UNAUTHORIZED {
        let h = r
            .headers()
            .get("www-authenticate")
            .expect("401 without WWW-Authenticate");
        assert!(h.to_str().unwrap().starts_with("Bearer"));
    }
    let body: Value = r.json().await.unwrap();
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/problems/{slug}")),
        "type {} is not {slug}",
        body["type"]
    );
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    body
}

/// Solves an ALTCHA v1 challenge (the JSON of `GET /v1/captcha`) the way a
/// browser widget does: find `number` with `sha256(salt + number) ==
/// challenge`, then base64 the solution JSON.
pub fn solve_captcha(c: &Value) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let salt = c["salt"].as_str().unwrap();
    let challenge = c["challenge"].as_str().unwrap();
    let max = c["maxnumber"].as_u64().unwrap();
    let number = (0..=max)
        .find(|n| {
            let digest = Sha256::digest(format!("{salt}{n}").as_bytes());
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                == challenge
        })
        .expect("challenge has a solution");
    let solution = json!({
        "algorithm": c["algorithm"], "challenge": challenge, "number": number,
        "salt": salt, "signature": c["signature"],
    });
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&solution).unwrap())
}

//! `spawn_app()` and request helpers.

use std::collections::BTreeMap;

use portcullis::{Application, Settings};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple 42";

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub _data_dir: TempDir,
    pub _keys_dir: TempDir,
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
    backend_settings(&mut map);
    configure(&mut map);
    let settings = Settings::from_map(&map).unwrap();
    let app = Application::build(settings).await.unwrap();
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
        _data_dir: data_dir,
        _keys_dir: keys_dir,
        stop: Some(tx),
        server: Some(server),
    }
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub fn keys_path(&self) -> &std::path::Path {
        self._keys_dir.path()
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
}

pub fn token(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap().to_string()
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

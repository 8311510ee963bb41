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
    /// The data directory the server was given (the outbox is under it).
    pub data_path: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// New-sign-in and "not me" notices (the mail seam, captured in process).
    pub notices: portcullis::service::NoticeOutbox,
    /// The server's store, for states the API cannot make.
    pub store: portcullis::store::DynStore,
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
    spawn_app_prepared(clock, configure, |_| {}).await
}

/// Like [`spawn_app_at`]; `prepare` runs before the server starts, with the
/// server's settings as `PORTCULLIS_*` variables (to run the CLI on the
/// same store: the embedded store admits one process at a time).
pub async fn spawn_app_prepared(
    clock: Clock,
    configure: impl FnOnce(&mut BTreeMap<String, String>),
    prepare: impl FnOnce(&BTreeMap<String, String>),
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
    let data_path = std::path::PathBuf::from(&map["PORTCULLIS_DATA_DIR"]);
    let settings = Settings::from_map(&map).unwrap();
    // A test that sets a key the service does not know has a typo in it.
    settings.refuse_unknown_keys().unwrap();
    prepare(&map);
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .unwrap();
    let notices = app.capture_notices();
    let store = app.store();
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
        data_path,
        stop: Some(tx),
        server: Some(server),
        notices,
        store,
    }
}

/// Starts a server (settings adjusted by `configure`) whose store already
/// holds an admin account `admin_email` with password [`PASSWORD`], made by
/// `portcullis admin create` before the server opens the store.
pub async fn spawn_app_with_admin_as(
    admin_email: &str,
    configure: impl FnOnce(&mut BTreeMap<String, String>),
) -> TestApp {
    let email = admin_email.to_string();
    spawn_app_prepared(Clock::system(), configure, move |env| {
        let (ok, out, err) = run_cli(
            env,
            &[("PORTCULLIS_ADMIN_PASSWORD", PASSWORD)],
            &["admin", "create", &email],
            "",
        );
        assert!(ok, "admin create failed: {out} {err}");
    })
    .await
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

    /// DELETE with a bearer token and a JSON body.
    pub async fn delete_authed_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `DELETE /v1/me` with any body (a proof).
    pub async fn delete_me_with(&self, token: &str, body: &Value) -> Response {
        self.delete_authed_json("/v1/me", token, body).await
    }

    /// `DELETE /v1/me` with the password.
    pub async fn delete_me(&self, token: &str, password: &str) -> Response {
        self.delete_authed_json("/v1/me", token, &json!({"password": password}))
            .await
    }

    /// `PUT /v1/me/avatar` with a raw body of `content_type`.
    pub async fn put_avatar(&self, token: &str, content_type: &str, bytes: Vec<u8>) -> Response {
        self.client
            .put(self.url("/v1/me/avatar"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// `PUT /v1/me/avatar` as `multipart/form-data` with the field `file`.
    pub async fn put_avatar_multipart(
        &self,
        token: &str,
        part_type: &str,
        bytes: Vec<u8>,
    ) -> Response {
        let boundary = "portcullis-test-boundary-7MA4YWxk";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: {part_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend(bytes);
        body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
        self.client
            .put(self.url("/v1/me/avatar"))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /v1/sessions` from `ip` (sent as `X-Forwarded-For`; the app
    /// must trust 127.0.0.1 as a proxy) with `user_agent`.
    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        ip: &str,
        user_agent: &str,
    ) -> Response {
        self.client
            .post(self.url("/v1/sessions"))
            .header("x-forwarded-for", ip)
            .header("user-agent", user_agent)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// `GET` of an avatar URL, with `If-None-Match` when given.
    pub async fn get_avatar(&self, url: &str, if_none_match: Option<&str>) -> Response {
        let mut req = self.client.get(url);
        if let Some(tag) = if_none_match {
            req = req.header("if-none-match", tag);
        }
        req.send().await.unwrap()
    }

    /// `GET /v1/admin/users?...` (query string as given).
    pub async fn admin_list(&self, token: &str, query: &str) -> Response {
        self.get_authed(&format!("/v1/admin/users{query}"), token)
            .await
    }

    /// `PATCH /v1/admin/users/{id}`.
    pub async fn admin_patch(&self, token: &str, id: &str, body: &Value) -> Response {
        self.patch_authed(&format!("/v1/admin/users/{id}"), token, body)
            .await
    }

    /// `GET /v1/me/activity` with a query string (`""`, `"?limit=2"`, ...).
    pub async fn activity(&self, token: &str, query: &str) -> Response {
        self.get_authed(&format!("/v1/me/activity{query}"), token)
            .await
    }

    /// Every event of `GET /v1/me/activity`, newest first (follows cursors).
    pub async fn all_activity(&self, token: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut query = "?limit=100".to_string();
        loop {
            let r = self.activity(token, &query).await;
            assert_eq!(r.status(), StatusCode::OK);
            let page: Value = r.json().await.unwrap();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("?limit=100&cursor={c}"),
                None => return events,
            }
        }
    }

    /// `GET /v1/admin/audit` with a query string.
    pub async fn admin_audit(&self, token: &str, query: &str) -> Response {
        self.get_authed(&format!("/v1/admin/audit{query}"), token)
            .await
    }

    /// `POST /v1/security/not-me`.
    pub async fn not_me(&self, token: &str) -> Response {
        self.post_json("/v1/security/not-me", &json!({"token": token}))
            .await
    }

    /// `POST /v1/me/email`.
    pub async fn change_email(&self, token: &str, new_email: &str, password: &str) -> Response {
        self.post_authed_json(
            "/v1/me/email",
            token,
            &json!({"new_email": new_email, "password": password}),
        )
        .await
    }

    /// `GET /v1/captcha`.
    pub async fn captcha(&self) -> Value {
        self.get_json("/v1/captcha").await
    }

    // --- Two-factor sign-in (issue 11) ---

    /// `POST /v1/me/mfa/totp`.
    pub async fn totp_begin(&self, token: &str) -> Response {
        self.client
            .post(self.url("/v1/me/mfa/totp"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
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

    // Passkeys (issue 12).

    /// The browser origin of the default public URL (`http://localhost:<port>`):
    /// WebAuthn needs a domain, not an IP address.
    pub fn origin(&self) -> String {
        self.addr.replace("127.0.0.1", "localhost")
    }

    /// `POST /v1/me/passkeys/options`.
    pub async fn passkey_registration_options(&self, token: &str) -> Response {
        self.client
            .post(self.url("/v1/me/passkeys/options"))
            .bearer_auth(token)
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

    /// `POST /v1/me/mfa/totp/activate`.
    pub async fn totp_activate(&self, token: &str, code: &str) -> Response {
        self.post_authed_json("/v1/me/mfa/totp/activate", token, &json!({"code": code}))
            .await
    }

    /// `DELETE /v1/me/mfa/totp` with `{code}` or `{password}`.
    pub async fn totp_disable(&self, token: &str, body: &Value) -> Response {
        self.delete_authed_json("/v1/me/mfa/totp", token, body)
            .await
    }

    /// `POST /v1/me/mfa/recovery-codes` with `{code}` or `{password}`.
    pub async fn regenerate_recovery_codes(&self, token: &str, body: &Value) -> Response {
        self.post_authed_json("/v1/me/mfa/recovery-codes", token, body)
            .await
    }

    /// `POST /v1/sessions/mfa`.
    pub async fn login_mfa(&self, body: &Value) -> Response {
        self.post_json("/v1/sessions/mfa", body).await
    }

    /// The TOTP code of `secret` (base32) at the server's time, shifted by
    /// `steps` steps of 30 s.
    pub fn totp_now(&self, secret: &str, steps: i64) -> String {
        totp_code(secret, self.clock.now() + steps * 30)
    }

    /// Turns two-factor sign-in on for the holder of `token` (codes from the
    /// returned secret, at the server's time); returns the secret and the
    /// recovery codes. Moves the clock one step on, so that the code used
    /// here is not the current one any more.
    pub async fn enable_mfa(&self, token: &str) -> (String, Vec<String>) {
        let r = self.totp_begin(token).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let secret = body["secret"].as_str().unwrap().to_string();
        let r = self.totp_activate(token, &self.totp_now(&secret, 0)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let codes = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        self.clock.advance(30);
        (secret, codes)
    }

    /// `POST /v1/sessions` for an account with two-factor sign-in on;
    /// returns the `mfa_token`.
    pub async fn login_mfa_token(&self, email: &str) -> String {
        let body = self.login_ok(email, PASSWORD).await;
        assert_eq!(body["mfa_required"], true, "{body}");
        token(&body, "mfa_token")
    }

    /// `POST /v1/me/passkeys`.
    pub async fn add_passkey(&self, token: &str, body: &Value) -> Response {
        self.post_authed_json("/v1/me/passkeys", token, body).await
    }

    /// `GET /v1/me/passkeys`.
    pub async fn list_passkeys(&self, token: &str) -> Response {
        self.get_authed("/v1/me/passkeys", token).await
    }

    /// `DELETE /v1/me/passkeys/{id}`.
    pub async fn delete_passkey(&self, token: &str, id: &str) -> Response {
        self.delete_authed(&format!("/v1/me/passkeys/{id}"), token)
            .await
    }

    /// `POST /v1/sessions/passkey/options`.
    pub async fn passkey_sign_in_options(&self, body: &Value) -> Response {
        self.post_json("/v1/sessions/passkey/options", body).await
    }

    /// `POST /v1/sessions/passkey`.
    pub async fn passkey_sign_in(&self, body: &Value) -> Response {
        self.post_json("/v1/sessions/passkey", body).await
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

/// The RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at `time`,
/// computed with totp-rs directly (not through the service's wrapper).
pub fn totp_code(secret: &str, time: i64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret).unwrap();
    totp_rs::Builder::new()
        .with_secret(bytes.as_bytes().to_vec())
        .build()
        .unwrap()
        .generate(u64::try_from(time).unwrap())
        .to_string()
}

/// Runs the `portcullis` binary with `args`, the server's settings `env`
/// (see [`spawn_app_prepared`]) plus `extra`, and `stdin`; returns
/// (success, stdout, stderr).
pub fn run_cli(
    env: &BTreeMap<String, String>,
    extra: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .envs(extra.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub const ADMIN_EMAIL: &str = "root-admin@example.com";
pub const ADMIN_PASSWORD: &str = "an administrator's long passphrase 9";

/// A server whose store holds an administrator made by `portcullis admin
/// create` (the only way one appears); returns it and the admin's tokens.
pub async fn spawn_app_with_admin() -> (TestApp, Value) {
    let app = spawn_app_prepared(
        Clock::system(),
        |_| {},
        |env| {
            let (ok, out, err) = run_cli(
                env,
                &[("PORTCULLIS_ADMIN_PASSWORD", ADMIN_PASSWORD)],
                &["admin", "create", ADMIN_EMAIL],
                "",
            );
            assert!(ok, "admin create failed: {out} {err}");
            assert!(out.contains("created administrator"), "{out}");
            assert!(!out.contains(ADMIN_PASSWORD) && !err.contains(ADMIN_PASSWORD));
        },
    )
    .await;
    let tokens = app.login_ok(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (app, tokens)
}

/// Event types of a list of events, oldest first.
pub fn kinds_oldest_first(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
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

// --- Email flows (issue 10) --------------------------------------------------

impl TestApp {
    /// `POST /v1/password/forgot`.
    pub async fn forgot(&self, email: &str) -> Response {
        self.post_json("/v1/password/forgot", &json!({"email": email}))
            .await
    }

    /// `POST /v1/password/reset` with the link's token.
    pub async fn reset_with_token(&self, token: &str, new_password: &str) -> Response {
        self.post_json(
            "/v1/password/reset",
            &json!({"token": token, "new_password": new_password}),
        )
        .await
    }

    /// `POST /v1/password/reset` with the address and the mail's code.
    pub async fn reset_with_code(&self, email: &str, code: &str, new_password: &str) -> Response {
        self.post_json(
            "/v1/password/reset",
            &json!({"email": email, "email_code": code, "new_password": new_password}),
        )
        .await
    }

    /// `POST /v1/email/verify` with the link's token.
    pub async fn verify_email_token(&self, token: &str) -> Response {
        self.post_json("/v1/email/verify", &json!({"token": token}))
            .await
    }

    /// `POST /v1/email/verify` with the address and the code.
    pub async fn verify_email_code(&self, email: &str, code: &str) -> Response {
        self.post_json(
            "/v1/email/verify",
            &json!({"email": email, "email_code": code}),
        )
        .await
    }

    /// `POST /v1/email/verify/resend`.
    pub async fn resend_verification(&self, token: &str) -> Response {
        self.client
            .post(self.url("/v1/email/verify/resend"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /reset-password` as the built-in page's form sends it.
    pub async fn post_reset_form(&self, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/reset-password"))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// The `.eml` files of the outbox (outbox mode), parsed.
    pub fn emails(&self) -> Vec<super::mailbox::Mail> {
        let dir = self.data_path.join("outbox");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| super::mailbox::Mail::parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    /// Waits (at most 20 s) for an outbox mail to `to` whose subject has `subject`.
    pub async fn wait_for_email(&self, to: &str, subject: &str) -> super::mailbox::Mail {
        for _ in 0..200 {
            if let Some(m) = self
                .emails()
                .into_iter()
                .find(|m| m.to == to && m.subject.contains(subject))
            {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no outbox mail to {to} with subject {subject:?}");
    }
}

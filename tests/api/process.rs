//! The real binary: first start, CLI, and what reaches the logs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::PASSWORD;

mod crashes;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
}

impl Server {
    pub(crate) async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn send_authed(&self, method: reqwest::Method, path: &str, token: &str) -> StatusCode {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &std::path::Path, log: &std::path::Path) -> Server {
    let mut backend = std::collections::BTreeMap::new();
    crate::helpers::backend_settings(&mut backend);
    start_with(dir, log, backend).await
}

/// Starts the binary on a free port with `env` on top of the test settings.
pub(crate) async fn start_with(
    dir: &std::path::Path,
    log: &std::path::Path,
    env: std::collections::BTreeMap<String, String>,
) -> Server {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_DATA_DIR", dir.join("data"))
        .env("PORTCULLIS_KEYS_DIR", dir.join("keys"))
        .env("PORTCULLIS_BCRYPT_COST", "4")
        .env("PORTCULLIS_RATE_LIMIT", "off")
        .env("PORTCULLIS_LOG_FORMAT", "json")
        // Replicas of one deployment share its public URL (and so the issuer).
        .env("PORTCULLIS_PUBLIC_URL", "http://portcullis.test")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd.envs(env);
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status() == StatusCode::OK
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        base,
        client: reqwest::Client::new(),
    }
}

#[tokio::test]
async fn first_start_generates_keys_and_logs_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = start(dir.path(), &log).await;
    let email = "log-check@example.com";
    let creds = serde_json::json!({"email": email, "password": PASSWORD});
    assert_eq!(
        server.post("/v1/users", &creds).await.status(),
        StatusCode::CREATED
    );
    let tokens: Value = server
        .post("/v1/sessions", &creds)
        .await
        .json()
        .await
        .unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        server.send_authed(reqwest::Method::GET, "/v1/me", at).await,
        StatusCode::OK
    );
    let r = server
        .post(
            "/v1/sessions/refresh",
            &serde_json::json!({"refresh_token": rt}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let wrong = serde_json::json!({"email": email, "password": "wrong but secret-ish 99"});
    server.post("/v1/sessions", &wrong).await;
    drop(server);

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("generated a new one"),
        "no log line about generated keys:\n{logs}"
    );
    assert!(
        logs.contains("\"user_id\""),
        "authenticated requests log the user id"
    );
    // The signing provider that keeps parsed keys is the process's: the key
    // ring installs it before jsonwebtoken's first use (else private keys
    // are parsed on every signature, and the server says so).
    assert!(
        !logs.contains(portcullis::auth::signers::NOT_INSTALLED),
        "the parsed-keys signing provider was not installed:\n{logs}"
    );
    // One structured line per request: request id, method, route, status,
    // latency, and the user id once authenticated.
    let line = logs
        .lines()
        .find(|l| l.contains("\"route\":\"/v1/me\"") && l.contains("\"latency_ms\""))
        .expect("a request log line for GET /v1/me");
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["status"], 200);
    for field in ["request_id", "method", "route", "user_id"] {
        assert!(
            v["span"].get(field).is_some(),
            "{field} missing from {line}"
        );
    }
    for secret in [PASSWORD, "wrong but secret-ish 99", at, rt, "$2b$"] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    let keys: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        keys.iter()
            .any(|p| p.extension().is_some_and(|e| e == "pem"))
    );
    #[cfg(unix)]
    for k in &keys {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(k).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            k.display()
        );
    }
}

#[test]
fn cli_keys_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("PORTCULLIS_KEYS_DIR", dir.path())
            .env("PORTCULLIS_LOG_FORMAT", "json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["keys", "generate"]).contains("created"));
    assert!(run(&["keys", "generate"]).contains("already exists"));
    assert!(run(&["keys", "rotate"]).contains("2 key(s) published"));
    let spec: Value = serde_json::from_str(&run(&["openapi"])).unwrap();
    assert!(spec["paths"]["/v1/users"].is_object());
}

/// Two real processes on one MongoDB database (same keys): a sign-out on A
/// is honoured by B at once, and the email is unique across both.
#[tokio::test]
async fn two_processes_share_one_database() {
    if std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() != Ok("mongo") {
        eprintln!("SKIPPED: two processes need the MongoDB backend");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut backend = std::collections::BTreeMap::new();
    crate::helpers::backend_settings(&mut backend);
    let a = start_with(dir.path(), &dir.path().join("a.log"), backend.clone()).await;
    let b = start_with(dir.path(), &dir.path().join("b.log"), backend).await;
    let email = "two-processes@example.com";
    let body = serde_json::json!({"email": email, "password": PASSWORD});
    assert_eq!(
        a.post("/v1/users", &body).await.status(),
        StatusCode::CREATED
    );
    let upper = serde_json::json!({"email": email.to_uppercase(), "password": PASSWORD});
    assert_eq!(
        b.post("/v1/users", &upper).await.status(),
        StatusCode::CONFLICT
    );
    let tokens: Value = b.post("/v1/sessions", &body).await.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        a.send_authed(reqwest::Method::GET, "/v1/me", at).await,
        StatusCode::OK
    );
    assert_eq!(
        a.send_authed(reqwest::Method::DELETE, "/v1/sessions", at)
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        b.send_authed(reqwest::Method::GET, "/v1/me", at).await,
        StatusCode::UNAUTHORIZED
    );
}

// -- hardening --

impl Server {
    /// The value of a counter series in `GET /metrics` (0 when absent).
    async fn counter(&self, series: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

/// Defect 1: an unknown email costs exactly one bcrypt verification, as a
/// wrong password does (the old dummy hash was not valid bcrypt: nothing ran).
/// A process of its own, so no other test moves the counter.
#[tokio::test]
async fn unknown_email_runs_exactly_one_bcrypt_verification() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = start(dir.path(), &log).await;
    const SERIES: &str = "portcullis_password_verifications_total";
    // Registered at 0 before any use.
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "portcullis_password_verifications_total",
        "portcullis_refresh_reuse_total",
        "portcullis_registrations_total",
        "portcullis_logins_total{result=\"success\"}",
        "portcullis_logins_total{result=\"failure\"}",
    ] {
        assert!(
            text.contains(name),
            "{name} not registered at start-up:\n{text}"
        );
    }
    let email = "timing-owner@example.com";
    let creds = serde_json::json!({"email": email, "password": PASSWORD});
    assert_eq!(
        server.post("/v1/users", &creds).await.status(),
        StatusCode::CREATED
    );
    let before = server.counter(SERIES).await;
    let unknown = serde_json::json!({"email": "nobody-here@example.com", "password": PASSWORD});
    assert_eq!(
        server.post("/v1/sessions", &unknown).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.counter(SERIES).await - before, 1.0, "unknown email");
    let wrong = serde_json::json!({"email": email, "password": "not the password 77"});
    assert_eq!(
        server.post("/v1/sessions", &wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.counter(SERIES).await - before, 2.0, "wrong password");
    // An address that is not even valid still costs one verification.
    let invalid = serde_json::json!({"email": "not an email", "password": PASSWORD});
    server.post("/v1/sessions", &invalid).await;
    assert_eq!(server.counter(SERIES).await - before, 3.0, "invalid email");
}

/// Defect 11: refusals leave an event line naming the account (a keyed
/// hash of the email, never the address or the password) and the client IP.
#[tokio::test]
async fn security_refusals_are_logged_with_account_and_ip() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut env = std::collections::BTreeMap::new();
    crate::helpers::backend_settings(&mut env);
    env.insert("PORTCULLIS_LOGIN_MAX_FAILURES".into(), "2".into());
    env.insert("PORTCULLIS_CAPTCHA".into(), "off".into());
    let server = start_with(dir.path(), &log, env).await;
    let email = "investigate-me@example.com";
    let wrong = serde_json::json!({"email": email, "password": "guess number one 1"});
    for _ in 0..3 {
        server.post("/v1/sessions", &wrong).await;
    }
    // A wrong current password at POST /v1/me/password is logged too.
    let owner = "owner-of-a-token@example.com";
    let creds = serde_json::json!({"email": owner, "password": PASSWORD});
    server.post("/v1/users", &creds).await;
    let tokens: Value = server
        .post("/v1/sessions", &creds)
        .await
        .json()
        .await
        .unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let user_id = tokens["user"]["id"].as_str().unwrap().to_string();
    let r = server
        .client
        .post(format!("{}/v1/me/password", server.base))
        .bearer_auth(at)
        .json(&serde_json::json!({"current_password": "guess number two 2", "new_password": "a brand new passphrase 9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    drop(server);
    let logs = std::fs::read_to_string(&log).unwrap();
    let failed = logs
        .lines()
        .find(|l| l.contains("\"event\":\"login.failed\""))
        .unwrap_or_else(|| panic!("no login.failed line:\n{logs}"));
    let v: Value = serde_json::from_str(failed).unwrap();
    assert_eq!(v["client_ip"], "127.0.0.1", "{failed}");
    let account = v["account"].as_str().unwrap();
    assert_eq!(account.len(), 16, "{failed}");
    let limited = logs
        .lines()
        .find(|l| l.contains("\"event\":\"rate_limited\""))
        .unwrap_or_else(|| panic!("no rate_limited line:\n{logs}"));
    let v: Value = serde_json::from_str(limited).unwrap();
    assert_eq!(
        v["account"], account,
        "the same keyed hash follows the account"
    );
    assert_eq!(v["client_ip"], "127.0.0.1");
    // Every request line names the client.
    let request = logs
        .lines()
        .find(|l| l.contains("\"route\":\"/v1/sessions\"") && l.contains("latency_ms"))
        .unwrap();
    let v: Value = serde_json::from_str(request).unwrap();
    assert_eq!(v["span"]["client_ip"], "127.0.0.1", "{request}");
    let change = logs
        .lines()
        .find(|l| l.contains("\"event\":\"password.change_failed\""))
        .unwrap_or_else(|| panic!("no password.change_failed line:\n{logs}"));
    let v: Value = serde_json::from_str(change).unwrap();
    assert_eq!(v["user_id"], user_id.as_str());
    assert_eq!(v["client_ip"], "127.0.0.1");
    assert!(
        !logs.contains("guess number two 2"),
        "the password reached the logs"
    );
    assert!(!logs.contains(email), "the email reached the logs");
    assert!(
        !logs.contains("guess number one 1"),
        "the password reached the logs"
    );
}

//! The real binary: first start, CLI, and what reaches the logs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::PASSWORD;

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

/// Floods registrations from several clients, kills the process with
/// SIGKILL mid-flood, restarts on the same data: every registration that was
/// answered 201 must sign in, and the store must open cleanly.
#[tokio::test]
async fn registrations_answered_201_survive_kill_9() {
    if std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo") {
        eprintln!("SKIPPED: crash safety is about the embedded store");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut server = start(dir.path(), &log).await;
    let base = server.base.clone();
    let created: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for worker in 0..4 {
        let (base, created, stop) = (base.clone(), created.clone(), stop.clone());
        flooders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("crash-{worker}-{i}@example.com");
                let r = client
                    .post(format!("{base}/v1/users"))
                    .json(&serde_json::json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        created.lock().unwrap().push(email)
                    }
                    Ok(r) => assert!(!r.status().is_server_error(), "{}", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }
    let created = created.lock().unwrap().clone();
    assert!(
        created.len() >= 5,
        "the flood made only {} accounts",
        created.len()
    );

    let log2 = dir.path().join("server2.log");
    let server = start(dir.path(), &log2).await;
    let ready = server
        .client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    for email in &created {
        let creds = serde_json::json!({"email": email, "password": PASSWORD});
        let r = server.post("/v1/sessions", &creds).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{email} was acknowledged but lost"
        );
    }
    eprintln!(
        "{} acknowledged registrations all survived kill -9",
        created.len()
    );
}

/// Group commit: 32 clients register and sign in at once, so
/// the store always has a batch of writes waiting on one fsync; the process
/// is killed with SIGKILL while they run. Every registration answered 201
/// must sign in after the restart, and every refresh token handed out must
/// still refresh (its session was durable before the token left).
#[tokio::test]
async fn writes_acknowledged_mid_batch_survive_kill_9() {
    if std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo") {
        eprintln!("SKIPPED: crash safety is about the embedded store");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &dir.path().join("server.log")).await;
    let base = server.base.clone();
    type Acked = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;
    let accounts: Acked = Default::default();
    let refresh_tokens: Acked = Default::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..32 {
        let (base, accounts, refresh_tokens, stop) = (
            base.clone(),
            accounts.clone(),
            refresh_tokens.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("batch-{worker}-{i}@example.com");
                let body = serde_json::json!({"email": email, "password": PASSWORD});
                let Ok(r) = client
                    .post(format!("{base}/v1/users"))
                    .json(&body)
                    .send()
                    .await
                else {
                    break; // the server is gone
                };
                assert!(!r.status().is_server_error(), "{}", r.status());
                if r.status() != StatusCode::CREATED {
                    continue;
                }
                accounts
                    .lock()
                    .unwrap()
                    .push((email.clone(), String::new()));
                let Ok(r) = client
                    .post(format!("{base}/v1/sessions"))
                    .json(&body)
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() != StatusCode::OK {
                    assert!(!r.status().is_server_error(), "{}", r.status());
                    continue;
                }
                let Ok(tokens) = r.json::<Value>().await else {
                    break; // killed while the body was on its way
                };
                let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
                refresh_tokens.lock().unwrap().push((email, refresh));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let writes = server.counter("portcullis_store_writes_total").await;
    let flushes = server.counter("portcullis_store_flushes_total").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    // The batching this test is about did happen: fewer fsyncs than writes.
    assert!(flushes >= 1.0, "no flush counted");
    assert!(
        writes / flushes > 1.5,
        "{writes} writes took {flushes} fsyncs: no group commit under 32 clients"
    );
    let accounts = accounts.lock().unwrap().clone();
    let refresh_tokens = refresh_tokens.lock().unwrap().clone();
    assert!(
        accounts.len() >= 32 && refresh_tokens.len() >= 32,
        "the flood made only {} accounts and {} sessions",
        accounts.len(),
        refresh_tokens.len()
    );

    let server = start(dir.path(), &dir.path().join("server2.log")).await;
    for (email, _) in &accounts {
        let creds = serde_json::json!({"email": email, "password": PASSWORD});
        let r = server.post("/v1/sessions", &creds).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{email} was acknowledged but lost"
        );
    }
    for (email, refresh) in &refresh_tokens {
        let r = server
            .post(
                "/v1/sessions/refresh",
                &serde_json::json!({"refresh_token": refresh}),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "the session of {email} was acknowledged but lost"
        );
    }
    eprintln!(
        "{} accounts and {} sessions acknowledged at {:.1} writes per fsync all survived kill -9",
        accounts.len(),
        refresh_tokens.len(),
        writes / flushes
    );
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

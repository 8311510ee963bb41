//! Developer mode, on the real binary: `serve --dev` and `PORTCULLIS_DEV`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::PASSWORD;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

pub(crate) struct Dev {
    pub(crate) child: Child,
    pub(crate) base: String,
    log: std::path::PathBuf,
    client: reqwest::Client,
    pub(crate) _dir: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn preflight(&self, origin: &str) -> reqwest::Response {
        self.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/sessions", self.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap()
    }

    /// Waits for a log line containing every one of `needles`.
    async fn wait_for_line(&self, needles: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self
                .logs()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return serde_json::from_str(line).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub(crate) fn command(
    dir: &std::path::Path,
    args: &[&str],
    env: &BTreeMap<&str, String>,
) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("PORTCULLIS_DATA_DIR", dir.join("data"))
        .env("PORTCULLIS_KEYS_DIR", dir.join("keys"))
        .env("PORTCULLIS_BCRYPT_COST", "4")
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .env_remove("PORTCULLIS_PUBLIC_URL")
        .env_remove("PORTCULLIS_DEV")
        .env_remove("PORTCULLIS_RATE_LIMIT")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    let mut backend = BTreeMap::new();
    crate::helpers::backend_settings(&mut backend);
    cmd.envs(backend);
    cmd.envs(env);
    cmd
}

/// Starts the binary with `args` and `env` on a free port.
pub(crate) async fn start(args: &[&str], env: BTreeMap<&str, String>) -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.path().join("server.log");
    let child = command(dir.path(), args, &env)
        .env("PORTCULLIS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status() == StatusCode::OK
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Dev {
        child,
        base,
        log,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

fn allowed_origin(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

/// `serve --dev`: the banner, CORS for loopback pages only, no per-IP
/// limit (even with PORTCULLIS_RATE_LIMIT=on), and a reset mail whose link
/// and code are readable in the log and work.
#[tokio::test]
async fn serve_dev_opens_cors_to_loopback_lifts_limits_and_logs_mail() {
    let env = BTreeMap::from([("PORTCULLIS_RATE_LIMIT", "on".to_string())]);
    let dev = start(&["serve", "--dev"], env).await;
    dev.wait_for_line(&["DEVELOPER MODE", "\"WARN\""]).await;

    for origin in [
        "http://localhost:5173",
        "http://127.0.0.1:3000",
        "http://localhost",
    ] {
        let r = dev.preflight(origin).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(allowed_origin(&r).as_deref(), Some(origin), "{origin}");
    }
    for origin in [
        "https://localhost:5173",
        "http://localhost.evil.example",
        "http://localhost:5173.evil.example",
        "http://127.0.0.2:3000",
        "https://app.example.com",
    ] {
        let r = dev.preflight(origin).await;
        assert_eq!(allowed_origin(&r), None, "{origin}");
    }
    // A simple request from a loopback page gets the header too.
    let r = dev
        .client
        .get(format!("{}/healthz", dev.base))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed_origin(&r).as_deref(), Some("http://localhost:5173"));

    let email = "dev-mode@example.com";
    let creds = json!({"email": email, "password": PASSWORD});
    assert_eq!(
        dev.post("/v1/users", &creds).await.status(),
        StatusCode::CREATED
    );
    // The email flows share a per-IP budget of 5 a minute; here none
    // (the per-address limits hold in any mode).
    for i in 0..8 {
        let r = dev
            .post(
                "/v1/password/forgot",
                &json!({"email": format!("nobody{i}@example.com")}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = dev
        .post("/v1/password/forgot", &json!({"email": email}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let line = dev
        .wait_for_line(&["dev mail sent", email, "reset-password?token="])
        .await;
    let fields = &line;
    let links = fields["links"].as_str().unwrap();
    assert!(!links.contains("=3D"), "the link is still encoded: {links}");
    let token = links
        .split_whitespace()
        .find_map(|l| l.split_once("reset-password?token=").map(|(_, t)| t))
        .unwrap();
    let code = fields["codes"].as_str().unwrap();
    assert!(
        !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric()),
        "{line}"
    );
    let r = dev
        .post(
            "/v1/password/reset",
            &json!({"token": token, "new_password": "a new and long passphrase 77"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let signed_in = dev
        .post(
            "/v1/sessions",
            &json!({"email": email, "password": "a new and long passphrase 77"}),
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::OK);
}

/// Without developer mode, a loopback page gets no CORS headers and the
/// mail is not logged.
#[tokio::test]
async fn without_dev_mode_loopback_pages_get_no_cors_and_mail_is_not_logged() {
    let env = BTreeMap::from([("PORTCULLIS_RATE_LIMIT", "off".to_string())]);
    let server = start(&["serve"], env).await;
    let r = server.preflight("http://localhost:5173").await;
    assert_eq!(allowed_origin(&r), None);
    let email = "not-dev@example.com";
    let creds = json!({"email": email, "password": PASSWORD});
    assert_eq!(
        server.post("/v1/users", &creds).await.status(),
        StatusCode::CREATED
    );
    server
        .post("/v1/password/forgot", &json!({"email": email}))
        .await;
    // Wait for the outbox file, then check the log.
    let outbox = server._dir.path().join("data").join("outbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&outbox).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "no mail in the outbox");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = server.logs();
    assert!(!logs.contains("DEVELOPER MODE"));
    assert!(!logs.contains("token="), "a mail link reached the log");
}

/// PORTCULLIS_DEV=true does the same as --dev.
#[tokio::test]
async fn dev_env_key_turns_developer_mode_on() {
    let env = BTreeMap::from([
        ("PORTCULLIS_DEV", "true".to_string()),
        ("PORTCULLIS_RATE_LIMIT", "on".to_string()),
    ]);
    let dev = start(&["serve"], env).await;
    dev.wait_for_line(&["DEVELOPER MODE"]).await;
    let r = dev.preflight("http://127.0.0.1:8081").await;
    assert_eq!(allowed_origin(&r).as_deref(), Some("http://127.0.0.1:8081"));
    for i in 0..8 {
        let r = dev
            .post(
                "/v1/password/forgot",
                &json!({"email": format!("nobody{i}@example.com")}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
}

/// A public URL others can reach: developer mode refuses to start, in one
/// line, with a non-zero exit.
#[test]
fn dev_mode_refuses_a_public_url_that_is_not_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], BTreeMap<&str, String>); 3] = [
        (
            &["serve", "--dev"],
            BTreeMap::from([(
                "PORTCULLIS_PUBLIC_URL",
                "https://auth.example.com".to_string(),
            )]),
        ),
        (
            &["serve"],
            BTreeMap::from([
                ("PORTCULLIS_DEV", "true".to_string()),
                ("PORTCULLIS_PUBLIC_URL", "http://10.0.0.5:8080".to_string()),
            ]),
        ),
        (
            &[],
            BTreeMap::from([
                ("PORTCULLIS_DEV", "true".to_string()),
                (
                    "PORTCULLIS_PUBLIC_URL",
                    "http://localhost.example.com".to_string(),
                ),
            ]),
        ),
    ];
    for (args, env) in cases {
        let out = command(dir.path(), args, &env)
            .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "not one line: {stderr}");
        assert!(
            lines[0].contains("loopback") && lines[0].contains("developer mode"),
            "{stderr}"
        );
    }
}

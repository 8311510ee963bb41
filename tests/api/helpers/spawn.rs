//! Starting the server under test: test settings, the backend chosen by the
//! environment, an optional administrator made by the CLI, and [`TestApp`],
//! which stops the server when dropped.

use std::collections::BTreeMap;

use portcullis::clock::Clock;
use portcullis::{Application, Settings};
use serde_json::Value;
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
    /// Message ids of the outbox mails `new_emails` has returned.
    pub(super) seen_mail: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The server's store, for states the API cannot make.
    pub store: portcullis::store::DynStore,
    /// The server's core, to run a background job's step on its clock.
    pub core: portcullis::service::Core,
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
    let store = app.store();
    let core = app.core();
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
        seen_mail: std::sync::Mutex::default(),
        store,
        core,
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

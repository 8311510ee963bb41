//! `portcullis users import` and `portcullis admin create`, run as the
//! real binary against the test server's store before it starts.

use std::collections::BTreeMap;
use std::io::Write;

use portcullis::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Bcrypt of the raw password, as the seed application (passlib) stores it.
fn legacy_hash(password: &str, prefix: &str) -> String {
    let h = bcrypt::hash(password, 5).unwrap();
    format!("{prefix}{}", &h[4..])
}

#[tokio::test]
async fn imported_legacy_hashes_sign_in_twice_and_reimport_is_idempotent() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let a = legacy_hash("legacy password one", "$2b$");
    let b = legacy_hash("legacy password two", "$2y$");
    let lines = [
        json!({"email": "Imported-A@Example.com", "password_hash": a, "display_name": "A", "email_verified": true, "created_at": "2023-05-06T07:08:09Z"}).to_string(),
        json!({"email": "imported-b@example.com", "password_hash": b}).to_string(),
        json!({"email": "imported-c@example.com"}).to_string(),
        "not json at all".to_string(),
        json!({"email": "broken", "password_hash": a}).to_string(),
        json!({"email": "imported-d@example.com", "password_hash": "$1$md5-SECRET-hash"}).to_string(),
        String::new(),
        json!({"email": "imported-a@example.com"}).to_string(),
    ];
    writeln!(file.as_file(), "{}", lines.join("\n")).unwrap();
    let path = file.path().display().to_string();
    let app = spawn_app_prepared(
        Clock::system(),
        |_| {},
        |env| {
            let (ok, out, err) = run_cli(env, &[], &["users", "import", &path], "");
            assert!(ok, "{out} {err}");
            assert!(out.contains("imported 3, skipped 1"), "{out}");
            assert!(out.contains("refused 3"), "{out}");
            assert!(out.contains("line 4: refused"), "{out}");
            assert!(out.contains("line 5: refused: email"), "{out}");
            assert!(out.contains("line 6: refused: password_hash"), "{out}");
            assert!(
                !out.contains("SECRET") && !out.contains(&a[7..]),
                "no hash in the summary"
            );
            let (ok, again, _) = run_cli(env, &[], &["users", "import", &path], "");
            assert!(ok);
            assert!(again.contains("imported 0, skipped 4"), "{again}");
        },
    )
    .await;

    for _ in 0..2 {
        let t = app
            .login_ok("imported-a@example.com", "legacy password one")
            .await;
        assert_eq!(t["user"]["display_name"], "A");
        assert_eq!(t["user"]["email_verified"], true);
        assert_eq!(t["user"]["created_at"], "2023-05-06T07:08:09Z");
    }
    assert_eq!(
        app.login("imported-b@example.com", "wrong password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    app.login_ok("imported-b@example.com", "legacy password two")
        .await;
    app.login_ok("imported-b@example.com", "legacy password two")
        .await;
    // No hash: no password sign-in at all.
    assert_eq!(
        app.login("imported-c@example.com", "anything at all")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn admin_create_creates_or_promotes_and_reads_stdin() {
    let (app, _) = spawn_app_with_admin().await;
    let me: Value = app
        .get_authed(
            "/v1/me",
            &token(
                &app.login_ok(ADMIN_EMAIL, ADMIN_PASSWORD).await,
                "access_token",
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["user", "admin"]));
    assert_eq!(me["email_verified"], true);
    drop(app);

    let mut promoted_env = BTreeMap::new();
    let app = spawn_app_prepared(
        Clock::system(),
        |_| {},
        |env| {
            // A weak password is refused; nothing is created.
            let (ok, _, err) = run_cli(
                env,
                &[],
                &["admin", "create", "stdin-admin@example.com"],
                "password\n",
            );
            assert!(!ok, "weak password accepted");
            assert!(!err.contains("password\n"));
            let (ok, out, err) = run_cli(
                env,
                &[],
                &["admin", "create", "stdin-admin@example.com"],
                "a passphrase typed on stdin 123\n",
            );
            assert!(ok, "{out} {err}");
            // Again: the account exists, so it is promoted (no password read).
            let (ok, out, _) = run_cli(
                env,
                &[],
                &["admin", "create", "stdin-admin@example.com"],
                "",
            );
            assert!(ok && out.contains("now has the admin role"), "{out}");
            promoted_env = env.clone();
        },
    )
    .await;
    let t = app
        .login_ok("stdin-admin@example.com", "a passphrase typed on stdin 123")
        .await;
    assert_eq!(
        claims_of(&token(&t, "access_token"))["roles"],
        json!(["user", "admin"])
    );
    let (_, user) = app.signed_in_user().await;
    assert_eq!(
        app.admin_list(&token(&user, "access_token"), "")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert!(!promoted_env.is_empty());
}

/// The book's recipe (docs/flows/admin.md): the seed application's SQLite `users` table to
/// import lines with one `sqlite3 | jq` command line.
#[tokio::test]
async fn sqlite_export_recipe_round_trips() {
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("sqlite3") || !have("jq") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "sqlite3 and jq are needed in CI"
        );
        println!("SKIPPED: sqlite3 or jq missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let hash = legacy_hash("seed app password", "$2b$");
    let sql = format!(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR UNIQUE NOT NULL, hashed_password VARCHAR NOT NULL, is_active BOOLEAN, created_at DATETIME);\
         INSERT INTO users (email, hashed_password, is_active, created_at) VALUES ('seed@example.com', '{hash}', 1, '2024-02-03 04:05:06.789000');\
         INSERT INTO users (email, hashed_password, is_active, created_at) VALUES ('o''brien@example.com', '{hash}', 1, NULL);"
    );
    let status = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(&sql)
        .status()
        .unwrap();
    assert!(status.success());
    // The book's import page (it moved out of the README).
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/flows/admin.md"))
            .unwrap();
    let recipe = readme
        .lines()
        .find(|l| l.starts_with("sqlite3 ") && l.contains("jq"))
        .expect("docs/flows/admin.md has the one-line recipe");
    let jsonl = dir.path().join("users.jsonl");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(recipe)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let path = jsonl.display().to_string();
    let app = spawn_app_prepared(
        Clock::system(),
        |_| {},
        |env| {
            let (ok, out, err) = run_cli(env, &[], &["users", "import", &path], "");
            assert!(ok && out.contains("imported 2, skipped 0"), "{out} {err}");
        },
    )
    .await;
    app.login_ok("seed@example.com", "seed app password").await;
    app.login_ok("o'brien@example.com", "seed app password")
        .await;
}

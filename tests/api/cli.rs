//! The command line around a running server: `--help` names the
//! configuration, and admin and import commands never end on a bare lock
//! error of the embedded store.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

use crate::dev_mode::{command, start};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_points_to_the_configuration() {
    for args in [&["--help"][..], &["serve", "--help"], &["help", "serve"]] {
        let text = help(args);
        for needle in [
            "PORTCULLIS_",
            "portcullis.toml",
            "PORTCULLIS_CONFIG",
            ".env.example",
            "--dev",
        ] {
            assert!(text.contains(needle), "{args:?} lacks {needle}:\n{text}");
        }
    }
    assert!(help(&["serve", "--help"]).contains("loopback"));
}

/// With the server running on the embedded store, `admin create` and
/// `users import` say in one line what to do; on MongoDB they just work.
#[tokio::test]
async fn admin_and_import_beside_a_running_server() {
    // On MongoDB the commands must reach the server's database.
    let db = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
    let env = BTreeMap::from([("PORTCULLIS_MONGODB_DB", db)]);
    let mut server = start(&["serve"], env.clone()).await;
    let dir = server._dir.path().to_path_buf();
    let mongo = std::env::var("PORTCULLIS_TEST_BACKEND").as_deref() == Ok("mongo");

    let admin = command(&dir, &["admin", "create", "boss@example.com"], &env)
        .env("PORTCULLIS_ADMIN_PASSWORD", crate::helpers::PASSWORD)
        .output()
        .unwrap();
    let mut import = command(&dir, &["users", "import", "-"], &env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    import
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"email\":\"imported@example.com\"}\n")
        .unwrap();
    let import = import.wait_with_output().unwrap();

    for (what, out) in [("admin create", &admin), ("users import", &import)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if mongo {
            // Against a shared store, the commands run beside the server,
            // but the MongoDB connection string must be the same.
            assert!(out.status.success(), "{what}: {stderr}");
            continue;
        }
        assert!(
            !out.status.success(),
            "{what} opened a store the server holds"
        );
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: not one line:\n{stderr}");
        let line = lines[0];
        assert!(
            line.contains("held by a running portcullis server")
                && line.contains("stop the server")
                && line.contains(&format!("portcullis {what}")),
            "{what}: {line}"
        );
        assert!(!line.contains("Cannot acquire lock"), "{line}");
    }
    if !mongo {
        assert!(String::from_utf8_lossy(&admin.stderr).contains("PATCH /v1/admin/users/"));
    }
    // The server is unharmed.
    let r = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // Once the server is stopped, the same command works on its store.
    if !mongo {
        let again = command(&dir, &["admin", "create", "boss@example.com"], &env)
            .env("PORTCULLIS_ADMIN_PASSWORD", crate::helpers::PASSWORD)
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        let stdout = String::from_utf8_lossy(&again.stdout);
        assert!(stdout.contains("created administrator"), "{stdout}");
    }
}

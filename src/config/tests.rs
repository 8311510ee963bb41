//! Unit tests of the settings: defaults, durations, key checks, TOML and
//! the values refused at start-up.

use std::time::Duration;

use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
    assert_eq!(
        parse_duration("30d").unwrap(),
        Duration::from_secs(2_592_000)
    );
    assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("15 minutes").is_err());
    assert!(parse_duration("m").is_err());
    assert!(parse_duration("").is_err());
}

/// L8: a weak webhook secret or a metadata URL stops the start-up with
/// a message that names the key, never the secret.
#[test]
fn webhook_settings_are_checked_at_start_up() {
    let with = |url: &str, secret: &str| {
        let map = BTreeMap::from([
            ("PORTCULLIS_WEBHOOK_URL".to_string(), url.to_string()),
            ("PORTCULLIS_WEBHOOK_SECRET".to_string(), secret.to_string()),
        ]);
        Settings::from_map(&map)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let hook = "https://hooks.example.com/in";
    for bad in ["whsec_", "x", "whsec_not*base64*at*all"] {
        let e = with(hook, bad).unwrap_err();
        assert!(e.contains("PORTCULLIS_WEBHOOK_SECRET"), "{e}");
    }
    let e = with(
        "http://169.254.169.254/latest",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .unwrap_err();
    assert!(e.contains("PORTCULLIS_WEBHOOK_URL"), "{e}");
    assert!(with(hook, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
}

#[test]
fn defaults_match_the_contract() {
    let s = Settings::from_map(&BTreeMap::new()).unwrap();
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.http.public_url, "http://localhost:8080");
    assert_eq!(s.tokens.issuer, "http://localhost:8080");
    assert_eq!(s.tokens.audience, "portcullis");
    assert_eq!(s.passwords.bcrypt_cost, 12);
    assert_eq!(s.tokens.signing_alg, SigningAlg::EdDsa);
    assert_eq!(s.tokens.access_ttl, Duration::from_secs(900));
    assert_eq!(s.tokens.refresh_ttl, Duration::from_secs(30 * 86_400));
    assert_eq!(s.tokens.refresh_grace, Duration::from_secs(10));
    assert_eq!(s.limits.captcha, CaptchaMode::OnFailures);
    assert_eq!(s.limits.login_max_failures, 5);
    assert!(s.limits.rate_limit);
    assert!(s.store.mongodb_uri.is_none());
    assert!(s.unknown_keys.is_empty());
    assert_eq!(s.avatars.max_bytes, 2 * 1024 * 1024);
    assert_eq!(s.security.audit_retention, Duration::from_secs(90 * 86_400));
    assert!(s.security.webhook_url.is_none());
    assert_eq!(s.security.detect_account_failures, 5);
    assert_eq!(s.security.detect_stuffing_accounts, 10);
    assert_eq!(s.security.detect_burst_networks, 3);
    assert_eq!(s.security.shutdown_timeout, Duration::from_secs(10));
    assert!(s.mail.smtp_url.is_none());
    assert_eq!(s.mail.app_url, None);
    assert_eq!(s.mail.reset_ttl, Duration::from_secs(30 * 60));
    assert_eq!(s.mail.verify_ttl, Duration::from_secs(24 * 3600));
    assert!(!s.mail.require_verified_email);
    assert!(s.mail.templates_dir.is_none());
    assert_eq!(s.http.request_timeout, Duration::from_secs(30));
    assert_eq!(s.http.idle_timeout, Duration::from_secs(60));
    assert!(s.http.metrics_token.is_none());
    assert!(s.http.introspection_token.is_none());
    assert_eq!(s.limits.max_sessions, 50);
    assert_eq!(s.tokens.reauth_window, Duration::from_secs(300));
    assert_eq!(s.limits.max_passkeys, 20);
    assert_eq!(s.limits.captcha_difficulty, 1_000_000);
}

#[test]
fn public_url_follows_the_listen_port() {
    let map = BTreeMap::from([("PORTCULLIS_LISTEN".to_string(), "0.0.0.0:9123".to_string())]);
    let s = Settings::from_map(&map).unwrap();
    assert_eq!(s.http.public_url, "http://localhost:9123");
    assert_eq!(s.tokens.issuer, "http://localhost:9123");
}

#[test]
fn unknown_keys_are_reported_and_refused_when_strict() {
    let map = BTreeMap::from([
        ("PORTCULLIS_BCRYPT_COTS".to_string(), "4".to_string()),
        ("PORTCULLIS_TEST_BACKEND".to_string(), "mongo".to_string()),
        ("PORTCULLIS_LISTEN".to_string(), "127.0.0.1:0".to_string()),
    ]);
    let s = Settings::from_map(&map).unwrap();
    assert_eq!(s.unknown_keys, vec!["PORTCULLIS_BCRYPT_COTS"]);
    let err = s.refuse_unknown_keys().unwrap_err().to_string();
    assert!(err.contains("PORTCULLIS_BCRYPT_COTS"), "{err}");
    let toml = parse_toml("bcrypt_cots = 4\n").unwrap();
    let s = Settings::from_map(&toml).unwrap();
    assert_eq!(s.unknown_keys, vec!["PORTCULLIS_BCRYPT_COTS"]);
}

#[test]
fn toml_keys_with_and_without_prefix() {
    let map = parse_toml("listen = \"0.0.0.0:9000\"\nPORTCULLIS_BCRYPT_COST = 4\ncors_origins = [\"https://a\", \"https://b\"]\n").unwrap();
    let s = Settings::from_map(&map).unwrap();
    assert_eq!(s.http.listen.port(), 9000);
    assert_eq!(s.passwords.bcrypt_cost, 4);
    assert_eq!(s.http.cors_origins, vec!["https://a", "https://b"]);
}

#[test]
fn passkey_keys() {
    let s = Settings::from_map(&BTreeMap::new()).unwrap();
    assert!(s.passkeys.rp_id.is_none());
    assert!(s.passkeys.apple_app_ids.is_empty() && s.passkeys.android_apps.is_empty());
    let fp = "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5";
    let map = BTreeMap::from([
        (
            "PORTCULLIS_WEBAUTHN_RP_ID".to_string(),
            "Example.com".to_string(),
        ),
        (
            "PORTCULLIS_WEBAUTHN_ORIGINS".to_string(),
            "https://app.example.com, https://admin.example.com".to_string(),
        ),
        (
            "PORTCULLIS_ANDROID_APPS".to_string(),
            format!("com.example.app:{}", fp.to_lowercase()),
        ),
    ]);
    let s = Settings::from_map(&map).unwrap();
    assert_eq!(s.passkeys.rp_id.as_deref(), Some("example.com"));
    assert_eq!(s.passkeys.origins.len(), 2);
    assert_eq!(s.passkeys.android_apps[0].package, "com.example.app");
    assert_eq!(s.passkeys.android_apps[0].sha256_fingerprint, fp);
    for bad in [
        "com.example.app",
        "com.example.app:AB:CD",
        ":".repeat(3).as_str(),
    ] {
        let map = BTreeMap::from([("PORTCULLIS_ANDROID_APPS".to_string(), bad.to_string())]);
        assert!(Settings::from_map(&map).is_err(), "{bad} accepted");
    }
}

#[test]
fn bad_values_are_refused() {
    for (k, v) in [
        ("PORTCULLIS_BCRYPT_COST", "3"),
        ("PORTCULLIS_SIGNING_ALG", "HS256"),
        ("PORTCULLIS_CAPTCHA", "sometimes"),
        ("PORTCULLIS_TRUSTED_PROXIES", "not-a-cidr"),
        ("PORTCULLIS_ACCESS_TTL", "0s"),
        ("PORTCULLIS_WEBHOOK_URL", "https://hooks.example/x"),
        ("PORTCULLIS_DETECT_BURST_NETWORKS", "0"),
        ("PORTCULLIS_AUDIT_RETENTION", "0s"),
        ("PORTCULLIS_RESET_TTL", "0s"),
        ("PORTCULLIS_REQUIRE_VERIFIED_EMAIL", "maybe"),
        ("PORTCULLIS_APP_URL", "javascript:alert(1)"),
    ] {
        let map = BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(Settings::from_map(&map).is_err(), "{k}={v} accepted");
    }
}

//! The list of every configuration key this version reads, and the check
//! that reports the `PORTCULLIS_*` keys it does not (typos, later releases).

use std::collections::BTreeMap;

/// Every key this version reads. `PORTCULLIS_CONFIG` names the TOML file;
/// `PORTCULLIS_TEST_*` belongs to the test harness and is never reported.
pub const KNOWN_KEYS: &[&str] = &[
    "PORTCULLIS_CONFIG",
    "PORTCULLIS_LISTEN",
    "PORTCULLIS_PUBLIC_URL",
    "PORTCULLIS_ISSUER",
    "PORTCULLIS_AUDIENCE",
    "PORTCULLIS_DATA_DIR",
    "PORTCULLIS_KEYS_DIR",
    "PORTCULLIS_MONGODB_URI",
    "PORTCULLIS_MONGODB_DB",
    "PORTCULLIS_MONGODB_TIMEOUT",
    "PORTCULLIS_BCRYPT_COST",
    "PORTCULLIS_BCRYPT_CONCURRENCY",
    "PORTCULLIS_PASSWORD_MIN_SCORE",
    "PORTCULLIS_SIGNING_ALG",
    "PORTCULLIS_ACCESS_TTL",
    "PORTCULLIS_REFRESH_TTL",
    "PORTCULLIS_REFRESH_GRACE",
    // Throughput and memory: see `PerformanceSettings`.
    "PORTCULLIS_REFRESH_SIGNING",
    "PORTCULLIS_AUDIT_REFRESH",
    "PORTCULLIS_REDB_CACHE_SIZE",
    "PORTCULLIS_CORS_ORIGINS",
    "PORTCULLIS_TRUSTED_PROXIES",
    "PORTCULLIS_SMTP_URL",
    "PORTCULLIS_SMTP_FROM",
    "PORTCULLIS_APP_URL",
    "PORTCULLIS_RESET_TTL",
    "PORTCULLIS_VERIFY_TTL",
    "PORTCULLIS_TEMPLATES_DIR",
    "PORTCULLIS_PAGES_CSS",
    "PORTCULLIS_PAGES_LOGO_URL",
    "PORTCULLIS_REQUIRE_VERIFIED_EMAIL",
    "PORTCULLIS_CAPTCHA",
    "PORTCULLIS_LOGIN_MAX_FAILURES",
    "PORTCULLIS_RATE_LIMIT",
    "PORTCULLIS_MAX_BODY_BYTES",
    "PORTCULLIS_LOG_FORMAT",
    // Avatars; `portcullis admin create` reads the admin password.
    "PORTCULLIS_AVATAR_MAX_BYTES",
    "PORTCULLIS_ADMIN_PASSWORD",
    // Security activity: see `SecuritySettings`.
    "PORTCULLIS_AUDIT_RETENTION",
    "PORTCULLIS_WEBHOOK_URL",
    "PORTCULLIS_WEBHOOK_SECRET",
    "PORTCULLIS_DETECT_ACCOUNT_FAILURES",
    "PORTCULLIS_DETECT_STUFFING_ACCOUNTS",
    "PORTCULLIS_DETECT_STUFFING_WINDOW",
    "PORTCULLIS_DETECT_BURST_NETWORKS",
    "PORTCULLIS_DETECT_BURST_WINDOW",
    "PORTCULLIS_KNOWN_DEVICES",
    "PORTCULLIS_NOT_ME_TTL",
    "PORTCULLIS_SHUTDOWN_TIMEOUT",
    // Passkeys.
    "PORTCULLIS_WEBAUTHN_RP_ID",
    "PORTCULLIS_WEBAUTHN_ORIGINS",
    "PORTCULLIS_APPLE_APP_IDS",
    "PORTCULLIS_ANDROID_APPS",
    // -- hardening --
    "PORTCULLIS_HTTP_TIMEOUT",
    "PORTCULLIS_IDLE_TIMEOUT",
    "PORTCULLIS_METRICS_TOKEN",
    "PORTCULLIS_INTROSPECTION_TOKEN",
    "PORTCULLIS_CAPTCHA_DIFFICULTY",
    "PORTCULLIS_MAX_SESSIONS",
    "PORTCULLIS_BREACHED_PASSWORDS",
    // Step-up and credential safety.
    "PORTCULLIS_REAUTH_WINDOW",
    "PORTCULLIS_MAX_PASSKEYS",
    // Passwordless sign-in and anonymous users.
    "PORTCULLIS_EMAIL_SIGNUP",
    "PORTCULLIS_ANONYMOUS",
    "PORTCULLIS_ANONYMOUS_TTL",
    // Developer mode.
    "PORTCULLIS_DEV",
    // Federated sign-in (and `PORTCULLIS_PROVIDER_<ID>_*` per listed
    // provider, see `federation::provider_keys`).
    "PORTCULLIS_PROVIDERS",
    "PORTCULLIS_REDIRECT_URLS",
    "PORTCULLIS_FEDERATION_SIGNUP",
    // Sender-constrained tokens (DPoP).
    "PORTCULLIS_DPOP",
    "PORTCULLIS_DPOP_MAX_AGE",
    "PORTCULLIS_DPOP_NONCE",
];

/// Keys of `map` this version does not read, sorted.
pub(super) fn unknown_keys(map: &BTreeMap<String, String>) -> Vec<String> {
    let providers = super::federation::provider_keys(map);
    map.keys()
        .filter(|k| k.starts_with("PORTCULLIS_") && !k.starts_with("PORTCULLIS_TEST_"))
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
        .filter(|k| !providers.contains(k))
        .cloned()
        .collect()
}

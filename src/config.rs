//! Typed settings, loaded in layers: built-in defaults, then an optional
//! `portcullis.toml`, then `PORTCULLIS_*` environment variables.
//!
//! The TOML file takes the same keys as the environment, either spelled in
//! full (`PORTCULLIS_LISTEN = "0.0.0.0:8080"`) or without the prefix in lower
//! case (`listen = "0.0.0.0:8080"`). Its path is `PORTCULLIS_CONFIG`, or
//! `./portcullis.toml` when that file exists.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

/// JOSE algorithm used for newly generated keys and newly issued tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// Ed25519 (the default).
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
}

impl SigningAlg {
    /// Parses `EdDSA`, `ES256` or `RS256` (any case).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "EDDSA" | "ED25519" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            other => bail!("unsupported signing algorithm {other:?} (EdDSA, ES256 or RS256)"),
        }
    }

    /// The JOSE `alg` name.
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// When a proof-of-work CAPTCHA is demanded on sign-in and registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaMode {
    /// Never (per-account failures then answer 429).
    Off,
    /// After `PORTCULLIS_LOGIN_MAX_FAILURES` failed sign-ins of an account.
    OnFailures,
    /// On every sign-in and registration.
    Always,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Every setting of the service, grouped by concern. Field docs name the
/// configuration key; every key is flat (`PORTCULLIS_*`) whatever its group.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HTTP side: listener, public URL, CORS, proxies, body limits.
    pub http: HttpSettings,
    /// Token issue and verification.
    pub tokens: TokenSettings,
    /// Password hashing and strength rules.
    pub passwords: PasswordSettings,
    /// Where data lives.
    pub store: StoreSettings,
    /// Outgoing mail.
    pub mail: MailSettings,
    /// Abuse limits: CAPTCHA, sign-in throttling, per-IP rate limits.
    pub limits: LimitSettings,
    /// Avatar uploads.
    pub avatars: AvatarSettings,
    /// Security activity: audit retention, detection thresholds, webhooks,
    /// shutdown.
    pub security: SecuritySettings,
    /// Passkeys (WebAuthn) and the native-app association files.
    pub passkeys: PasskeySettings,
    /// `PORTCULLIS_LOG_FORMAT`: `pretty` or `json` (default: pretty on a terminal).
    pub log_format: LogFormat,
    /// `PORTCULLIS_*` keys that were set but mean nothing to this version
    /// (typos, keys of a later release). Reported at start-up.
    pub unknown_keys: Vec<String>,
}

/// The HTTP side.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `PORTCULLIS_LISTEN`: socket address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `PORTCULLIS_PUBLIC_URL`: base URL clients reach the service at
    /// (default `http://localhost:<port of PORTCULLIS_LISTEN>`).
    pub public_url: String,
    /// True when `PORTCULLIS_PUBLIC_URL` was not set: the URL then follows
    /// the port actually bound (see [`Settings::bound_to`]).
    pub public_url_defaulted: bool,
    /// `PORTCULLIS_CORS_ORIGINS`: origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `PORTCULLIS_TRUSTED_PROXIES`: CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `PORTCULLIS_MAX_BODY_BYTES`: largest accepted JSON request body (default 64 KiB).
    pub max_body_bytes: usize,
    // -- hardening (issue 9) --
    /// `PORTCULLIS_HTTP_TIMEOUT`: how long a client may take to send a
    /// request's headers, and then its body (default 30s).
    pub request_timeout: Duration,
    /// `PORTCULLIS_IDLE_TIMEOUT`: how long a kept-alive connection may sit
    /// idle between requests (default 60s).
    pub idle_timeout: Duration,
    /// `PORTCULLIS_METRICS_TOKEN`: bearer token `/metrics` demands; unset,
    /// `/metrics` answers loopback clients only.
    pub metrics_token: Option<SecretString>,
    /// `PORTCULLIS_INTROSPECTION_TOKEN`: bearer token of resource servers at
    /// `POST /oauth/introspect`; unset, introspection is off.
    pub introspection_token: Option<SecretString>,
}

/// Token issue and verification.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `PORTCULLIS_ISSUER`: the `iss` of every token (defaults to the public URL).
    pub issuer: String,
    /// True when `PORTCULLIS_ISSUER` was not set (it follows the public URL).
    pub issuer_defaulted: bool,
    /// `PORTCULLIS_AUDIENCE`: the `aud` of every token.
    pub audience: String,
    /// `PORTCULLIS_KEYS_DIR`: directory of the PEM signing keys and server secrets.
    pub keys_dir: PathBuf,
    /// `PORTCULLIS_SIGNING_ALG`: algorithm of new keys and new tokens.
    pub signing_alg: SigningAlg,
    /// `PORTCULLIS_ACCESS_TTL`: access-token lifetime.
    pub access_ttl: Duration,
    /// `PORTCULLIS_REFRESH_TTL`: refresh-token (session) lifetime, renewed at each refresh.
    pub refresh_ttl: Duration,
    /// `PORTCULLIS_REFRESH_GRACE`: how long a just-retired refresh token still
    /// yields the family's current pair (0 disables the grace window).
    pub refresh_grace: Duration,
    /// `PORTCULLIS_REAUTH_WINDOW`: how long a proof given on a session (at
    /// sign-in or through `POST /v1/me/reauthenticate`) lets that session
    /// change credentials without another one (default 5m).
    pub reauth_window: Duration,
}

/// Password hashing and strength rules.
#[derive(Debug, Clone)]
pub struct PasswordSettings {
    /// `PORTCULLIS_BCRYPT_COST`: bcrypt work factor (4..=31).
    pub bcrypt_cost: u32,
    /// `PORTCULLIS_BCRYPT_CONCURRENCY`: how many bcrypt computations run at once
    /// (default: the number of CPU cores).
    pub bcrypt_concurrency: usize,
    /// `PORTCULLIS_PASSWORD_MIN_SCORE`: lowest accepted zxcvbn score, 0..=4 (default 2).
    pub min_score: u8,
    /// `PORTCULLIS_BREACHED_PASSWORDS`: path of a filter built by
    /// `portcullis passwords build-filter` (issue 9); unset, no screening.
    pub breached_filter: Option<PathBuf>,
}

/// Where data lives.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `PORTCULLIS_DATA_DIR`: directory of the embedded store and the email outbox.
    pub data_dir: PathBuf,
    /// `PORTCULLIS_MONGODB_URI`: when set, MongoDB is the store instead of the embedded one.
    pub mongodb_uri: Option<SecretString>,
    /// `PORTCULLIS_MONGODB_DB`: MongoDB database name.
    pub mongodb_db: String,
    /// `PORTCULLIS_MONGODB_TIMEOUT`: server selection / connect timeout (default 3s).
    pub mongodb_timeout: Duration,
}

/// Outgoing mail.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `PORTCULLIS_SMTP_URL`: SMTP server for outgoing mail; unset writes to `<data>/outbox/`.
    pub smtp_url: Option<SecretString>,
    /// `PORTCULLIS_SMTP_FROM`: sender address of outgoing mail.
    pub smtp_from: String,
    /// `PORTCULLIS_APP_URL`: base of the links in emails (an SPA's pages);
    /// unset: the public URL, where the built-in pages answer.
    pub app_url: Option<String>,
    /// `PORTCULLIS_RESET_TTL`: lifetime of a password-reset link and code (default 30m).
    pub reset_ttl: Duration,
    /// `PORTCULLIS_VERIFY_TTL`: lifetime of an email-verification link and code (default 24h).
    pub verify_ttl: Duration,
    /// `PORTCULLIS_TEMPLATES_DIR`: folder of templates overriding the
    /// built-in ones (`<locale>/<name>.{subject,txt,html}`).
    pub templates_dir: Option<PathBuf>,
    /// `PORTCULLIS_REQUIRE_VERIFIED_EMAIL`: sign-in needs a verified email,
    /// and registration answers 202 for new and taken emails alike.
    pub require_verified_email: bool,
}

/// Abuse limits.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// `PORTCULLIS_CAPTCHA`: `off`, `on-failures` or `always`.
    pub captcha: CaptchaMode,
    /// `PORTCULLIS_LOGIN_MAX_FAILURES`: failed sign-ins per account in 15 minutes
    /// before throttling.
    pub login_max_failures: u32,
    /// `PORTCULLIS_RATE_LIMIT`: per-IP rate limits on (`on`) or off (`off`).
    pub rate_limit: bool,
    // -- hardening (issue 9) --
    /// `PORTCULLIS_CAPTCHA_DIFFICULTY`: the ALTCHA `maxnumber` (the answer is
    /// uniform in 0..=this); the default 1,000,000 costs a browser about a
    /// second on average.
    pub captcha_difficulty: u64,
    /// `PORTCULLIS_MAX_SESSIONS`: live sessions per user; a sign-in beyond
    /// it ends the oldest (default 50).
    pub max_sessions: u32,
    /// `PORTCULLIS_MAX_PASSKEYS`: passkeys per account; adding one more is
    /// refused (default 20).
    pub max_passkeys: u32,
}

/// Avatar uploads.
#[derive(Debug, Clone)]
pub struct AvatarSettings {
    /// `PORTCULLIS_AVATAR_MAX_BYTES`: largest accepted upload body of
    /// `PUT /v1/me/avatar` (default 2 MiB), enforced while it streams in.
    pub max_bytes: usize,
}

/// Passkeys (WebAuthn) and the native-app association files.
#[derive(Debug, Clone, Default)]
pub struct PasskeySettings {
    /// `PORTCULLIS_WEBAUTHN_RP_ID`: the relying party id (default: the
    /// public URL's host).
    pub rp_id: Option<String>,
    /// `PORTCULLIS_WEBAUTHN_ORIGINS`: origins allowed besides the public
    /// URL's (comma-separated, e.g. an SPA's `https://app.example.com`).
    pub origins: Vec<String>,
    /// `PORTCULLIS_APPLE_APP_IDS`: `TEAMID.bundle.id` of the iOS apps served
    /// in `/.well-known/apple-app-site-association` (unset: 404).
    pub apple_app_ids: Vec<String>,
    /// `PORTCULLIS_ANDROID_APPS`: `package:SHA256-FINGERPRINT` pairs served in
    /// `/.well-known/assetlinks.json` (unset: 404).
    pub android_apps: Vec<AndroidApp>,
}

/// One Android app of `PORTCULLIS_ANDROID_APPS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidApp {
    /// The package name, e.g. `com.example.app`.
    pub package: String,
    /// SHA-256 fingerprint of the signing certificate, `AA:BB:...` (upper case).
    pub sha256_fingerprint: String,
}

impl AndroidApp {
    /// Parses `package:AA:BB:...` (32 colon-separated hex bytes).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (package, fingerprint) = s.split_once(':').with_context(|| {
            format!("PORTCULLIS_ANDROID_APPS: {s:?} is not package:SHA256-FINGERPRINT")
        })?;
        let package = package.trim();
        let fingerprint = fingerprint.trim().to_ascii_uppercase();
        let bytes: Vec<&str> = fingerprint.split(':').collect();
        let valid_package = !package.is_empty()
            && package
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        let valid_fingerprint = bytes.len() == 32
            && bytes
                .iter()
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid_package || !valid_fingerprint {
            bail!(
                "PORTCULLIS_ANDROID_APPS: {s:?} is not package:SHA256-FINGERPRINT (32 hex bytes separated by colons)"
            );
        }
        Ok(Self {
            package: package.to_string(),
            sha256_fingerprint: fingerprint,
        })
    }
}

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
    "PORTCULLIS_CORS_ORIGINS",
    "PORTCULLIS_TRUSTED_PROXIES",
    "PORTCULLIS_SMTP_URL",
    "PORTCULLIS_SMTP_FROM",
    "PORTCULLIS_APP_URL",
    "PORTCULLIS_RESET_TTL",
    "PORTCULLIS_VERIFY_TTL",
    "PORTCULLIS_TEMPLATES_DIR",
    "PORTCULLIS_REQUIRE_VERIFIED_EMAIL",
    "PORTCULLIS_CAPTCHA",
    "PORTCULLIS_LOGIN_MAX_FAILURES",
    "PORTCULLIS_RATE_LIMIT",
    "PORTCULLIS_MAX_BODY_BYTES",
    "PORTCULLIS_LOG_FORMAT",
    // Avatars; `portcullis admin create` reads the admin password.
    "PORTCULLIS_AVATAR_MAX_BYTES",
    "PORTCULLIS_ADMIN_PASSWORD",
    // Security activity (issue 14): see `SecuritySettings`.
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
    // Passkeys (issue 12).
    "PORTCULLIS_WEBAUTHN_RP_ID",
    "PORTCULLIS_WEBAUTHN_ORIGINS",
    "PORTCULLIS_APPLE_APP_IDS",
    "PORTCULLIS_ANDROID_APPS",
    // -- hardening (issue 9) --
    "PORTCULLIS_HTTP_TIMEOUT",
    "PORTCULLIS_IDLE_TIMEOUT",
    "PORTCULLIS_METRICS_TOKEN",
    "PORTCULLIS_INTROSPECTION_TOKEN",
    "PORTCULLIS_CAPTCHA_DIFFICULTY",
    "PORTCULLIS_MAX_SESSIONS",
    "PORTCULLIS_BREACHED_PASSWORDS",
    // Step-up and credential safety (issue 20).
    "PORTCULLIS_REAUTH_WINDOW",
    "PORTCULLIS_MAX_PASSKEYS",
];

/// Keys of `map` this version does not read, sorted.
fn unknown_keys(map: &BTreeMap<String, String>) -> Vec<String> {
    map.keys()
        .filter(|k| k.starts_with("PORTCULLIS_") && !k.starts_with("PORTCULLIS_TEST_"))
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
        .cloned()
        .collect()
}

impl MailSettings {
    /// Base of the links in emails: `PORTCULLIS_APP_URL`, else `public_url`.
    pub fn link_base<'a>(&'a self, public_url: &'a str) -> &'a str {
        self.app_url.as_deref().unwrap_or(public_url)
    }
}

impl Settings {
    /// Defaults, then the optional TOML file, then the process environment.
    /// Unknown keys land in [`Settings::unknown_keys`]; with `strict` they are
    /// an error instead.
    pub fn load(strict: bool) -> anyhow::Result<Self> {
        let mut layers = BTreeMap::new();
        let file = std::env::var_os("PORTCULLIS_CONFIG").map(PathBuf::from);
        let file = match file {
            Some(path) => Some(path),
            None => {
                let default = PathBuf::from("portcullis.toml");
                default.exists().then_some(default)
            }
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            layers.extend(parse_toml(&text).with_context(|| format!("in {}", path.display()))?);
        }
        for (key, value) in std::env::vars() {
            if key.starts_with("PORTCULLIS_") {
                layers.insert(key, value);
            }
        }
        let settings = Self::from_map(&layers)?;
        if strict {
            settings.refuse_unknown_keys()?;
        }
        Ok(settings)
    }

    /// Records the port the listener actually bound (it differs from
    /// `PORTCULLIS_LISTEN` with port 0): a public URL and issuer that were
    /// not configured follow it.
    pub fn bound_to(&mut self, port: u16) {
        if self.http.public_url_defaulted {
            self.http.public_url = format!("http://localhost:{port}");
            if self.tokens.issuer_defaulted {
                self.tokens.issuer = self.http.public_url.clone();
            }
        }
    }

    /// Fails when any unknown `PORTCULLIS_*` key was set.
    pub fn refuse_unknown_keys(&self) -> anyhow::Result<()> {
        if self.unknown_keys.is_empty() {
            return Ok(());
        }
        bail!(
            "unknown configuration key(s): {} (a typo? see the README's configuration table)",
            self.unknown_keys.join(", ")
        )
    }

    /// Logs a warning naming each unknown key.
    pub fn warn_unknown_keys(&self) {
        for key in &self.unknown_keys {
            tracing::warn!(key = %key, "unknown configuration key ignored (a typo?)");
        }
    }

    /// Builds settings from `PORTCULLIS_*` keys; anything missing takes its default.
    pub fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let get_or =
            |key: &str, default: &str| -> String { get(key).unwrap_or(default).to_string() };

        let listen: SocketAddr = get_or("PORTCULLIS_LISTEN", "127.0.0.1:8080")
            .parse()
            .context("PORTCULLIS_LISTEN must be an address like 127.0.0.1:8080")?;
        let public_url = get("PORTCULLIS_PUBLIC_URL")
            .map(str::to_string)
            .unwrap_or_else(|| format!("http://localhost:{}", listen.port()))
            .trim_end_matches('/')
            .to_string();
        let issuer = get("PORTCULLIS_ISSUER")
            .map(str::to_string)
            .unwrap_or_else(|| public_url.clone());
        let bcrypt_cost: u32 = get_or("PORTCULLIS_BCRYPT_COST", "12")
            .parse()
            .context("PORTCULLIS_BCRYPT_COST must be a number")?;
        if !(4..=31).contains(&bcrypt_cost) {
            bail!("PORTCULLIS_BCRYPT_COST must be between 4 and 31");
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let bcrypt_concurrency: usize = match get("PORTCULLIS_BCRYPT_CONCURRENCY") {
            Some(v) => v
                .parse()
                .context("PORTCULLIS_BCRYPT_CONCURRENCY must be a number")?,
            None => cores,
        };
        if bcrypt_concurrency == 0 {
            bail!("PORTCULLIS_BCRYPT_CONCURRENCY must be at least 1");
        }
        let password_min_score: u8 = get_or("PORTCULLIS_PASSWORD_MIN_SCORE", "2")
            .parse()
            .ok()
            .filter(|s| *s <= 4)
            .context("PORTCULLIS_PASSWORD_MIN_SCORE must be 0..=4")?;
        let access_ttl = parse_duration(&get_or("PORTCULLIS_ACCESS_TTL", "15m"))
            .context("PORTCULLIS_ACCESS_TTL")?;
        let refresh_ttl = parse_duration(&get_or("PORTCULLIS_REFRESH_TTL", "30d"))
            .context("PORTCULLIS_REFRESH_TTL")?;
        let refresh_grace = parse_duration(&get_or("PORTCULLIS_REFRESH_GRACE", "10s"))
            .context("PORTCULLIS_REFRESH_GRACE")?;
        let reauth_window = parse_duration(&get_or("PORTCULLIS_REAUTH_WINDOW", "5m"))
            .context("PORTCULLIS_REAUTH_WINDOW")?;
        if access_ttl.is_zero() || refresh_ttl.is_zero() {
            bail!("token lifetimes must be longer than zero");
        }
        let mongodb_timeout = parse_duration(&get_or("PORTCULLIS_MONGODB_TIMEOUT", "3s"))
            .context("PORTCULLIS_MONGODB_TIMEOUT")?;
        let cors_origins = split_list(get("PORTCULLIS_CORS_ORIGINS"));
        let trusted_proxies = split_list(get("PORTCULLIS_TRUSTED_PROXIES"))
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .with_context(|| format!("PORTCULLIS_TRUSTED_PROXIES: {s:?} is not a CIDR"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let captcha = match get_or("PORTCULLIS_CAPTCHA", "on-failures").as_str() {
            "off" => CaptchaMode::Off,
            "on-failures" => CaptchaMode::OnFailures,
            "always" => CaptchaMode::Always,
            other => bail!("PORTCULLIS_CAPTCHA must be off, on-failures or always, not {other:?}"),
        };
        let login_max_failures = get_or("PORTCULLIS_LOGIN_MAX_FAILURES", "5")
            .parse()
            .context("PORTCULLIS_LOGIN_MAX_FAILURES must be a number")?;
        let rate_limit = match get_or("PORTCULLIS_RATE_LIMIT", "on").as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            other => bail!("PORTCULLIS_RATE_LIMIT must be on or off, not {other:?}"),
        };
        let max_body_bytes = get_or("PORTCULLIS_MAX_BODY_BYTES", "65536")
            .parse()
            .context("PORTCULLIS_MAX_BODY_BYTES must be a number of bytes")?;
        let avatar_max_bytes = get_or("PORTCULLIS_AVATAR_MAX_BYTES", "2097152")
            .parse()
            .context("PORTCULLIS_AVATAR_MAX_BYTES must be a number of bytes")?;
        let reset_ttl = parse_duration(&get_or("PORTCULLIS_RESET_TTL", "30m"))
            .context("PORTCULLIS_RESET_TTL")?;
        let verify_ttl = parse_duration(&get_or("PORTCULLIS_VERIFY_TTL", "24h"))
            .context("PORTCULLIS_VERIFY_TTL")?;
        if reset_ttl.is_zero() || verify_ttl.is_zero() {
            bail!("PORTCULLIS_RESET_TTL and PORTCULLIS_VERIFY_TTL must be longer than zero");
        }
        let require_verified_email =
            match get_or("PORTCULLIS_REQUIRE_VERIFIED_EMAIL", "false").as_str() {
                "true" | "on" | "1" => true,
                "false" | "off" | "0" => false,
                other => {
                    bail!("PORTCULLIS_REQUIRE_VERIFIED_EMAIL must be true or false, not {other:?}")
                }
            };
        let app_url = get("PORTCULLIS_APP_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &app_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            bail!("PORTCULLIS_APP_URL must be an http(s) URL, not {u:?}");
        }
        let passkeys = PasskeySettings {
            rp_id: get("PORTCULLIS_WEBAUTHN_RP_ID").map(|s| s.to_ascii_lowercase()),
            origins: split_list(get("PORTCULLIS_WEBAUTHN_ORIGINS")),
            apple_app_ids: split_list(get("PORTCULLIS_APPLE_APP_IDS")),
            android_apps: split_list(get("PORTCULLIS_ANDROID_APPS"))
                .iter()
                .map(|s| AndroidApp::parse(s))
                .collect::<anyhow::Result<_>>()?,
        };
        // -- hardening (issue 9) --
        let request_timeout = parse_duration(&get_or("PORTCULLIS_HTTP_TIMEOUT", "30s"))
            .context("PORTCULLIS_HTTP_TIMEOUT")?;
        let idle_timeout = parse_duration(&get_or("PORTCULLIS_IDLE_TIMEOUT", "60s"))
            .context("PORTCULLIS_IDLE_TIMEOUT")?;
        if request_timeout.is_zero() || idle_timeout.is_zero() {
            bail!("PORTCULLIS_HTTP_TIMEOUT and PORTCULLIS_IDLE_TIMEOUT must be longer than zero");
        }
        let captcha_difficulty: u64 = get_or("PORTCULLIS_CAPTCHA_DIFFICULTY", "1000000")
            .parse()
            .ok()
            .filter(|n| (1_000..=100_000_000).contains(n))
            .context("PORTCULLIS_CAPTCHA_DIFFICULTY must be a number from 1000 to 100000000")?;
        let max_sessions: u32 = get_or("PORTCULLIS_MAX_SESSIONS", "50")
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .context("PORTCULLIS_MAX_SESSIONS must be a number of at least 1")?;
        let max_passkeys: u32 = get_or("PORTCULLIS_MAX_PASSKEYS", "20")
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .context("PORTCULLIS_MAX_PASSKEYS must be a number from 1 to 1000")?;
        let secret = |key: &str| get(key).map(|s| SecretString::from(s.to_string()));
        let log_format = match get("PORTCULLIS_LOG_FORMAT") {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => bail!("PORTCULLIS_LOG_FORMAT must be pretty or json, not {other:?}"),
            None => {
                use std::io::IsTerminal;
                if std::io::stderr().is_terminal() {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                }
            }
        };

        Ok(Self {
            http: HttpSettings {
                listen,
                public_url,
                public_url_defaulted: get("PORTCULLIS_PUBLIC_URL").is_none(),
                cors_origins,
                trusted_proxies,
                max_body_bytes,
                request_timeout,
                idle_timeout,
                metrics_token: secret("PORTCULLIS_METRICS_TOKEN"),
                introspection_token: secret("PORTCULLIS_INTROSPECTION_TOKEN"),
            },
            tokens: TokenSettings {
                issuer,
                issuer_defaulted: get("PORTCULLIS_ISSUER").is_none(),
                audience: get_or("PORTCULLIS_AUDIENCE", "portcullis"),
                keys_dir: PathBuf::from(get_or("PORTCULLIS_KEYS_DIR", "./keys")),
                signing_alg: SigningAlg::parse(&get_or("PORTCULLIS_SIGNING_ALG", "EdDSA"))?,
                access_ttl,
                refresh_ttl,
                refresh_grace,
                reauth_window,
            },
            passwords: PasswordSettings {
                bcrypt_cost,
                bcrypt_concurrency,
                min_score: password_min_score,
                breached_filter: get("PORTCULLIS_BREACHED_PASSWORDS").map(PathBuf::from),
            },
            store: StoreSettings {
                data_dir: PathBuf::from(get_or("PORTCULLIS_DATA_DIR", "./data")),
                mongodb_uri: get("PORTCULLIS_MONGODB_URI")
                    .map(|s| SecretString::from(s.to_string())),
                mongodb_db: get_or("PORTCULLIS_MONGODB_DB", "portcullis"),
                mongodb_timeout,
            },
            mail: MailSettings {
                smtp_url: get("PORTCULLIS_SMTP_URL").map(|s| SecretString::from(s.to_string())),
                smtp_from: get_or("PORTCULLIS_SMTP_FROM", "Portcullis <no-reply@localhost>"),
                app_url,
                reset_ttl,
                verify_ttl,
                templates_dir: get("PORTCULLIS_TEMPLATES_DIR").map(PathBuf::from),
                require_verified_email,
            },
            limits: LimitSettings {
                captcha,
                login_max_failures,
                rate_limit,
                captcha_difficulty,
                max_sessions,
                max_passkeys,
            },
            avatars: AvatarSettings {
                max_bytes: avatar_max_bytes,
            },
            security: SecuritySettings::from_map(map)?,
            passkeys,
            log_format,
            unknown_keys: unknown_keys(map),
        })
    }
}

/// Security activity (issue 14): the audit log, detection rules, webhooks
/// and shutdown. Every threshold has a documented default (README,
/// "Operating Portcullis").
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// `PORTCULLIS_AUDIT_RETENTION`: how long audit events are kept (default `90d`).
    pub audit_retention: Duration,
    /// `PORTCULLIS_WEBHOOK_URL`: where security events are POSTed (unset: no webhooks).
    pub webhook_url: Option<String>,
    /// `PORTCULLIS_WEBHOOK_SECRET`: HMAC-SHA-256 key of webhook signatures
    /// (`whsec_<base64>` as Standard Webhooks writes it, or any other text,
    /// used as bytes). Required with `PORTCULLIS_WEBHOOK_URL`.
    pub webhook_secret: Option<SecretString>,
    /// `PORTCULLIS_DETECT_ACCOUNT_FAILURES`: failed sign-ins of one account
    /// within 15 minutes that raise `suspicious.failed_logins` (default 5).
    pub detect_account_failures: u32,
    /// `PORTCULLIS_DETECT_STUFFING_ACCOUNTS`: distinct accounts failing from
    /// one IP within the stuffing window that raise
    /// `suspicious.credential_stuffing` (default 10).
    pub detect_stuffing_accounts: u32,
    /// `PORTCULLIS_DETECT_STUFFING_WINDOW` (default `10m`).
    pub detect_stuffing_window: Duration,
    /// `PORTCULLIS_DETECT_BURST_NETWORKS`: distinct networks (/24, /48) one
    /// account signs in from within the burst window that raise
    /// `suspicious.burst` (default 3).
    pub detect_burst_networks: u32,
    /// `PORTCULLIS_DETECT_BURST_WINDOW` (default `10m`).
    pub detect_burst_window: Duration,
    /// `PORTCULLIS_KNOWN_DEVICES`: devices remembered per user for new-device
    /// alerts; the least recently seen is forgotten first (default 20).
    pub known_devices: usize,
    /// `PORTCULLIS_NOT_ME_TTL`: how long the "not me" link of a new-sign-in
    /// notice works (default `7d`).
    pub not_me_ttl: Duration,
    /// `PORTCULLIS_SHUTDOWN_TIMEOUT`: how long in-flight requests may finish
    /// after SIGTERM/SIGINT (default `10s`).
    pub shutdown_timeout: Duration,
}

impl SecuritySettings {
    fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let duration = |key: &str, default: &str| {
            parse_duration(get(key).unwrap_or(default)).with_context(|| key.to_string())
        };
        let number = |key: &str, default: u32| -> anyhow::Result<u32> {
            match get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .with_context(|| format!("{key} must be a whole number of at least 1")),
            }
        };
        let webhook_url = get("PORTCULLIS_WEBHOOK_URL").map(str::to_string);
        let webhook_secret =
            get("PORTCULLIS_WEBHOOK_SECRET").map(|s| SecretString::from(s.to_string()));
        if let Some(url) = &webhook_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("PORTCULLIS_WEBHOOK_URL must be an http(s) URL");
            }
            let Some(secret) = &webhook_secret else {
                bail!("PORTCULLIS_WEBHOOK_URL needs PORTCULLIS_WEBHOOK_SECRET (events are signed)");
            };
            crate::webhooks::check_secret(secret.expose_secret()).map_err(anyhow::Error::msg)?;
            crate::webhooks::check_url(url).map_err(anyhow::Error::msg)?;
        }
        let audit_retention = duration("PORTCULLIS_AUDIT_RETENTION", "90d")?;
        if audit_retention.is_zero() {
            bail!("PORTCULLIS_AUDIT_RETENTION must be longer than zero");
        }
        Ok(Self {
            audit_retention,
            webhook_url,
            webhook_secret,
            detect_account_failures: number("PORTCULLIS_DETECT_ACCOUNT_FAILURES", 5)?,
            detect_stuffing_accounts: number("PORTCULLIS_DETECT_STUFFING_ACCOUNTS", 10)?,
            detect_stuffing_window: duration("PORTCULLIS_DETECT_STUFFING_WINDOW", "10m")?,
            detect_burst_networks: number("PORTCULLIS_DETECT_BURST_NETWORKS", 3)?,
            detect_burst_window: duration("PORTCULLIS_DETECT_BURST_WINDOW", "10m")?,
            known_devices: number("PORTCULLIS_KNOWN_DEVICES", 20)? as usize,
            not_me_ttl: duration("PORTCULLIS_NOT_ME_TTL", "7d")?,
            shutdown_timeout: duration("PORTCULLIS_SHUTDOWN_TIMEOUT", "10s")?,
        })
    }
}

fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads a TOML file into `PORTCULLIS_*` keys.
fn parse_toml(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let key = key.to_ascii_uppercase();
        let key = if key.starts_with("PORTCULLIS_") {
            key
        } else {
            format!("PORTCULLIS_{key}")
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => if b { "on" } else { "off" }.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => bail!("{key}: unsupported value {other}"),
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// Parses durations written like `15m`, `30d`, `10s`, `500ms`, `2h` (or bare seconds).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 15m, 30d or 10s"))?;
    let secs = |m: u64| {
        n.checked_mul(m)
            .map(Duration::from_secs)
            .context("duration too large")
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "w" => secs(7 * 86_400),
        _ => bail!("{s:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)"),
    }
}

#[cfg(test)]
mod tests {
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
}

//! Typed settings, loaded in layers: built-in defaults, then an optional
//! `portcullis.toml`, then `PORTCULLIS_*` environment variables.
//!
//! The TOML file takes the same keys as the environment, either spelled in
//! full (`PORTCULLIS_LISTEN = "0.0.0.0:8080"`) or without the prefix in lower
//! case (`listen = "0.0.0.0:8080"`). Its path is `PORTCULLIS_CONFIG`, or
//! `./portcullis.toml` when that file exists.
//!
//! This module holds [`Settings`], the small enums and the loading; the
//! groups live in sub-modules by concern and are re-exported here, so every
//! type keeps its `crate::config::X` path.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, bail};
use ipnet::IpNet;
use secrecy::SecretString;

mod dev;
mod dpop;
mod federation;
mod groups;
mod keys;
pub mod pages;
mod parse;
mod passkeys;
mod passwordless;
mod performance;
mod security;
#[cfg(test)]
mod tests;

/// A settings map from `(key, value)` pairs, for the config modules' tests.
#[cfg(test)]
pub(crate) fn test_map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

pub use dev::{DEV_BANNER, is_loopback_url};
pub use dpop::{DpopMode, DpopSettings};
pub use federation::{FederationSettings, ProviderKind, ProviderSettings};
pub use groups::{
    AvatarSettings, HttpSettings, LimitSettings, MailSettings, PasswordSettings, StoreSettings,
    TokenSettings,
};
pub use keys::KNOWN_KEYS;
use keys::unknown_keys;
pub use parse::parse_duration;
use parse::{parse_toml, split_list};
pub use passkeys::{AndroidApp, PasskeySettings};
pub use passwordless::PasswordlessSettings;
pub use performance::{AuditRefresh, PerformanceSettings, RefreshSigning};
pub use security::SecuritySettings;

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
    /// Email sign-in and anonymous users.
    pub passwordless: PasswordlessSettings,
    /// Federated sign-in: upstream identity providers.
    pub federation: FederationSettings,
    /// The hosted sign-in pages' theme (OpenID provider).
    pub pages: pages::PagesSettings,
    /// Sender-constrained tokens (DPoP, RFC 9449).
    pub dpop: DpopSettings,
    /// Throughput and memory trade-offs (refresh signing, refresh audit
    /// events, the embedded store's cache).
    pub performance: PerformanceSettings,
    /// `PORTCULLIS_LOG_FORMAT`: `pretty` or `json` (default: pretty on a terminal).
    pub log_format: LogFormat,
    /// `PORTCULLIS_DEV` or `serve --dev`: developer mode (see
    /// [`Settings::enable_dev`]).
    pub dev: bool,
    /// `PORTCULLIS_*` keys that were set but mean nothing to this version
    /// (typos, keys of a later release). Reported at start-up.
    pub unknown_keys: Vec<String>,
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
    #[allow(
        clippy::too_many_lines,
        reason = "one statement per configuration group, in the order of KNOWN_KEYS; each group's parsing lives in its own file"
    )]
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
        // -- hardening --
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

        let dev = dev::parse_dev(get("PORTCULLIS_DEV"))?;
        let mut settings = Self {
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
            dpop: DpopSettings::from_map(map)?,
            performance: PerformanceSettings::from_map(map)?,
            passkeys,
            passwordless: PasswordlessSettings::from_map(map)?,
            federation: FederationSettings::from_map(map)?,
            pages: pages::PagesSettings::from_map(map)?,
            log_format,
            dev: false,
            unknown_keys: unknown_keys(map),
        };
        if dev {
            settings.enable_dev()?;
        }
        Ok(settings)
    }
}

//! The plain settings groups: HTTP, tokens, passwords, store, mail, limits
//! and avatars. Each is a struct of typed fields filled by
//! `Settings::from_map`; the groups with parsing of their own (passkeys,
//! security) have their own modules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use super::{CaptchaMode, SigningAlg};

/// The HTTP side.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `PORTCULLIS_LISTEN`: socket address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `PORTCULLIS_PUBLIC_URL`: base URL clients reach the service at
    /// (default `http://localhost:<port of PORTCULLIS_LISTEN>`).
    pub public_url: String,
    /// True when `PORTCULLIS_PUBLIC_URL` was not set: the URL then follows
    /// the port actually bound (see [`Settings::bound_to`](super::Settings::bound_to)).
    pub public_url_defaulted: bool,
    /// `PORTCULLIS_CORS_ORIGINS`: origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `PORTCULLIS_TRUSTED_PROXIES`: CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `PORTCULLIS_MAX_BODY_BYTES`: largest accepted JSON request body (default 64 KiB).
    pub max_body_bytes: usize,
    // -- hardening --
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
    /// `portcullis passwords build-filter`; unset, no screening.
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
    // -- hardening --
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

impl MailSettings {
    /// Base of the links in emails: `PORTCULLIS_APP_URL`, else `public_url`.
    pub fn link_base<'a>(&'a self, public_url: &'a str) -> &'a str {
        self.app_url.as_deref().unwrap_or(public_url)
    }
}

//! The use cases, independent of HTTP: one shared [`Core`] and one file per
//! capability, each an `impl Core` block (users, sessions, passwords, and
//! the guards they share). Use cases take and return service types
//! ([`Account`], [`IssuedTokens`], [`SessionSummary`]), never storage records
//! that hold secrets, and fail with [`Error`], which knows nothing of HTTP.

pub mod dpop;
mod error;
mod guards;
mod mfa;
mod passwords;
mod security;
mod sessions;
mod users;
// Profile, avatar, admin, import.
mod admin;
mod avatars;
mod import;
mod profile;
// Email flows.
mod mail;
mod recovery;
mod tickets;
mod verification;
// Passkeys.
mod passkeys;
// -- hardening --
mod email_keys;
mod oauth;
pub mod oidc;
mod refresh_audit;
mod session_cap;
mod throttle;
// Step-up and credential safety.
mod stepup;
// Passwordless sign-in and anonymous users.
mod passwordless;
// Federated sign-in.
pub mod federation;
// Lean read path.
#[cfg(test)]
mod read_path_tests;
// Outside probe.
#[cfg(test)]
mod probe_tests;

use std::net::IpAddr;
use std::sync::Arc;

pub use admin::{AdminPatch, UserPage};
pub use avatars::Avatar;
pub use error::{Error, FieldError, Result};
pub use import::{ImportLine, ImportOutcome};
pub use mfa::{MFA_TOKEN_TTL_SECS, MfaChallenge, SecondFactor, SignIn, TotpEnrolment};
pub use oauth::Introspection;
pub use profile::ProfilePatch;
pub use security::{AuditFilter, EventPage, SecurityEvent, SecurityState, network_of, ua_family};
pub use sessions::{ADMIN_ROLE, LogoutScope};
pub use users::Registration;
// Email flows.
pub use mail::{GIVE_UP_AFTER, Notice as MailNotice, Postbox, SEND_LEASE, SendRound};
pub use recovery::PasswordReset;
pub use tickets::TicketProof;
// Passkeys.
pub use passkeys::{AssociationFiles, PasskeyAssertion, PasskeyOptions, PasskeySummary};
// Step-up.
pub use stepup::Proof;
// Passwordless sign-in and anonymous users.
pub use passwordless::{AnonymousUpgrade, UpgradeOutcome};
// Federated sign-in.
pub use federation::flows::{AuthorizeRequest, CallbackParams};
pub use federation::{IdentitySummary, IssuedNonce, LinkOffer, ProviderInfo};

use crate::auth::{Captcha, Limits, PasswordHasher, TokenService};
use crate::clock::{Clock, UnixTime};
use crate::config::Settings;
use crate::domain::{PasswordPolicy, UserId};
use crate::store::{DynStore, SessionRecord, UserRecord};

/// The service core shared by all requests: settings and every part the use
/// cases need ([`CoreParts`], behind one `Arc`). A clone is one reference
/// count: poem's `.data(core)` clones it into every request. The parts are
/// private to the crate: the API layer calls use cases, never the parts.
#[derive(Clone)]
pub struct Core(Arc<CoreParts>);

impl Core {
    /// The core over its parts.
    pub(crate) fn new(parts: CoreParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for Core {
    type Target = CoreParts;
    fn deref(&self) -> &CoreParts {
        &self.0
    }
}

/// Everything a [`Core`] holds.
pub struct CoreParts {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: DynStore,
    pub(crate) tokens: TokenService,
    /// Access tokens that verified, by their SHA-256: a bearer
    /// check of a token seen before skips the signature check only.
    pub(crate) verified_tokens: Arc<crate::auth::TokenCache>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) policy: PasswordPolicy,
    pub(crate) limits: Arc<Limits>,
    pub(crate) captcha: Arc<Captcha>,
    pub(crate) clock: Clock,
    /// Audit buffer and detection state (see `security/`).
    pub(crate) security: Arc<SecurityState>,
    /// Keys of second factors: TOTP secret sealing, recovery-code hashing.
    pub(crate) second_factor: Arc<crate::auth::totp::SecondFactorKeys>,
    /// Mailer, templates and the code key of the email flows.
    pub(crate) mail: Arc<Postbox>,
    // Passkeys.
    /// `None` when passkeys are off (public URL without a domain name).
    pub(crate) passkeys: Option<Arc<crate::auth::PasskeyRp>>,
    /// Breached-password filter (`PORTCULLIS_BREACHED_PASSWORDS`), if loaded.
    pub(crate) breached: Option<Arc<crate::auth::breached::BreachedFilter>>,
    /// Upstream identity providers and their caches (federated sign-in).
    pub(crate) federation: Arc<federation::Upstreams>,
    /// Key of the stateless DPoP server nonces (`keys/dpop-nonce-hmac.key`).
    pub(crate) dpop_nonces: Arc<crate::auth::dpop::NonceKeys>,
}

/// A verified caller: the access token checked out and its session is live.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user id (`sub`).
    pub user_id: UserId,
    /// The session id (`sid`).
    pub sid: String,
    /// Roles carried by the token.
    pub roles: Vec<String>,
}

/// An access token whose signature and claims verified, its session not
/// yet checked: only use cases that check the session take it
/// ([`Core::me_checked`]). Made only by [`Core::verify_bearer`].
#[derive(Debug, Clone)]
pub struct BearerToken {
    claims: Arc<crate::auth::AccessClaims>,
}

impl BearerToken {
    /// The caller, once the session was found live.
    fn principal(&self) -> Principal {
        Principal {
            user_id: UserId::from(self.claims.sub.as_str()),
            sid: self.claims.sid.clone(),
            roles: self.claims.roles.clone(),
        }
    }
}

/// Where a request came from (stored with the session, logged).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address (see `api::extract::client_ip` for proxies).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, as sent.
    pub user_agent: Option<String>,
}

/// An account as the use cases hand it out: profile fields only, no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable user id (the `sub` of tokens).
    pub id: UserId,
    /// Normalized email address.
    pub email: String,
    /// Whether the address was proven.
    pub email_verified: bool,
    /// Optional name shown to others.
    pub display_name: Option<String>,
    /// Preferred BCP 47 language tag.
    pub locale: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// The application's JSON object for this user.
    pub metadata: Option<serde_json::Value>,
    /// Absolute URL of the avatar image, when the user has one.
    pub avatar_url: Option<String>,
    /// How many passkeys the user has registered.
    pub passkeys: u32,
    /// Roles (`user`, `admin`).
    pub roles: Vec<String>,
    /// A disabled account cannot sign in; its tokens are refused.
    pub disabled: bool,
    /// Whether two-factor sign-in is on.
    pub mfa_enabled: bool,
    /// When the account was created.
    pub created_at: UnixTime,
    /// When the profile last changed.
    pub updated_at: UnixTime,
    /// A guest (`POST /v1/sessions/anonymous`) not yet upgraded; its
    /// `email` is empty.
    pub is_anonymous: bool,
}

impl Account {
    /// The account of a stored profile; `public_url` is the base of
    /// `avatar_url`.
    pub(crate) fn new(u: UserRecord, public_url: &str) -> Self {
        let avatar_url = u
            .avatar_etag
            .as_ref()
            .map(|_| format!("{public_url}/v1/users/{}/avatar", u.id));
        // Stored metadata was validated on the way in; unreadable text
        // (never written by this service) reads as none rather than failing.
        let metadata = u
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok());
        // A guest's stand-in address is nobody's: it is not shown.
        let email = if u.anonymous { String::new() } else { u.email };
        Self {
            id: u.id,
            email,
            email_verified: u.email_verified,
            display_name: u.display_name,
            locale: u.locale,
            timezone: u.timezone,
            metadata,
            avatar_url,
            roles: u.roles,
            disabled: u.disabled,
            mfa_enabled: u.mfa_enabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
            passkeys: u.passkey_count,
            is_anonymous: u.anonymous,
        }
    }
}

/// A freshly issued token pair and the account it is for.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// Signed access token (`typ: at+jwt`).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Signed single-use refresh token (`typ: refresh+jwt`).
    pub refresh_token: String,
    /// The signed-in account.
    pub account: Account,
    /// The session (refresh family) the pair belongs to.
    pub session_id: String,
    /// Thumbprint of the DPoP key the pair is bound to (`cnf.jkt`); `None`
    /// for bearer tokens.
    pub dpop_jkt: Option<String>,
}

impl IssuedTokens {
    /// `DPoP` for bound tokens, `Bearer` otherwise (the `token_type`).
    pub fn token_type(&self) -> &'static str {
        if self.dpop_jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }
}

/// One active session of a user, as listed to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Session id (`sid`).
    pub id: String,
    /// True for the session of the token making the request.
    pub current: bool,
    /// When the session began.
    pub created_at: UnixTime,
    /// When it was last refreshed.
    pub last_used_at: UnixTime,
    /// When it ends unless refreshed.
    pub expires_at: UnixTime,
    /// Authentication methods of the sign-in.
    pub amr: Vec<String>,
    /// `User-Agent` at sign-in.
    pub user_agent: Option<String>,
    /// Client address at sign-in.
    pub ip: Option<String>,
}

impl SessionSummary {
    fn new(s: SessionRecord, current_sid: &str) -> Self {
        Self {
            current: s.id == current_sid,
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            amr: s.amr,
            user_agent: s.user_agent,
            ip: s.ip,
        }
    }
}

/// What discovery documents publish about the token issuer.
#[derive(Debug, Clone)]
pub struct IssuerInfo {
    /// The `iss` of every token.
    pub issuer: String,
    /// Base URL clients reach the service at.
    pub public_url: String,
    /// JOSE algorithms of the published keys.
    pub algorithms: Vec<String>,
}

impl Core {
    /// The service's view of a stored account.
    pub(crate) fn to_account(&self, u: UserRecord) -> Account {
        Account::new(u, &self.settings.http.public_url)
    }

    /// The clock every expiry rule reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Public signing keys (JWKS, RFC 7517).
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.tokens.ring().jwks()
    }

    /// Issuer, public URL and algorithms for discovery.
    pub fn issuer_info(&self) -> IssuerInfo {
        let algorithms = self
            .jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_algorithm.map(|a| a.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        IssuerInfo {
            issuer: self.tokens.issuer().to_string(),
            public_url: self.settings.http.public_url.clone(),
            algorithms,
        }
    }

    /// Readiness: the store answers.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness probe failed");
            Error::Unavailable
        })
    }

    /// A fresh proof-of-work challenge.
    pub fn captcha_challenge(&self) -> crate::auth::captcha::Challenge {
        self.captcha.challenge(self.clock.now_u64())
    }

    /// Proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> &[ipnet::IpNet] {
        &self.settings.http.trusted_proxies
    }

    /// The bearer token `/metrics` demands, if configured.
    pub fn metrics_token(&self) -> Option<&secrecy::SecretString> {
        self.settings.http.metrics_token.as_ref()
    }

    /// Name of the store backend, for logs.
    pub fn store_name(&self) -> String {
        self.store.describe()
    }

    /// Housekeeping: forgets idle rate-limit buckets and purges expired
    /// records (sessions, single-use keys, failure counts) from the store.
    pub async fn housekeeping(&self) -> Result<u64> {
        self.limits.housekeeping();
        self.purge_mail().await?;
        Ok(self.store.purge_expired(self.clock.now()).await?)
    }
}

/// Registers `email` with `password` and signs in (tests of the service).
#[cfg(test)]
pub(crate) async fn test_signed_up(core: &Core, email: &str, password: &str) -> IssuedTokens {
    use secrecy::SecretString;
    let input = Registration {
        email: email.into(),
        password: SecretString::from(password),
        display_name: None,
        locale: None,
        captcha: None,
    };
    core.register(input, &ClientInfo::default()).await.unwrap();
    let SignIn::Tokens(t) = core
        .login(
            email,
            SecretString::from(password),
            None,
            ClientInfo::default(),
        )
        .await
        .unwrap()
    else {
        panic!("no tokens")
    };
    *t
}

/// A service on a fresh embedded store in `dir` (bcrypt cost 4, no rate
/// limits), its clock stopped at `start`: for the unit tests of use cases.
#[cfg(test)]
pub(crate) async fn test_core(dir: &std::path::Path, start: i64) -> Core {
    let map = std::collections::BTreeMap::from([
        (
            "PORTCULLIS_DATA_DIR".to_string(),
            dir.join("data").display().to_string(),
        ),
        (
            "PORTCULLIS_KEYS_DIR".to_string(),
            dir.join("keys").display().to_string(),
        ),
        ("PORTCULLIS_BCRYPT_COST".to_string(), "4".to_string()),
        ("PORTCULLIS_RATE_LIMIT".to_string(), "off".to_string()),
    ]);
    let settings = crate::config::Settings::from_map(&map).expect("test settings");
    crate::startup::build_core(settings, crate::clock::Clock::manual(start))
        .await
        .expect("test core")
}

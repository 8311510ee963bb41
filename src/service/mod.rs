//! The use cases, independent of HTTP: one shared [`Core`] and one file per
//! capability, each an `impl Core` block (accounts, sessions, passwords, and
//! the guards they share). Use cases take and return service types
//! ([`Account`], [`IssuedTokens`], [`SessionSummary`]), never storage records
//! that hold secrets, and fail with [`Error`], which knows nothing of HTTP.

mod accounts;
mod error;
mod guards;
mod passwords;
mod sessions;
// -- hardening (issue 9) --
mod email_keys;
mod oauth;
mod session_cap;
mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

pub use accounts::Registration;
pub use error::{Error, FieldError, Result};
pub use oauth::Introspection;
pub use sessions::{ADMIN_ROLE, LogoutScope};

use crate::auth::{Captcha, Limits, PasswordHasher, TokenService};
use crate::clock::{Clock, UnixTime};
use crate::config::Settings;
use crate::domain::PasswordPolicy;
use crate::store::{DynStore, SessionRecord, UserRecord};

/// The service core shared by all requests: settings and every part the use
/// cases need. Cheap to clone (everything is behind an `Arc`). Fields are
/// private to the crate: the API layer calls use cases, never the parts.
#[derive(Clone)]
pub struct Core {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: DynStore,
    pub(crate) tokens: TokenService,
    pub(crate) hasher: PasswordHasher,
    pub(crate) policy: PasswordPolicy,
    pub(crate) limits: Arc<Limits>,
    pub(crate) captcha: Arc<Captcha>,
    pub(crate) clock: Clock,
    /// Breached-password filter (`PORTCULLIS_BREACHED_PASSWORDS`), if loaded.
    pub(crate) breached: Option<Arc<crate::auth::breached::BreachedFilter>>,
}

/// A verified caller: the access token checked out and its session is live.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user id (`sub`).
    pub user_id: String,
    /// The session id (`sid`).
    pub sid: String,
    /// Roles carried by the token.
    pub roles: Vec<String>,
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
    pub id: String,
    /// Normalized email address.
    pub email: String,
    /// Whether the address was proven.
    pub email_verified: bool,
    /// Optional name shown to others.
    pub display_name: Option<String>,
    /// Roles (`user`, `admin`).
    pub roles: Vec<String>,
    /// When the account was created.
    pub created_at: UnixTime,
    /// When the profile last changed.
    pub updated_at: UnixTime,
}

impl From<UserRecord> for Account {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id,
            email: u.email,
            email_verified: u.email_verified,
            display_name: u.display_name,
            roles: u.roles,
            created_at: u.created_at,
            updated_at: u.updated_at,
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
        Ok(self.store.purge_expired(self.clock.now()).await?)
    }
}

//! Federated sign-in: users sign in with an upstream identity provider
//! (Google, Apple, Microsoft, GitHub, any OpenID Connect provider), from a
//! native app (the platform SDK's ID token, `POST /v1/sessions/id-token`)
//! or through a redirect (`/v1/federation/{provider}/authorize` →
//! `callback` → `POST /v1/sessions/federation`), and link such identities
//! to their account.
//!
//! The rules (DESIGN "Federated sign-in"), and where they live:
//! 1. An identity is `(provider, iss, sub)` ([`IdentityStore`](crate::store::IdentityStore),
//!    unique on both backends); a linked one signs in to its account
//!    whatever its email says now (`accounts/`, [`Core::resolve`]).
//! 2. An unknown identity with a verified email no account holds creates
//!    an account (verified, no password) unless signup is off.
//! 3. A verified email that an account holds is never linked silently:
//!    409 `link-required` with a single-use `link_token`, which the owner
//!    posts to `POST /v1/me/identities` after signing in by their own means.
//!    Only `TRUST_EMAIL=true` **and** an account whose own address is
//!    verified link at once, so an unverified account registered with a
//!    victim's address (pre-account takeover) is never linked or entered.
//! 4. No verified email: 422 `provider-email-unverified`, nothing written.
//! 5. Native tokens need a server nonce (`POST /v1/federation/nonce`,
//!    single use): the token's `nonce` is it or its SHA-256 hex. Each ID
//!    token is accepted once (its hash claimed until it expires). `aud` is
//!    the `CLIENT_ID` or one of the `NATIVE_CLIENT_IDS`.
//! 6. Apple's name (the `user` form field, or `name` in the native
//!    request) fills an empty `display_name`.
//! 7. Tokens carry `amr: ["fed"]` and `idp`; an account with a second
//!    factor answers `mfa_required` like a password sign-in.
//!
//! Everything between two requests (server nonces, the state, nonce and
//! PKCE verifier of a redirect, one-time codes, link tokens) is a
//! [`CeremonyRecord`] in the store, taken once, with an expiry: a flow
//! begun on one replica ends on any other. The claims of an upstream are
//! kept there too, never in a client-held value.

mod accounts;
pub mod flows;
pub mod upstream;

use serde::{Deserialize, Serialize};

use super::{ClientInfo, Core, Error, Principal, Result};
use crate::clock::UnixTime;
use crate::domain::UserId;
use crate::store::{CeremonyKind, CeremonyRecord, IdentityRecord, StoreError};
pub use upstream::Upstreams;
use upstream::{random_token, sha256_hex};

/// Lifetime of a server nonce and of a redirect flow's state.
pub const NONCE_TTL_SECS: i64 = 600;
/// Lifetime of a one-time code of the redirect flow.
pub const CODE_TTL_SECS: i64 = 300;
/// Lifetime of a link token.
pub const LINK_TTL_SECS: i64 = 600;

/// A configured provider, as `GET /v1/providers` lists it.
#[derive(Debug, Clone)]
pub struct ProviderInfo {
    /// The id used in routes and requests.
    pub id: String,
    /// `google`, `apple`, `microsoft`, `github`, `oidc`.
    pub kind: &'static str,
    /// The button label.
    pub name: String,
}

/// A server nonce for a native sign-in.
#[derive(Debug, Clone)]
pub struct IssuedNonce {
    /// The nonce to hand to the platform SDK (raw, or hashed as iOS does).
    pub nonce: String,
    /// Seconds it stays usable.
    pub expires_in: u64,
}

/// A linked identity, as its owner sees it.
#[derive(Debug, Clone)]
pub struct IdentitySummary {
    /// Our id of the identity.
    pub id: String,
    /// The provider id.
    pub provider: String,
    /// The email the provider gave last.
    pub email: Option<String>,
    /// When it was linked.
    pub created_at: UnixTime,
    /// When it last signed in.
    pub last_used_at: Option<UnixTime>,
}

impl From<IdentityRecord> for IdentitySummary {
    fn from(r: IdentityRecord) -> Self {
        Self {
            id: r.id,
            provider: r.provider,
            email: r.email,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// What a client offers to link (`POST /v1/me/identities`).
#[derive(Debug)]
pub enum LinkOffer {
    /// A `link_token` from a `link-required` answer.
    LinkToken(String),
    /// A native ID token with its server nonce.
    IdToken {
        /// The provider id.
        provider: String,
        /// The ID token.
        id_token: String,
        /// The server nonce it was made for.
        nonce: String,
    },
    /// A one-time code from a redirect flow begun with `intent=link`.
    Code {
        /// The code.
        code: String,
        /// The PKCE verifier of the challenge the flow began with.
        code_verifier: String,
    },
}

/// What an upstream proved about a user: kept server-side between the
/// steps of a flow (in a one-time code or a link token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Asserted {
    provider: String,
    iss: String,
    sub: String,
    /// As the provider gave it (not yet normalized).
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
}

/// Ceremony kinds of federated sign-in (the `kind` of a [`CeremonyRecord`];
/// its id carries the same prefix, so no kind can take another's record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Nonce,
    State,
    Code,
    Link,
}

impl Step {
    fn kind(self) -> CeremonyKind {
        match self {
            Self::Nonce => CeremonyKind::FederationNonce,
            Self::State => CeremonyKind::FederationState,
            Self::Code => CeremonyKind::FederationCode,
            Self::Link => CeremonyKind::FederationLink,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Nonce => "fed-nonce",
            Self::State => "fed-state",
            Self::Code => "fed-code",
            Self::Link => "fed-link",
        }
    }

    /// The ceremony id of a value of this step. Codes and link tokens are
    /// bearer secrets: only their hash is stored.
    fn id(self, value: &str) -> String {
        match self {
            Self::Nonce | Self::State => format!("{}:{value}", self.as_str()),
            Self::Code | Self::Link => format!("{}:{}", self.as_str(), sha256_hex(value)),
        }
    }
}

impl Core {
    /// Stores `payload` under a fresh random value of `step`; returns the value.
    async fn save_step<T: Serialize>(&self, step: Step, payload: &T, ttl: i64) -> Result<String> {
        let value = random_token(32);
        let record = CeremonyRecord {
            id: step.id(&value),
            kind: step.kind(),
            user_id: None,
            state: serde_json::to_string(payload).map_err(|e| Error::Unexpected(e.into()))?,
            expires_at: self.clock.now().saturating_add(ttl),
        };
        match self.store.save_ceremony(&record).await {
            Ok(()) => Ok(value),
            Err(StoreError::Conflict) => Err(Error::Unexpected(anyhow::anyhow!(
                "random ceremony id taken"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the record of `value` (once); `None` when unknown, used or expired.
    async fn take_step<T: for<'de> Deserialize<'de>>(
        &self,
        step: Step,
        value: &str,
    ) -> Result<Option<T>> {
        if value.is_empty() || value.len() > 512 {
            return Ok(None);
        }
        let Some(record) = self
            .store
            .take_ceremony(&step.id(value), self.clock.now())
            .await?
        else {
            return Ok(None);
        };
        if record.kind != step.kind() {
            return Ok(None);
        }
        Ok(serde_json::from_str(&record.state).ok())
    }

    /// `GET /v1/providers`.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.federation
            .all()
            .map(|u| ProviderInfo {
                id: u.settings.id.clone(),
                kind: u.settings.kind.as_str(),
                name: u.settings.name.clone(),
            })
            .collect()
    }

    /// `POST /v1/federation/nonce`: a single-use server nonce (10 minutes).
    pub async fn federation_nonce(&self, client: &ClientInfo) -> Result<IssuedNonce> {
        self.rate_limit(crate::auth::limits::Action::PasskeyOptions, client)?;
        let nonce = self.save_step(Step::Nonce, &(), NONCE_TTL_SECS).await?;
        Ok(IssuedNonce {
            nonce,
            expires_in: NONCE_TTL_SECS.unsigned_abs(),
        })
    }

    /// `GET /v1/me/identities`.
    pub async fn identities(&self, who: &Principal) -> Result<Vec<IdentitySummary>> {
        Ok(self
            .store
            .identities_of(&who.user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The identities of any user (the admin view).
    pub async fn identities_of_user(&self, user_id: &UserId) -> Result<Vec<IdentitySummary>> {
        Ok(self
            .store
            .identities_of(user_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

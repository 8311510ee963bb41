//! The claims of each kind of token, their JOSE `typ` values, the time
//! claims every verification checks, and [`TokenError`].

use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// JOSE `typ` of access tokens (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";
/// JOSE `typ` of refresh tokens.
pub const REFRESH_TYP: &str = "refresh+jwt";

/// JOSE `typ` of the token between the password and the second factor
/// (`POST /v1/sessions` → `POST /v1/sessions/mfa`).
pub const MFA_TYP: &str = "mfa+jwt";
/// JOSE `typ` of the "not me" token of a new-sign-in notice.
pub const NOT_ME_TYP: &str = "notme+jwt";

/// Clock skew tolerated on `exp`/`nbf`/`iat`, deliberately small
/// (jsonwebtoken's default is 60 s).
pub const LEEWAY_SECS: u64 = 5;

/// The registered claims (RFC 7519 §4.1) every kind of token carries, in
/// one place: each kind's claims hold them flattened (`#[serde(flatten)]`,
/// so the JSON is the flat object it always was) and read through to them
/// (`claims.sub`, `claims.exp`: [`std::ops::Deref`]).
///
/// Flattening makes serde buffer the object before handing its fields out;
/// on the bearer path that costs nothing that matters: an access token is
/// decoded once per token (later requests hit the verified-token cache,
/// `auth::token_cache`), and then next to a signature check that costs
/// tens of times more. Measured (`tokens::tests::flatten_costs_little_next_to_the_signature`,
/// a test build, which overstates decoding): 7.9 µs to decode flat claims,
/// 9.6 µs flattened, 105 µs for the whole `verify_access`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegisteredClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject: the user id.
    pub sub: UserId,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Unique token id (a refresh token's: the family's current generation;
    /// an mfa token's: claimed once used).
    pub jti: String,
}

/// A kind of token's claims read through to their [`RegisteredClaims`], and
/// get their time claims checked from there ([`TimeClaims`]).
macro_rules! registered {
    ($($kind:ty),+) => {$(
        impl std::ops::Deref for $kind {
            type Target = $crate::auth::tokens::RegisteredClaims;

            fn deref(&self) -> &$crate::auth::tokens::RegisteredClaims {
                &self.registered
            }
        }

        impl $crate::auth::tokens::TimeClaims for $kind {
            fn exp(&self) -> u64 {
                self.registered.exp
            }
            fn nbf(&self) -> u64 {
                self.registered.nbf
            }
        }
    )+};
}
pub(crate) use registered;

registered!(AccessClaims, RefreshClaims, MfaClaims);

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// `iss`, `aud`, `sub` (the user id), `exp`, `iat`, `nbf`, `jti`.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// RFC 9068 `client_id` (the audience).
    pub client_id: String,
    /// Session (refresh family) id.
    pub sid: String,
    /// Authentication methods (RFC 8176): `pwd`, `otp`, ...
    pub amr: Vec<String>,
    /// Roles of the user at issue time.
    pub roles: Vec<String>,
    /// When the user last proved a credential (OIDC `auth_time`, Unix
    /// seconds): the sign-in that opened the session, kept across refreshes.
    /// (Absent from tokens signed before it existed: read as 0.)
    #[serde(default)]
    pub auth_time: u64,
    /// A guest user (`POST /v1/sessions/anonymous`) not yet upgraded;
    /// left out of the token otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_anonymous: bool,
    /// The upstream identity provider of a federated sign-in (its id in
    /// `PORTCULLIS_PROVIDERS`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// RFC 9449 confirmation: the DPoP key the token is bound to. Absent
    /// from bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 7800 / RFC 9449 `cnf` claim of a sender-constrained token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    /// RFC 7638 thumbprint (SHA-256, base64url) of the DPoP public key.
    pub jkt: String,
}

/// Claims of a refresh token (its `exp` is the session's expiry, its `jti`
/// the family's current generation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshClaims {
    /// `iss`, `aud`, `sub` (the user id), `exp`, `iat`, `nbf`, `jti`.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// Session (refresh family) id.
    pub sid: String,
    /// The DPoP key the session is bound to: the token refreshes only with
    /// a proof by it (checked before the rotation, so a thief holding the
    /// token alone cannot burn the family). Absent for bearer sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// Claims of an `mfa+jwt` token: proof that the password of `sub` was
/// right, good for one second-factor step within its short lifetime. Its
/// `typ` keeps it from passing as an access or refresh token; its `jti` is
/// claimed in the store when used, so it works once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MfaClaims {
    /// `iss`, `aud`, `sub` (the user id), `exp`, `iat` (when the password
    /// was checked), `nbf`, `jti` (this sign-in attempt, claimed once used).
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// Methods proven so far (`pwd`, or `fed` after a federated sign-in).
    pub amr: Vec<String>,
    /// The upstream identity provider of a federated sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

/// Why a token was refused. The text is safe to show to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed JWS compact token.
    Malformed,
    /// The JOSE `typ` is not the expected kind of token.
    WrongType,
    /// The `kid` names no key of our ring.
    UnknownKey,
    /// The `alg` is not the named key's algorithm.
    AlgorithmNotAllowed,
    /// A header that could pick a key (`jku`, `jwk`, `x5u`, `x5c`, `crit`).
    ForbiddenHeader,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iss` is not ours.
    WrongIssuer,
    /// `aud` is not ours.
    WrongAudience,
    /// A required claim is missing or of the wrong type.
    InvalidClaims,
}

impl TokenError {
    /// Short, client-safe reason (goes into `WWW-Authenticate`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed token",
            Self::WrongType => "wrong token type",
            Self::UnknownKey => "unknown signing key",
            Self::AlgorithmNotAllowed => "algorithm not allowed",
            Self::ForbiddenHeader => "header not allowed",
            Self::BadSignature => "bad signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::InvalidClaims => "invalid claims",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

/// The time claims every token kind carries, checked against the service clock.
pub trait TimeClaims {
    /// Expiry, Unix seconds.
    fn exp(&self) -> u64;
    /// Not before, Unix seconds.
    fn nbf(&self) -> u64;
}

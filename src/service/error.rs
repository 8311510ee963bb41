//! What a use case can fail with, in the service's own terms. No HTTP here:
//! `api::problem` maps each variant to a status and a problem+json body.

use crate::auth::TokenError;
use crate::store::StoreError;

/// One field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Name of the offending field of the request body.
    pub field: String,
    /// Machine-readable reason, e.g. `too_short`, `too_common`, `invalid`.
    pub code: String,
    /// Human-readable explanation.
    pub detail: String,
}

impl FieldError {
    /// A failure of `field` with a machine-readable `code`.
    pub fn new(field: &str, code: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            code: code.to_string(),
            detail: detail.into(),
        }
    }

    /// The usual shape: `field` is `invalid` because "<what> <why>".
    pub fn invalid(field: &str, what: &str, why: &str) -> Self {
        Self::new(field, "invalid", format!("{what} {why}"))
    }
}

/// Everything a use case can fail with. Expected failures are variants;
/// `Unexpected` takes the rest (its cause is logged, never shown).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that breaks a rule; one entry per offending field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Unknown email or wrong password (indistinguishable by design).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The current password given to confirm a change is wrong.
    #[error("wrong password")]
    WrongPassword,
    /// A second factor (TOTP code or recovery code) is wrong or was used.
    #[error("invalid code")]
    InvalidCode,
    /// The account has two-factor sign-in on and the flow needs a right
    /// second factor (`mfa_code` or `recovery_code`); the text says which
    /// part was missing or wrong and is safe to show.
    #[error("second factor required: {0}")]
    MfaRequired(&'static str),
    /// A bearer route was called without credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// `POST /oauth/introspect` without the resource servers' credential
    /// (`PORTCULLIS_INTROSPECTION_TOKEN`), or with a wrong one.
    #[error("introspection credential missing or wrong")]
    IntrospectionCallerRefused,
    /// A token was refused; the reason is safe to show to the client.
    #[error("token invalid: {0}")]
    TokenInvalid(&'static str),
    /// A single-use link token (from an email) is invalid, expired or
    /// already used.
    #[error("link invalid: {0}")]
    LinkInvalid(&'static str),
    /// The account exists but is disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The named thing does not exist (or is not the caller's).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A unique value is taken.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Too many requests; try again after `retry_after` seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// A CAPTCHA solution is needed (missing, wrong, expired or used).
    #[error("captcha required")]
    CaptchaRequired,
    /// The body is not of a type the operation accepts (or its bytes are
    /// not what its type says); the reason is safe to show.
    #[error("unsupported media: {0}")]
    UnsupportedMedia(&'static str),
    /// A reset or verification link or code is invalid, expired, used,
    /// superseded, or the code is wrong (one answer for all).
    #[error("token invalid or expired")]
    TicketInvalid,
    /// Sign-in needs a verified email address (`PORTCULLIS_REQUIRE_VERIFIED_EMAIL`).
    #[error("email unverified")]
    EmailUnverified,
    // Passkeys.
    /// A passkey registration was refused (bad or expired challenge,
    /// credential that does not verify); the reason is safe to show.
    #[error("passkey invalid: {0}")]
    PasskeyInvalid(String),
    /// A passkey sign-in was refused; the reason is safe to show.
    #[error("passkey rejected: {0}")]
    PasskeyRejected(String),
    // Step-up.
    /// The change needs a recent proof of the user's identity on this
    /// session (or one in the request); `methods` are the kinds the
    /// account has (`password`, `totp`, `passkey`).
    #[error("reauthentication required")]
    ReauthenticationRequired {
        /// The proofs the account can give.
        methods: Vec<&'static str>,
    },
    /// The account has the most passkeys allowed (`PORTCULLIS_MAX_PASSKEYS`).
    #[error("passkey limit reached")]
    PasskeyLimit {
        /// The limit.
        max: u32,
    },
    // Anonymous users.
    /// `POST /v1/sessions/anonymous` while `PORTCULLIS_ANONYMOUS` is off.
    #[error("anonymous users are off")]
    AnonymousDisabled,
    /// An anonymous user tried what needs a full account (a passkey, TOTP,
    /// an email change); the text says what.
    #[error("not for anonymous users")]
    AnonymousUser(&'static str),
    // Federated sign-in.
    /// An upstream ID token was refused (signature, `iss`, `aud`, `exp`,
    /// nonce missing, unknown or used, or the token used before); the
    /// reason is safe to show.
    #[error("id token invalid: {0}")]
    IdTokenInvalid(&'static str),
    /// The identity's verified email belongs to an account: its owner must
    /// link it (`link_token`, single use, bound to the identity).
    #[error("link required")]
    LinkRequired {
        /// The token to post to `POST /v1/me/identities` once signed in.
        link_token: String,
    },
    /// The provider gave no verified email and the identity is not linked.
    #[error("provider email unverified")]
    ProviderEmailUnverified,
    /// A first federated sign-in would create an account, and
    /// `PORTCULLIS_FEDERATION_SIGNUP=false`.
    #[error("signup disabled")]
    SignupDisabled,
    /// A one-time code of the redirect flow is invalid, expired, used, or
    /// its verifier is wrong.
    #[error("code invalid")]
    CodeInvalid,
    /// Removing this would leave the account without a way in.
    #[error("last credential")]
    LastCredential,
    /// The identity is linked to another account.
    #[error("identity linked to another account")]
    IdentityTaken,
    /// An upstream provider cannot be reached or answered nonsense.
    #[error("identity provider unavailable")]
    ProviderUnavailable,
    /// A federation request was refused before leaving (unknown provider,
    /// redirect not allowed, no S256 challenge, unknown state); `slug` and
    /// `detail` are safe to show.
    #[error("federation request refused: {slug}")]
    FederationRefused {
        /// The problem slug.
        slug: &'static str,
        /// What was wrong.
        detail: &'static str,
    },
    // DPoP (RFC 9449).
    /// The request's DPoP proof was refused (`invalid_dpop_proof`); the
    /// reason is safe to show.
    #[error("DPoP proof invalid: {0}")]
    DpopProofInvalid(&'static str),
    /// The proof must carry the server nonce given here (`use_dpop_nonce`,
    /// sent back in `DPoP-Nonce`).
    #[error("DPoP nonce required")]
    DpopNonceRequired(String),
    /// `PORTCULLIS_DPOP=required` and the token-issuing request has no proof.
    #[error("DPoP proof required")]
    DpopRequired,
    /// A DPoP-bound token without a proof by its key (sent as `Bearer`, or
    /// with another key's proof), or a bearer token sent as `DPoP`
    /// (`invalid_token` with a `DPoP` challenge).
    #[error("token not usable this way: {0}")]
    DpopBinding(&'static str),
    /// The store cannot be reached; the request may succeed later.
    #[error("store unavailable")]
    Unavailable,
    /// Anything else: a bug or an unexpected failure below.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Self::TokenInvalid(e.reason())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                Self::Unavailable
            }
            // Each use case that can meet a unique clash maps it itself;
            // one reaching here is a bug, not a client's mistake.
            StoreError::Conflict => Self::Unexpected(anyhow::anyhow!("unexpected unique clash")),
            StoreError::Other(e) => Self::Unexpected(e),
        }
    }
}

/// Result of a use case.
pub type Result<T> = std::result::Result<T, Error>;

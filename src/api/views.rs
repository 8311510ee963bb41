//! Response bodies, built from the service types (never from storage records).

use poem_openapi::Object;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::service::{Account, IssuedTokens, SessionSummary};

/// Unix seconds as an RFC 3339 timestamp.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A user account as clients see it. Never carries a hash or a secret.
#[derive(Debug, Clone, Object)]
#[oai(rename = "User")]
pub struct UserView {
    /// Stable user id (the `sub` of tokens).
    pub id: String,
    /// Normalized (lower-case) email address.
    pub email: String,
    /// Whether the email address was proven.
    pub email_verified: bool,
    /// Name shown to others, if set.
    #[oai(nullable)]
    pub display_name: Option<String>,
    /// URL of the user's avatar image, if any.
    #[oai(nullable)]
    pub avatar_url: Option<String>,
    /// Preferred BCP 47 language tag, if set.
    #[oai(nullable)]
    pub locale: Option<String>,
    /// IANA time zone, if set.
    #[oai(nullable)]
    pub timezone: Option<String>,
    /// The application's JSON object for this user, if set.
    #[oai(nullable)]
    pub metadata: Option<serde_json::Value>,
    /// Whether two-factor sign-in is on.
    pub mfa_enabled: bool,
    /// How many passkeys the user has registered.
    pub passkeys: u32,
    /// Roles (`user`, `admin`); also the `roles` claim of access tokens.
    pub roles: Vec<String>,
    /// RFC 3339 timestamp.
    pub created_at: String,
    /// RFC 3339 timestamp.
    pub updated_at: String,
    /// A guest made by `POST /v1/sessions/anonymous` and not yet upgraded
    /// (its `email` is empty).
    pub is_anonymous: bool,
}

impl From<&Account> for UserView {
    fn from(u: &Account) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            display_name: u.display_name.clone(),
            avatar_url: u.avatar_url.clone(),
            locale: u.locale.clone(),
            timezone: u.timezone.clone(),
            metadata: u.metadata.clone(),
            passkeys: u.passkeys,
            mfa_enabled: u.mfa_enabled,
            roles: u.roles.clone(),
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
            is_anonymous: u.is_anonymous,
        }
    }
}

/// An account as an operator sees it: the user body plus its state.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AdminUser")]
pub struct AdminUserView {
    /// The user body.
    #[oai(flatten)]
    pub user: UserView,
    /// A disabled account cannot sign in; its tokens are refused.
    pub disabled: bool,
    /// Linked identities of upstream providers (one account's view only).
    #[oai(skip_serializing_if_is_none)]
    pub identities: Option<Vec<super::federation::IdentityView>>,
}

impl From<&Account> for AdminUserView {
    fn from(u: &Account) -> Self {
        Self {
            user: UserView::from(u),
            disabled: u.disabled,
            identities: None,
        }
    }
}

/// A token pair.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Tokens")]
pub struct TokensView {
    /// JWT access token (`typ: at+jwt`), sent as `Authorization: Bearer`
    /// (or `Authorization: DPoP` with a proof, when `token_type` is `DPoP`).
    pub access_token: String,
    /// `Bearer`, or `DPoP` when the request carried a DPoP proof: the
    /// tokens are bound to its key (RFC 9449).
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use refresh token (`typ: refresh+jwt`).
    pub refresh_token: String,
    /// The signed-in account.
    pub user: Box<UserView>,
}

impl From<IssuedTokens> for TokensView {
    fn from(t: IssuedTokens) -> Self {
        Self {
            token_type: t.token_type().to_string(),
            access_token: t.access_token,
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            user: Box::new(UserView::from(&t.account)),
        }
    }
}

/// One active session (a sign-in and its refresh tokens).
#[derive(Debug, Clone, Object)]
#[oai(rename = "Session")]
pub struct SessionView {
    /// Session id (the `sid` claim).
    pub id: String,
    /// True for the session of the token making the request.
    pub current: bool,
    /// When the session began (RFC 3339).
    pub created_at: String,
    /// When it was last refreshed (RFC 3339).
    pub last_used_at: String,
    /// When it ends unless refreshed (RFC 3339).
    pub expires_at: String,
    /// Authentication methods used to sign in (`pwd`, `otp`).
    pub amr: Vec<String>,
    /// `User-Agent` at sign-in.
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// Client address at sign-in.
    #[oai(nullable)]
    pub ip: Option<String>,
}

impl From<SessionSummary> for SessionView {
    fn from(s: SessionSummary) -> Self {
        Self {
            id: s.id,
            current: s.current,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            amr: s.amr,
            user_agent: s.user_agent,
            ip: s.ip,
        }
    }
}

//! Response bodies.

use poem_openapi::Object;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::service::IssuedTokens;
use crate::store::{SessionRecord, UserRecord};

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
    pub email_verified: bool,
    #[oai(nullable)]
    pub display_name: Option<String>,
    /// URL of the user's avatar image, if any.
    #[oai(nullable)]
    pub avatar_url: Option<String>,
    pub mfa_enabled: bool,
    pub roles: Vec<String>,
    /// RFC 3339 timestamp.
    pub created_at: String,
    /// RFC 3339 timestamp.
    pub updated_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            display_name: u.display_name.clone(),
            avatar_url: None,
            mfa_enabled: false,
            roles: u.roles.clone(),
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

/// A token pair.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Tokens")]
pub struct TokensView {
    /// JWT access token (`typ: at+jwt`), sent as `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use refresh token (`typ: refresh+jwt`).
    pub refresh_token: String,
    pub user: UserView,
}

impl From<IssuedTokens> for TokensView {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer".to_string(),
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            user: UserView::from(&t.user),
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
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    /// Authentication methods used to sign in (`pwd`, `otp`).
    pub amr: Vec<String>,
    #[oai(nullable)]
    pub user_agent: Option<String>,
    #[oai(nullable)]
    pub ip: Option<String>,
}

impl SessionView {
    pub fn new(s: &SessionRecord, current_sid: &str) -> Self {
        Self {
            id: s.id.clone(),
            current: s.id == current_sid,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            amr: s.amr.clone(),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
        }
    }
}

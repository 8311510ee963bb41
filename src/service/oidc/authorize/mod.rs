//! `GET /oauth/authorize`, the browser session and the decision between a
//! code, the sign-in page and the consent page.
//!
//! The validated request travels through the hosted pages as a signed,
//! short-lived token (`authreq+jwt`, 10 minutes), so nothing is stored
//! before a user signs in and no page can alter it. A code is stored as a
//! WebAuthn-style ceremony record (single use, taken atomically on both
//! backends) under the SHA-256 of the code, for 60 seconds.
//!
//! The request from parsing to the sealed token (`request.rs`), the
//! browser session cookie (`session.rs`), the decision and the consent
//! (`consent.rs`) and the code (`code.rs`), one `impl Core` each.

mod code;
mod consent;
mod request;
mod session;

use serde::{Deserialize, Serialize};

use super::sha256_hex;
use crate::auth::tokens::TimeClaims;
use crate::domain::UserId;

/// The browser session cookie of the hosted pages.
pub const SESSION_COOKIE: &str = "__Host-portcullis";

/// JOSE `typ` of a sealed authorization request.
const REQUEST_TYP: &str = "authreq+jwt";

/// The parameters of `GET /oauth/authorize`, as sent (unknown ones ignored).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeParams {
    /// The client.
    pub client_id: Option<String>,
    /// Where to answer; must be registered.
    pub redirect_uri: Option<String>,
    /// `code`.
    pub response_type: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// Echoed back.
    pub state: Option<String>,
    /// Copied into the ID token.
    pub nonce: Option<String>,
    /// PKCE challenge.
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
    /// `none`, `login`, `consent`.
    pub prompt: Option<String>,
    /// Seconds since the last sign-in allowed.
    pub max_age: Option<String>,
    /// Prefills the email field.
    pub login_hint: Option<String>,
    /// Preferred languages of the pages.
    pub ui_locales: Option<String>,
    /// Request objects are not supported.
    pub request: Option<String>,
    /// Request objects by reference are not supported.
    pub request_uri: Option<String>,
    /// Only `query` is supported.
    pub response_mode: Option<String>,
}

/// A validated authorization request (also the claims of its sealed form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    iss: String,
    aud: String,
    /// The client id.
    pub sub: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    /// The registered redirect URI it answers to (as presented).
    pub redirect_uri: String,
    /// Scopes asked for and allowed to the client.
    pub scope: Vec<String>,
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// `prompt` values.
    #[serde(default)]
    pub prompt: Vec<String>,
    /// `max_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `login_hint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// `ui_locales`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
}

impl TimeClaims for AuthorizeRequest {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn nbf(&self) -> u64 {
        self.nbf
    }
}

impl AuthorizeRequest {
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.sub
    }

    fn prompts(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

/// Why a request cannot be answered with a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeFailure {
    /// Unknown client or redirect URI: a page, never a redirect.
    Page(String),
    /// An error sent back to the (valid) redirect URI.
    Redirect(String),
}

/// What the browser is sent to next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Back to the client (a code or an error).
    Redirect(String),
    /// The sign-in page, carrying the sealed request.
    Login(String),
    /// The consent page, carrying the sealed request.
    Consent(String),
}

/// The user signed in on this browser (the session behind the cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// Its session id (the ID token's `sid`).
    pub sid: String,
    /// The user.
    pub user_id: UserId,
    /// Unix seconds of the last proof on it (`auth_time`).
    pub auth_time: i64,
    /// How the user signed in.
    pub amr: Vec<String>,
    /// The upstream identity provider of a federated sign-in.
    pub idp: Option<String>,
}

/// What a code stands for (the ceremony's state).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: Vec<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub browser_sid: String,
    /// The browser session's upstream provider (the `idp` of the
    /// client's session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The store key of a code: its SHA-256 (the store never holds a code).
pub(super) fn code_key(code: &str) -> String {
    format!("code-{}", sha256_hex(code))
}

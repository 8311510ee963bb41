//! Portcullis as an OpenID provider: registered clients, the
//! authorization code flow with PKCE over the hosted pages, ID tokens,
//! consents and RP-initiated logout.
//!
//! - `clients.rs`: registration (admin API and CLI) and redirect URI rules;
//! - `authorize/`: `/oauth/authorize`, the browser session cookie, the
//!   decision between a code, the sign-in page and the consent page;
//! - `token/`: the `authorization_code` grant, ID tokens, userinfo claims;
//! - `consents.rs`: a user's consents, and RP-initiated logout.
//!
//! Sign-in on the hosted pages is [`Core::login`], [`Core::login_mfa`] and
//! the passkey use cases, unchanged: the pages only turn the session they
//! open into the browser session cookie.

mod authorize;
mod clients;
mod consents;
mod token;

pub use authorize::{
    AuthorizeFailure, AuthorizeParams, AuthorizeRequest, BrowserSession, Decision, SESSION_COOKIE,
};
pub use clients::{ClientChanges, ClientType, NewClient, RegisteredClient, redirect_uri_matches};
pub use consents::{ConsentSummary, LogoutOutcome, LogoutParams};
pub use token::{ClientCredentials, CodeExchange, CodeGrantTokens, OAuthFailure, UserInfoClaims};

/// Scopes Portcullis serves to OAuth clients.
pub const SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];

/// Lifetime of an authorization code (seconds).
pub const CODE_TTL_SECS: i64 = 60;

/// Lifetime of an authorization request carried through the hosted pages.
pub const REQUEST_TTL_SECS: u64 = 600;

/// Claims an ID token or userinfo may carry.
pub const CLAIMS: [&str; 19] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "azp",
    "sid",
    "at_hash",
    "email",
    "email_verified",
    "name",
    "picture",
    "locale",
    "zoneinfo",
    "updated_at",
    "client_id",
];

impl crate::service::Core {
    /// Whether passkeys are on (the sign-in page shows their button).
    pub fn passkeys_available(&self) -> bool {
        self.passkeys.is_some()
    }
}

/// SHA-256 as lower-case hex.
pub(crate) fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 random bytes, base64url without padding.
pub(crate) fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Percent-encodes a query component (RFC 3986 unreserved kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `uri` with `params` appended to its query (before any fragment: there
/// is none, registration refuses them).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&encode_component(v));
        sep = '&';
    }
    out
}

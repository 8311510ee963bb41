//! The kinds of short-lived records, as enums: what a ceremony is for and
//! what a queued mail is. Stored as the strings they always were (serde
//! through `String`), and a string this release does not know (written by a
//! newer one) reads back as `Other` with its text kept, so it is neither a
//! panic nor rewritten.

use serde::{Deserialize, Serialize};

/// What a [`CeremonyRecord`](super::CeremonyRecord) is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum CeremonyKind {
    /// Adding a passkey to a signed-in account (`register`).
    Register,
    /// A passkey sign-in naming a user (`authenticate`).
    Authenticate,
    /// A passkey sign-in without naming a user (`discover`).
    Discover,
    /// A passkey as the second factor after a password (`mfa`).
    Mfa,
    /// An OpenID authorization code (`oauth_code`).
    OAuthCode,
    /// Federated sign-in: the nonce sent upstream (`fed-nonce`).
    FederationNonce,
    /// Federated sign-in: the state of a started flow (`fed-state`).
    FederationState,
    /// Federated sign-in: the one-time code handed back to the client (`fed-code`).
    FederationCode,
    /// Federated sign-in: a pending link to an existing account (`fed-link`).
    FederationLink,
    /// A kind this release does not know (from a newer one): never matches.
    Other(String),
}

impl CeremonyKind {
    /// The stored text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Register => "register",
            Self::Authenticate => "authenticate",
            Self::Discover => "discover",
            Self::Mfa => "mfa",
            Self::OAuthCode => "oauth_code",
            Self::FederationNonce => "fed-nonce",
            Self::FederationState => "fed-state",
            Self::FederationCode => "fed-code",
            Self::FederationLink => "fed-link",
            Self::Other(text) => text,
        }
    }
}

impl From<String> for CeremonyKind {
    fn from(text: String) -> Self {
        match text.as_str() {
            "register" => Self::Register,
            "authenticate" => Self::Authenticate,
            "discover" => Self::Discover,
            "mfa" => Self::Mfa,
            "oauth_code" => Self::OAuthCode,
            "fed-nonce" => Self::FederationNonce,
            "fed-state" => Self::FederationState,
            "fed-code" => Self::FederationCode,
            "fed-link" => Self::FederationLink,
            _ => Self::Other(text),
        }
    }
}

impl From<CeremonyKind> for String {
    fn from(kind: CeremonyKind) -> Self {
        match kind {
            CeremonyKind::Other(text) => text,
            known => known.as_str().to_string(),
        }
    }
}

/// What a [`QueuedMail`](super::QueuedMail) is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MailKind {
    /// A password-reset link and code (`password_reset`).
    PasswordReset,
    /// An address-verification link and code (`verify_email`).
    VerifyEmail,
    /// "You already have an account" to a sign-up for a taken address
    /// (`already_registered`).
    AlreadyRegistered,
    /// The verification mail of an email change, to the new address
    /// (`email_change`).
    EmailChange,
    /// A passwordless sign-in link and code (`email_sign_in`).
    EmailSignIn,
    /// A new-sign-in notice with its "not me" link (`new_sign_in`).
    NewSignIn,
    /// A security notice (`notice.<name>`, the name as the templates know
    /// it: `password_changed`, ...).
    Notice(String),
    /// A kind this release does not know (from a newer one): dropped by
    /// the sender with a warning, kept as it is in the store.
    Other(String),
}

/// Prefix of the stored kinds of security notices.
const NOTICE_PREFIX: &str = "notice.";

impl std::fmt::Display for MailKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PasswordReset => f.write_str("password_reset"),
            Self::VerifyEmail => f.write_str("verify_email"),
            Self::AlreadyRegistered => f.write_str("already_registered"),
            Self::EmailChange => f.write_str("email_change"),
            Self::EmailSignIn => f.write_str("email_sign_in"),
            Self::NewSignIn => f.write_str("new_sign_in"),
            Self::Notice(name) => write!(f, "{NOTICE_PREFIX}{name}"),
            Self::Other(text) => f.write_str(text),
        }
    }
}

impl From<String> for MailKind {
    fn from(text: String) -> Self {
        match text.as_str() {
            "password_reset" => Self::PasswordReset,
            "verify_email" => Self::VerifyEmail,
            "already_registered" => Self::AlreadyRegistered,
            "email_change" => Self::EmailChange,
            "email_sign_in" => Self::EmailSignIn,
            "new_sign_in" => Self::NewSignIn,
            _ => match text.strip_prefix(NOTICE_PREFIX) {
                Some(name) => Self::Notice(name.to_string()),
                None => Self::Other(text),
            },
        }
    }
}

impl From<MailKind> for String {
    fn from(kind: MailKind) -> Self {
        match kind {
            MailKind::Other(text) => text,
            known => known.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stored_as_the_strings_they_were() {
        for text in [
            "register",
            "authenticate",
            "discover",
            "mfa",
            "oauth_code",
            "fed-nonce",
            "fed-state",
            "fed-code",
            "fed-link",
        ] {
            let kind: CeremonyKind = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert!(!matches!(kind, CeremonyKind::Other(_)), "{text}");
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{text}\""));
        }
        for text in [
            "password_reset",
            "verify_email",
            "already_registered",
            "email_change",
            "email_sign_in",
            "new_sign_in",
            "notice.password_changed",
        ] {
            let kind: MailKind = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert!(!matches!(kind, MailKind::Other(_)), "{text}");
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{text}\""));
        }
    }

    #[test]
    fn a_newer_releases_kind_reads_back_and_keeps_its_text() {
        let c: CeremonyKind = serde_json::from_str("\"webauthn-next\"").unwrap();
        assert_eq!(c, CeremonyKind::Other("webauthn-next".into()));
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"webauthn-next\"");
        let m: MailKind = serde_json::from_str("\"digest\"").unwrap();
        assert_eq!(m, MailKind::Other("digest".into()));
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"digest\"");
    }
}

//! Passkeys: registering, listing and removing them (bearer routes),
//! signing in with one (usernameless or after naming an email), and the
//! association files native apps need.
//!
//! Every ceremony is two requests. The first stores the server half of the
//! challenge ([`CeremonyRecord`](crate::store::CeremonyRecord)) and gives the client a `challenge_id`; the
//! second takes that record out of the store (once: a replayed or raced
//! answer finds nothing) and checks the client's credential against it. The
//! record lives in the store, so any replica can finish a ceremony another
//! began, and it expires after [`CEREMONY_TTL`](crate::auth::passkeys::CEREMONY_TTL).
//!
//! Two-factor sign-in (`POST /v1/sessions/passkey/options {mfa_token}`, then
//! `POST /v1/sessions/mfa {mfa_token, passkey}`) lands with the `mfa`
//! capability: its options call [`Core::start_passkey_assertion`](crate::service::Core::start_passkey_assertion) with
//! [`CeremonyKind::Mfa`], and its finish calls
//! [`Core::verify_passkey_assertion`](crate::service::Core::verify_passkey_assertion).
//!
//! The `impl Core` is spread over sub-modules: `ceremony` (the relying
//! party, storing and taking ceremonies), `register` (registering, listing
//! and removing passkeys), `sign_in` (options, assertions, sign-in and the
//! checks other flows call) and `association` (the native-app files).

use super::{Error, FieldError, Result};
use crate::auth::passkeys::PasskeyError;
use crate::domain::UserId;
use crate::store::PasskeyRecord;
mod association;
mod ceremony;
mod register;
mod sign_in;

/// Ceremonies begun for one account within 15 minutes (registration, and
/// assertions that list its passkeys), counted in the store and reserved
/// before the ceremony is stored ([`Core::per_address_limit`](crate::service::Core::per_address_limit)), so that no
/// number of clients or replicas can make one account's ceremonies pile up
/// in the store. A person retrying a few times never gets near it.
pub const CEREMONIES_PER_ACCOUNT: usize = 20;

/// The answer when a `challenge_id` cannot be used.
const CHALLENGE_GONE: &str =
    "the challenge is unknown, expired or already used; request new options";
/// Longest passkey name, in characters.
const NAME_MAX: usize = 64;

/// What a ceremony was begun for; a challenge only finishes its own kind
/// (the passkey kinds: `Register`, `Authenticate`, `Discover`, `Mfa`).
pub(crate) use crate::store::CeremonyKind;

/// Options for a ceremony, as the client gets them.
#[derive(Debug, Clone)]
pub struct PasskeyOptions {
    /// Names the ceremony in the finishing request.
    pub challenge_id: String,
    /// WebAuthn `publicKey` options (JSON form, base64url).
    pub public_key: serde_json::Value,
    /// `conditional` for a usernameless sign-in (autofill UI), else `None`.
    pub mediation: Option<String>,
}

/// A passkey as listed to its owner (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySummary {
    /// Passkey id (for `DELETE /v1/me/passkeys/{id}`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was added.
    pub created_at: i64,
    /// When it last signed in, if ever.
    pub last_used_at: Option<i64>,
    /// Whether it may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it was backed up at the last use.
    pub backup_state: bool,
}

impl From<&PasskeyRecord> for PasskeySummary {
    fn from(p: &PasskeyRecord) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
        }
    }
}

/// A verified passkey assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyAssertion {
    /// Whose passkey it was.
    pub user_id: UserId,
    /// Which passkey.
    pub passkey_id: String,
    /// Whether the authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
}

/// Native-app association files, when configured.
#[derive(Debug, Clone, Copy)]
pub enum AssociationFiles {
    /// `/.well-known/apple-app-site-association`.
    Apple,
    /// `/.well-known/assetlinks.json`.
    Android,
}

/// A client-visible refusal of `e`; `sign_in` picks 401 over 400. A
/// cloned-authenticator signal is logged as a security event.
fn refusal(e: PasskeyError, sign_in: bool, user_id: Option<&str>) -> Error {
    let reason = match e {
        PasskeyError::Internal(why) => {
            return Error::Unexpected(anyhow::anyhow!("passkey ceremony: {why}"));
        }
        PasskeyError::PossibleClone => {
            metrics::counter!("portcullis_passkey_clone_signals_total").increment(1);
            tracing::warn!(
                user_id = user_id.unwrap_or_default(),
                event = "suspicious.passkey_clone",
                "passkey signature counter went backwards: possibly a cloned authenticator"
            );
            PasskeyError::PossibleClone.to_string()
        }
        PasskeyError::Refused(why) => why.to_string(),
    };
    if sign_in {
        Error::PasskeyRejected(reason)
    } else {
        Error::PasskeyInvalid(reason)
    }
}

/// A passkey name: trimmed, 1 to 64 characters, no control characters.
fn passkey_name(raw: Option<&str>, count: usize) -> Result<String> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(format!("Passkey {}", count + 1));
    };
    let chars = raw.chars().count();
    if chars == 0 || chars > NAME_MAX || raw.chars().any(char::is_control) {
        return Err(Error::Validation(vec![FieldError::invalid(
            "name",
            "Passkey name",
            "must be 1 to 64 characters without control characters",
        )]));
    }
    Ok(raw.to_string())
}

/// Request options for a sign-in that named an email, in the one shape
/// every such answer has: `allowCredentials` entries are
/// `{type, id}` only (`transports` would tell real ids from made-up ones),
/// and no `extensions` or `hints` (the library adds them to discoverable
/// options only). `ids` replaces the listed credentials when given.
fn named_options(mut public_key: serde_json::Value, ids: Option<&[String]>) -> serde_json::Value {
    let Some(obj) = public_key.as_object_mut() else {
        return public_key;
    };
    let listed: Vec<String> = match ids {
        Some(ids) => ids.to_vec(),
        None => obj
            .get("allowCredentials")
            .and_then(serde_json::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|c| c.get("id").and_then(serde_json::Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let allow = listed
        .into_iter()
        .map(|id| serde_json::json!({ "type": "public-key", "id": id }))
        .collect();
    obj.insert("allowCredentials".into(), serde_json::Value::Array(allow));
    obj.remove("extensions");
    obj.remove("hints");
    obj.insert("userVerification".into(), "required".into());
    public_key
}

/// Why passkeys are off, when they are.
const PASSKEYS_OFF: &str = "passkeys are off on this server: its public URL names an IP address, and WebAuthn needs a domain name (PORTCULLIS_PUBLIC_URL, PORTCULLIS_WEBAUTHN_RP_ID)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(passkey_name(None, 2).unwrap(), "Passkey 3");
        assert_eq!(passkey_name(Some("  Laptop "), 0).unwrap(), "Laptop");
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
            assert!(passkey_name(Some(bad), 0).is_err(), "{bad:?} accepted");
        }
    }
}

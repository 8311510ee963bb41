//! The records the store keeps, as the backends store them.
//!
//! # Stored records evolve; old ones must still decode
//!
//! Records written by an earlier release are read by later ones without any
//! migration. So **every field added to a record after this release carries
//! `#[serde(default)]` (or is an `Option`)**: a record stored before the field
//! existed then decodes with the default instead of failing as corrupt.
//! Removing or renaming a stored field needs a migration and is not done.
//! `src/store/fixtures/` holds records exactly as the first release wrote them,
//! and each backend has a test that decodes them through the traits.
//!
//! # One stored document per account
//!
//! A user's profile ([`UserRecord`]) and secrets ([`CredentialRecord`]) are two
//! types but one stored value: the JSON value under the user's id in redb,
//! the document in the `users` collection on MongoDB, with `password_hash`
//! beside the profile fields (the layout the first release wrote). One value
//! per account keeps account and credentials atomic: a single-document
//! operation on MongoDB (no multi-document transactions on a standalone
//! server), one value in one redb transaction. The store splits the value on
//! read: profile reads ([`UserStore`](super::UserStore)) never return a
//! secret, and only [`CredentialStore`](super::CredentialStore) reads them. A
//! profile write keeps the credential fields, and a credential write keeps
//! the profile.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A user account's profile as stored: everything but its secrets. Safe to
/// hand to the service layer; never sent to clients as is (the API maps it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Stable id (UUIDv7 text); the `sub` of tokens.
    pub id: String,
    /// Normalized email (the unique key).
    pub email: String,
    /// Whether the user proved they own the address.
    pub email_verified: bool,
    /// Name shown to others; `None` when unset.
    pub display_name: Option<String>,
    /// Roles granted (`user`, `admin`).
    pub roles: Vec<String>,
    /// A disabled account cannot sign in or refresh.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last profile or credential change.
    pub updated_at: i64,
    // Passkeys (issue 12).
    /// How many passkeys the account has: kept by the passkey writes of
    /// [`CredentialStore`](super::CredentialStore) in the same stored value,
    /// so profile reads can show it without reading a credential.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passkey_count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The secrets of an account: stored in the same value as its
/// [`UserRecord`] (see the module docs), read and written only through
/// [`CredentialStore`](super::CredentialStore). TOTP secrets, recovery codes
/// and passkeys join it later, each with `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// bcrypt hash of the peppered password; empty when the account has no
    /// password (see [`CredentialRecord::has_password`]).
    pub password_hash: String,
    // Passkeys (issue 12).
    /// WebAuthn credentials by passkey id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub passkeys: BTreeMap<String, PasskeyRecord>,
}

impl CredentialRecord {
    /// Whether the account can sign in with a password.
    pub fn has_password(&self) -> bool {
        !self.password_hash.is_empty()
    }
}

/// One passkey (WebAuthn credential) of an account. Public-key material
/// only: nothing here lets anyone sign in, but it stays with the other
/// credentials and off profile reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRecord {
    /// Our id of the passkey (UUIDv7 text), used in URLs.
    pub id: String,
    /// The WebAuthn credential id, base64url without padding.
    pub credential_id: String,
    /// A name the user gave it (or a default).
    pub name: String,
    /// The relying-party library's credential state (public key, signature
    /// counter, backup flags) as its JSON; opaque to the store.
    pub passkey: String,
    /// The authenticator's signature counter after the last use (0: the
    /// authenticator keeps none, as synced passkeys do).
    #[serde(default)]
    pub counter: u32,
    /// Whether the credential may be synced to other devices (BE flag).
    #[serde(default)]
    pub backup_eligible: bool,
    /// Whether it was backed up at the last use (BS flag).
    #[serde(default)]
    pub backup_state: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last sign-in with it.
    #[serde(default)]
    pub last_used_at: Option<i64>,
}

/// What [`CredentialStore::remove_passkey`](super::CredentialStore::remove_passkey) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRemoval {
    /// Removed.
    Removed,
    /// The user has no passkey with that id.
    NotFound,
    /// Refused: it is the last passkey of an account without a password, so
    /// removing it would lock the user out.
    LastCredential,
}

/// A WebAuthn ceremony in progress (registration or sign-in): the server
/// half of a challenge, kept in the store so that any replica can finish a
/// ceremony another began. Single use (see
/// [`CeremonyStore::take_ceremony`](super::CeremonyStore::take_ceremony)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyRecord {
    /// The `challenge_id` given to the client (UUIDv4 text).
    pub id: String,
    /// What the ceremony is for (`register`, `authenticate`, `discover`).
    pub kind: String,
    /// The user it is for; `None` for a usernameless sign-in.
    pub user_id: Option<String>,
    /// The relying-party library's ceremony state, as its JSON. Not secret,
    /// but it must never reach the client (a client holding it could replay).
    pub state: String,
    /// Unix seconds; the ceremony cannot be finished at or after this time.
    pub expires_at: i64,
}

/// Profile fields a user may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
}

/// A session: one sign-in and the family of refresh tokens it grew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id (`sid` claim).
    pub id: String,
    /// The user who signed in.
    pub user_id: String,
    /// `jti` of the one refresh token of this family that may be used now.
    pub current_jti: String,
    /// `jti` the current one replaced, and when: within the grace window a
    /// client presenting it gets the current generation again.
    pub previous_jti: Option<String>,
    /// Unix seconds of the last rotation (the creation, before any).
    pub rotated_at: i64,
    /// How many rotations the family has seen.
    pub generation: u64,
    /// Authentication methods of the sign-in (`amr`).
    pub amr: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last refresh.
    pub last_used_at: i64,
    /// The family expires at this time unless refreshed (sliding).
    pub expires_at: i64,
    /// Set when revoked (logout, reuse, password change); kept until
    /// `expires_at` so access tokens of the session are refused.
    pub revoked_at: Option<i64>,
    /// `User-Agent` of the sign-in, truncated.
    pub user_agent: Option<String>,
    /// Client IP of the sign-in.
    pub ip: Option<String>,
}

impl SessionRecord {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

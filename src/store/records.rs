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
}

/// The secrets of an account: stored in the same value as its
/// [`UserRecord`] (see the module docs), read and written only through
/// [`CredentialStore`](super::CredentialStore). TOTP secrets, recovery codes
/// and passkeys join it later, each with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// bcrypt hash of the peppered password.
    pub password_hash: String,
}

/// Profile fields a user may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
    /// Sets whether the address is proven (email verification).
    pub email_verified: Option<bool>,
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

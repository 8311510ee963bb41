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

use crate::domain::UserId;

/// A user account's profile as stored: everything but its secrets. Safe to
/// hand to the service layer; never sent to clients as is (the API maps it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Stable id (UUIDv7 text); the `sub` of tokens.
    pub id: UserId,
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
    /// BCP 47 language tag the user prefers (`en`, `pt-BR`); `None` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// IANA time zone (`Europe/Paris`); `None` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The application's JSON object for this user, as JSON text (kept as
    /// text so every backend stores it byte for byte, whatever its numbers
    /// or keys); `None` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Entity tag of the stored avatar (see `AvatarStore`); `None` when the
    /// user has none. Lets a profile read build `avatar_url` without
    /// touching the avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_etag: Option<String>,
    /// Whether two-factor sign-in is on (a TOTP secret is active). Not a
    /// secret: a flag kept beside the profile so that profile reads can
    /// show it; written together with the credentials it describes. Left
    /// out when false, so an account without it is stored as the first
    /// release did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa_enabled: bool,
    // Passkeys.
    /// How many passkeys the account has: kept by the passkey writes of
    /// [`CredentialStore`](super::CredentialStore) in the same stored value,
    /// so profile reads can show it without reading a credential.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passkey_count: u32,
    // Anonymous users.
    /// A guest made by `POST /v1/sessions/anonymous`: no email of its own
    /// (its `email` is a stand-in under `anonymous.invalid`), no password.
    /// Cleared when it upgrades to a full account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// For an anonymous user: when it last signed in or refreshed (Unix
    /// seconds); the purge deletes it `PORTCULLIS_ANONYMOUS_TTL` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The secrets of an account: stored in the same value as its
/// [`UserRecord`] (see the module docs), read and written only through
/// [`CredentialStore`](super::CredentialStore). Fields added after the
/// first release carry `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// bcrypt hash of the peppered password; with `legacy_bcrypt`, a plain
    /// bcrypt hash of the raw password (imported from another system).
    pub password_hash: String,
    /// True for an imported hash (`portcullis users import`): it is
    /// verified once as plain bcrypt of the raw password and replaced by a
    /// peppered hash at that first successful sign-in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy_bcrypt: bool,
    /// The active TOTP secret, sealed (AES-256-GCM, see `auth::totp`);
    /// `None` while two-factor sign-in is off. (Like the other two-factor
    /// fields, left out when empty: the first release's layout.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    /// A TOTP secret handed out by `POST /v1/me/mfa/totp` and not yet
    /// confirmed with a code, sealed like `totp_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_pending: Option<String>,
    /// Hashes of the unused recovery codes (HMAC-SHA-256, hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_codes: Vec<String>,
    // Passkeys.
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

/// What [`CredentialStore::add_passkey`](super::CredentialStore::add_passkey) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyAddition {
    /// Stored and counted.
    Added,
    /// There is no such user.
    NoUser,
    /// Refused: the account has the most passkeys allowed already.
    Full,
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
    /// What the ceremony is for (stored as `register`, `authenticate`, ...).
    pub kind: super::CeremonyKind,
    /// The user it is for; `None` for a usernameless sign-in.
    pub user_id: Option<UserId>,
    /// The relying-party library's ceremony state, as its JSON. Not secret,
    /// but it must never reach the client (a client holding it could replay).
    pub state: String,
    /// Unix seconds; the ceremony cannot be finished at or after this time.
    pub expires_at: i64,
}

/// Profile fields a user may change; `None` leaves a field as it is,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
    /// `Some(None)` clears the locale.
    pub locale: Option<Option<String>>,
    /// `Some(None)` clears the time zone.
    pub timezone: Option<Option<String>>,
    /// JSON text of the metadata object; `Some(None)` clears it.
    pub metadata: Option<Option<String>>,
    /// Sets whether the address is proven (email verification).
    pub email_verified: Option<bool>,
}

/// Account fields only an operator may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AdminUpdate {
    /// Disable or re-enable the account.
    pub disabled: Option<bool>,
    /// Replace the roles.
    pub roles: Option<Vec<String>>,
    /// Mark the email as verified or not.
    pub email_verified: Option<bool>,
}

/// A stored avatar: the re-encoded image, never the uploaded bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarRecord {
    /// The user it belongs to (the key).
    pub user_id: UserId,
    /// Media type of `bytes` (`image/png` or `image/webp`).
    pub content_type: String,
    /// Strong entity tag (a hash of `bytes`), without quotes.
    pub etag: String,
    /// The image.
    #[serde(with = "serde_bytes_b64")]
    pub bytes: Vec<u8>,
    /// Unix seconds of the upload.
    pub updated_at: i64,
}

/// Avatar bytes as base64 text, on both backends (a re-encoded 256×256
/// image is small; one encoding keeps the record the same everywhere).
mod serde_bytes_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// A session: one sign-in and the family of refresh tokens it grew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id (`sid` claim).
    pub id: String,
    /// The user who signed in.
    pub user_id: UserId,
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
    /// Unix seconds of the last proof of the user's identity on this
    /// session (a password, TOTP code or passkey: at sign-in, or through
    /// `POST /v1/me/reauthenticate`); a refresh keeps it. `None` in
    /// records written before step-up existed: such a session has to prove
    /// itself again before changing a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven_at: Option<i64>,
    /// The upstream identity provider of a federated sign-in (the `idp`
    /// claim of the session's access tokens); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The OAuth client the session was opened for (the authorization code
    /// grant); `None` for sessions of the JSON API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The `aud` of the session's access tokens when it is not the
    /// service's own (an OAuth client's audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The scopes granted to the client (space-separated); `None` for
    /// sessions of the JSON API (every claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 7638 thumbprint of the DPoP key the session is bound to: its
    /// access tokens carry it as `cnf.jkt` and its refresh tokens refresh
    /// only with a proof by that key. `None`: a bearer session (and every
    /// record written before DPoP existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl SessionRecord {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

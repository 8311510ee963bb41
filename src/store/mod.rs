//! Storage: one trait per kind of record, the records they keep
//! ([`records`]), the rules both backends share ([`rules`]), and the two
//! backends, `embedded` (redb) and `mongo` (MongoDB), each split the same
//! way (one file per trait).
//!
//! Anything that must not race is one atomic operation of the backend:
//! creating a user (unique email), rotating a refresh token (compare the
//! family's current generation and swap), claiming a single-use key,
//! revoking sessions. The conformance suite (tests only) runs every check
//! against both backends.

pub mod embedded;
pub mod mongo;
pub mod records;
pub mod rules;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod fixtures;

use std::sync::Arc;

use async_trait::async_trait;

pub use records::{CeremonyRecord, PasskeyRecord, PasskeyRemoval};
pub use records::{CredentialRecord, ProfileUpdate, SessionRecord, UserRecord};
pub use rules::{LoginFailures, OnceKey, RotateOutcome, Rotation, classify_rotation};

/// Failures of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key (the email, an id) is taken.
    #[error("conflict")]
    Conflict,
    /// The backend cannot be reached; the request may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a corrupt record, an I/O error); not for clients.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// User accounts: the profile side. No method returns a secret.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates an account with its first credentials, atomically (one stored
    /// value); `Conflict` when the email (or the id) is taken, and then
    /// nothing is written.
    async fn create_user(
        &self,
        user: &UserRecord,
        credentials: &CredentialRecord,
    ) -> StoreResult<()>;
    /// The account with this id, without its credentials.
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// The account with this normalized email, without its credentials.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Applies a profile update and sets `updated_at` to `now`; returns the
    /// profile after it, `None` when there is no such user. Credentials are
    /// kept as they are.
    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>>;
}

/// The secrets of accounts, stored with the account (see [`records`]).
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The credentials of the user, `None` when there is no such user.
    async fn credentials(&self, user_id: &str) -> StoreResult<Option<CredentialRecord>>;
    /// Replaces the password hash and sets the user's `updated_at` to `now`;
    /// the profile is kept. False when there is no such user.
    async fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<bool>;
    // Passkeys (issue 12).
    /// Adds a passkey, counts it in the profile's `passkey_count` and sets
    /// `updated_at` to `now`, in one write. False when there is no such
    /// user; `Conflict` (and nothing written) when the user already has a
    /// passkey with this id.
    async fn add_passkey(
        &self,
        user_id: &str,
        passkey: &PasskeyRecord,
        now: i64,
    ) -> StoreResult<bool>;
    /// Replaces a passkey after a use (new counter, backup state, library
    /// state, `last_used_at`). False when the user has no passkey with
    /// `passkey.id` (removed meanwhile): nothing is written then.
    async fn update_passkey(&self, user_id: &str, passkey: &PasskeyRecord) -> StoreResult<bool>;
    /// Removes a passkey, uncounts it and sets `updated_at` to `now`, unless
    /// it is the last passkey of an account without a password (that would
    /// lock the user out): then [`PasskeyRemoval::LastCredential`] and
    /// nothing changes.
    async fn remove_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        now: i64,
    ) -> StoreResult<PasskeyRemoval>;
}

// Passkeys (issue 12).
/// WebAuthn ceremonies in progress, shared by every replica.
#[async_trait]
pub trait CeremonyStore: Send + Sync {
    /// Stores a ceremony; `Conflict` when its id is taken.
    async fn save_ceremony(&self, ceremony: &CeremonyRecord) -> StoreResult<()>;
    /// Takes a ceremony out of the store to finish it: `Some` once, for
    /// exactly one of racing takers; `None` when unknown, already taken, or
    /// expired at `now`.
    async fn take_ceremony(&self, id: &str, now: i64) -> StoreResult<Option<CeremonyRecord>>;
}

/// Sessions (refresh-token families).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; `Conflict` when its id is taken.
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session with this id, active or not (until purged).
    async fn session(&self, sid: &str) -> StoreResult<Option<SessionRecord>>;
    /// A refresh attempt: atomic compare-and-swap of the family's current
    /// generation, decided by [`classify_rotation`]. Of racing attempts with
    /// the current token exactly one gets `Rotated`.
    async fn rotate(&self, rotation: &Rotation<'_>) -> StoreResult<RotateOutcome>;
    /// Active sessions of a user, newest first.
    async fn sessions_of(&self, user_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>>;
    /// Revokes one session of `user_id`; false when it is not theirs or not active.
    async fn revoke_session(&self, user_id: &str, sid: &str, now: i64) -> StoreResult<bool>;
    /// Revokes every active session of a user but `keep`; returns how many.
    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> StoreResult<u64>;
}

/// Single-use keys, shared by every replica.
#[async_trait]
pub trait OnceStore: Send + Sync {
    /// Marks `key` used until `expires_at`; true for the first claim, false
    /// when it was already claimed and has not expired at `now`. The basis of
    /// every single-use token (CAPTCHA solutions; later reset and
    /// verification tokens). Of racing claims exactly one wins.
    async fn claim_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> StoreResult<bool>;
}

/// Failed sign-ins per account (the login throttle).
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Records a failed sign-in of `account` at `now`; the record lives
    /// `window` seconds past its newest failure.
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()>;
    /// Times of the account's failed sign-ins within `(now - window, now]`,
    /// oldest first.
    async fn login_failures(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>>;
    /// Forgets the account's failed sign-ins (after a successful one).
    async fn clear_login_failures(&self, account: &str) -> StoreResult<()>;
}

/// A whole backend: every kind of record, plus upkeep.
#[async_trait]
pub trait Store:
    UserStore + CredentialStore + SessionStore + OnceStore + ThrottleStore + CeremonyStore
{
    /// Deletes what has expired by `now`: sessions, single-use keys,
    /// WebAuthn ceremonies and failed-sign-in records (and, on MongoDB, retired refresh tokens).
    /// Reads already ignore expired records; this only frees the space.
    /// Returns how many sessions it deleted.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Name for logs and test output (`embedded (redb)`, `mongodb 7.0.x`).
    fn describe(&self) -> String;
}

/// The store the service holds.
pub type DynStore = Arc<dyn Store>;

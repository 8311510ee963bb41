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
    /// Forgets the account's failed sign-ins (after a successful one),
    /// reserved attempts included.
    async fn clear_login_failures(&self, account: &str) -> StoreResult<()>;

    // -- attempt reservation (issue 9) --
    /// Reserves one password check of `account` before it runs, atomically:
    /// granted only while the account has fewer than `limit` failures and
    /// reserved attempts within `(now - window, now]`. A reservation counts
    /// as a failure at `now` from the moment it is granted (so racing
    /// attempts cannot all pass a count read before their checks finish):
    /// a failed check leaves it in place, a successful one calls
    /// [`ThrottleStore::clear_login_failures`], any other outcome gives it
    /// back with [`ThrottleStore::release_login_attempt`]. Returns the
    /// reservation's id, or `None` when the limit is reached. Of racing
    /// reservations at most `limit` are granted. Reservations show in
    /// [`ThrottleStore::login_failures`].
    async fn reserve_login_attempt(
        &self,
        account: &str,
        limit: u32,
        now: i64,
        window: i64,
    ) -> StoreResult<Option<String>>;
    /// Gives back a reservation of [`ThrottleStore::reserve_login_attempt`]
    /// whose check neither failed nor succeeded (an error, a refusal before
    /// the check); unknown ids are ignored.
    async fn release_login_attempt(&self, account: &str, attempt: &str) -> StoreResult<()>;
}

/// A whole backend: every kind of record, plus upkeep.
#[async_trait]
pub trait Store: UserStore + CredentialStore + SessionStore + OnceStore + ThrottleStore {
    /// Deletes what has expired by `now`: sessions, single-use keys and
    /// failed-sign-in records (and, on MongoDB, retired refresh tokens).
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

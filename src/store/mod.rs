//! Storage: the traits every backend implements, the records they keep, and
//! the backends (`embedded` on redb, `mongo` on MongoDB).
//!
//! Anything that must not race is one atomic operation of the backend:
//! creating a user (unique email), rotating a refresh token (compare the
//! family's current generation and swap), revoking sessions.

pub mod embedded;
pub mod mongo;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Failures of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key (the email) is taken.
    #[error("conflict")]
    Conflict,
    /// The backend cannot be reached; the request may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A user account as stored. Never sent to clients as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    /// Normalized email (the unique key).
    pub email: String,
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
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
    pub user_id: String,
    /// `jti` of the one refresh token of this family that may be used now.
    pub current_jti: String,
    /// `jti` the current one replaced, and when: within the grace window a
    /// client presenting it gets the current generation again.
    pub previous_jti: Option<String>,
    pub rotated_at: i64,
    /// How many rotations the family has seen.
    pub generation: u64,
    /// Authentication methods of the sign-in (`amr`).
    pub amr: Vec<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    /// The family expires at this time unless refreshed (sliding).
    pub expires_at: i64,
    /// Set when revoked (logout, reuse, password change); kept until
    /// `expires_at` so access tokens of the session are refused.
    pub revoked_at: Option<i64>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl SessionRecord {
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What a refresh attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum RotateOutcome {
    /// The presented token was current: the family moved to `new_jti`.
    Rotated(SessionRecord),
    /// The presented token was retired moments ago (within the grace
    /// window): no change; the caller re-issues the current generation.
    Grace(SessionRecord),
    /// The presented token was retired earlier: the family is now revoked.
    Reused(SessionRecord),
    /// Unknown, expired or already revoked family.
    Invalid,
}

/// Parameters of a rotation.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    pub sid: &'a str,
    pub presented_jti: &'a str,
    pub new_jti: &'a str,
    pub now: i64,
    pub new_expires_at: i64,
    /// Seconds a retired token is still answered with the current generation.
    pub grace_secs: i64,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; `Conflict` when the email is taken.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Applies a profile update; returns the user after it.
    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>>;
    /// Inserts many users at once (benchmark seeding); `Conflict` when an
    /// email is taken (the embedded store then writes none of them).
    async fn bulk_insert_users(&self, users: &[UserRecord]) -> StoreResult<()>;
    /// Replaces the password hash; false when no such user.
    async fn set_password_hash(&self, id: &str, hash: &str, now: i64) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    async fn session(&self, sid: &str) -> StoreResult<Option<SessionRecord>>;
    /// Atomic compare-and-swap of the family's current generation.
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
    /// Deletes sessions past their expiry; returns how many.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
}

/// A whole backend.
#[async_trait]
pub trait Store: UserStore + SessionStore {
    /// Marks `key` used until `expires_at`; true for the first claim, false
    /// when it was already claimed and has not expired. The basis of every
    /// single-use token (CAPTCHA solutions; later reset and verification
    /// tokens), shared by all replicas.
    async fn claim_once(&self, key: &str, expires_at: i64, now: i64) -> StoreResult<bool>;
    /// Records a failed sign-in of `account` at `now`; the record lives
    /// `window` seconds past its newest failure.
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()>;
    /// Times of the account's failed sign-ins within `(now - window, now]`,
    /// oldest first.
    async fn login_failures(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>>;
    /// Forgets the account's failed sign-ins (after a successful one).
    async fn clear_login_failures(&self, account: &str) -> StoreResult<()>;
    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Name for logs and test output (`embedded`, `mongodb 7.0.x`).
    fn describe(&self) -> String;
}

pub type DynStore = Arc<dyn Store>;

/// Failed sign-ins of one account, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoginFailures {
    /// Unix seconds of each failure, oldest first (at most
    /// [`LoginFailures::MAX_KEPT`]).
    pub times: Vec<i64>,
    /// When the record may be deleted.
    pub expires_at: i64,
}

impl LoginFailures {
    /// Only the count near the limit matters; older entries are dropped.
    pub const MAX_KEPT: usize = 100;

    pub fn within(&self, now: i64, window: i64) -> Vec<i64> {
        self.times
            .iter()
            .copied()
            .filter(|t| *t > now - window && *t <= now)
            .collect()
    }

    pub fn push(&mut self, now: i64, window: i64) {
        self.times.retain(|t| *t > now - window);
        self.times.push(now);
        let excess = self.times.len().saturating_sub(Self::MAX_KEPT);
        self.times.drain(..excess);
        self.expires_at = now + window;
    }
}

/// Decides what a refresh attempt means, given the family as stored.
/// Shared by the backends so they cannot disagree on the rules.
pub fn classify_rotation(session: &SessionRecord, r: &Rotation<'_>) -> RotateOutcome {
    if !session.is_active(r.now) {
        return RotateOutcome::Invalid;
    }
    if session.current_jti == r.presented_jti {
        let mut next = session.clone();
        next.previous_jti = Some(session.current_jti.clone());
        next.current_jti = r.new_jti.to_string();
        next.rotated_at = r.now;
        next.generation += 1;
        next.last_used_at = r.now;
        next.expires_at = r.new_expires_at;
        return RotateOutcome::Rotated(next);
    }
    if session.previous_jti.as_deref() == Some(r.presented_jti)
        && r.grace_secs > 0
        && r.now - session.rotated_at <= r.grace_secs
    {
        return RotateOutcome::Grace(session.clone());
    }
    let mut revoked = session.clone();
    revoked.revoked_at = Some(r.now);
    RotateOutcome::Reused(revoked)
}

/// The store conformance suite, shared by every backend's tests.
#[doc(hidden)]
pub mod conformance;

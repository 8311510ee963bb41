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

pub mod anonymous;
pub mod email;
pub mod embedded;
pub mod identities;
pub mod kinds;
pub mod mongo;
pub mod oauth;
pub mod records;
pub mod rules;
pub mod security;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod fixtures;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::UserId;

pub use anonymous::AnonymousStore;
pub use email::{EmailTicket, MailQueueStats, MailQueueStore, QueuedMail, TicketKind, TicketStore};
pub use identities::{IdentityRecord, IdentityRemoval, IdentityStore, identity_key};
pub use kinds::{CeremonyKind, MailKind};
pub use oauth::{ClientRecord, ConsentRecord, OAuthStore};
pub use records::{
    AdminUpdate, AvatarRecord, CredentialRecord, ProfileUpdate, SessionRecord, UserRecord,
};
pub use records::{CeremonyRecord, PasskeyAddition, PasskeyRecord, PasskeyRemoval};
pub use rules::{
    LoginFailures, OnceKey, PendingAttempt, RotateOutcome, Rotation, classify_rotation,
    mfa_throttle_key,
};
pub use security::{AuditQuery, AuditRecord, KnownDevices, WebhookDelivery};

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
    /// Creates each account whose email (and id) is free, skipping the
    /// others (an earlier account of the same batch counts); returns, per
    /// account, whether it was created. For imports: the embedded store
    /// writes the batch in one transaction.
    async fn create_users(
        &self,
        users: &[(UserRecord, CredentialRecord)],
    ) -> StoreResult<Vec<bool>>;
    /// The account with this id, without its credentials.
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<UserRecord>>;
    /// The account with this normalized email, without its credentials.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Applies a profile update and sets `updated_at` to `now`; returns the
    /// profile after it, `None` when there is no such user. Credentials are
    /// kept as they are.
    async fn update_profile(
        &self,
        id: &UserId,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>>;
    /// Accounts whose normalized email starts with `email_prefix` (all when
    /// empty), in email order, after the email `after` (exclusive; the
    /// cursor of the previous page), at most `limit`.
    async fn list_users(
        &self,
        email_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Applies an operator's update and sets `updated_at` to `now`; returns
    /// the profile after it, `None` when there is no such user.
    async fn admin_update(
        &self,
        id: &UserId,
        update: &AdminUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>>;
    /// Erases the account: profile and credentials, its sessions, its
    /// avatar and its linked identities. Its email is free again afterwards. False when there was no
    /// such user. (On MongoDB these are several single-document or
    /// per-collection operations: sessions and avatar go first, the account
    /// last, so an interrupted deletion leaves the account to delete again.)
    async fn delete_user(&self, id: &UserId) -> StoreResult<bool>;
    /// Moves the account to the (normalized) address `email`, marks it
    /// verified and sets `updated_at`, in one atomic step with the unique
    /// index: `Conflict` (and nothing changed) when another account holds
    /// `email`; false when there is no such user. The old address is free
    /// afterwards.
    async fn change_email(&self, id: &UserId, email: &str, now: i64) -> StoreResult<bool>;
}

/// Avatars: one re-encoded image per user.
#[async_trait]
pub trait AvatarStore: Send + Sync {
    /// Stores (or replaces) the user's avatar and records its etag on the
    /// account; false, and nothing kept, when there is no such user.
    async fn put_avatar(&self, avatar: &AvatarRecord) -> StoreResult<bool>;
    /// The user's avatar, `None` when they have none.
    async fn avatar(&self, user_id: &UserId) -> StoreResult<Option<AvatarRecord>>;
    /// Removes the user's avatar and clears its etag on the account; false
    /// when there was none.
    async fn delete_avatar(&self, user_id: &UserId) -> StoreResult<bool>;
}

/// The secrets of accounts, stored with the account (see [`records`]).
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The credentials of the user, `None` when there is no such user.
    async fn credentials(&self, user_id: &UserId) -> StoreResult<Option<CredentialRecord>>;
    /// Replaces the password hash (a peppered one: `legacy_bcrypt` is
    /// cleared) and sets the user's `updated_at` to `now`; the profile is
    /// kept. False when there is no such user.
    async fn set_password_hash(&self, user_id: &UserId, hash: &str, now: i64) -> StoreResult<bool>;
    /// Hands an account whose address was never verified to whoever just
    /// proved the address (a password reset), in one write: the password
    /// hash becomes `hash` (peppered), every other credential is forgotten
    /// (active and pending TOTP secrets, recovery codes, passkeys;
    /// `mfa_enabled` false, `passkey_count` 0), the address is marked
    /// verified and `updated_at` becomes `now`. The rest of the profile is
    /// kept. False when there is no such user.
    async fn claim_account(&self, user_id: &UserId, hash: &str, now: i64) -> StoreResult<bool>;

    // Two-factor sign-in (TOTP and recovery codes). Secrets arrive sealed
    // and codes hashed: the store never sees them in the clear.

    /// Keeps `sealed` as the pending TOTP secret (not yet confirmed),
    /// replacing an earlier pending one; an active secret stays as it is.
    /// False when there is no such user.
    async fn set_pending_totp(&self, user_id: &UserId, sealed: &str) -> StoreResult<bool>;
    /// Turns two-factor sign-in on, if `sealed` is still the pending
    /// secret: it becomes the active secret, the recovery codes become
    /// `recovery_codes` (hashes), `mfa_enabled` turns true and `updated_at`
    /// becomes `now`. False when there is no such user or another secret is
    /// pending by now.
    async fn activate_totp(
        &self,
        user_id: &UserId,
        sealed: &str,
        recovery_codes: &[String],
        now: i64,
    ) -> StoreResult<bool>;
    /// Turns two-factor sign-in off: forgets the active and pending
    /// secrets and the recovery codes, `mfa_enabled` turns false,
    /// `updated_at` becomes `now`. False when there is no such user.
    async fn disable_totp(&self, user_id: &UserId, now: i64) -> StoreResult<bool>;
    /// Replaces the recovery codes (hashes) with a new set while two-factor
    /// sign-in is on; every code of the old set stops working. False when
    /// there is no such user or two-factor sign-in is off.
    async fn replace_recovery_codes(
        &self,
        user_id: &UserId,
        recovery_codes: &[String],
        now: i64,
    ) -> StoreResult<bool>;
    /// Uses up the recovery code with hash `hash`: true when it was unused
    /// and is now gone, false otherwise. Of racing uses of one code exactly
    /// one gets true.
    async fn consume_recovery_code(
        &self,
        user_id: &UserId,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool>;
    // Passkeys.
    /// Adds a passkey, counts it in the profile's `passkey_count` and sets
    /// `updated_at` to `now`, in one write, unless the user has `max`
    /// passkeys already ([`PasskeyAddition::Full`], nothing written; the
    /// count is checked by the write itself). `Conflict` (and nothing
    /// written) when the user already has a passkey with this id.
    async fn add_passkey(
        &self,
        user_id: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
        now: i64,
    ) -> StoreResult<PasskeyAddition>;
    /// Replaces a passkey after a use (new counter, backup state, library
    /// state, `last_used_at`). False when the user has no passkey with
    /// `passkey.id` (removed meanwhile): nothing is written then.
    async fn update_passkey(&self, user_id: &UserId, passkey: &PasskeyRecord) -> StoreResult<bool>;
    /// Removes a passkey, uncounts it and sets `updated_at` to `now`, unless
    /// it is the last passkey of an account without a password or a linked
    /// identity (that would lock the user out): then [`PasskeyRemoval::LastCredential`] and
    /// nothing changes.
    async fn remove_passkey(
        &self,
        user_id: &UserId,
        passkey_id: &str,
        now: i64,
    ) -> StoreResult<PasskeyRemoval>;
}

// Passkeys.
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
    /// Whether session `sid` exists, belongs to `user_id` and is active at
    /// `now` ([`SessionRecord::is_active`]): the bearer check. Exact: a
    /// session revoked by a write that returned is never live here. (The
    /// embedded store answers from memory, see `embedded::cache`.)
    async fn session_live(&self, sid: &str, user_id: &UserId, now: i64) -> StoreResult<bool> {
        Ok(self
            .session(sid)
            .await?
            .is_some_and(|s| s.user_id == *user_id && s.is_active(now)))
    }
    /// A refresh attempt: atomic compare-and-swap of the family's current
    /// generation, decided by [`classify_rotation`]. Of racing attempts with
    /// the current token exactly one gets `Rotated`.
    async fn rotate(&self, rotation: &Rotation<'_>) -> StoreResult<RotateOutcome>;
    /// Active sessions of a user, newest first.
    async fn sessions_of(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<SessionRecord>>;
    /// Revokes one session of `user_id`; false when it is not theirs or not active.
    async fn revoke_session(&self, user_id: &UserId, sid: &str, now: i64) -> StoreResult<bool>;
    /// Sets `proven_at` of session `sid` to `at` (the user proved who they
    /// are on it), if it belongs to `user_id` and is active at `at`; false
    /// otherwise (nothing written).
    async fn record_proof(&self, user_id: &UserId, sid: &str, at: i64) -> StoreResult<bool>;
    /// Binds session `sid` of `user_id` to the DPoP key `jkt` if it is
    /// active at `now` and not bound yet (a bearer session refreshed with a
    /// proof). True when the session is bound to `jkt` afterwards (also
    /// when it already was); false when it is bound to another key, not
    /// theirs or not active. Of racing binds to different keys one wins.
    async fn bind_session_key(
        &self,
        user_id: &UserId,
        sid: &str,
        jkt: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Revokes every active session of a user but `keep`; returns how many.
    async fn revoke_sessions_of(
        &self,
        user_id: &UserId,
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
    /// `window` seconds past its newest failure. Racing calls all count
    /// (none is lost).
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()>;
    /// Times of the account's failed sign-ins within `(now - window, now]`,
    /// oldest first: recorded failures and settled reservations
    /// ([`ThrottleStore::fail_login_attempt`]), not the places of checks
    /// still in flight.
    async fn login_failures(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>>;
    /// Forgets the account's failed sign-ins (after a successful one). The
    /// places of other checks still in flight stay reserved: each of them
    /// settles or releases its own.
    async fn clear_login_failures(&self, account: &str) -> StoreResult<()>;

    // -- attempt reservation --
    /// Reserves one check of `account` before it runs, atomically: granted
    /// only while the account's failures within `(now - window, now]` and
    /// the places of checks in flight are fewer than `limit`. The place is
    /// held until the check settles it: a failed check calls
    /// [`ThrottleStore::fail_login_attempt`] (the place becomes a failure),
    /// any other outcome gives it back with
    /// [`ThrottleStore::release_login_attempt`] (a successful check also
    /// calls [`ThrottleStore::clear_login_failures`]). A place nobody
    /// settles frees itself after
    /// [`RESERVATION_TTL`](rules::RESERVATION_TTL). Returns the
    /// reservation's id, or `None` when the limit is reached. Of racing
    /// reservations at most `limit` are granted.
    async fn reserve_login_attempt(
        &self,
        account: &str,
        limit: u32,
        now: i64,
        window: i64,
    ) -> StoreResult<Option<String>>;
    /// The check of a reservation failed: its place becomes a failure at
    /// `now`, counted for `window`. An unknown id (a place that freed by
    /// itself meanwhile) records the failure anyway.
    async fn fail_login_attempt(
        &self,
        account: &str,
        attempt: &str,
        now: i64,
        window: i64,
    ) -> StoreResult<()>;
    /// Gives back a reservation of [`ThrottleStore::reserve_login_attempt`]
    /// whose check did not fail (a success, an error, a refusal before the
    /// check); unknown ids are ignored.
    async fn release_login_attempt(&self, account: &str, attempt: &str) -> StoreResult<()>;
}

/// The audit log: security events, append-only, newest first.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends events (ids are unique; an id already stored is skipped, so
    /// a retried batch does not duplicate).
    async fn append_audit(&self, events: &[AuditRecord]) -> StoreResult<()>;
    /// Events matching `query` and still retained at `now`, newest first
    /// (descending id), at most `query.limit`.
    async fn audit_events(&self, query: &AuditQuery, now: i64) -> StoreResult<Vec<AuditRecord>>;
    /// Deletes events whose retention ended by `now`; returns how many.
    async fn purge_audit(&self, now: i64) -> StoreResult<u64>;
    /// Stores aggregated events (refusals: one per network, action and
    /// minute): an event whose id is not stored yet is inserted; one whose
    /// id is there adds its `details.count` to the stored event's (atomic
    /// per event, also between replicas). Not idempotent: the caller sends
    /// each count once.
    async fn add_audit_counts(&self, events: &[AuditRecord]) -> StoreResult<()>;
}

/// The webhook delivery queue (at least once: an entry leaves only when
/// delivered or expired).
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Queues deliveries; an id already queued is skipped.
    async fn enqueue_webhooks(&self, deliveries: &[WebhookDelivery]) -> StoreResult<()>;
    /// Deliveries due at `now` (`next_at <= now`, not expired), oldest
    /// first, at most `limit`.
    async fn due_webhooks(&self, now: i64, limit: usize) -> StoreResult<Vec<WebhookDelivery>>;
    /// Removes a delivered (or abandoned) entry.
    async fn webhook_done(&self, id: &str) -> StoreResult<()>;
    /// Records a failed attempt: `attempts` so far, next try at `next_at`.
    async fn webhook_retry(&self, id: &str, attempts: u32, next_at: i64) -> StoreResult<()>;
    /// Deletes entries expired by `now`; returns how many.
    async fn purge_webhooks(&self, now: i64) -> StoreResult<u64>;
}

/// The devices each user signed in from (new-device alerts, burst rule).
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Notes a sign-in of `user_id` from `key` on `network` at `now` (see
    /// [`KnownDevices::sight`], keeping at most `max`); returns the devices
    /// as they were before. Two racing sign-ins of one user may each see the
    /// other's device as unknown (at worst one extra alert).
    async fn note_device(
        &self,
        user_id: &UserId,
        key: &str,
        network: &str,
        now: i64,
        max: usize,
    ) -> StoreResult<KnownDevices>;
    /// Forgets one device of a user (after "not me": the next sign-in from
    /// it is new again). No error when it is not there.
    async fn forget_device(&self, user_id: &UserId, key: &str) -> StoreResult<()>;
}

/// A whole backend: every kind of record, plus upkeep.
#[async_trait]
pub trait Store:
    UserStore
    + CredentialStore
    + SessionStore
    + OnceStore
    + ThrottleStore
    + AuditStore
    + WebhookStore
    + DeviceStore
    + AvatarStore
    + TicketStore
    + MailQueueStore
    + CeremonyStore
    + AnonymousStore
    + IdentityStore
    + OAuthStore
{
    /// Deletes what has expired by `now`: sessions, single-use keys,
    /// WebAuthn ceremonies and failed-sign-in records (and, on MongoDB, retired refresh tokens).
    /// Reads already ignore expired records; this only frees the space.
    /// Returns how many sessions it deleted.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
    /// The bearer check and the account of a profile read (`GET /v1/me`)
    /// in one step: whether session `sid` is live for `user_id` at `now`
    /// (as [`SessionStore::session_live`]) and, when it is, the account
    /// `user_id` (`None` when there is no such user). When the session is
    /// not live the account may not be read: `(false, None)`. By default
    /// two reads; a backend overrides it with one (a read transaction, a
    /// round trip).
    async fn live_session_user(
        &self,
        sid: &str,
        user_id: &UserId,
        now: i64,
    ) -> StoreResult<(bool, Option<UserRecord>)> {
        if !self.session_live(sid, user_id, now).await? {
            return Ok((false, None));
        }
        Ok((true, self.user_by_id(user_id).await?))
    }
    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Name for logs and test output (`embedded (redb)`, `mongodb 7.0.x`).
    fn describe(&self) -> String;
}

/// The store the service holds.
pub type DynStore = Arc<dyn Store>;

//! Records and traits of the email flows: the one-time tickets behind reset
//! and verification links and codes ([`TicketStore`]), and the durable
//! outgoing-mail queue ([`MailQueueStore`]). Records follow the rule of
//! [`records`](super::records): a field added later carries `#[serde(default)]`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

use super::StoreResult;

/// What a ticket proves when it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// A password reset (`POST /v1/password/reset`).
    Reset,
    /// Ownership of an email address (`POST /v1/email/verify`).
    Verify,
    /// Ownership of a new address the account moves to when proven
    /// (`POST /v1/me/email`, then `POST /v1/email/verify`).
    EmailChange,
    /// A passwordless sign-in (`POST /v1/sessions/email/verify`). Kept
    /// under a stand-in id of the address, not a user id: an address
    /// without an account (sign-up by email) has a ticket too.
    SignIn,
}

impl TicketKind {
    /// The kind as a stored key part (`reset`, `verify`). Fixed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Verify => "verify",
            Self::EmailChange => "email_change",
            Self::SignIn => "sign_in",
        }
    }
}

/// The one live ticket of a kind for a user: the link's token and the
/// email code of one mail, stored only as hashes. Storing a newer ticket of
/// the same kind for the user replaces it (the older one dies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTicket {
    /// Reset or verification.
    pub kind: TicketKind,
    /// The user it is for (for the index entry of an email change, the
    /// address key instead: see `owner`), so plain text, not a `UserId`.
    pub user_id: String,
    /// Id of this ticket; spending it claims a single-use key on it.
    pub jti: String,
    /// Hex SHA-256 of the link token's secret part.
    pub token_hash: String,
    /// Hex HMAC-SHA-256 (server key) of the ticket id and the numeric code.
    pub code_hash: String,
    /// The address the mail went to (a verification proves this address).
    pub email: String,
    /// A fingerprint of the password hash when it was issued: a reset
    /// ticket dies when the password changes.
    pub credential_stamp: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; the ticket is dead from then on.
    pub expires_at: i64,
    /// For the index entry of an email change (stored under its new
    /// address instead of a user id): the account it belongs to.
    #[serde(default)]
    pub owner: Option<String>,
}

/// One message in the outgoing-mail queue. It holds what to send (a kind
/// and its recipient), never a rendered body: links and codes are made when
/// the mail is sent, so no live token waits in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMail {
    /// The idempotency key: one event, one id, one mail.
    pub id: String,
    /// What to send (stored as `password_reset`, `verify_email`, `notice.*`, ...).
    pub kind: super::MailKind,
    /// Recipient by account, when the mail is about one.
    pub user_id: Option<UserId>,
    /// Recipient by address (a reset request names an address, not a user).
    pub email: Option<String>,
    /// Locale of the request, when known (templates fall back to `en`).
    #[serde(default)]
    pub locale: Option<String>,
    /// Non-secret details the mail is rendered from, as JSON text (the
    /// device and time of a new-sign-in notice). Never a token: those are
    /// made when the mail is sent.
    #[serde(default)]
    pub detail: Option<String>,
    /// Unix seconds when it was accepted.
    pub created_at: i64,
    /// How many send attempts have been claimed.
    pub attempts: u32,
    /// When it may be (re)tried; a claim moves it to the end of the lease.
    pub next_attempt_at: i64,
    /// Why the last attempt failed (no secrets: a transport error text).
    pub last_error: Option<String>,
    /// Set once sent (or dropped: nothing to send); never sent again.
    pub sent_at: Option<i64>,
    /// When the record may be deleted (sent or given up); until then the id
    /// keeps a repeated event from queueing a second mail.
    pub expires_at: i64,
}

/// The queue's size for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailQueueStats {
    /// Mails not yet sent (and not given up).
    pub pending: u64,
    /// `created_at` of the oldest of them.
    pub oldest_created_at: Option<i64>,
}

/// Reset and verification tickets (see [`EmailTicket`]).
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores `ticket` as the user's one ticket of its kind, replacing any
    /// older one (which dies with it).
    async fn put_ticket(&self, ticket: &EmailTicket) -> StoreResult<()>;
    /// The user's ticket of `kind`, unless there is none or it expired by `now`.
    async fn ticket(
        &self,
        kind: TicketKind,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Option<EmailTicket>>;
    /// Deletes the user's ticket of `kind` when its id is `jti` (any ticket
    /// when `jti` is `None`); true when one was deleted.
    async fn delete_ticket(
        &self,
        kind: TicketKind,
        user_id: &str,
        jti: Option<&str>,
    ) -> StoreResult<bool>;
}

/// The durable outgoing-mail queue, shared by every replica.
#[async_trait]
pub trait MailQueueStore: Send + Sync {
    /// Adds `mail`; false, and nothing changes, when a mail with its id is
    /// already queued or was sent (the id is the idempotency key).
    async fn enqueue_mail(&self, mail: &QueuedMail) -> StoreResult<bool>;
    /// Claims one due mail (not sent, `next_attempt_at <= now`, not expired)
    /// for one send attempt: its `attempts` goes up by one and its
    /// `next_attempt_at` to `lease_until`, so no other claimer gets it
    /// before the lease ends. Of racing claimers exactly one gets a given
    /// attempt. Returns the mail as claimed (with the new `attempts`).
    async fn claim_mail(&self, now: i64, lease_until: i64) -> StoreResult<Option<QueuedMail>>;
    /// Marks the mail sent by the claimer of attempt `attempt`; it is kept
    /// until `keep_until` so its id still refuses a duplicate.
    async fn mail_sent(&self, id: &str, attempt: u32, now: i64, keep_until: i64)
    -> StoreResult<()>;
    /// Records a failed attempt `attempt`: it is due again at `retry_at`.
    async fn mail_failed(
        &self,
        id: &str,
        attempt: u32,
        error: &str,
        retry_at: i64,
    ) -> StoreResult<()>;
    /// How many mails wait, and since when.
    async fn mail_queue_stats(&self, now: i64) -> StoreResult<MailQueueStats>;
    /// Deletes queue records and tickets expired by `now`; returns how
    /// many queue records went.
    async fn purge_email_records(&self, now: i64) -> StoreResult<u64>;
}

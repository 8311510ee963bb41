//! Mail as the use cases see it: queueing a message for an event
//! ([`Core::notify`](super::Core::notify) for security notices; reset and
//! verification mails are queued by their own use cases), and the sender's
//! step ([`Core::send_due_mail`](super::Core::send_due_mail)), run by the
//! mail job in [`jobs`](crate::jobs).
//!
//! # What the queue guarantees
//!
//! - A mail is queued in the store before the request that caused it
//!   answers; a crash or an SMTP outage after that only delays it: it is
//!   retried with exponential backoff (1 s doubling to 10 min) for up to
//!   [`GIVE_UP_AFTER`] seconds.
//! - Each event has one idempotency key (the queue record's id): queueing
//!   the same event twice queues one mail, and once sent a mail is never
//!   claimed again.
//! - A send attempt is claimed with a lease ([`SEND_LEASE`]): of several
//!   replicas exactly one gets it. A replica that dies mid-send leaves the
//!   lease to expire, then another one sends it. So delivery is
//!   at-least-once: a second copy goes out only when a replica dies after
//!   the SMTP server accepted a message and before it recorded that (a
//!   window of one store write). Both copies carry the same `Message-ID`.
//! - A failed send is logged and retried; the client of the request that
//!   queued the mail never sees it.
//! - Reset and verification links are made when the mail is sent, not when
//!   it is queued: no live token waits in the queue. A retry makes a new
//!   link (the older one dies with it).

//!
//! The queue (`queue.rs`) and the sender with its one prepare per kind
//! (`sender.rs`), one `impl Core` each.

mod queue;
mod sender;

use std::sync::Arc;

use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretBox};

use crate::mail::{Mailer, Templates};

/// How long a claimed send attempt is exclusive to its claimer.
pub const SEND_LEASE: i64 = 300;
/// How long an unsent mail is retried before it is given up.
pub const GIVE_UP_AFTER: i64 = 3 * 86_400;
/// How long a sent mail's record keeps refusing a duplicate of its event.
const KEEP_SENT: i64 = 7 * 86_400;
/// Longest wait between two attempts.
const MAX_BACKOFF: i64 = 600;

/// What a new-sign-in notice is rendered from (kept in the queue; the
/// "not me" token is signed when the mail is sent).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct NewSignInDetail {
    /// The session the sign-in opened.
    pub(super) sid: String,
    /// The device key (user-agent family and network) "not me" forgets.
    pub(super) dev: String,
    /// Approximate device, for the reader (`Firefox on Linux`).
    pub(super) device: String,
    /// Client address.
    pub(super) ip: Option<String>,
    /// When (Unix seconds).
    pub(super) at: i64,
}

/// Who asked for a reset mail (kept in the queue so that the sender can
/// record `password.reset_requested` for a known account).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ResetRequestDetail {
    /// Client address.
    pub(super) ip: Option<String>,
    /// Client user agent.
    pub(super) user_agent: Option<String>,
}

/// The mail side of the core: where mail goes and what it looks like.
pub struct Postbox {
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) templates: Templates,
    pub(crate) from: Mailbox,
    /// Keys the HMAC of email codes (`keys/email-code-hmac.key`).
    pub(crate) code_key: SecretBox<[u8; 32]>,
    /// Wakes the sender when a mail is queued by this process.
    pub(crate) wake: tokio::sync::Notify,
}

impl Postbox {
    /// Assembles the postbox.
    pub fn new(
        mailer: Arc<dyn Mailer>,
        templates: Templates,
        from: Mailbox,
        code_key: SecretBox<[u8; 32]>,
    ) -> Self {
        Self {
            mailer,
            templates,
            from,
            code_key,
            wake: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn code_key(&self) -> &[u8; 32] {
        self.code_key.expose_secret()
    }
}

/// A security notice mailed to a user. Features that change a security
/// setting add a variant (its text comes from the `notice` templates,
/// which branch on [`Notice::as_str`] and have a generic text for any other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The user changed their password (`POST /v1/me/password`).
    PasswordChanged,
    /// The password was reset by link or code.
    PasswordReset,
    /// Two-factor sign-in was turned on.
    TwoFactorEnabled,
    /// Two-factor sign-in was turned off.
    TwoFactorDisabled,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesRegenerated,
    /// A passkey was added to the account.
    PasskeyAdded,
    /// A passkey was removed from the account.
    PasskeyRemoved,
    /// A change of the account's address was asked for (sent to the old one).
    EmailChangeRequested,
    /// A password reset claimed an account whose address was never
    /// verified: every other credential and session was removed.
    AccountClaimed,
    /// An identity of an upstream provider was linked to the account.
    IdentityLinked,
}

impl Notice {
    /// The notice's name in templates and the queue (`password_changed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::TwoFactorEnabled => "mfa_enabled",
            Self::TwoFactorDisabled => "mfa_disabled",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::EmailChangeRequested => "email_change_requested",
            Self::AccountClaimed => "account_claimed",
            Self::IdentityLinked => "identity_linked",
        }
    }
}

/// What one round of the sender did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendRound {
    /// Mails handed to the mailer and accepted.
    pub sent: usize,
    /// Mails with nothing to send (unknown user, already verified, stale).
    pub dropped: usize,
    /// Attempts that failed and will be retried.
    pub failed: usize,
}

fn backoff(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(10);
    (1_i64 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), 1);
        assert_eq!(backoff(2), 2);
        assert_eq!(backoff(5), 16);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}

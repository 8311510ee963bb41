//! Mail as the use cases see it: queueing a message for an event
//! ([`Core::notify`] for security notices; reset and verification mails are
//! queued by their own use cases), and the sender's step
//! ([`Core::send_due_mail`]), run by the mail job in [`jobs`](crate::jobs).
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

use std::sync::Arc;

use lettre::message::Mailbox;
use minijinja::context;
use secrecy::{ExposeSecret, SecretBox};

use super::{Core, Result};
use crate::clock::secs;
use crate::domain::UserId;
use crate::mail::{MailError, Mailer, OutgoingMail, Rendered, Templates};
use crate::store::{MailKind, QueuedMail, TicketKind, UserRecord};

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

// size-check: impl Core over 300 lines: the queue and the sender with its one prepare per kind; next to split (queue, sender).
impl Core {
    /// Queues a security notice for `user_id`. Never fails the caller: a
    /// notice that cannot be queued is logged (the change it reports has
    /// already happened).
    pub async fn notify(&self, user_id: &UserId, notice: Notice) {
        let id = format!(
            "notice:{}:{user_id}:{}",
            notice.as_str(),
            uuid::Uuid::now_v7().simple()
        );
        let kind = MailKind::Notice(notice.as_str().to_string());
        if let Err(e) = self.enqueue(id, kind, Some(user_id), None).await {
            tracing::warn!(error = %e, user_id = %user_id, notice = notice.as_str(), "could not queue a security notice");
        }
    }

    /// Queues one mail under the idempotency key `id` and wakes the sender.
    pub(super) async fn enqueue(
        &self,
        id: String,
        kind: MailKind,
        user_id: Option<&str>,
        email: Option<&str>,
    ) -> Result<()> {
        self.enqueue_detailed(id, kind, user_id, email, None).await
    }

    /// [`Core::enqueue`] with non-secret `detail` (JSON text) to render from.
    pub(super) async fn enqueue_detailed(
        &self,
        id: String,
        kind: MailKind,
        user_id: Option<&str>,
        email: Option<&str>,
        detail: Option<String>,
    ) -> Result<()> {
        let now = self.clock.now();
        let mail = QueuedMail {
            id,
            kind,
            user_id: user_id.map(UserId::from),
            email: email.map(str::to_string),
            locale: None,
            detail,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            sent_at: None,
            expires_at: now.saturating_add(GIVE_UP_AFTER),
        };
        if self.store.enqueue_mail(&mail).await? {
            metrics::counter!("portcullis_mail_queued_total").increment(1);
            self.mail.wake.notify_one();
        }
        Ok(())
    }

    /// Waits until a mail is queued by this process or `max` has passed.
    pub async fn wait_for_mail(&self, max: std::time::Duration) {
        let _ = tokio::time::timeout(max, self.mail.wake.notified()).await;
    }

    /// Where mail goes, for the start-up log.
    pub fn mailer_name(&self) -> String {
        self.mail.mailer.describe()
    }

    /// One round of the sender: claims and sends due mails until none is
    /// left (at most `max`). Updates the mail metrics.
    pub async fn send_due_mail(&self, max: usize) -> Result<SendRound> {
        let mut round = SendRound::default();
        for _ in 0..max {
            let now = self.clock.now();
            let Some(mail) = self
                .store
                .claim_mail(now, now.saturating_add(SEND_LEASE))
                .await?
            else {
                break;
            };
            let outcome = match self.prepare(&mail).await {
                Ok(Some(out)) => self
                    .mail
                    .mailer
                    .send(&self.mail.from, &out)
                    .await
                    .map(|()| true),
                Ok(None) => Ok(false),
                Err(e) => Err(MailError::Transport(format!("preparing: {e}"))),
            };
            let now = self.clock.now();
            match outcome {
                Ok(sent) => {
                    self.store
                        .mail_sent(&mail.id, mail.attempts, now, now.saturating_add(KEEP_SENT))
                        .await?;
                    if sent {
                        round.sent += 1;
                        metrics::counter!("portcullis_mail_sent_total").increment(1);
                        tracing::info!(mail_id = %mail.id, kind = %mail.kind, attempts = mail.attempts, "mail sent");
                    } else {
                        round.dropped += 1;
                        tracing::debug!(mail_id = %mail.id, kind = %mail.kind, "mail had nothing to send");
                    }
                }
                Err(e) => {
                    round.failed += 1;
                    metrics::counter!("portcullis_mail_failed_total").increment(1);
                    let retry_at = now.saturating_add(backoff(mail.attempts));
                    let error = e.to_string();
                    tracing::warn!(mail_id = %mail.id, kind = %mail.kind, attempts = mail.attempts, error = %error, retry_in = retry_at - now, "mail not sent; will retry");
                    // An invalid message cannot get better: give it up.
                    let retry_at = if matches!(e, MailError::Invalid(_)) {
                        mail.expires_at
                    } else {
                        retry_at
                    };
                    self.store
                        .mail_failed(&mail.id, mail.attempts, &error, retry_at)
                        .await?;
                }
            }
        }
        self.update_mail_metrics().await;
        Ok(round)
    }

    async fn update_mail_metrics(&self) {
        let now = self.clock.now();
        match self.store.mail_queue_stats(now).await {
            Ok(stats) => {
                metrics::gauge!("portcullis_mail_queue_pending").set(stats.pending as f64);
                let age = stats.oldest_created_at.map_or(0, |t| (now - t).max(0));
                metrics::gauge!("portcullis_mail_queue_age_seconds").set(age as f64);
            }
            Err(e) => tracing::debug!(error = %e, "mail queue stats unavailable"),
        }
    }

    /// Purges sent and given-up queue records and dead tickets.
    pub(super) async fn purge_mail(&self) -> Result<u64> {
        Ok(self.store.purge_email_records(self.clock.now()).await?)
    }

    /// Base of links in mail (`PORTCULLIS_APP_URL` or the public URL).
    fn link_base(&self) -> &str {
        self.settings.mail.link_base(&self.settings.http.public_url)
    }

    /// Turns a queue record into a message; `None` when there is nothing
    /// to send (unknown or disabled user, already verified, stale request).
    #[allow(
        clippy::too_many_lines,
        reason = "one arm per mail kind, each a few lines of template variables; split, the kinds would be read apart from the checks they share"
    )]
    async fn prepare(&self, mail: &QueuedMail) -> Result<Option<OutgoingMail>> {
        let now = self.clock.now();
        let base = self.link_base().to_string();
        let user = match (&mail.user_id, &mail.email) {
            (Some(id), _) => self.store.user_by_id(id).await?,
            (None, Some(email)) if mail.kind != MailKind::AlreadyRegistered => {
                self.store.user_by_email(email).await?
            }
            _ => None,
        };
        // The request's locale, else the user's (templates fall back to `en`).
        let locale = mail
            .locale
            .clone()
            .or_else(|| user.as_ref().and_then(|u| u.locale.clone()));
        let render = |name: &str, ctx: minijinja::Value| -> Result<Rendered> {
            self.mail
                .templates
                .render(name, locale.as_deref(), &ctx)
                .map_err(|e| super::Error::Unexpected(anyhow::anyhow!("template {name}: {e}")))
        };
        let out = |user_email: &str, content: Rendered| OutgoingMail {
            id: mail.id.clone(),
            to: user_email.to_string(),
            content,
        };
        match &mail.kind {
            MailKind::PasswordReset => {
                let Some(user) = live(user) else {
                    return Ok(None);
                };
                let ttl = secs(self.settings.mail.reset_ttl);
                if now - mail.created_at > ttl {
                    return Ok(None);
                }
                // A `forgot` request for a known account (recorded at its
                // first attempt; "not me" resets are not requests).
                if let (1, Some(asker)) = (
                    mail.attempts,
                    mail.detail
                        .as_deref()
                        .and_then(|d| serde_json::from_str::<ResetRequestDetail>(d).ok()),
                ) {
                    let client = super::ClientInfo {
                        ip: asker.ip.and_then(|ip| ip.parse().ok()),
                        user_agent: asker.user_agent,
                    };
                    self.audit(
                        crate::audit::AuditEvent::PasswordResetRequested,
                        Some(&user.id),
                        &client,
                    );
                }
                let t = self.issue_ticket(TicketKind::Reset, &user, ttl).await?;
                let link = format!("{base}/reset-password?token={}", t.token);
                let passkeys = self.passkey_lines(&user.id).await?;
                let content = render(
                    "reset",
                    context! { link, code => t.code, minutes => ttl / 60, email => user.email.clone(),
                    verified => user.email_verified,
                    passkeys => lines_value(&passkeys) },
                )?;
                Ok(Some(out(&user.email, content)))
            }
            MailKind::VerifyEmail => {
                let Some(user) = live(user) else {
                    return Ok(None);
                };
                let ttl = secs(self.settings.mail.verify_ttl);
                if user.email_verified || now - mail.created_at > ttl {
                    return Ok(None);
                }
                let t = self.issue_ticket(TicketKind::Verify, &user, ttl).await?;
                let link = format!("{base}/verify-email?token={}", t.token);
                let content = render(
                    "verify",
                    context! { link, code => t.code, hours => ttl / 3600, email => user.email.clone() },
                )?;
                Ok(Some(out(&user.email, content)))
            }
            MailKind::EmailChange => {
                let (Some(user), Some(new_email)) = (live(user), mail.email.as_deref()) else {
                    return Ok(None);
                };
                let ttl = secs(self.settings.mail.verify_ttl);
                if now - mail.created_at > ttl {
                    return Ok(None);
                }
                let t = self
                    .issue_ticket_to(TicketKind::EmailChange, &user, new_email, ttl)
                    .await?;
                let link = format!("{base}/verify-email?token={}", t.token);
                let content = render(
                    "verify",
                    context! { link, code => t.code, hours => ttl / 3600, email => new_email.to_string() },
                )?;
                Ok(Some(out(new_email, content)))
            }
            MailKind::NewSignIn => {
                let Some(user) = live(user) else {
                    return Ok(None);
                };
                let Some(d) = mail
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<NewSignInDetail>(d).ok())
                else {
                    tracing::warn!(id = %mail.id, "new-sign-in notice without its details dropped");
                    return Ok(None);
                };
                let token = self.not_me_token(&user.id, &d.sid, &d.dev)?;
                let link = format!("{base}/not-me?token={}", token.expose_secret());
                let at = time::OffsetDateTime::from_unix_timestamp(d.at)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                let content = render(
                    "new_sign_in",
                    context! { link, email => user.email.clone(), device => d.device,
                    ip => d.ip.unwrap_or_else(|| "unknown".to_string()), at },
                )?;
                Ok(Some(out(&user.email, content)))
            }
            MailKind::EmailSignIn => {
                let Some(address) = mail.email.as_deref() else {
                    return Ok(None);
                };
                let ttl = super::passwordless::SIGN_IN_TTL;
                if now - mail.created_at > ttl {
                    return Ok(None);
                }
                let new_account = user.is_none();
                let Some(t) = self.sign_in_ticket_for(address, user.as_ref()).await? else {
                    return Ok(None);
                };
                let link = format!("{base}/sign-in?token={}", t.token);
                let content = render(
                    "sign_in",
                    context! { link, code => t.code, minutes => ttl / 60,
                    email => address.to_string(), new_account },
                )?;
                Ok(Some(out(address, content)))
            }
            MailKind::AlreadyRegistered => {
                let Some(email) = &mail.email else {
                    return Ok(None);
                };
                let content = render(
                    "already_registered",
                    context! { email => email.clone(), sign_in_url => base.clone(),
                    reset_url => format!("{base}/reset-password") },
                )?;
                Ok(Some(out(email, content)))
            }
            MailKind::Other(kind) => {
                tracing::warn!(kind, "unknown kind of queued mail dropped");
                Ok(None)
            }
            MailKind::Notice(notice) => {
                let Some(user) = user.filter(|u| !u.anonymous) else {
                    return Ok(None);
                };
                // After a reset the owner sees every way into the account
                // that is left: a passkey they do not know is
                // someone else's.
                let passkeys = if notice == Notice::PasswordReset.as_str() {
                    self.passkey_lines(&user.id).await?
                } else {
                    Vec::new()
                };
                let content = render(
                    "notice",
                    context! { notice => notice.to_string(), email => user.email.clone(),
                    reset_url => format!("{base}/reset-password"),
                    passkeys => lines_value(&passkeys) },
                )?;
                Ok(Some(out(&user.email, content)))
            }
        }
    }
}

/// One passkey as a mail lists it.
#[derive(Debug)]
struct PasskeyLine {
    name: String,
    /// `YYYY-MM-DD` (UTC).
    added: String,
    /// `YYYY-MM-DD` (UTC), or `never`.
    last_used: String,
}

/// The lines as a template value: a list of `{name, added, last_used}`.
fn lines_value(lines: &[PasskeyLine]) -> minijinja::Value {
    use minijinja::Value;
    let items: Vec<Value> = lines
        .iter()
        .map(|l| {
            Value::from_pairs([
                ("name", Value::from(l.name.clone())),
                ("added", Value::from(l.added.clone())),
                ("last_used", Value::from(l.last_used.clone())),
            ])
        })
        .collect();
    Value::from(items)
}

/// A Unix time as `YYYY-MM-DD` (UTC).
fn day(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| d.date().to_string())
        .unwrap_or_default()
}

impl Core {
    /// The account's passkeys with their dates, oldest first, for mails
    /// that list the ways into an account (reset, "not me"). Linked
    /// identities join this list when they exist.
    async fn passkey_lines(&self, user_id: &UserId) -> Result<Vec<PasskeyLine>> {
        let creds = self.store.credentials(user_id).await?.unwrap_or_default();
        let mut list: Vec<_> = creds.passkeys.into_values().collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(list
            .into_iter()
            .map(|p| PasskeyLine {
                name: p.name,
                added: day(p.created_at),
                last_used: p.last_used_at.map_or_else(|| "never".to_string(), day),
            })
            .collect())
    }
}

/// The user, unless absent, disabled or a guest (whose stand-in address
/// is nobody's mailbox).
fn live(user: Option<UserRecord>) -> Option<UserRecord> {
    user.filter(|u| !u.disabled && !u.anonymous)
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

//! The sender: claims due mails, prepares each by kind (links and codes are
//! made here, at send time), hands it to the mailer, and records the outcome.

use minijinja::context;
use secrecy::ExposeSecret;

use super::{
    KEEP_SENT, NewSignInDetail, Notice, ResetRequestDetail, SEND_LEASE, SendRound, backoff,
};
use crate::clock::secs;
use crate::domain::UserId;
use crate::mail::{MailError, OutgoingMail, Rendered};
use crate::service::{Core, Result};
use crate::store::{MailKind, QueuedMail, TicketKind, UserRecord};

impl Core {
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
                .map_err(|e| {
                    crate::service::Error::Unexpected(anyhow::anyhow!("template {name}: {e}"))
                })
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
                    let client = crate::service::ClientInfo {
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
                let ttl = crate::service::passwordless::SIGN_IN_TTL;
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

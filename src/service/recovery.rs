//! Password recovery: `forgot` queues a reset mail, `reset` sets a new
//! password with the mail's link token or code.
//!
//! `forgot` does the same work for a known and an unknown address: it
//! checks the limits, counts the request against the address, and queues
//! one mail request. Whether the address has an account is found out by the
//! sender, off the request path, which then mails a link and code, or
//! nothing. So the answer and its timing cannot tell the two apart.

use secrecy::SecretString;

use super::guards::password_context;
use super::mail::Notice;
use super::throttle::Reserved;
use super::tickets::TicketProof;
use super::{ClientInfo, Core, Error, FieldError, Result, SecondFactor};
use crate::audit::AuditEvent;
use crate::auth::limits::Action;
use crate::config::CaptchaMode;
use crate::domain::Email;
use crate::store::MailKind;
use crate::store::{TicketKind, UserRecord};

/// Reset requests per address within 15 minutes before 429.
pub const FORGOT_PER_EMAIL: usize = 5;

/// A password reset, as received.
pub struct PasswordReset {
    /// The link's token, or the address and code of the mail.
    pub proof: Option<TicketProof>,
    /// The new password.
    pub new_password: SecretString,
    /// A TOTP code, when the account has two-factor on.
    pub mfa_code: Option<SecretString>,
    /// A recovery code, when the account has two-factor on.
    pub recovery_code: Option<SecretString>,
}

impl Core {
    /// Queues a reset mail for `email` when it has an account; answers the
    /// same either way (see the module docs).
    pub async fn forgot_password(
        &self,
        email: &str,
        captcha: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        self.rate_limit(Action::Email, client)?;
        if self.settings.limits.captcha == CaptchaMode::Always {
            self.check_captcha(captcha).await?;
        }
        // A malformed address cannot have an account: the same answer, and
        // nothing queued.
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        self.per_address_limit("forgot", email.as_str(), FORGOT_PER_EMAIL)
            .await?;
        let id = format!("reset:{}", uuid::Uuid::now_v7().simple());
        // Who asked: the sender records `password.reset_requested` against
        // the account when there is one (off the request path: no oracle).
        let asker = serde_json::to_string(&super::mail::ResetRequestDetail {
            ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
        })
        .ok();
        self.enqueue_detailed(
            id,
            MailKind::PasswordReset,
            None,
            Some(email.as_str()),
            asker,
        )
        .await?;
        tracing::info!(
            event = "password.reset_requested",
            "password reset requested"
        );
        Ok(())
    }

    /// Counts one request for `subject` under `what` in the store (every
    /// replica sees it); more than `max` within 15 minutes is 429. The
    /// place is reserved atomically before the caller does the work it
    /// guards (`service::throttle`): of any number of simultaneous requests
    /// at most `max` pass (finding M2: 200 simultaneous `forgot`s sent 43
    /// reset mails, 178 on MongoDB, against a limit of 5).
    ///
    /// These limits protect a mailbox and bound guessing across mailed
    /// codes, so they hold whatever `PORTCULLIS_RATE_LIMIT` says (that
    /// switch is for the per-IP buckets).
    pub(super) async fn per_address_limit(
        &self,
        what: &str,
        subject: &str,
        max: usize,
    ) -> Result<()> {
        // A space cannot be in an address or an id: no clash with the
        // sign-in failure records, which use the bare address.
        let key = format!("{what} {subject}");
        let limit = u32::try_from(max).unwrap_or(u32::MAX);
        match self.reserve_attempt(&[(key, limit)]).await? {
            // Every request counts, whatever comes of it.
            Reserved::Granted(counted) => self.attempt_failed(counted).await,
            Reserved::Full(a, retry_after) => {
                self.release_attempt(a).await;
                Err(Error::RateLimited { retry_after })
            }
            Reserved::Busy(retry_after) => Err(Error::RateLimited { retry_after }),
        }
    }

    /// Sets a new password with a reset ticket. The ticket is spent only
    /// once everything else checked out: a refused password or a missing
    /// second factor leaves it usable. Every session of the user ends; the
    /// reset does not sign in.
    ///
    /// An account whose address was never verified is *claimed* (a hijack
    /// found in review): whoever registered the address first (possibly not its
    /// owner) loses everything they set up: passkeys, second factor,
    /// sessions (and linked identities, once they exist). No second factor
    /// is asked for then: the mail just proved the address, and a squatter's
    /// TOTP must not keep the owner out.
    pub async fn reset_password(&self, input: PasswordReset, client: &ClientInfo) -> Result<()> {
        self.rate_limit(Action::Email, client)?;
        let Some(proof) = input.proof else {
            return Err(Error::Validation(vec![FieldError::new(
                "token",
                "required",
                "Send `token` (from the link) or `email` and `email_code`.",
            )]));
        };
        let (user, ticket) = self.check_ticket(TicketKind::Reset, &proof).await?;
        let context = password_context(Some(&user.email), user.display_name.as_deref());
        let password = self
            .new_password("new_password", input.new_password, &context)
            .map_err(|e| Error::Validation(vec![e]))?;
        // The mail reached its reader: the address is proven too.
        let claim = !user.email_verified && ticket.email == user.email;
        if !claim {
            self.reset_second_factor(&user, input.mfa_code, input.recovery_code, client)
                .await?;
        }
        self.spend_ticket(&ticket).await?;
        let hash = self.hasher.hash(&password).await?;
        let now = self.clock.now();
        if claim {
            // Sessions end before and after the one write that swaps every
            // credential: one that signed in with the old password meanwhile
            // does not survive either.
            let before = self.store.revoke_sessions_of(&user.id, None, now).await?;
            if !self.store.claim_account(&user.id, &hash, now).await? {
                return Err(Error::TicketInvalid);
            }
            let after = self.store.revoke_sessions_of(&user.id, None, now).await?;
            // Linked identities go too: whoever registered the address first
            // loses every way in they set up.
            let unlinked = self.store.delete_identities_of(&user.id).await?;
            tracing::info!(user_id = %user.id, revoked = before + after, unlinked, event = "password.reset", claimed = true, "unverified account claimed by its address: other credentials removed, every session revoked");
            self.audit(
                AuditEvent::PasswordReset {
                    revoked: before + after,
                },
                Some(&user.id),
                client,
            );
            self.audit(AuditEvent::EmailVerified, Some(&user.id), client);
            self.notify(&user.id, Notice::AccountClaimed).await;
            return Ok(());
        }
        self.store.set_password_hash(&user.id, &hash, now).await?;
        let revoked = self.store.revoke_sessions_of(&user.id, None, now).await?;
        tracing::info!(user_id = %user.id, revoked, event = "password.reset", "password reset; every session revoked");
        self.audit(
            AuditEvent::PasswordReset { revoked },
            Some(&user.id),
            client,
        );
        self.notify(&user.id, Notice::PasswordReset).await;
        Ok(())
    }

    /// The second factor a reset needs when the account has two-factor on:
    /// `mfa_code` or `recovery_code` (a right one is used up); none or a
    /// wrong one is `mfa-required`, and the reset token stays usable.
    async fn reset_second_factor(
        &self,
        user: &UserRecord,
        mfa_code: Option<SecretString>,
        recovery_code: Option<SecretString>,
        client: &ClientInfo,
    ) -> Result<()> {
        use secrecy::ExposeSecret;
        let factor = match (mfa_code, recovery_code) {
            (Some(code), _) => Some(SecondFactor::Code(code.expose_secret().to_string())),
            (None, Some(rc)) => Some(SecondFactor::RecoveryCode(rc)),
            (None, None) => None,
        };
        self.check_second_factor(&user.id, factor, client).await
    }
}

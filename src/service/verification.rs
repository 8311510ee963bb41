//! Email verification: a mail with a link and a code at registration (and
//! on request), `verify` to spend it, and the enumeration-safe registration
//! of `PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true`.

use super::tickets::TicketProof;
use super::{
    ClientInfo, Core, Error, FieldError, MailNotice, Principal, Proof, Registration, Result,
};
use crate::domain::{Email, UserId};
use crate::store::MailKind;

const EMAIL_TAKEN: &str = "An account with this email address already exists.";
use crate::auth::limits::Action;
use crate::store::{ProfileUpdate, TicketKind, UserRecord};

/// Verification mails a user may ask for within 15 minutes before 429.
pub const RESEND_PER_USER: usize = 3;
/// "You already have an account" notices per address within 15 minutes.
pub const NOTICES_PER_ADDRESS: usize = 3;
/// Email changes to one address (any account's) within 15 minutes before 429.
pub const EMAIL_CHANGES_PER_ADDRESS: usize = 3;
/// Email changes one account may ask for within 15 minutes before 429.
pub const EMAIL_CHANGES_PER_ACCOUNT: usize = 3;

impl Core {
    /// Whether sign-in needs a verified address (and registration answers
    /// 202 for new and taken addresses alike).
    pub fn verification_required(&self) -> bool {
        self.settings.mail.require_verified_email
    }

    /// Refuses a sign-in with an unverified address when verification is
    /// required.
    pub(super) fn require_verified_email(&self, user: &UserRecord) -> Result<()> {
        if self.verification_required() && !user.email_verified {
            tracing::info!(user_id = %user.id, "sign-in refused: email not verified");
            return Err(Error::EmailUnverified);
        }
        Ok(())
    }

    /// Queues a verification mail for `user_id` (after registration or on
    /// request). A failure to queue is logged, not returned: the account
    /// exists, and the user can ask again.
    pub(super) async fn queue_verification(&self, user_id: &UserId) {
        let id = format!("verify:{user_id}:{}", uuid::Uuid::now_v7().simple());
        if let Err(e) = self
            .enqueue(id, MailKind::VerifyEmail, Some(user_id), None)
            .await
        {
            tracing::warn!(error = %e, user_id = %user_id, "could not queue a verification mail");
        }
    }

    /// Registration without an oracle: a new address gets an account and a
    /// verification mail, a taken one an "you already have an account"
    /// mail; both do the same work (validation, one bcrypt hash, one
    /// insert attempt, one queued mail) and answer the same.
    pub async fn register_quietly(&self, input: Registration, client: &ClientInfo) -> Result<()> {
        let checked = self.check_registration(input, client).await?;
        let email = checked.email.as_str().to_string();
        // Counted for every address, so both answers cost the same; it only
        // matters for a taken one: repeated registrations must not flood
        // its owner with notices. Over the limit, the notice is skipped
        // silently (a 429 here would be an oracle).
        let may_notify = self
            .per_address_limit("registered", &email, NOTICES_PER_ADDRESS)
            .await
            .is_ok();
        match self.create_account(checked, client).await {
            Ok(user) => {
                self.queue_verification(&user.id).await;
                Ok(())
            }
            Err(Error::Conflict(_)) if may_notify => {
                let id = format!("registered:{}", uuid::Uuid::now_v7().simple());
                self.enqueue(id, MailKind::AlreadyRegistered, None, Some(&email))
                    .await?;
                tracing::info!("registration with a taken address: notice queued");
                Ok(())
            }
            Err(Error::Conflict(_)) => {
                tracing::info!("registration with a taken address: notice limit reached");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Proves the address with the link's token or the mail's code: the
    /// account's own address, or the new address of an email change (the
    /// account then moves to it, if it is still free: else `Conflict`).
    pub async fn verify_email(&self, proof: TicketProof, client: &ClientInfo) -> Result<()> {
        self.rate_limit(Action::Email, client)?;
        let (user, ticket) = match self.check_ticket(TicketKind::Verify, &proof).await {
            Ok(found) => found,
            Err(Error::TicketInvalid) => {
                let (user, ticket) = self.check_ticket(TicketKind::EmailChange, &proof).await?;
                return self.finish_email_change(user, ticket, client).await;
            }
            Err(e) => return Err(e),
        };
        // The ticket proves the address it was mailed to, no other.
        if ticket.email != user.email {
            return Err(Error::TicketInvalid);
        }
        self.spend_ticket(&ticket).await?;
        let update = ProfileUpdate {
            email_verified: Some(true),
            ..ProfileUpdate::default()
        };
        self.store
            .update_profile(&user.id, &update, self.clock.now())
            .await?;
        tracing::info!(user_id = %user.id, event = "email.verified", "email address verified");
        self.audit(
            crate::audit::AuditEvent::EmailVerified,
            Some(&user.id),
            client,
        );
        Ok(())
    }

    /// `POST /v1/me/email`: after a proof (`proof`, or a recent one on the
    /// session: step-up), a verification mail (link and code) goes to
    /// `new_email` and a notice to the current address; the account moves
    /// only when the new address is proven.
    ///
    /// A taken `new_email` answers the same (no oracle): its owner gets the
    /// "you already have an account" notice instead of a verification
    /// mail, within the same per-address budget. Both paths read the
    /// address once and queue one mail. Mails are limited per account and
    /// per target address (429, for taken and free addresses alike), so
    /// nobody can flood a mailbox through this route.
    pub async fn request_email_change(
        &self,
        who: &Principal,
        new_email: &str,
        proof: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<()> {
        self.rate_limit(Action::Email, client)?;
        let email = Email::parse(new_email).map_err(|why| {
            Error::Validation(vec![FieldError::invalid("new_email", "Email address", why)])
        })?;
        let account = self.account(&who.user_id).await?;
        if account.is_anonymous {
            return Err(Error::AnonymousUser("change its email address"));
        }
        if email.as_str() == account.email {
            return Err(Error::Validation(vec![FieldError::new(
                "new_email",
                "same_as_current",
                "The new address is the account's address already.",
            )]));
        }
        self.require_recent_proof(who, proof, client).await?;
        self.per_address_limit("email_change_by", &account.id, EMAIL_CHANGES_PER_ACCOUNT)
            .await?;
        self.per_address_limit("email_change_to", email.as_str(), EMAIL_CHANGES_PER_ADDRESS)
            .await?;
        if self.user_by_email(&email).await?.is_some() {
            let id = format!("registered:{}", uuid::Uuid::now_v7().simple());
            self.enqueue(id, MailKind::AlreadyRegistered, None, Some(email.as_str()))
                .await?;
            tracing::info!(user_id = %account.id, "email change to a taken address: its owner notified");
        } else {
            let id = format!(
                "email_change:{}:{}",
                account.id,
                uuid::Uuid::now_v7().simple()
            );
            self.enqueue(
                id,
                MailKind::EmailChange,
                Some(&account.id),
                Some(email.as_str()),
            )
            .await?;
            tracing::info!(user_id = %account.id, "email change requested; verification mailed to the new address");
        }
        self.notify(&account.id, MailNotice::EmailChangeRequested)
            .await;
        Ok(())
    }

    /// Spends an email-change ticket and moves the account to its address.
    async fn finish_email_change(
        &self,
        user: UserRecord,
        ticket: crate::store::EmailTicket,
        client: &ClientInfo,
    ) -> Result<()> {
        self.spend_ticket(&ticket).await?;
        match self
            .store
            .change_email(&user.id, &ticket.email, self.clock.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Error::TicketInvalid),
            Err(crate::store::StoreError::Conflict) => return Err(Error::Conflict(EMAIL_TAKEN)),
            Err(e) => return Err(e.into()),
        }
        // A reset link mailed to the old address must not outlive the move
        //; `check_ticket` also binds tickets to their address.
        self.store
            .delete_ticket(TicketKind::Reset, &user.id, None)
            .await?;
        self.audit(
            crate::audit::AuditEvent::EmailChanged,
            Some(&user.id),
            client,
        );
        Ok(())
    }

    /// Sends the caller a new verification mail (none when the address is
    /// already verified); a few per 15 minutes.
    pub async fn resend_verification(&self, who: &Principal, client: &ClientInfo) -> Result<()> {
        self.rate_limit(Action::Email, client)?;
        let account = self.account(&who.user_id).await?;
        self.per_address_limit("verify", &account.id, RESEND_PER_USER)
            .await?;
        if !account.email_verified {
            self.queue_verification(&account.id).await;
        }
        Ok(())
    }
}

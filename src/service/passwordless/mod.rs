//! Passwordless sign-in by email (`POST /v1/sessions/email`, then
//! `POST /v1/sessions/email/verify`) and anonymous users
//! ([`anonymous`]).
//!
//! Sign-in by email reuses the reset machinery whole:
//! - The request does what `forgot` does, for a known and an unknown
//!   address alike: the per-IP limit, the CAPTCHA rule, the per-address
//!   mail limit (shared with reset mails: [`FORGOT_PER_EMAIL`] mails of
//!   either kind per address in 15 minutes), one queued mail request. Who
//!   has an account is found out by the sender, off the request path.
//! - The mail's link and 8-digit code are one ticket of
//!   [`tickets`](super::tickets) (kind `sign_in`): single use, 5 tries per
//!   code, superseded by a newer mail. Its lifetime is [`SIGN_IN_TTL`]
//!   (15 minutes; Supabase's 24-hour default is the complaint of
//!   research §6).
//! - On top of the 5 tries per code, an address has a budget of
//!   [`CODE_BUDGET`] wrong codes per 15 minutes across all its mails,
//!   reserved atomically in the store before each check
//!   (`service::throttle`): asking for a new mail never gives new tries
//!   (Better Auth #11162). Addresses without an account have the same
//!   budget, so a 429 tells nothing.
//! - A right link or code signs in with `amr: ["email"]`, or answers
//!   `mfa_required` when the account has a second factor (the factor
//!   still applies: Better Auth's email-code sign-in skips it).
//! - The link proves the address: an account whose address was never
//!   verified is *claimed* by it, as a reset claims it (Stage 3: whoever
//!   registered the address first loses the password, passkeys, second
//!   factor and sessions they set up) and is verified.
//! - With `PORTCULLIS_EMAIL_SIGNUP=true` an address without an account
//!   gets a mail too, and an account (email verified, no password) when
//!   its link or code is first used.

mod anonymous;

pub use anonymous::{AnonymousUpgrade, UpgradeOutcome};

use super::recovery::FORGOT_PER_EMAIL;
use super::throttle::Reserved;
use super::tickets::{IssuedTicket, TicketProof};
use super::{ClientInfo, Core, Error, FieldError, Result, SignIn};
use crate::audit::{AuditEvent, RateLimitedAction};
use crate::auth::limits::Action;
use crate::config::CaptchaMode;
use crate::domain::{Email, UserId};
use crate::store::MailKind;
use crate::store::{CredentialRecord, StoreError, UserRecord};

/// Lifetime of a sign-in link and code, in seconds.
pub const SIGN_IN_TTL: i64 = 15 * 60;
/// Wrong codes per address within 15 minutes, across all its mails.
pub const CODE_BUDGET: u32 = 10;

impl Core {
    /// Queues a sign-in mail for `email`; answers the same whether or not
    /// it has an account (see the module docs).
    pub async fn request_email_sign_in(
        &self,
        email: &str,
        captcha: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        self.rate_limit(Action::Email, client)?;
        if self.settings.limits.captcha == CaptchaMode::Always {
            self.check_captcha_audited(captcha, client).await?;
        }
        // A malformed address cannot have an account: the same answer, and
        // nothing queued.
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        // One budget of mails per address with the reset mails.
        self.per_address_limit("forgot", email.as_str(), FORGOT_PER_EMAIL)
            .await?;
        let id = format!("sign-in:{}", uuid::Uuid::now_v7().simple());
        self.enqueue(id, MailKind::EmailSignIn, None, Some(email.as_str()))
            .await?;
        tracing::info!(event = "login.email_requested", "sign-in mail requested");
        Ok(())
    }

    /// The ticket of a sign-in mail to `address`, issued when the sender
    /// sends it: for `user` (the account holding the address), or for a
    /// sign-up when there is none and `PORTCULLIS_EMAIL_SIGNUP` is on.
    /// `None`: nothing to send (a disabled account, or no account and no
    /// sign-up).
    pub(super) async fn sign_in_ticket_for(
        &self,
        address: &str,
        user: Option<&UserRecord>,
    ) -> Result<Option<IssuedTicket>> {
        let owner = match user {
            Some(u) if u.disabled || u.anonymous => return Ok(None),
            Some(u) => Some(u.id.as_str()),
            None if self.settings.passwordless.email_signup => None,
            None => return Ok(None),
        };
        Ok(Some(
            self.issue_sign_in_ticket(address, owner, SIGN_IN_TTL)
                .await?,
        ))
    }

    /// Signs in with a sign-in mail's link token or its address and code:
    /// tokens with `amr: ["email"]`, or `mfa_required`. Every refusal of
    /// the link or code is `TicketInvalid`; past the address's budget of
    /// wrong codes, 429.
    pub async fn verify_email_sign_in(
        &self,
        proof: Option<TicketProof>,
        client: ClientInfo,
    ) -> Result<SignIn> {
        self.rate_limit(Action::SignIn, &client)?;
        let Some(proof) = proof else {
            return Err(Error::Validation(vec![FieldError::new(
                "token",
                "required",
                "Send `token` (from the link) or `email` and `email_code`.",
            )]));
        };
        // The budget of an address's codes (a token has 256 bits: no budget
        // needed). Keyed by the normalized address when it parses, so
        // spellings of one address share it.
        let budget = match &proof {
            TicketProof::Code { email, .. } => {
                let account = Email::parse(email)
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_else(|_| email.trim().to_lowercase());
                let key = format!("sign-in-code {account}");
                match self.reserve_attempt(&[(key, CODE_BUDGET)]).await? {
                    Reserved::Granted(a) => Some((a, account)),
                    Reserved::Full(a, retry_after) => {
                        self.release_attempt(a).await;
                        let pseudonym = self.hasher.pseudonym(&account);
                        self.audit(
                            AuditEvent::RateLimited {
                                action: RateLimitedAction::EmailSignIn,
                            },
                            None,
                            &client,
                        );
                        return Err(self.throttled(
                            "email_sign_in",
                            None,
                            &pseudonym,
                            &client,
                            retry_after,
                        ));
                    }
                    Reserved::Busy(retry_after) => {
                        return Err(Error::RateLimited { retry_after });
                    }
                }
            }
            TicketProof::Token(_) => None,
        };
        let checked = self.check_sign_in_ticket(&proof).await;
        let (user, ticket) = match (checked, budget) {
            (Ok(found), Some((attempt, _))) => {
                self.attempt_succeeded(attempt).await?;
                found
            }
            (Ok(found), None) => found,
            (Err(Error::TicketInvalid), budget) => {
                if let Some((attempt, account)) = budget {
                    self.attempt_failed(attempt).await?;
                    // Known and unknown addresses alike (the same reads).
                    self.sign_in_failed(&account, "invalid_email_code", None, &client)
                        .await;
                }
                metrics::counter!("portcullis_logins_total", "result" => "failure").increment(1);
                return Err(Error::TicketInvalid);
            }
            (Err(e), budget) => {
                if let Some((attempt, _)) = budget {
                    self.release_attempt(attempt).await;
                }
                return Err(e);
            }
        };
        self.spend_ticket(&ticket).await?;
        let user = match user {
            Some(u) if u.email_verified => u,
            Some(u) => self.claim_by_email(u, &client).await?,
            None => self.sign_up_by_email(&ticket.email, &client).await?,
        };
        let first = vec!["email".to_string()];
        if let Some(challenge) = self.mfa_challenge_with(&user, &first, None).await? {
            return Ok(SignIn::MfaRequired(challenge));
        }
        let tokens = self.start_session(user, first, client.clone()).await?;
        tracing::info!(user_id = %tokens.account.id, method = "email", "signed in");
        self.signed_in(&tokens.account, &tokens.session_id, &client)
            .await;
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(SignIn::Tokens(Box::new(tokens)))
    }

    /// A sign-in link used on an account whose address was never verified:
    /// the link proves the address, so the account is claimed as a reset
    /// claims it (every other credential and session removed, no password
    /// left) and its address is verified.
    async fn claim_by_email(&self, user: UserRecord, client: &ClientInfo) -> Result<UserRecord> {
        let now = self.clock.now();
        let before = self.store.revoke_sessions_of(&user.id, None, now).await?;
        if !self.store.claim_account(&user.id, "", now).await? {
            return Err(Error::TicketInvalid);
        }
        let after = self.store.revoke_sessions_of(&user.id, None, now).await?;
        tracing::info!(user_id = %user.id, revoked = before + after, event = "email.verified", claimed = true, "unverified account claimed by a sign-in link: other credentials removed");
        self.audit(AuditEvent::EmailVerified, Some(&user.id), client);
        self.notify(&user.id, super::MailNotice::AccountClaimed)
            .await;
        self.store
            .user_by_id(&user.id)
            .await?
            .ok_or(Error::TicketInvalid)
    }

    /// The account of a sign-up by email: verified address, no password.
    /// An account made for the address meanwhile wins (the link dies).
    async fn sign_up_by_email(&self, address: &str, client: &ClientInfo) -> Result<UserRecord> {
        if !self.settings.passwordless.email_signup {
            return Err(Error::TicketInvalid);
        }
        let now = self.clock.now();
        let user = UserRecord {
            id: UserId::mint(),
            email: address.to_string(),
            email_verified: true,
            roles: vec!["user".to_string()],
            created_at: now,
            updated_at: now,
            ..UserRecord::default()
        };
        match self
            .store
            .create_user(&user, &CredentialRecord::default())
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(Error::TicketInvalid),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user_id = %user.id, event = "user.registered", method = "email", "account created by a sign-in link");
        self.audit(AuditEvent::UserRegistered, Some(&user.id), client);
        self.audit(AuditEvent::EmailVerified, Some(&user.id), client);
        metrics::counter!("portcullis_registrations_total").increment(1);
        Ok(user)
    }
}

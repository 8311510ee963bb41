//! Anonymous (guest) users: `POST /v1/sessions/anonymous` makes one and
//! signs it in; `POST /v1/me/upgrade` (or, for federation, linking an
//! identity through [`Core::upgrade_anonymous_user`]) turns it into a full
//! account with the same id; unused guests are purged.
//!
//! - A guest is a user record with `anonymous: true`, a stand-in address
//!   `<id>@anonymous.invalid` (the unique key needs one; `.invalid` is
//!   reserved by RFC 2606, so it is nobody's mailbox, and the API shows an
//!   empty `email`), no password. Its access tokens carry
//!   `is_anonymous: true`, its user body `is_anonymous: true`.
//! - Creation is limited per client network (IPv4 /24, IPv6 /64):
//!   [`ANONYMOUS_PER_NETWORK`] per 15 minutes, reserved atomically in the
//!   store (every replica counts, whatever `PORTCULLIS_RATE_LIMIT` says),
//!   besides the per-IP bucket of registrations. Past it, a CAPTCHA lets a
//!   request through (`on-failures`) or it is 429 (`off`); with `always`
//!   every request needs one.
//! - A guest cannot add a passkey, turn on TOTP or change its email
//!   (403 `anonymous-user`): it has no address to recover them with, and
//!   the step-up proof window of its first session must not be a way to
//!   attach credentials to a throwaway account. It upgrades first.
//! - The upgrade keeps the id, the sessions (their refresh tokens keep
//!   working; new access tokens lose the claim; the old ones keep it until
//!   they expire) and everything stored under the id. A taken address
//!   answers as sign-up does: 409 in open mode; with
//!   `PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true`, 202 for taken and free
//!   addresses alike (the owner of a taken one gets the "you already have
//!   an account" mail, the guest stays a guest).
//! - Every refresh records the guest's use; one unused for
//!   `PORTCULLIS_ANONYMOUS_TTL` (default 30 days) is deleted with its
//!   sessions by the purge job ([`Core::purge_anonymous`]).

use secrecy::SecretString;

use crate::audit::{AuditEvent, RateLimitedAction};
use crate::auth::limits::Action;
use crate::clock::secs;
use crate::config::CaptchaMode;
use crate::domain::{Email, UserId};
use crate::service::guards::password_context;
use crate::service::throttle::{Reserved, network_of};
use crate::service::verification::NOTICES_PER_ADDRESS;
use crate::service::{
    Account, ClientInfo, Core, Error, FieldError, IssuedTokens, Principal, Result,
};
use crate::store::MailKind;
use crate::store::{CredentialRecord, StoreError, UserRecord};

/// Anonymous users one client network may create within 15 minutes
/// before a CAPTCHA (or 429).
pub const ANONYMOUS_PER_NETWORK: u32 = 10;
/// The domain of guests' stand-in addresses (RFC 2606: never a mailbox).
pub const ANONYMOUS_DOMAIN: &str = "anonymous.invalid";
/// Guests deleted per purge step.
const PURGE_BATCH: usize = 500;

const EMAIL_TAKEN: &str = "An account with this email address already exists.";

/// How a guest becomes a full account.
pub struct AnonymousUpgrade {
    /// The address the account takes (as typed).
    pub email: String,
    /// Its password; `None` for an account that signs in another way
    /// (an identity linked by the federation flow).
    pub password: Option<SecretString>,
    /// Whether the address is already proven (an identity provider's
    /// verified email); else a verification mail is sent.
    pub email_verified: bool,
}

/// What `POST /v1/me/upgrade` did.
#[derive(Debug)]
pub enum UpgradeOutcome {
    /// The account is a full one now.
    Upgraded(Box<Account>),
    /// Verification-required mode: the answer for a free and a taken
    /// address alike (see the module docs).
    VerificationSent,
}

impl Core {
    /// Creates a guest user and signs it in (see the module docs).
    pub async fn sign_in_anonymously(
        &self,
        captcha: Option<&str>,
        client: ClientInfo,
    ) -> Result<IssuedTokens> {
        if !self.settings.passwordless.anonymous {
            return Err(Error::AnonymousDisabled);
        }
        if let Err(e) = self.rate_limit(Action::Register, &client) {
            self.log_refusal("anonymous", None, None, &client, &e);
            return Err(e);
        }
        let mode = self.settings.limits.captcha;
        if mode == CaptchaMode::Always {
            self.check_captcha_audited(captcha, &client).await?;
        }
        let key = format!("anonymous {}", network_of(client.ip));
        match self
            .reserve_attempt(&[(key, ANONYMOUS_PER_NETWORK)])
            .await?
        {
            // Every creation counts for the window.
            Reserved::Granted(a) => self.attempt_failed(a).await?,
            Reserved::Busy(retry_after) => return Err(Error::RateLimited { retry_after }),
            Reserved::Full(a, retry_after) => {
                self.release_attempt(a).await;
                match mode {
                    CaptchaMode::Off => {
                        let refused = self.throttled("anonymous", None, "", &client, retry_after);
                        self.audit(
                            AuditEvent::RateLimited {
                                action: RateLimitedAction::Anonymous,
                            },
                            None,
                            &client,
                        );
                        return Err(refused);
                    }
                    CaptchaMode::OnFailures => {
                        self.check_captcha_audited(captcha, &client).await?;
                    }
                    // Solved above.
                    CaptchaMode::Always => {}
                }
            }
        }
        let now = self.clock.now();
        let id = UserId::mint();
        let user = UserRecord {
            email: format!("{id}@{ANONYMOUS_DOMAIN}"),
            id,
            roles: vec!["user".to_string()],
            created_at: now,
            updated_at: now,
            anonymous: true,
            last_active_at: Some(now),
            ..UserRecord::default()
        };
        self.store
            .create_user(&user, &CredentialRecord::default())
            .await?;
        self.audit(AuditEvent::UserRegistered, Some(&user.id), &client);
        metrics::counter!("portcullis_registrations_total").increment(1);
        // No authentication method: `amr` is empty.
        let tokens = self.start_session(user, Vec::new(), client.clone()).await?;
        // No new-device notice: a guest has no mailbox.
        self.audit(
            AuditEvent::LoginSucceeded {
                sid: tokens.session_id.clone(),
                new_device: false,
            },
            Some(&tokens.account.id),
            &client,
        );
        tracing::info!(user_id = %tokens.account.id, "anonymous user created and signed in");
        Ok(tokens)
    }

    /// `POST /v1/me/upgrade`: the caller's guest account becomes a full
    /// one with `email` and `password` (see the module docs for a taken
    /// address).
    pub async fn upgrade(
        &self,
        who: &Principal,
        email: &str,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<UpgradeOutcome> {
        self.rate_limit(Action::Register, client)?;
        let input = AnonymousUpgrade {
            email: email.to_string(),
            password: Some(password),
            email_verified: false,
        };
        let quiet = self.verification_required();
        match self
            .upgrade_anonymous_user(&who.user_id, input, client)
            .await
        {
            Ok(account) if quiet => {
                tracing::debug!(user_id = %account.id, "upgraded; verification sent");
                Ok(UpgradeOutcome::VerificationSent)
            }
            Ok(account) => Ok(UpgradeOutcome::Upgraded(Box::new(account))),
            Err(Error::Conflict(EMAIL_TAKEN)) if quiet => {
                // As a quiet registration: the owner hears of it (a few
                // times per 15 minutes at most), the caller learns nothing.
                let Ok(address) = Email::parse(email) else {
                    return Ok(UpgradeOutcome::VerificationSent);
                };
                if self
                    .per_address_limit("registered", address.as_str(), NOTICES_PER_ADDRESS)
                    .await
                    .is_ok()
                {
                    let id = format!("registered:{}", uuid::Uuid::now_v7().simple());
                    self.enqueue(
                        id,
                        MailKind::AlreadyRegistered,
                        None,
                        Some(address.as_str()),
                    )
                    .await?;
                }
                Ok(UpgradeOutcome::VerificationSent)
            }
            Err(e) => Err(e),
        }
    }

    /// Turns the guest `user_id` into a full account in place: same id,
    /// sessions kept, `is_anonymous` gone from new tokens. For
    /// `POST /v1/me/upgrade` (address and password) and for upgrading by
    /// linking an identity (the provider's address, `email_verified`, no
    /// password: link the identity to `user_id` first, then call this).
    /// `Conflict` when another account holds the address; `Validation`
    /// for a bad address or a weak password; `Conflict` too when the
    /// account is not (or no longer) anonymous.
    pub async fn upgrade_anonymous_user(
        &self,
        user_id: &UserId,
        input: AnonymousUpgrade,
        client: &ClientInfo,
    ) -> Result<Account> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::TokenInvalid("unknown subject"))?;
        if !user.anonymous {
            return Err(Error::Conflict("The account is not anonymous."));
        }
        let mut errors = Vec::new();
        let email = Email::parse(&input.email)
            .map_err(|why| errors.push(FieldError::invalid("email", "Email address", why)))
            .ok();
        if email
            .as_ref()
            .is_some_and(|e| e.as_str().ends_with(&format!("@{ANONYMOUS_DOMAIN}")))
        {
            errors.push(FieldError::new(
                "email",
                "invalid",
                "Email address cannot be a stand-in address.",
            ));
        }
        let password = match input.password {
            Some(p) => {
                let context = password_context(email.as_ref().map(Email::as_str), None);
                self.new_password("password", p, &context)
                    .map_err(|e| errors.push(e))
                    .ok()
            }
            None => None,
        };
        let Some(email) = email.filter(|_| errors.is_empty()) else {
            return Err(Error::Validation(errors));
        };
        // A taken address costs no bcrypt; the store write decides races.
        if self.user_by_email(&email).await?.is_some() {
            return Err(Error::Conflict(EMAIL_TAKEN));
        }
        let hash = match &password {
            Some(p) => self.hasher.hash(p).await?,
            None => String::new(),
        };
        let now = self.clock.now();
        match self
            .store
            .upgrade_anonymous(user_id, email.as_str(), input.email_verified, &hash, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Error::Conflict("The account is not anonymous.")),
            Err(StoreError::Conflict) => return Err(Error::Conflict(EMAIL_TAKEN)),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            user_id = %user_id,
            event = "user.registered",
            upgraded = true,
            "anonymous user upgraded to a full account"
        );
        self.audit(AuditEvent::UserRegistered, Some(user_id), client);
        if input.email_verified {
            self.audit(AuditEvent::EmailVerified, Some(user_id), client);
        } else {
            self.queue_verification(user_id).await;
        }
        self.account(user_id).await
    }

    /// Deletes the guests unused for `PORTCULLIS_ANONYMOUS_TTL` (with their
    /// sessions and avatars); returns how many. Run by the purge job.
    pub async fn purge_anonymous(&self) -> Result<u64> {
        let ttl = secs(self.settings.passwordless.anonymous_ttl);
        let cutoff = self.clock.now().saturating_sub(ttl);
        let mut deleted = 0;
        loop {
            let stale = self.store.stale_anonymous(cutoff, PURGE_BATCH).await?;
            let mut this_round = 0;
            for id in &stale {
                if self.store.delete_stale_anonymous(id, cutoff).await? {
                    this_round += 1;
                    self.audit(AuditEvent::AccountDeleted, Some(id), &ClientInfo::default());
                }
            }
            deleted += this_round;
            // A short page is the last; a page of which nothing could be
            // deleted (all used meanwhile) must not loop.
            if stale.len() < PURGE_BATCH || this_round == 0 {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "unused anonymous users deleted");
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The federation path: a guest upgraded with a provider's verified
    /// address and no password keeps its id and sessions, is verified, and
    /// has no password; a second call, or a taken address, is `Conflict`.
    #[tokio::test]
    async fn upgrade_by_a_verified_address_without_a_password() {
        const T: i64 = 1_900_000_000;
        let dir = tempfile::tempdir().unwrap();
        let core = crate::service::test_core(dir.path(), T).await;
        let taken = crate::service::test_signed_up(
            &core,
            "taken@example.com",
            "correct horse battery staple 42",
        )
        .await;
        let id = UserId::mint();
        let guest = UserRecord {
            email: format!("{id}@{ANONYMOUS_DOMAIN}"),
            id: id.clone(),
            roles: vec!["user".into()],
            created_at: T,
            updated_at: T,
            anonymous: true,
            last_active_at: Some(T),
            ..UserRecord::default()
        };
        core.store
            .create_user(&guest, &CredentialRecord::default())
            .await
            .unwrap();
        let tokens = core
            .start_session(guest, Vec::new(), ClientInfo::default())
            .await
            .unwrap();
        assert!(tokens.account.is_anonymous);
        let client = ClientInfo::default();
        let upgrade = |email: &str| AnonymousUpgrade {
            email: email.into(),
            password: None,
            email_verified: true,
        };
        assert!(matches!(
            core.upgrade_anonymous_user(&id, upgrade(&taken.account.email), &client)
                .await,
            Err(Error::Conflict(_))
        ));
        let account = core
            .upgrade_anonymous_user(&id, upgrade("Fed@Example.com"), &client)
            .await
            .unwrap();
        assert_eq!(account.id, id);
        assert_eq!(account.email, "fed@example.com");
        assert!(account.email_verified && !account.is_anonymous);
        let creds = core.store.credentials(&id).await.unwrap().unwrap();
        assert!(!creds.has_password());
        assert!(
            core.store
                .session_live(&tokens.session_id, &id, T)
                .await
                .unwrap()
        );
        assert!(matches!(
            core.upgrade_anonymous_user(&id, upgrade("other@example.com"), &client)
                .await,
            Err(Error::Conflict(_))
        ));
    }
}

//! Accounts: registration and the caller's own profile.

use secrecy::SecretString;

use super::guards::password_context;
use super::{Account, ClientInfo, Core, Error, FieldError, Result};
use crate::audit::AuditEvent;
use crate::auth::limits::Action;
use crate::config::CaptchaMode;
use crate::domain::{DisplayName, Email, UserId};
use crate::store::{CredentialRecord, StoreError, UserRecord};

const EMAIL_TAKEN: &str = "An account with this email address already exists.";

/// New account input, as received.
pub struct Registration {
    /// Email address as typed.
    pub email: String,
    /// The chosen password.
    pub password: SecretString,
    /// Optional display name.
    pub display_name: Option<String>,
    /// Optional BCP 47 language tag.
    pub locale: Option<String>,
    /// ALTCHA solution, when a CAPTCHA is required.
    pub captcha: Option<String>,
}

/// Registration input that passed every check.
pub(super) struct CheckedRegistration {
    pub(super) email: Email,
    password: crate::domain::Password,
    display_name: Option<DisplayName>,
    locale: Option<crate::domain::Locale>,
}

impl Core {
    /// Creates an account (and queues its verification mail).
    pub async fn register(&self, input: Registration, client: &ClientInfo) -> Result<Account> {
        let checked = self.check_registration(input, client).await?;
        // Cheap duplicate check first so a taken email costs no bcrypt; the
        // unique index still decides races.
        if self.user_by_email(&checked.email).await?.is_some() {
            return Err(Error::Conflict(EMAIL_TAKEN));
        }
        let user = self.create_account(checked, client).await?;
        self.queue_verification(&user.id).await;
        Ok(self.to_account(user))
    }

    /// Limits, CAPTCHA and validation of a registration.
    pub(super) async fn check_registration(
        &self,
        input: Registration,
        client: &ClientInfo,
    ) -> Result<CheckedRegistration> {
        self.rate_limit(Action::Register, client)?;
        if self.settings.limits.captcha == CaptchaMode::Always {
            self.check_captcha_audited(input.captcha.as_deref(), client)
                .await?;
        }
        let mut errors = Vec::new();
        let email = Email::parse(&input.email)
            .map_err(|why| errors.push(FieldError::invalid("email", "Email address", why)))
            .ok();
        let display_name = input.display_name.as_deref().and_then(|raw| {
            DisplayName::parse(raw)
                .map_err(|why| {
                    errors.push(FieldError::invalid("display_name", "Display name", why))
                })
                .ok()
        });
        let locale = input.locale.as_deref().and_then(|raw| {
            crate::domain::Locale::parse(raw)
                .map_err(|why| errors.push(FieldError::invalid("locale", "Locale", why)))
                .ok()
        });
        let context = password_context(
            email.as_ref().map(Email::as_str),
            display_name.as_ref().map(DisplayName::as_str),
        );
        let password = self
            .new_password("password", input.password, &context)
            .map_err(|e| errors.push(e))
            .ok();
        let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
            return Err(Error::Validation(errors));
        };
        Ok(CheckedRegistration {
            email,
            password,
            display_name,
            locale,
        })
    }

    /// Hashes the password and inserts the account; `Conflict` when the
    /// address is taken.
    pub(super) async fn create_account(
        &self,
        checked: CheckedRegistration,
        client: &ClientInfo,
    ) -> Result<UserRecord> {
        let credentials = CredentialRecord {
            password_hash: self.hasher.hash(&checked.password).await?,
            ..CredentialRecord::default()
        };
        let now = self.clock.now();
        let user = UserRecord {
            id: UserId::mint(),
            email: checked.email.as_str().to_string(),
            email_verified: false,
            display_name: checked.display_name.map(DisplayName::into_inner),
            locale: checked.locale.map(crate::domain::Locale::into_inner),
            roles: vec!["user".to_string()],
            disabled: false,
            created_at: now,
            updated_at: now,
            ..UserRecord::default()
        };
        match self.store.create_user(&user, &credentials).await {
            Ok(()) => {
                self.audit(AuditEvent::UserRegistered, Some(&user.id), client);
                metrics::counter!("portcullis_registrations_total").increment(1);
                Ok(user)
            }
            Err(StoreError::Conflict) => Err(Error::Conflict(EMAIL_TAKEN)),
            Err(e) => Err(e.into()),
        }
    }

    /// The account of a verified caller; gone means the token is void.
    pub(super) async fn account(&self, user_id: &UserId) -> Result<Account> {
        self.store
            .user_by_id(user_id)
            .await?
            .map(|u| self.to_account(u))
            .ok_or(Error::TokenInvalid("unknown subject"))
    }
}

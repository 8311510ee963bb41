//! Accounts: registration and the caller's own profile.

use secrecy::SecretString;

use super::guards::password_context;
use super::{Account, ClientInfo, Core, Error, FieldError, Principal, Result};
use crate::auth::limits::Action;
use crate::config::CaptchaMode;
use crate::domain::{DisplayName, Email};
use crate::store::{CredentialRecord, ProfileUpdate, StoreError, UserRecord};

const EMAIL_TAKEN: &str = "An account with this email address already exists.";

/// New account input, as received.
pub struct Registration {
    /// Email address as typed.
    pub email: String,
    /// The chosen password.
    pub password: SecretString,
    /// Optional display name.
    pub display_name: Option<String>,
    /// ALTCHA solution, when a CAPTCHA is required.
    pub captcha: Option<String>,
}

impl Core {
    /// Creates an account.
    pub async fn register(&self, input: Registration, client: &ClientInfo) -> Result<Account> {
        self.rate_limit(Action::Register, client)?;
        if self.settings.limits.captcha == CaptchaMode::Always {
            self.check_captcha(input.captcha.as_deref()).await?;
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
        // Cheap duplicate check first so a taken email costs no bcrypt; the
        // unique index still decides races.
        if self.user_by_email(&email).await?.is_some() {
            return Err(Error::Conflict(EMAIL_TAKEN));
        }
        let credentials = CredentialRecord {
            password_hash: self.hasher.hash(&password).await?,
        };
        let now = self.clock.now();
        let user = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            email: email.as_str().to_string(),
            email_verified: false,
            display_name: display_name.map(DisplayName::into_inner),
            roles: vec!["user".to_string()],
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_user(&user, &credentials).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, event = "user.registered", "account created");
                metrics::counter!("portcullis_registrations_total").increment(1);
                Ok(user.into())
            }
            Err(StoreError::Conflict) => Err(Error::Conflict(EMAIL_TAKEN)),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's account.
    pub async fn me(&self, who: &Principal) -> Result<Account> {
        self.account(&who.user_id).await
    }

    /// The account of a verified caller; gone means the token is void.
    pub(super) async fn account(&self, user_id: &str) -> Result<Account> {
        self.store
            .user_by_id(user_id)
            .await?
            .map(Account::from)
            .ok_or(Error::TokenInvalid("unknown subject"))
    }

    /// Updates profile fields; `display_name: Some(None)` clears it.
    pub async fn update_profile(
        &self,
        who: &Principal,
        display_name: Option<Option<String>>,
    ) -> Result<Account> {
        let display_name = match display_name {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => Some(Some(
                DisplayName::parse(&raw)
                    .map_err(|why| {
                        Error::Validation(vec![FieldError::invalid(
                            "display_name",
                            "Display name",
                            why,
                        )])
                    })?
                    .into_inner(),
            )),
        };
        let update = ProfileUpdate { display_name };
        self.store
            .update_profile(&who.user_id, &update, self.clock.now())
            .await?
            .map(Account::from)
            .ok_or(Error::TokenInvalid("unknown subject"))
    }
}

//! Signing in with a password: the credential check (same work for an
//! unknown account), the failed-sign-in throttle, and `login`.

use secrecy::SecretString;

use super::ip_text;
use crate::audit::{AuditEvent, RateLimitedAction};
use crate::auth::limits::{Action, FAILURE_WINDOW};
use crate::clock::secs;
use crate::config::CaptchaMode;
use crate::domain::{Email, Password, UserId};
use crate::service::throttle::Reserved;
use crate::service::{ClientInfo, Core, Error, Result, SignIn};
use crate::store::{CredentialRecord, UserRecord};

impl Core {
    /// Checks credentials. Unknown email and wrong password look the same:
    /// same error, and the same bcrypt work (against a dummy hash).
    async fn check_credentials(
        &self,
        email: Option<&Email>,
        password: SecretString,
    ) -> Result<UserRecord> {
        let password = Password::for_verification(password);
        let user = match email {
            Some(e) => self.user_by_email(e).await?,
            None => None,
        };
        let credentials = match &user {
            Some(u) => self.store.credentials(&u.id).await?,
            None => None,
        };
        let ok = self
            .verify_password(&password, credentials.as_ref())
            .await?;
        match user {
            Some(u) if ok => {
                if u.disabled {
                    return Err(Error::AccountDisabled);
                }
                if credentials.as_ref().is_some_and(|c| c.legacy_bcrypt) {
                    self.upgrade_legacy_hash(&u.id, &password).await?;
                }
                Ok(u)
            }
            _ => Err(Error::InvalidCredentials),
        }
    }

    /// Checks a password against stored credentials: the peppered scheme,
    /// or, for an imported hash, plain bcrypt of the raw password. No
    /// credentials (unknown account) costs the same bcrypt work against the
    /// dummy hash.
    pub(in crate::service) async fn verify_password(
        &self,
        password: &Password,
        credentials: Option<&CredentialRecord>,
    ) -> Result<bool> {
        Ok(match credentials {
            // An imported account without a hash has no password yet: it
            // costs what an unknown account costs.
            Some(c) if c.password_hash.is_empty() => self.hasher.verify(password, None).await?,
            Some(c) if c.legacy_bcrypt => {
                self.hasher
                    .verify_legacy(password, &c.password_hash)
                    .await?
            }
            Some(c) => self.hasher.verify(password, Some(&c.password_hash)).await?,
            None => self.hasher.verify(password, None).await?,
        })
    }

    /// Replaces an imported hash, just verified with `password`, by a
    /// peppered one: from now on the account verifies like any other.
    async fn upgrade_legacy_hash(&self, user_id: &UserId, password: &Password) -> Result<()> {
        let hash = self.hasher.hash(password).await?;
        self.store
            .set_password_hash(user_id, &hash, self.clock.now())
            .await?;
        tracing::info!(
            user_id = %user_id,
            event = "password.rehashed",
            "imported password hash upgraded to the peppered scheme"
        );
        Ok(())
    }

    /// Signs in with email and password: a new session and its first token
    /// pair, or, when the account has two-factor sign-in on, no session yet
    /// and an `mfa+jwt` token for `POST /v1/sessions/mfa`.
    ///
    /// Each attempt first reserves its place in the throttle (see
    /// `service::throttle`): after `PORTCULLIS_LOGIN_MAX_FAILURES` failures
    /// (or attempts in flight) for an account from one network within 15
    /// minutes, or ten times that from anywhere, further attempts need a
    /// CAPTCHA (`on-failures`) or are refused with 429 until the window
    /// slides (`off`).
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        captcha: Option<&str>,
        client: ClientInfo,
    ) -> Result<SignIn> {
        if let Err(e) = self.rate_limit(Action::SignIn, &client) {
            self.log_refusal("sign_in", None, None, &client, &e);
            return Err(e);
        }
        let parsed = Email::parse(email).ok();
        let account = parsed
            .as_ref()
            .map(|e| e.as_str().to_string())
            .unwrap_or_else(|| email.trim().to_lowercase());
        let pseudonym = self.hasher.pseudonym(&account);
        let keys = self.sign_in_keys(&account, &client);
        let captcha_first = self.settings.limits.captcha == CaptchaMode::Always;
        if captcha_first && let Err(e) = self.check_captcha_audited(captcha, &client).await {
            self.log_refusal("sign_in", None, Some(&pseudonym), &client, &e);
            return Err(e);
        }
        // The attempt is reserved before bcrypt runs: racing
        // guesses cannot all pass the count.
        let attempt = match self.reserve_attempt(&keys).await? {
            Reserved::Granted(a) => a,
            // Checks in flight hold the places (not failures): no CAPTCHA
            // would help, a place frees within a second.
            Reserved::Busy(retry_after) => {
                metrics::counter!("portcullis_logins_total", "result" => "throttled").increment(1);
                return Err(self.throttled("sign_in", None, &pseudonym, &client, retry_after));
            }
            Reserved::Full(a, retry_after) => match self.settings.limits.captcha {
                CaptchaMode::Off => {
                    self.release_attempt(a).await;
                    metrics::counter!("portcullis_logins_total", "result" => "throttled")
                        .increment(1);
                    let refused = self.throttled("sign_in", None, &pseudonym, &client, retry_after);
                    self.audit(
                        AuditEvent::RateLimited {
                            action: RateLimitedAction::SignIn,
                        },
                        None,
                        &client,
                    );
                    return Err(refused);
                }
                CaptchaMode::OnFailures => match self.check_captcha_audited(captcha, &client).await
                {
                    Ok(()) => a,
                    Err(e) => {
                        self.release_attempt(a).await;
                        self.log_refusal("sign_in", None, Some(&pseudonym), &client, &e);
                        return Err(e);
                    }
                },
                CaptchaMode::Always => a,
            },
        };
        let user = match self.check_credentials(parsed.as_ref(), password).await {
            Ok(u) => u,
            Err(Error::InvalidCredentials) => {
                // The reservation becomes the failure's record.
                self.attempt_failed(attempt).await?;
                metrics::counter!("portcullis_logins_total", "result" => "failure").increment(1);
                tracing::warn!(
                    event = "login.failed",
                    account = %pseudonym,
                    client_ip = %ip_text(&client),
                    "sign-in failed: wrong email or password"
                );
                let now = self.clock.now();
                let failures = self
                    .store
                    .login_failures(&account, now, secs(FAILURE_WINDOW))
                    .await
                    .map(|f| f.len())
                    .ok();
                self.sign_in_failed(&account, "invalid_credentials", failures, &client)
                    .await;
                return Err(Error::InvalidCredentials);
            }
            Err(e) => {
                self.release_attempt(attempt).await;
                if matches!(e, Error::AccountDisabled) {
                    tracing::warn!(event = "login.refused", account = %pseudonym, client_ip = %ip_text(&client), "sign-in refused: account disabled");
                    self.sign_in_failed(&account, "account_disabled", None, &client)
                        .await;
                }
                return Err(e);
            }
        };
        self.attempt_succeeded(attempt).await?;
        // Only after the password checked out: no oracle for strangers.
        self.require_verified_email(&user)?;
        // Two-factor sign-in (service/mfa.rs): no session before the code.
        if let Some(challenge) = self.mfa_challenge(&user).await? {
            return Ok(SignIn::MfaRequired(challenge));
        }
        let tokens = self
            .start_session(user, vec!["pwd".to_string()], client.clone())
            .await?;
        tracing::info!(user_id = %tokens.account.id, client_ip = %ip_text(&client), "signed in");
        self.signed_in(&tokens.account, &tokens.session_id, &client)
            .await;
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(SignIn::Tokens(Box::new(tokens)))
    }
}

//! Checks several use cases share: per-IP rate limits, CAPTCHA solutions,
//! and the password rules (one context of guessable words for every check).

use secrecy::SecretString;

use super::{ClientInfo, Core, Error, FieldError, Result};
use crate::audit::AuditEvent;
use crate::auth::limits::Action;
use crate::domain::{Password, PasswordProblem};
use crate::store::OnceKey;

fn password_error(field: &str, p: &PasswordProblem) -> FieldError {
    FieldError::new(field, p.code(), format!("Password {}", p.detail()))
}

/// Words a password must not be built from: the email, its local part and
/// the display name.
pub(super) fn password_context(email: Option<&str>, name: Option<&str>) -> Vec<String> {
    let mut context = Vec::new();
    if let Some(email) = email {
        context.push(email.to_string());
        if let Some((local, domain)) = email.split_once('@') {
            context.push(local.to_string());
            // The address as a user types it: an internationalized domain
            // is stored in its ASCII (punycode) form.
            let (unicode, _) = idna::domain_to_unicode(domain);
            if unicode != domain {
                context.push(format!("{local}@{unicode}"));
            }
        }
    }
    context.extend(name.map(str::to_string));
    context
}

impl Core {
    /// One event line for a security-relevant refusal (429, CAPTCHA): who
    /// (user id, or a keyed hash of the email), from where, and why. Never
    /// a password or token.
    pub(super) fn log_refusal(
        &self,
        what: &'static str,
        user_id: Option<&str>,
        account: Option<&str>,
        client: &ClientInfo,
        error: &Error,
    ) {
        let event = match error {
            Error::RateLimited { .. } => {
                metrics::counter!("portcullis_rate_limited_total").increment(1);
                "rate_limited"
            }
            Error::CaptchaRequired => {
                metrics::counter!("portcullis_captcha_refusals_total").increment(1);
                "captcha.failed"
            }
            _ => "refused",
        };
        tracing::warn!(
            event,
            what,
            user_id = user_id.unwrap_or(""),
            account = account.unwrap_or(""),
            client_ip = %super::sessions::ip_text(client),
            "request refused"
        );
    }

    /// Takes one request from the client's per-IP budget.
    pub(super) fn rate_limit(&self, action: Action, client: &ClientInfo) -> Result<()> {
        self.limits.check(action, client.ip).map_err(|retry_after| {
            let action = action.into();
            self.audit(AuditEvent::RateLimited { action }, None, client);
            Error::RateLimited { retry_after }
        })
    }

    /// [`Core::check_captcha`], recording `captcha.failed` when refused.
    pub(super) async fn check_captcha_audited(
        &self,
        solution: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let result = self.check_captcha(solution).await;
        if let Err(Error::CaptchaRequired) = &result {
            self.audit(AuditEvent::CaptchaFailed, None, client);
        }
        result
    }

    /// Verifies a CAPTCHA solution and claims it, so it works once across
    /// every replica; a missing, wrong, expired or used one is
    /// `captcha-required`.
    pub(super) async fn check_captcha(&self, solution: Option<&str>) -> Result<()> {
        let Some(solution) = solution else {
            return Err(Error::CaptchaRequired);
        };
        let solved = self
            .captcha
            .verify(solution, self.clock.now_u64())
            .map_err(|e| {
                tracing::info!(reason = %e, "captcha refused");
                Error::CaptchaRequired
            })?;
        let key = OnceKey::Captcha(solved.challenge);
        let expires = i64::try_from(solved.expires).unwrap_or(i64::MAX);
        if self
            .store
            .claim_once(&key, expires, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            tracing::info!("captcha refused: solution already used");
            Err(Error::CaptchaRequired)
        }
    }

    /// Parses a new password and checks its strength against `context`;
    /// failures name `field`.
    pub(super) fn new_password(
        &self,
        field: &str,
        input: SecretString,
        context: &[String],
    ) -> std::result::Result<Password, FieldError> {
        let password = Password::parse(input).map_err(|p| password_error(field, &p))?;
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        self.policy
            .check(&password, &context)
            .map_err(|p| password_error(field, &p))?;
        if self
            .breached
            .as_ref()
            .is_some_and(|f| f.contains_password(password.expose()))
        {
            return Err(FieldError::new(
                field,
                "breached",
                "Password appears in a list of breached passwords; choose another.",
            ));
        }
        Ok(password)
    }
}

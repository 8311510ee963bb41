//! Passwords: changing one's own.

use secrecy::{ExposeSecret, SecretString};

use super::guards::password_context;
use super::throttle::Reserved;
use super::{ClientInfo, Core, Error, FieldError, Principal, Result};
use crate::audit::AuditEvent;
use crate::domain::{Password, UserId};

impl Core {
    /// Changes the password after checking the current one; ends every
    /// other session of the user.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: SecretString,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<()> {
        let account = self.account(&who.user_id).await?;
        let context = password_context(Some(&account.email), account.display_name.as_deref());
        let new = self
            .new_password("new_password", new, &context)
            .map_err(|e| Error::Validation(vec![e]))?;
        if new.expose() == current.expose_secret() {
            return Err(Error::Validation(vec![FieldError::new(
                "new_password",
                "same_as_current",
                "The new password must differ from the current one.",
            )]));
        }
        self.confirm_password(&account.id, current, client).await?;
        let hash = self.hasher.hash(&new).await?;
        let now = self.clock.now();
        self.store
            .set_password_hash(&account.id, &hash, now)
            .await?;
        let revoked = self
            .store
            .revoke_sessions_of(&account.id, Some(&who.sid), now)
            .await?;
        metrics::counter!("portcullis_password_changes_total", "result" => "success").increment(1);
        self.audit(
            AuditEvent::PasswordChanged { revoked },
            Some(&account.id),
            client,
        );
        self.notify(&account.id, super::MailNotice::PasswordChanged)
            .await;
        Ok(())
    }

    /// Checks the password of a signed-in user who confirms a sensitive
    /// change (password change, email change, account deletion). Throttled
    /// like sign-in, see [`Core::throttled_proof`]; a wrong one is
    /// [`Error::WrongPassword`]. An account without a password (imported
    /// without a hash) costs the same bcrypt work and is refused the same.
    pub(super) async fn confirm_password(
        &self,
        user_id: &UserId,
        password: SecretString,
        client: &ClientInfo,
    ) -> Result<()> {
        self.throttled_proof(user_id, client, async {
            let stored = self.store.credentials(user_id).await?;
            let password = Password::for_verification(password);
            // The peppered scheme, or plain bcrypt for an imported hash.
            if self.verify_password(&password, stored.as_ref()).await? {
                return Ok(Ok(()));
            }
            tracing::warn!(
                user_id = %user_id,
                client_ip = %super::sessions::ip_text(client),
                event = "password.change_failed",
                "refused: wrong current password"
            );
            Ok(Err(Error::WrongPassword))
        })
        .await
    }

    /// Runs `check`, the proof a signed-in user gives to confirm a
    /// sensitive change, under the per-user throttle of such proofs: each
    /// check reserves its place first, so one account or token queues at
    /// most `PORTCULLIS_LOGIN_MAX_FAILURES` checks in 15 minutes, whatever
    /// their kind (password, code, passkey); past that, 429 with
    /// `Retry-After`. `check` answers `Ok(Ok(()))` for a right proof (the
    /// count is cleared), `Ok(Err(refusal))` for a wrong one (it counts),
    /// and `Err` when it could not tell (store down: the place is given back).
    pub(super) async fn throttled_proof(
        &self,
        user_id: &UserId,
        client: &ClientInfo,
        check: impl std::future::Future<Output = Result<std::result::Result<(), Error>>>,
    ) -> Result<()> {
        let reserved = match self
            .reserve_attempt(&self.password_check_keys(user_id))
            .await?
        {
            Reserved::Granted(a) => Ok(a),
            Reserved::Busy(retry_after) => Err(retry_after),
            Reserved::Full(a, retry_after) => {
                self.release_attempt(a).await;
                metrics::counter!("portcullis_password_changes_total", "result" => "throttled")
                    .increment(1);
                Err(retry_after)
            }
        };
        let attempt = reserved.map_err(|retry_after| {
            self.throttled("password_change", Some(user_id), "", client, retry_after)
        })?;
        match check.await {
            Ok(Ok(())) => self.attempt_succeeded(attempt).await,
            Ok(Err(refusal)) => {
                self.attempt_failed(attempt).await?;
                metrics::counter!("portcullis_password_changes_total", "result" => "failure")
                    .increment(1);
                Err(refusal)
            }
            Err(e) => {
                self.release_attempt(attempt).await;
                Err(e)
            }
        }
    }
}

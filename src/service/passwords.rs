//! Passwords: changing one's own.

use secrecy::SecretString;

use super::guards::password_context;
use super::{ClientInfo, Core, Error, Principal, Result};
use crate::audit::AuditEvent;
use crate::domain::Password;

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
        let stored = self.store.credentials(&account.id).await?;
        let current = Password::for_verification(current);
        if !self.verify_password(&current, stored.as_ref()).await? {
            return Err(Error::WrongPassword);
        }
        let hash = self.hasher.hash(&new).await?;
        let now = self.clock.now();
        self.store
            .set_password_hash(&account.id, &hash, now)
            .await?;
        let revoked = self
            .store
            .revoke_sessions_of(&account.id, Some(&who.sid), now)
            .await?;
        self.audit(
            AuditEvent::PasswordChanged { revoked },
            Some(&account.id),
            client,
        );
        self.notify(&account.id, super::MailNotice::PasswordChanged)
            .await;
        Ok(())
    }
}

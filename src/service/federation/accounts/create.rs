//! Rule 2: a new account for an identity, the race of the same identity
//! signing in twice at once, and rule 6 (the provider's name).

use super::Resolution;
use crate::audit::AuditEvent;
use crate::domain::{DisplayName, Email, UserId};
use crate::service::federation::Asserted;
use crate::service::{ClientInfo, Core, Error, Result};
use crate::store::{CredentialRecord, ProfileUpdate, StoreError, UserRecord};

impl Core {
    /// Rule 2: a new account for the identity (email verified, no
    /// password), then the link. A race lost on the email (someone
    /// registered it meanwhile) ends as `link-required`; one lost on the
    /// identity (the same identity signing in twice at once) signs in to
    /// the winner's account.
    pub(super) async fn create_federated(
        &self,
        a: &Asserted,
        email: Email,
        client: &ClientInfo,
    ) -> Result<UserRecord> {
        let now = self.clock.now();
        let user = UserRecord {
            id: UserId::mint(),
            email: email.as_str().to_string(),
            email_verified: true,
            display_name: a
                .name
                .as_deref()
                .and_then(|n| DisplayName::parse(n).ok())
                .map(DisplayName::into_inner),
            roles: vec!["user".to_string()],
            disabled: false,
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
            Err(StoreError::Conflict) => {
                let holder = self.store.user_by_email(email.as_str()).await?;
                if let Some(holder) = holder
                    && let Some(user) = self.racing_sibling(a, &holder).await?
                {
                    return Ok(user);
                }
                return Err(self.link_required(a).await);
            }
            Err(e) => return Err(e.into()),
        }
        self.audit(AuditEvent::UserRegistered, Some(&user.id), client);
        metrics::counter!("portcullis_registrations_total").increment(1);
        match self.store.link_identity(&a.record(&user.id, now)).await {
            Ok(true) => {
                self.audit(
                    AuditEvent::IdentityLinked {
                        provider: a.provider.clone(),
                    },
                    Some(&user.id),
                    client,
                );
                Ok(user)
            }
            Ok(false) => Err(Error::Unexpected(anyhow::anyhow!(
                "account gone while linking"
            ))),
            Err(StoreError::Conflict) => {
                self.store.delete_user(&user.id).await?;
                match self.resolve(a).await? {
                    Resolution::Known(_, winner) => Ok(winner),
                    _ => Err(Error::Unexpected(anyhow::anyhow!(
                        "identity link raced and vanished"
                    ))),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The same new identity signing in twice at once (two devices, a
    /// double tap): the other request made `holder` moments ago, without a
    /// password, and links the identity now. Waits for that link (at most
    /// half a second) and returns the account; `None` when `holder` is not
    /// such an account or the link does not appear, and then the answer
    /// is `link-required` as for any account holding the address.
    pub(super) async fn racing_sibling(
        &self,
        a: &Asserted,
        holder: &UserRecord,
    ) -> Result<Option<UserRecord>> {
        let fresh = holder.created_at >= self.clock.now().saturating_sub(5);
        if !fresh || !holder.email_verified {
            return Ok(None);
        }
        let no_password = self
            .store
            .credentials(&holder.id)
            .await?
            .is_some_and(|c| !c.has_password() && c.passkeys.is_empty());
        if !no_password {
            return Ok(None);
        }
        for _ in 0..20 {
            if let Resolution::Known(_, user) = self.resolve(a).await? {
                return Ok(Some(user));
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Ok(None)
    }

    /// Rule 6: a name from the provider fills an empty display name.
    pub(super) async fn fill_name(
        &self,
        user: UserRecord,
        name: Option<&str>,
    ) -> Result<UserRecord> {
        let Some(name) = name.and_then(|n| DisplayName::parse(n).ok()) else {
            return Ok(user);
        };
        if user.display_name.is_some() {
            return Ok(user);
        }
        let update = ProfileUpdate {
            display_name: Some(Some(name.into_inner())),
            ..ProfileUpdate::default()
        };
        Ok(self
            .store
            .update_profile(&user.id, &update, self.clock.now())
            .await?
            .unwrap_or(user))
    }
}

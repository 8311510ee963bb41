//! Unlinking an identity (`DELETE /v1/me/identities/{id}`).

use crate::audit::AuditEvent;
use crate::service::{ClientInfo, Core, Error, Principal, Result};
use crate::store::IdentityRemoval;

impl Core {
    /// `DELETE /v1/me/identities/{id}`, after a recent proof; refused when
    /// it is the account's last way in.
    pub async fn unlink_identity(
        &self,
        who: &Principal,
        id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.require_recent_proof(who, None, client).await?;
        match self.store.unlink_identity(&who.user_id, id).await? {
            IdentityRemoval::Removed(found) => {
                tracing::info!(user_id = %who.user_id, provider = %found.provider, event = "identity.unlinked", "identity unlinked");
                self.audit(
                    AuditEvent::IdentityUnlinked {
                        provider: found.provider,
                    },
                    Some(&who.user_id),
                    client,
                );
                Ok(())
            }
            IdentityRemoval::NotFound => Err(Error::NotFound("identity")),
            IdentityRemoval::LastCredential => Err(Error::LastCredential),
        }
    }
}

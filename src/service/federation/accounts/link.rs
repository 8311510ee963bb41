//! Linking an identity to an account: at sign-in (`TRUST_EMAIL`), and
//! `POST /v1/me/identities` for a signed-in user or a guest.

use crate::audit::AuditEvent;
use crate::domain::UserId;
use crate::service::federation::{Asserted, IdentitySummary, LinkOffer, Step};
use crate::service::mail::Notice as MailNotice;
use crate::service::passwordless::AnonymousUpgrade;
use crate::service::{ClientInfo, Core, Error, Principal, Proof, Result};
use crate::store::{IdentityRecord, StoreError};

impl Core {
    /// Links `a` to `user_id`, audits it and sends the notice; the identity
    /// as linked. `IdentityTaken` when another account has it; linking it
    /// again to the same account is a no-op.
    pub(super) async fn link_to(
        &self,
        user_id: &UserId,
        a: &Asserted,
        client: &ClientInfo,
    ) -> Result<IdentityRecord> {
        let record = a.record(user_id, self.clock.now());
        match self.store.link_identity(&record).await {
            Ok(true) => {}
            Ok(false) => return Err(Error::TokenInvalid("unknown subject")),
            Err(StoreError::Conflict) => {
                return match self
                    .store
                    .identity_by_key(&a.provider, &a.iss, &a.sub)
                    .await?
                {
                    Some(found) if found.user_id == *user_id => Ok(found),
                    _ => Err(Error::IdentityTaken),
                };
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user_id = %user_id, provider = %a.provider, event = "identity.linked", "identity linked");
        self.audit(
            AuditEvent::IdentityLinked {
                provider: a.provider.clone(),
            },
            Some(user_id),
            client,
        );
        self.notify(user_id, MailNotice::IdentityLinked).await;
        Ok(record)
    }

    /// `POST /v1/me/identities`: links an identity to the caller, after a
    /// recent proof (checked before the offer is spent).
    pub async fn link_identity(
        &self,
        who: &Principal,
        offer: LinkOffer,
        proof: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<IdentitySummary> {
        let guest = self
            .store
            .user_by_id(&who.user_id)
            .await?
            .is_some_and(|u| u.anonymous);
        // A guest has nothing to prove itself with (no password, second
        // factor or passkey), and its live session is all there is of the
        // account: linking is its upgrade, which asks no more than
        // `POST /v1/me/upgrade` does.
        if !(guest && proof.is_none()) {
            self.require_recent_proof(who, proof, client).await?;
        }
        let asserted = match offer {
            LinkOffer::LinkToken(token) => self
                .take_step::<Asserted>(Step::Link, &token)
                .await?
                .ok_or(Error::LinkInvalid(
                    "The link token is invalid, expired or already used",
                ))?,
            LinkOffer::IdToken {
                provider,
                id_token,
                nonce,
            } => {
                let upstream = self
                    .federation
                    .get(&provider)
                    .ok_or(Error::IdTokenInvalid("no such provider is configured"))?;
                self.verify_native(&upstream, &id_token, &nonce).await?
            }
            LinkOffer::Code {
                code,
                code_verifier,
            } => {
                self.take_code(
                    &code,
                    &code_verifier,
                    crate::service::federation::flows::Intent::Link,
                )
                .await?
            }
        };
        if guest {
            return self.link_to_guest(who, &asserted, client).await;
        }
        let linked = self.link_to(&who.user_id, &asserted, client).await?;
        Ok(linked.into())
    }

    /// A guest links an identity: the identity first, then the guest
    /// becomes a full account with the same id and the provider's verified
    /// address. No verified address: 422 `provider-email-unverified`; an
    /// address another account holds: 409 as `POST /v1/me/upgrade` answers.
    /// Nothing stays linked when the upgrade fails.
    async fn link_to_guest(
        &self,
        who: &Principal,
        a: &Asserted,
        client: &ClientInfo,
    ) -> Result<IdentitySummary> {
        let email = a.verified_email().ok_or(Error::ProviderEmailUnverified)?;
        if self.store.user_by_email(email.as_str()).await?.is_some() {
            return Err(Error::Conflict(
                "An account with this email address already exists.",
            ));
        }
        let linked = self.link_to(&who.user_id, a, client).await?;
        let upgrade = AnonymousUpgrade {
            email: email.as_str().to_string(),
            password: None,
            email_verified: true,
        };
        if let Err(e) = self
            .upgrade_anonymous_user(&who.user_id, upgrade, client)
            .await
        {
            // A guest has no other identity: undo the link.
            self.store.delete_identities_of(&who.user_id).await?;
            return Err(e);
        }
        Ok(linked.into())
    }
}

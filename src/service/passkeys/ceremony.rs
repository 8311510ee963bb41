//! The relying party (or the refusal when passkeys are off), and the two
//! halves of every ceremony: storing the server half under a limit per
//! account, and taking it out of the store once.

use super::{CEREMONIES_PER_ACCOUNT, CeremonyKind, PASSKEYS_OFF, PasskeyOptions};
use crate::auth::passkeys::{CEREMONY_TTL, Started};
use crate::clock::secs;
use crate::domain::UserId;
use crate::service::{Core, Error, Result};
use crate::store::CeremonyRecord;

impl Core {
    /// The relying party; a refusal (400, or 401 for `sign_in`) when
    /// passkeys are off.
    pub(super) fn rp(&self, sign_in: bool) -> Result<&crate::auth::PasskeyRp> {
        self.passkeys.as_deref().ok_or_else(|| {
            if sign_in {
                Error::PasskeyRejected(PASSKEYS_OFF.into())
            } else {
                Error::PasskeyInvalid(PASSKEYS_OFF.into())
            }
        })
    }

    /// Stores the server half of a ceremony and gives the client its options.
    pub(super) async fn begin_ceremony(
        &self,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        started: Started,
    ) -> Result<PasskeyOptions> {
        if let Some(user_id) = &user_id {
            self.per_address_limit("ceremony", user_id, CEREMONIES_PER_ACCOUNT)
                .await?;
        }
        let ceremony = CeremonyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            user_id,
            state: started.state,
            expires_at: self.clock.now().saturating_add(secs(CEREMONY_TTL)),
        };
        self.store.save_ceremony(&ceremony).await?;
        Ok(PasskeyOptions {
            challenge_id: ceremony.id,
            public_key: started.public_key,
            mediation: started.mediation,
        })
    }

    /// Takes a ceremony of one of `kinds` out of the store (once).
    pub(super) async fn take_ceremony(
        &self,
        challenge_id: &str,
        kinds: &[CeremonyKind],
    ) -> Result<Option<CeremonyRecord>> {
        Ok(self
            .store
            .take_ceremony(challenge_id, self.clock.now())
            .await?
            .filter(|c| kinds.contains(&c.kind)))
    }
}

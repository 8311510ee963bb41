//! Registering a passkey (options, then the browser's credential),
//! listing the caller's passkeys and removing one (never the last sign-in
//! method of an account).

use webauthn_rs::prelude::Uuid;

use super::{CHALLENGE_GONE, CeremonyKind, PasskeyOptions, PasskeySummary, passkey_name, refusal};
use crate::audit::AuditEvent;
use crate::auth::limits::Action;
use crate::service::{ClientInfo, Core, Error, MailNotice, Principal, Proof, Result};
use crate::store::{PasskeyAddition, PasskeyRecord, PasskeyRemoval, StoreError};

impl Core {
    /// Begins registering a passkey for the caller: `navigator.credentials.create` options.
    /// Needs a recent proof on the session (step-up: a bare access token
    /// never adds a credential), and room under `PORTCULLIS_MAX_PASSKEYS`.
    pub async fn passkey_registration_options(
        &self,
        who: &Principal,
        client: &ClientInfo,
    ) -> Result<PasskeyOptions> {
        self.rate_limit(Action::PasskeyOptions, client)?;
        let user = self
            .store
            .user_by_id(&who.user_id)
            .await?
            .ok_or(Error::TokenInvalid("unknown subject"))?;
        if user.anonymous {
            return Err(Error::AnonymousUser("add a passkey"));
        }
        self.require_recent_proof(who, None, client).await?;
        let creds = self.store.credentials(&user.id).await?.unwrap_or_default();
        let max = self.settings.limits.max_passkeys;
        if creds.passkeys.len() >= max as usize {
            return Err(Error::PasskeyLimit { max });
        }
        let handle = Uuid::parse_str(&user.id)
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("user id is not a UUID")))?;
        let existing: Vec<String> = creds.passkeys.values().map(|p| p.passkey.clone()).collect();
        let display = user.display_name.as_deref().unwrap_or(&user.email);
        let started = self
            .rp(false)?
            .start_registration(handle, &user.email, display, &existing)
            .map_err(|e| refusal(e, false, Some(&user.id)))?;
        self.begin_ceremony(CeremonyKind::Register, Some(user.id), started)
            .await
    }

    /// Finishes a registration: checks the browser's credential against the
    /// ceremony and stores the passkey. Nothing else changes (no session is
    /// revoked). Needs a recent proof on the session, or `proof` in the
    /// request; refused past `PORTCULLIS_MAX_PASSKEYS` (checked by the
    /// store write itself, so racing adds cannot pass it).
    pub async fn add_passkey(
        &self,
        who: &Principal,
        challenge_id: &str,
        credential: &serde_json::Value,
        name: Option<&str>,
        proof: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<PasskeySummary> {
        let creds = self
            .store
            .credentials(&who.user_id)
            .await?
            .ok_or(Error::TokenInvalid("unknown subject"))?;
        let name = passkey_name(name, creds.passkeys.len())?;
        self.require_recent_proof(who, proof, client).await?;
        let max = self.settings.limits.max_passkeys;
        let ceremony = self
            .take_ceremony(challenge_id, &[CeremonyKind::Register])
            .await?
            .filter(|c| c.user_id.as_deref() == Some(who.user_id.as_str()))
            .ok_or_else(|| Error::PasskeyInvalid(CHALLENGE_GONE.into()))?;
        let registered = self
            .rp(false)?
            .finish_registration(credential, &ceremony.state)
            .map_err(|e| refusal(e, false, Some(&who.user_id)))?;
        if creds
            .passkeys
            .values()
            .any(|p| p.credential_id == registered.credential_id)
        {
            return Err(Error::PasskeyInvalid(
                "this authenticator is already registered to the account".into(),
            ));
        }
        let now = self.clock.now();
        let record = PasskeyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            credential_id: registered.credential_id,
            name,
            passkey: registered.passkey,
            counter: registered.counter,
            backup_eligible: registered.backup_eligible,
            backup_state: registered.backup_state,
            created_at: now,
            last_used_at: None,
        };
        match self
            .store
            .add_passkey(&who.user_id, &record, max, now)
            .await
        {
            Ok(PasskeyAddition::Added) => {}
            Ok(PasskeyAddition::NoUser) => return Err(Error::TokenInvalid("unknown subject")),
            Ok(PasskeyAddition::Full) => return Err(Error::PasskeyLimit { max }),
            Err(StoreError::Conflict) => {
                return Err(Error::Unexpected(anyhow::anyhow!("passkey id clash")));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user_id = %who.user_id, passkey_id = %record.id, "passkey added");
        self.audit(AuditEvent::PasskeyAdded, Some(&who.user_id), client);
        self.notify(&who.user_id, MailNotice::PasskeyAdded).await;
        metrics::counter!("portcullis_passkeys_added_total").increment(1);
        Ok(PasskeySummary::from(&record))
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, who: &Principal) -> Result<Vec<PasskeySummary>> {
        let creds = self
            .store
            .credentials(&who.user_id)
            .await?
            .ok_or(Error::TokenInvalid("unknown subject"))?;
        let mut list: Vec<PasskeySummary> =
            creds.passkeys.values().map(PasskeySummary::from).collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(list)
    }

    /// Removes one of the caller's passkeys. Refused when it is the last
    /// way into an account without a password (`Conflict`); nothing else is
    /// revoked. Removing a credential needs a recent proof on the session
    /// (step-up), like adding one.
    pub async fn remove_passkey(
        &self,
        who: &Principal,
        passkey_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.require_recent_proof(who, None, client).await?;
        match self
            .store
            .remove_passkey(&who.user_id, passkey_id, self.clock.now())
            .await?
        {
            PasskeyRemoval::Removed => {
                tracing::info!(user_id = %who.user_id, passkey_id, "passkey removed");
                self.audit(AuditEvent::PasskeyRemoved, Some(&who.user_id), client);
                self.notify(&who.user_id, MailNotice::PasskeyRemoved).await;
                Ok(())
            }
            PasskeyRemoval::NotFound => Err(Error::NotFound("Passkey")),
            PasskeyRemoval::LastCredential => Err(Error::Conflict(
                "This passkey is the account's only way to sign in: add another passkey first, or delete the account.",
            )),
        }
    }
}

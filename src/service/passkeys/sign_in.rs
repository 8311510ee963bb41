//! Passkey sign-in: options (usernameless, or for an email with made-up
//! ids for addresses without passkeys), the finish that opens a session,
//! and the assertion checks the two-factor step and step-up call.

use super::{
    CHALLENGE_GONE, CeremonyKind, PasskeyAssertion, PasskeyOptions, named_options, refusal,
};
use crate::auth::limits::Action;
use crate::domain::{Email, UserId};
use crate::service::{ClientInfo, Core, Error, FieldError, IssuedTokens, Result};
use crate::store::CeremonyRecord;

impl Core {
    /// Begins a sign-in. Without an email: options for discoverable
    /// credentials (usernameless, autofill UI). With an email, the answer
    /// has one shape whoever the address belongs to: an
    /// account with passkeys gets its credential ids listed; an unknown
    /// address, or an account without passkeys (or disabled), gets stable
    /// made-up ids ([`Core::decoy_credential_ids`]), so the options do not
    /// tell which addresses have accounts or passkeys. `mfa_token` is the
    /// two-factor step of the `mfa` capability.
    pub async fn passkey_sign_in_options(
        &self,
        email: Option<&str>,
        mfa_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<PasskeyOptions> {
        self.rate_limit(Action::PasskeyOptions, client)?;
        if let Some(mfa_token) = mfa_token {
            // The second factor of a password sign-in: the token names the
            // user (it is spent by `POST /v1/sessions/mfa`, not here).
            let (_, user) = self.mfa_token_user(mfa_token).await?;
            if user.passkey_count == 0 {
                return Err(Error::TokenInvalid("the account has no passkey"));
            }
            return self
                .start_passkey_assertion(&user.id, CeremonyKind::Mfa)
                .await;
        }
        let email = email
            .map(|e| {
                Email::parse(e).map_err(|why| {
                    Error::Validation(vec![FieldError::invalid("email", "Email address", why)])
                })
            })
            .transpose()?;
        let user = match &email {
            Some(e) => self.store.user_by_email(e.as_str()).await?,
            None => None,
        };
        let Some(email) = email else {
            let started = self
                .rp(true)?
                .start_discoverable()
                .map_err(|e| refusal(e, true, None))?;
            return self
                .begin_ceremony(CeremonyKind::Discover, None, started)
                .await;
        };
        if let Some(user) = user.filter(|u| !u.disabled && u.passkey_count > 0) {
            match self
                .start_passkey_assertion(&user.id, CeremonyKind::Authenticate)
                .await
            {
                Ok(mut options) => {
                    options.public_key = named_options(options.public_key, None);
                    return Ok(options);
                }
                // Over the account's ceremony limit: the options of an
                // address without passkeys (a 429 would tell that this
                // one has some).
                Err(Error::RateLimited { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // A discoverable ceremony underneath: an assertion sent against it
        // is checked like a usernameless one (no user is named), so the
        // made-up ids open nothing.
        let started = self
            .rp(true)?
            .start_discoverable()
            .map_err(|e| refusal(e, true, None))?;
        let decoys = self.decoy_credential_ids(email.as_str());
        let mut options = self
            .begin_ceremony(CeremonyKind::Discover, None, started)
            .await?;
        options.public_key = named_options(options.public_key, Some(&decoys));
        options.mediation = None;
        Ok(options)
    }

    /// Made-up credential ids for an address without passkeys: one or two
    /// (as real accounts mostly have), 32 bytes each, derived from the
    /// normalized address under a server key, so they are the same at
    /// every call and from every replica, and cannot be told from real ones.
    fn decoy_credential_ids(&self, email: &str) -> Vec<String> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mac = |n: u8| -> [u8; 32] {
            let data = format!("passkey-decoy\0{n}\0{email}");
            crate::auth::secrets::hmac_sha256(self.mail.code_key(), data.as_bytes())
        };
        let first = mac(0);
        let count = 1 + usize::from(first[0] & 1);
        (0..count)
            .map(|n| {
                let bytes = if n == 0 { first } else { mac(1) };
                URL_SAFE_NO_PAD.encode(bytes)
            })
            .collect()
    }

    /// Begins an assertion by `user_id`'s passkeys (their credentials
    /// listed). `NotFound` when the user has none.
    pub(crate) async fn start_passkey_assertion(
        &self,
        user_id: &UserId,
        kind: CeremonyKind,
    ) -> Result<PasskeyOptions> {
        let creds = self.store.credentials(user_id).await?.unwrap_or_default();
        if creds.passkeys.is_empty() {
            return Err(Error::NotFound("Passkey"));
        }
        let stored: Vec<String> = creds.passkeys.values().map(|p| p.passkey.clone()).collect();
        let started = self
            .rp(true)?
            .start_authentication(&stored)
            .map_err(|e| refusal(e, true, Some(user_id)))?;
        self.begin_ceremony(kind, Some(user_id.clone()), started)
            .await
    }

    /// Finishes a passkey sign-in: a new session with `amr` `hwk` (and
    /// `user` when the authenticator verified the user).
    pub async fn passkey_sign_in(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        client: ClientInfo,
    ) -> Result<IssuedTokens> {
        self.rate_limit(Action::SignIn, &client)?;
        let ceremony = self.take_sign_in_ceremony(challenge_id).await?;
        let user_id = match &ceremony.user_id {
            Some(id) => id.clone(),
            None => {
                let (handle, _) = self
                    .rp(true)?
                    .identify(credential)
                    .map_err(|e| refusal(e, true, None))?;
                UserId::from(handle.to_string())
            }
        };
        let asserted = self.check_assertion(&user_id, &ceremony, credential).await;
        let asserted = match asserted {
            Ok(a) => a,
            Err(e) => {
                metrics::counter!("portcullis_logins_total", "result" => "failure").increment(1);
                tracing::info!(user_id = %user_id, event = "session.failed", method = "passkey", "passkey sign-in failed");
                return Err(e);
            }
        };
        let user = match self.store.user_by_id(&user_id).await? {
            Some(u) if u.disabled => return Err(Error::AccountDisabled),
            Some(u) => u,
            None => {
                return Err(Error::PasskeyRejected(
                    "this credential is not registered".into(),
                ));
            }
        };
        // As for a password sign-in, and only after the
        // assertion verified: no oracle for strangers.
        self.require_verified_email(&user)?;
        let mut amr = vec!["hwk".to_string()];
        if asserted.user_verified {
            amr.push("user".to_string());
        }
        let tokens = self.start_session(user, amr, client.clone()).await?;
        tracing::info!(user_id = %tokens.account.id, passkey_id = %asserted.passkey_id, method = "passkey", "signed in with a passkey");
        // Audit (login.succeeded), new-device check, burst rule.
        self.signed_in(&tokens.account, &tokens.session_id, &client)
            .await;
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(tokens)
    }

    /// Verifies an assertion by one of `user_id`'s passkeys for the
    /// ceremony `challenge_id` (begun with [`CeremonyKind::Mfa`] by
    /// [`Core::start_passkey_assertion`]). The seam of the two-factor step:
    /// `POST /v1/sessions/mfa {mfa_token, passkey}` calls this once the mfa
    /// token named the user.
    pub(crate) async fn verify_passkey_assertion(
        &self,
        user_id: &UserId,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<PasskeyAssertion> {
        let ceremony = self
            .take_ceremony(challenge_id, &[CeremonyKind::Mfa])
            .await?
            .filter(|c| c.user_id.as_deref() == Some(user_id))
            .ok_or_else(|| Error::PasskeyRejected(CHALLENGE_GONE.into()))?;
        self.check_assertion(user_id, &ceremony, credential).await
    }

    /// Verifies a fresh assertion by one of `user_id`'s own passkeys, for a
    /// ceremony begun by `POST /v1/sessions/passkey/options` (with that
    /// user's email, or none): the proof a signed-in user gives to confirm
    /// a sensitive change (account deletion). The ceremony is taken (single
    /// use) whatever the outcome; one begun for another user, or an
    /// assertion by a passkey that is not the caller's, is refused
    /// ([`Error::PasskeyRejected`]).
    pub(crate) async fn verify_own_passkey(
        &self,
        user_id: &UserId,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<PasskeyAssertion> {
        let ceremony = self.take_sign_in_ceremony(challenge_id).await?;
        if ceremony.user_id.as_deref().is_some_and(|u| u != user_id) {
            return Err(Error::PasskeyRejected(
                "the options were requested for another account's email".into(),
            ));
        }
        // A discoverable ceremony names no user: the assertion must be by
        // one of the caller's passkeys (checked below by its credential id,
        // then by its signature).
        self.check_assertion(user_id, &ceremony, credential).await
    }

    /// Checks `credential` against the ceremony and the user's stored
    /// passkey it names, then records the use (counter, backup state).
    async fn check_assertion(
        &self,
        user_id: &UserId,
        ceremony: &CeremonyRecord,
        credential: &serde_json::Value,
    ) -> Result<PasskeyAssertion> {
        let credential_id = self
            .rp(true)?
            .credential_id(credential)
            .map_err(|e| refusal(e, true, Some(user_id)))?;
        let not_registered =
            || Error::PasskeyRejected("this credential is not registered to the account".into());
        let creds = self
            .store
            .credentials(user_id)
            .await?
            .ok_or_else(not_registered)?;
        let mut passkey = creds
            .passkeys
            .values()
            .find(|p| p.credential_id == credential_id)
            .cloned()
            .ok_or_else(not_registered)?;
        let discoverable = ceremony.kind == CeremonyKind::Discover;
        let asserted = self
            .rp(true)?
            .finish_authentication(credential, &ceremony.state, discoverable, &passkey.passkey)
            .map_err(|e| refusal(e, true, Some(user_id)))?;
        if asserted.backup_state != passkey.backup_state {
            tracing::info!(user_id = %user_id, passkey_id = %passkey.id, backup_state = asserted.backup_state, "passkey backup state changed");
        }
        passkey.counter = asserted.counter;
        passkey.backup_eligible = asserted.backup_eligible;
        passkey.backup_state = asserted.backup_state;
        passkey.last_used_at = Some(self.clock.now());
        if let Some(updated) = asserted.updated_passkey {
            passkey.passkey = updated;
        }
        // Removed meanwhile: the assertion was still valid when it began.
        self.store.update_passkey(user_id, &passkey).await?;
        Ok(PasskeyAssertion {
            user_id: user_id.clone(),
            passkey_id: passkey.id,
            user_verified: asserted.user_verified,
        })
    }

    /// Takes a sign-in ceremony (named or discoverable) out of the store,
    /// once; a missing, used or expired one is refused.
    async fn take_sign_in_ceremony(&self, challenge_id: &str) -> Result<CeremonyRecord> {
        self.take_ceremony(
            challenge_id,
            &[CeremonyKind::Authenticate, CeremonyKind::Discover],
        )
        .await?
        .ok_or_else(|| Error::PasskeyRejected(CHALLENGE_GONE.into()))
    }
}

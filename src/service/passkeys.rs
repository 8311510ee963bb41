//! Passkeys: registering, listing and removing them (bearer routes),
//! signing in with one (usernameless or after naming an email), and the
//! association files native apps need.
//!
//! Every ceremony is two requests. The first stores the server half of the
//! challenge ([`CeremonyRecord`]) and gives the client a `challenge_id`; the
//! second takes that record out of the store (once: a replayed or raced
//! answer finds nothing) and checks the client's credential against it. The
//! record lives in the store, so any replica can finish a ceremony another
//! began, and it expires after [`CEREMONY_TTL`].
//!
//! Two-factor sign-in (`POST /v1/sessions/passkey/options {mfa_token}`, then
//! `POST /v1/sessions/mfa {mfa_token, passkey}`) lands with the `mfa`
//! capability: its options call [`Core::start_passkey_assertion`] with
//! [`CeremonyKind::Mfa`], and its finish calls
//! [`Core::verify_passkey_assertion`].

use webauthn_rs::prelude::Uuid;

use super::{
    ClientInfo, Core, Error, FieldError, IssuedTokens, MailNotice, Principal, Proof, Result,
};
use crate::audit::AuditEvent;
use crate::auth::limits::Action;
use crate::auth::passkeys::{CEREMONY_TTL, PasskeyError, Started};
use crate::clock::secs;
use crate::domain::Email;
use crate::store::{CeremonyRecord, PasskeyAddition, PasskeyRecord, PasskeyRemoval, StoreError};

/// Ceremonies begun for one account within 15 minutes (registration, and
/// assertions that list its passkeys), counted in the store and reserved
/// before the ceremony is stored ([`Core::per_address_limit`]), so that no
/// number of clients or replicas can make one account's ceremonies pile up
/// in the store. A person retrying a few times never gets near it.
pub const CEREMONIES_PER_ACCOUNT: usize = 20;

/// The answer when a `challenge_id` cannot be used.
const CHALLENGE_GONE: &str =
    "the challenge is unknown, expired or already used; request new options";
/// Longest passkey name, in characters.
const NAME_MAX: usize = 64;

/// What a ceremony was begun for; a challenge only finishes its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CeremonyKind {
    /// Adding a passkey to a signed-in account.
    Register,
    /// Signing in as a named user (their credentials listed).
    Authenticate,
    /// Signing in without naming a user (discoverable credentials).
    Discover,
    /// The second factor after a password (lands with the `mfa` branch).
    #[allow(dead_code, reason = "used by the two-factor step of the mfa branch")]
    Mfa,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Authenticate => "authenticate",
            Self::Discover => "discover",
            Self::Mfa => "mfa",
        }
    }
}

/// Options for a ceremony, as the client gets them.
#[derive(Debug, Clone)]
pub struct PasskeyOptions {
    /// Names the ceremony in the finishing request.
    pub challenge_id: String,
    /// WebAuthn `publicKey` options (JSON form, base64url).
    pub public_key: serde_json::Value,
    /// `conditional` for a usernameless sign-in (autofill UI), else `None`.
    pub mediation: Option<String>,
}

/// A passkey as listed to its owner (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySummary {
    /// Passkey id (for `DELETE /v1/me/passkeys/{id}`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was added.
    pub created_at: i64,
    /// When it last signed in, if ever.
    pub last_used_at: Option<i64>,
    /// Whether it may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it was backed up at the last use.
    pub backup_state: bool,
}

impl From<&PasskeyRecord> for PasskeySummary {
    fn from(p: &PasskeyRecord) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
        }
    }
}

/// A verified passkey assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyAssertion {
    /// Whose passkey it was.
    pub user_id: String,
    /// Which passkey.
    pub passkey_id: String,
    /// Whether the authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
}

/// Native-app association files, when configured.
#[derive(Debug, Clone, Copy)]
pub enum AssociationFiles {
    /// `/.well-known/apple-app-site-association`.
    Apple,
    /// `/.well-known/assetlinks.json`.
    Android,
}

/// A client-visible refusal of `e`; `sign_in` picks 401 over 400. A
/// cloned-authenticator signal is logged as a security event.
fn refusal(e: PasskeyError, sign_in: bool, user_id: Option<&str>) -> Error {
    let reason = match e {
        PasskeyError::Internal(why) => {
            return Error::Unexpected(anyhow::anyhow!("passkey ceremony: {why}"));
        }
        PasskeyError::PossibleClone => {
            metrics::counter!("portcullis_passkey_clone_signals_total").increment(1);
            tracing::warn!(
                user_id = user_id.unwrap_or_default(),
                event = "suspicious.passkey_clone",
                "passkey signature counter went backwards: possibly a cloned authenticator"
            );
            PasskeyError::PossibleClone.to_string()
        }
        PasskeyError::Refused(why) => why.to_string(),
    };
    if sign_in {
        Error::PasskeyRejected(reason)
    } else {
        Error::PasskeyInvalid(reason)
    }
}

/// A passkey name: trimmed, 1 to 64 characters, no control characters.
fn passkey_name(raw: Option<&str>, count: usize) -> Result<String> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(format!("Passkey {}", count + 1));
    };
    let chars = raw.chars().count();
    if chars == 0 || chars > NAME_MAX || raw.chars().any(char::is_control) {
        return Err(Error::Validation(vec![FieldError::invalid(
            "name",
            "Passkey name",
            "must be 1 to 64 characters without control characters",
        )]));
    }
    Ok(raw.to_string())
}

/// Request options for a sign-in that named an email, in the one shape
/// every such answer has (issue 20, L4): `allowCredentials` entries are
/// `{type, id}` only (`transports` would tell real ids from made-up ones),
/// and no `extensions` or `hints` (the library adds them to discoverable
/// options only). `ids` replaces the listed credentials when given.
fn named_options(mut public_key: serde_json::Value, ids: Option<&[String]>) -> serde_json::Value {
    let Some(obj) = public_key.as_object_mut() else {
        return public_key;
    };
    let listed: Vec<String> = match ids {
        Some(ids) => ids.to_vec(),
        None => obj
            .get("allowCredentials")
            .and_then(serde_json::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|c| c.get("id").and_then(serde_json::Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let allow = listed
        .into_iter()
        .map(|id| serde_json::json!({ "type": "public-key", "id": id }))
        .collect();
    obj.insert("allowCredentials".into(), serde_json::Value::Array(allow));
    obj.remove("extensions");
    obj.remove("hints");
    obj.insert("userVerification".into(), "required".into());
    public_key
}

/// Why passkeys are off, when they are.
const PASSKEYS_OFF: &str = "passkeys are off on this server: its public URL names an IP address, and WebAuthn needs a domain name (PORTCULLIS_PUBLIC_URL, PORTCULLIS_WEBAUTHN_RP_ID)";

impl Core {
    /// The relying party; a refusal (400, or 401 for `sign_in`) when
    /// passkeys are off.
    fn rp(&self, sign_in: bool) -> Result<&crate::auth::PasskeyRp> {
        self.passkeys.as_deref().ok_or_else(|| {
            if sign_in {
                Error::PasskeyRejected(PASSKEYS_OFF.into())
            } else {
                Error::PasskeyInvalid(PASSKEYS_OFF.into())
            }
        })
    }

    /// Stores the server half of a ceremony and gives the client its options.
    async fn begin_ceremony(
        &self,
        kind: CeremonyKind,
        user_id: Option<String>,
        started: Started,
    ) -> Result<PasskeyOptions> {
        if let Some(user_id) = &user_id {
            self.per_address_limit("ceremony", user_id, CEREMONIES_PER_ACCOUNT)
                .await?;
        }
        let ceremony = CeremonyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.as_str().to_string(),
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
    async fn take_ceremony(
        &self,
        challenge_id: &str,
        kinds: &[CeremonyKind],
    ) -> Result<Option<CeremonyRecord>> {
        Ok(self
            .store
            .take_ceremony(challenge_id, self.clock.now())
            .await?
            .filter(|c| kinds.iter().any(|k| k.as_str() == c.kind)))
    }

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

    /// Begins a sign-in. Without an email: options for discoverable
    /// credentials (usernameless, autofill UI). With an email, the answer
    /// has one shape whoever the address belongs to (issue 20, L4): an
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
        user_id: &str,
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
        self.begin_ceremony(kind, Some(user_id.to_string()), started)
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
        let ceremony = self
            .take_ceremony(
                challenge_id,
                &[CeremonyKind::Authenticate, CeremonyKind::Discover],
            )
            .await?
            .ok_or_else(|| Error::PasskeyRejected(CHALLENGE_GONE.into()))?;
        let user_id = match &ceremony.user_id {
            Some(id) => id.clone(),
            None => {
                let (handle, _) = self
                    .rp(true)?
                    .identify(credential)
                    .map_err(|e| refusal(e, true, None))?;
                handle.to_string()
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
        // As for a password sign-in (issue 20, L3), and only after the
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
        user_id: &str,
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
        user_id: &str,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<PasskeyAssertion> {
        let ceremony = self
            .take_ceremony(
                challenge_id,
                &[CeremonyKind::Authenticate, CeremonyKind::Discover],
            )
            .await?
            .ok_or_else(|| Error::PasskeyRejected(CHALLENGE_GONE.into()))?;
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
        user_id: &str,
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
        let discoverable = ceremony.kind == CeremonyKind::Discover.as_str();
        let asserted = self
            .rp(true)?
            .finish_authentication(credential, &ceremony.state, discoverable, &passkey.passkey)
            .map_err(|e| refusal(e, true, Some(user_id)))?;
        if asserted.backup_state != passkey.backup_state {
            tracing::info!(user_id, passkey_id = %passkey.id, backup_state = asserted.backup_state, "passkey backup state changed");
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
            user_id: user_id.to_string(),
            passkey_id: passkey.id,
            user_verified: asserted.user_verified,
        })
    }

    /// The body of an association file, `None` when not configured (404).
    pub fn association_file(&self, which: AssociationFiles) -> Option<serde_json::Value> {
        let p = &self.settings.passkeys;
        match which {
            AssociationFiles::Apple if !p.apple_app_ids.is_empty() => Some(serde_json::json!({
                "webcredentials": { "apps": p.apple_app_ids },
                "applinks": {
                    "details": [{
                        "appIDs": p.apple_app_ids,
                        "components": [
                            { "/": "/reset-password*" },
                            { "/": "/verify-email*" },
                        ],
                    }],
                },
            })),
            AssociationFiles::Android if !p.android_apps.is_empty() => {
                // One statement per package, all its fingerprints together.
                let mut packages: Vec<(&str, Vec<&str>)> = Vec::new();
                for app in &p.android_apps {
                    match packages.iter_mut().find(|(name, _)| *name == app.package) {
                        Some((_, fps)) => fps.push(&app.sha256_fingerprint),
                        None => packages.push((&app.package, vec![&app.sha256_fingerprint])),
                    }
                }
                Some(serde_json::Value::Array(
                    packages
                        .into_iter()
                        .map(|(package, fingerprints)| {
                            serde_json::json!({
                                "relation": [
                                    "delegate_permission/common.handle_all_urls",
                                    "delegate_permission/common.get_login_creds",
                                ],
                                "target": {
                                    "namespace": "android_app",
                                    "package_name": package,
                                    "sha256_cert_fingerprints": fingerprints,
                                },
                            })
                        })
                        .collect(),
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(passkey_name(None, 2).unwrap(), "Passkey 3");
        assert_eq!(passkey_name(Some("  Laptop "), 0).unwrap(), "Laptop");
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
            assert!(passkey_name(Some(bad), 0).is_err(), "{bad:?} accepted");
        }
    }
}

//! From a proven upstream identity to an account: the rules 1 to 4, 6 and
//! 7 (see the module docs of `federation`), the native ID-token sign-in,
//! and linking and unlinking.

use super::upstream::{IdClaims, UPSTREAM_LEEWAY, Upstream, sha256_hex};
use super::{Asserted, IdentitySummary, LINK_TTL_SECS, LinkOffer, Step};
use crate::audit::AuditEvent;
use crate::auth::limits::Action;
use crate::domain::{DisplayName, Email, UserId};
use crate::service::mail::Notice as MailNotice;
use crate::service::passwordless::AnonymousUpgrade;
use crate::service::{ClientInfo, Core, Error, Principal, Proof, Result, SignIn};
use crate::store::{
    CredentialRecord, IdentityRecord, IdentityRemoval, OnceKey, ProfileUpdate, StoreError,
    UserRecord,
};

/// Where an identity leads.
enum Resolution {
    /// Linked already: its account.
    Known(IdentityRecord, UserRecord),
    /// Unknown, verified email no account holds: a new account.
    Create(Email),
    /// Unknown, its verified email is an account's: link at once
    /// (`TRUST_EMAIL` and the account verified its own address).
    TrustedLink(UserRecord),
    /// Unknown, its verified email is this account's: the owner must link it.
    LinkRequired(UserRecord),
}

impl Asserted {
    pub(super) fn new(provider: &str, c: IdClaims) -> Self {
        Self {
            provider: provider.to_string(),
            iss: c.iss,
            sub: c.sub,
            email: c.email,
            email_verified: c.email_verified,
            name: c.name,
        }
    }

    /// The verified email, normalized; `None` when the provider gave none,
    /// did not verify it, or it is no address we accept.
    fn verified_email(&self) -> Option<Email> {
        if !self.email_verified {
            return None;
        }
        Email::parse(self.email.as_deref()?).ok()
    }

    fn record(&self, user_id: &UserId, now: i64) -> IdentityRecord {
        IdentityRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.clone(),
            provider: self.provider.clone(),
            iss: self.iss.clone(),
            sub: self.sub.clone(),
            email: self.email.clone(),
            created_at: now,
            last_used_at: Some(now),
        }
    }
}

// size-check: impl Core over 300 lines: creating, linking and unlinking federated accounts; next to split by step (create, link, unlink).
impl Core {
    /// Where `a` leads (no write): rules 1 to 4.
    async fn resolve(&self, a: &Asserted) -> Result<Resolution> {
        if let Some(identity) = self
            .store
            .identity_by_key(&a.provider, &a.iss, &a.sub)
            .await?
            && let Some(user) = self.store.user_by_id(&identity.user_id).await?
        {
            return Ok(Resolution::Known(identity, user));
        }
        let email = a.verified_email().ok_or(Error::ProviderEmailUnverified)?;
        match self.store.user_by_email(email.as_str()).await? {
            Some(user) => {
                let trusted = self
                    .settings
                    .federation
                    .provider(&a.provider)
                    .is_some_and(|p| p.trust_email);
                if trusted && user.email_verified {
                    Ok(Resolution::TrustedLink(user))
                } else {
                    Ok(Resolution::LinkRequired(user))
                }
            }
            None if self.settings.federation.signup => Ok(Resolution::Create(email)),
            None => Err(Error::SignupDisabled),
        }
    }

    /// The answer to an unknown identity whose email is an account's: a
    /// fresh link token bound to the identity.
    async fn link_required(&self, a: &Asserted) -> Error {
        match self.save_step(Step::Link, a, LINK_TTL_SECS).await {
            Ok(link_token) => {
                tracing::info!(provider = %a.provider, event = "federation.link_required", "identity's email belongs to an account; linking needs its owner");
                Error::LinkRequired { link_token }
            }
            Err(e) => e,
        }
    }

    /// Checks where `a` would lead without writing anything (the callback
    /// of a redirect reports refusals before handing out a code); a
    /// `link-required` answer carries a fresh link token.
    pub(super) async fn preview(&self, a: &Asserted) -> Result<()> {
        match self.resolve(a).await? {
            Resolution::LinkRequired(_) => Err(self.link_required(a).await),
            _ => Ok(()),
        }
    }

    /// Signs in with a proven identity: finds, creates or links its
    /// account (rules 1 to 4 and 6), then issues tokens with `amr: ["fed"]`
    /// and `idp`, or a second-factor challenge (rule 7).
    pub(super) async fn federated_sign_in(
        &self,
        a: Asserted,
        client: &ClientInfo,
    ) -> Result<SignIn> {
        let now = self.clock.now();
        let user = match self.resolve(&a).await? {
            Resolution::Known(identity, user) => {
                let email = a.email.as_deref().filter(|_| a.email_verified);
                self.store.touch_identity(&identity.id, email, now).await?;
                user
            }
            Resolution::TrustedLink(user) => {
                self.link_to(&user.id, &a, client).await?;
                user
            }
            Resolution::LinkRequired(holder) => match self.racing_sibling(&a, &holder).await? {
                Some(user) => user,
                None => return Err(self.link_required(&a).await),
            },
            Resolution::Create(email) => self.create_federated(&a, email, client).await?,
        };
        if user.disabled {
            return Err(Error::AccountDisabled);
        }
        let user = self.fill_name(user, a.name.as_deref()).await?;
        let amr = vec!["fed".to_string()];
        if let Some(challenge) = self
            .mfa_challenge_with(&user, &amr, Some(&a.provider))
            .await?
        {
            return Ok(SignIn::MfaRequired(challenge));
        }
        let tokens = self
            .start_session_with(user, amr, Some(a.provider.clone()), client.clone())
            .await?;
        tracing::info!(user_id = %tokens.account.id, provider = %a.provider, method = "federation", "signed in with an identity provider");
        self.signed_in(&tokens.account, &tokens.session_id, client)
            .await;
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(SignIn::Tokens(Box::new(tokens)))
    }

    /// Rule 2: a new account for the identity (email verified, no
    /// password), then the link. A race lost on the email (someone
    /// registered it meanwhile) ends as `link-required`; one lost on the
    /// identity (the same identity signing in twice at once) signs in to
    /// the winner's account.
    async fn create_federated(
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
    async fn racing_sibling(
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
    async fn fill_name(&self, user: UserRecord, name: Option<&str>) -> Result<UserRecord> {
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

    /// Links `a` to `user_id`, audits it and sends the notice; the identity
    /// as linked. `IdentityTaken` when another account has it; linking it
    /// again to the same account is a no-op.
    async fn link_to(
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

    /// Verifies a native ID token of `upstream` (rule 5): signature, `iss`,
    /// `aud` among the client ids, `exp`, the server nonce (raw or SHA-256
    /// hex; it is spent), and that the token was never accepted before.
    async fn verify_native(
        &self,
        upstream: &Upstream,
        id_token: &str,
        nonce: &str,
    ) -> Result<Asserted> {
        let now = self.clock.now_u64();
        let claims = upstream
            .verify_id_token(id_token, &upstream.settings.audiences(), now)
            .await?;
        let Some(token_nonce) = claims.nonce.as_deref() else {
            return Err(Error::IdTokenInvalid("the token carries no nonce"));
        };
        if nonce.is_empty() || (token_nonce != nonce && token_nonce != sha256_hex(nonce)) {
            return Err(Error::IdTokenInvalid(
                "the token's nonce is not the one sent",
            ));
        }
        let until = i64::try_from(claims.exp.saturating_add(UPSTREAM_LEEWAY)).unwrap_or(i64::MAX);
        let once = OnceKey::IdToken(sha256_hex(id_token));
        if !self
            .store
            .claim_once(&once, until, self.clock.now())
            .await?
        {
            return Err(Error::IdTokenInvalid("the token was already used"));
        }
        if self.take_step::<()>(Step::Nonce, nonce).await?.is_none() {
            return Err(Error::IdTokenInvalid(
                "the nonce is unknown, expired or already used",
            ));
        }
        Ok(Asserted::new(&upstream.settings.id, claims))
    }

    /// `POST /v1/sessions/id-token`: a native sign-in with the platform
    /// SDK's ID token and a server nonce; `name` is Apple's first-time name.
    pub async fn sign_in_with_id_token(
        &self,
        provider: &str,
        id_token: &str,
        nonce: &str,
        name: Option<String>,
        client: &ClientInfo,
    ) -> Result<SignIn> {
        self.rate_limit(Action::SignIn, client)?;
        let upstream = self
            .federation
            .get(provider)
            .ok_or(Error::IdTokenInvalid("no such provider is configured"))?;
        let mut asserted = match self.verify_native(&upstream, id_token, nonce).await {
            Ok(a) => a,
            Err(e) => {
                if let Error::IdTokenInvalid(why) = &e {
                    tracing::info!(
                        provider,
                        why,
                        event = "federation.id_token_refused",
                        "ID token refused"
                    );
                    metrics::counter!("portcullis_logins_total", "result" => "failure")
                        .increment(1);
                }
                return Err(e);
            }
        };
        if asserted.name.is_none() {
            asserted.name = name;
        }
        self.federated_sign_in(asserted, client).await
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
                self.take_code(&code, &code_verifier, super::flows::Intent::Link)
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

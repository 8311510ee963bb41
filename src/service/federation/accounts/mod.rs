//! From a proven upstream identity to an account: the rules 1 to 4, 6 and
//! 7 (see the module docs of `federation`), the native ID-token sign-in,
//! and linking and unlinking.
//!
//! Here: where an identity leads, the sign-in with it and the native
//! ID-token sign-in; creating an account for it (`create.rs`), linking
//! (`link.rs`) and unlinking (`unlink.rs`), one `impl Core` each.

mod create;
mod link;
mod unlink;

use super::upstream::{IdClaims, UPSTREAM_LEEWAY, Upstream, sha256_hex};
use super::{Asserted, LINK_TTL_SECS, Step};
use crate::auth::limits::Action;
use crate::domain::{Email, UserId};
use crate::service::{ClientInfo, Core, Error, Result, SignIn};
use crate::store::{IdentityRecord, OnceKey, UserRecord};

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
}

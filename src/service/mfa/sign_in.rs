//! The second step of a sign-in: the `mfa+jwt` challenge after a right
//! password, and its completion with a TOTP code, a recovery code or a
//! passkey (the token works once).

use super::{Candidate, MFA_TOKEN_TTL_SECS, MfaChallenge, SecondFactor};
use crate::auth::MfaClaims;
use crate::auth::limits::Action;
use crate::auth::tokens::LEEWAY_SECS;
use crate::service::{ClientInfo, Core, Error, IssuedTokens, Result};
use crate::store::{OnceKey, UserRecord};

impl Core {
    /// Called by sign-in once the password was right: `Some` (and an
    /// `mfa+jwt` token) when the account has two-factor sign-in on.
    pub(in crate::service) async fn mfa_challenge(
        &self,
        user: &UserRecord,
    ) -> Result<Option<MfaChallenge>> {
        self.mfa_challenge_with(user, &["pwd".to_string()], None)
            .await
    }

    /// [`Core::mfa_challenge`] after a first step proven by `amr` (a
    /// federated sign-in: `["fed"]` through the provider `idp`); the second
    /// step keeps both.
    pub(in crate::service) async fn mfa_challenge_with(
        &self,
        user: &UserRecord,
        amr: &[String],
        idp: Option<&str>,
    ) -> Result<Option<MfaChallenge>> {
        let Some(credentials) = self.store.credentials(&user.id).await? else {
            return Ok(None);
        };
        if credentials.totp_secret.is_none() {
            return Ok(None);
        }
        let mut methods = vec!["totp"];
        if !credentials.recovery_codes.is_empty() {
            methods.push("recovery_code");
        }
        if !credentials.passkeys.is_empty() {
            methods.push("passkey");
        }
        let (mfa_token, _) = self.tokens.issue_mfa_with_idp(
            &user.id,
            amr,
            self.clock.now_u64(),
            MFA_TOKEN_TTL_SECS,
            idp,
        )?;
        tracing::info!(user_id = %user.id, event = "session.mfa_required", "password right; second factor needed");
        Ok(Some(MfaChallenge {
            mfa_token,
            expires_in: MFA_TOKEN_TTL_SECS,
            methods,
        }))
    }

    /// The account an `mfa+jwt` token names, if the token is valid and the
    /// account unchanged since its password was checked (not spent here).
    pub(in crate::service) async fn mfa_token_user(
        &self,
        mfa_token: &str,
    ) -> Result<(MfaClaims, UserRecord)> {
        let claims = self.tokens.verify_mfa(mfa_token, self.clock.now_u64())?;
        let user = match self.store.user_by_id(&claims.sub).await? {
            Some(u) if u.disabled => return Err(Error::AccountDisabled),
            Some(u) => u,
            None => return Err(Error::TokenInvalid("unknown subject")),
        };
        if u64::try_from(user.updated_at).unwrap_or(u64::MAX) > claims.iat {
            return Err(Error::TokenInvalid(
                "the account changed since the password was checked",
            ));
        }
        Ok((claims, user))
    }

    /// The second step of a sign-in with a passkey: the `mfa_token` and an
    /// assertion for a ceremony begun with that token
    /// (`POST /v1/sessions/passkey/options {mfa_token}`). `amr` `["pwd", "hwk"]`.
    pub async fn login_mfa_passkey(
        &self,
        mfa_token: &str,
        challenge_id: &str,
        credential: &serde_json::Value,
        client: ClientInfo,
    ) -> Result<IssuedTokens> {
        self.rate_limit(Action::SignIn, &client)?;
        let (claims, user) = self.mfa_token_user(mfa_token).await?;
        self.mfa_guarded(&user.id, &client, async {
            // The ceremony is taken (single use) whatever the outcome.
            match self
                .verify_passkey_assertion(&user.id, challenge_id, credential)
                .await
            {
                Ok(_) => Ok(Ok(())),
                Err(Error::PasskeyRejected(why)) => Ok(Err(Error::PasskeyRejected(why))),
                Err(e) => Err(e),
            }
        })
        .await??;
        self.claim_mfa_token(&claims).await?;
        let amr = second_step_amr(&claims, "hwk");
        let tokens = self
            .start_session_with(user, amr, claims.idp.clone(), client.clone())
            .await?;
        self.signed_in(&tokens.account, &tokens.session_id, &client)
            .await;
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(tokens)
    }

    /// The second step of a sign-in: the `mfa+jwt` token from
    /// `POST /v1/sessions` and a TOTP code or a recovery code. Issues the
    /// session's tokens with `amr` `["pwd", "otp"]` or `["pwd", "rc"]`.
    pub async fn login_mfa(
        &self,
        mfa_token: &str,
        factor: SecondFactor,
        client: ClientInfo,
    ) -> Result<IssuedTokens> {
        self.rate_limit(Action::SignIn, &client)?;
        // Bound to the account as it was at the password check: a password
        // change or reset (or any credential change) since voids the token.
        let (claims, user) = self.mfa_token_user(mfa_token).await?;
        let credentials = self.credentials_of(&user.id).await?;
        if credentials.totp_secret.is_none() {
            return Err(Error::TokenInvalid("two-factor sign-in is off"));
        }
        let proven = self
            .mfa_guarded(&user.id, &client, async {
                // Check first without using anything up, so that a wrong
                // code neither spends the token nor a recovery code.
                let candidate = self.candidate(&user.id, &credentials, &factor).await?;
                let Some(candidate) = candidate else {
                    return Ok(Err(Error::InvalidCode));
                };
                // Then use up the factor and the token. A TOTP step is
                // claimed first, so that a replayed code does not spend the
                // token; a recovery code is consumed last, so that it is
                // never lost to a token that turns out to be used.
                let proven = match candidate {
                    Candidate::Step(_) => {
                        let proven = self.spend(&user.id, candidate, &client).await?;
                        if proven.is_some() {
                            self.claim_mfa_token(&claims).await?;
                        }
                        proven
                    }
                    Candidate::RecoveryCode(_) => {
                        self.claim_mfa_token(&claims).await?;
                        self.spend(&user.id, candidate, &client).await?
                    }
                };
                Ok(proven.ok_or(Error::InvalidCode))
            })
            .await??;
        let amr = second_step_amr(&claims, proven.amr());
        let tokens = self
            .start_session_with(user, amr, claims.idp.clone(), client.clone())
            .await?;
        // The sign-in is complete only now: audit, device check, burst rule.
        self.signed_in(&tokens.account, &tokens.session_id, &client)
            .await;
        metrics::counter!("portcullis_logins_total", "result" => "success").increment(1);
        Ok(tokens)
    }

    /// Claims the `jti` of an `mfa+jwt` token: it completes one sign-in.
    async fn claim_mfa_token(&self, claims: &MfaClaims) -> Result<()> {
        let jti = OnceKey::MfaToken(claims.jti.clone());
        let until = i64::try_from(claims.exp.saturating_add(LEEWAY_SECS)).unwrap_or(i64::MAX);
        if self.store.claim_once(&jti, until, self.clock.now()).await? {
            Ok(())
        } else {
            Err(Error::TokenInvalid("token already used"))
        }
    }
}

/// The `amr` of a completed two-step sign-in: the first step's (`pwd`, or
/// `fed` after a federated one) and the second factor's.
fn second_step_amr(claims: &MfaClaims, second: &str) -> Vec<String> {
    let mut amr = if claims.amr.is_empty() {
        vec!["pwd".to_string()]
    } else {
        claims.amr.clone()
    };
    amr.push(second.to_string());
    amr
}

//! Two-factor sign-in: TOTP enrolment, activation and removal, recovery
//! codes, the second step of a sign-in, and the check other flows (password
//! reset) call when an account has two-factor sign-in on.
//!
//! Rules kept here:
//! - A TOTP code is accepted once: its time step is claimed in the store
//!   ([`OnceKey::TotpStep`]), so a replay fails on every replica.
//! - Wrong codes (and wrong passwords given to confirm a change) are counted
//!   per account under [`mfa_throttle_key`], in the same store and window as
//!   sign-in failures; past `PORTCULLIS_LOGIN_MAX_FAILURES` the answer is 429
//!   with `Retry-After` until the window slides. Each check reserves its
//!   place before it runs (`service::throttle`, issue 20): simultaneous
//!   guesses cannot all pass a count read before any of them is recorded
//!   (finding H4: 1,500 of 2,000 simultaneous wrong codes were checked).
//! - The `mfa+jwt` token of a sign-in works once ([`OnceKey::MfaToken`]),
//!   only for its user, and only while the account is as it was when the
//!   password was checked (a password change since voids it); a wrong code
//!   does not spend it.
//! - Secrets are sealed before they reach the store, recovery codes are
//!   hashed, and neither ever reaches a log line or an error.

use secrecy::SecretString;

use super::throttle::Reserved;
use super::{
    ClientInfo, Core, Error, FieldError, IssuedTokens, MailNotice, Principal, Proof, Result,
};
use crate::audit::AuditEvent;
use crate::auth::MfaClaims;
use crate::auth::limits::Action;
use crate::auth::tokens::LEEWAY_SECS;
use crate::auth::totp::{self, STEP_SECS};
use crate::domain::TotpCode;
use crate::store::{CredentialRecord, OnceKey, UserRecord, mfa_throttle_key};

/// Lifetime of an `mfa+jwt` token: time to open the app and type a code.
pub const MFA_TOKEN_TTL_SECS: u64 = 300;

/// The outcome of `POST /v1/sessions`.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: a new session and its tokens.
    Tokens(Box<IssuedTokens>),
    /// The password was right and the account has two-factor sign-in on:
    /// no tokens yet, a second step is needed.
    MfaRequired(MfaChallenge),
}

/// What the client needs for the second step of a sign-in.
#[derive(Debug)]
pub struct MfaChallenge {
    /// The `mfa+jwt` token to send with the code.
    pub mfa_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The second factors this account has: `totp`, `recovery_code`.
    pub methods: Vec<&'static str>,
}

/// A second factor as a client sends it.
#[derive(Debug)]
pub enum SecondFactor {
    /// A code from the authenticator app, as typed.
    Code(String),
    /// One of the recovery codes, as typed.
    RecoveryCode(SecretString),
}

/// A secret handed out for enrolment (not active until confirmed).
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app.
    pub secret: SecretString,
    /// The `otpauth://totp/...` URI.
    pub otpauth_uri: SecretString,
    /// The URI as a QR code (an SVG document).
    pub qr_svg: String,
}

/// Which factor a successful check used (its RFC 8176 `amr` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proven {
    Otp,
    RecoveryCode,
}

impl Proven {
    fn amr(self) -> &'static str {
        match self {
            Self::Otp => "otp",
            Self::RecoveryCode => "rc",
        }
    }
}

const ALREADY_ON: &str = "Two-factor sign-in is already on; turn it off first.";
const NOT_ON: &str = "Two-factor sign-in is off for this account.";
const NOT_PENDING: &str = "No two-factor setup is pending: start with POST /v1/me/mfa/totp.";

/// `input` as a TOTP code, or a 422 naming `field`.
pub(super) fn code_field(field: &str, input: &str) -> Result<TotpCode> {
    TotpCode::parse(input)
        .map_err(|why| Error::Validation(vec![FieldError::invalid(field, "Code", why)]))
}

impl Core {
    /// Called by sign-in once the password was right: `Some` (and an
    /// `mfa+jwt` token) when the account has two-factor sign-in on.
    pub(super) async fn mfa_challenge(&self, user: &UserRecord) -> Result<Option<MfaChallenge>> {
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
        let (mfa_token, _) = self.tokens.issue_mfa(
            &user.id,
            &["pwd".to_string()],
            self.clock.now_u64(),
            MFA_TOKEN_TTL_SECS,
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
    pub(super) async fn mfa_token_user(&self, mfa_token: &str) -> Result<(MfaClaims, UserRecord)> {
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
        let amr = vec!["pwd".to_string(), "hwk".to_string()];
        let tokens = self.start_session(user, amr, client.clone()).await?;
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
        let amr = vec!["pwd".to_string(), proven.amr().to_string()];
        let tokens = self.start_session(user, amr, client.clone()).await?;
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

    /// Starts enrolment: a new secret, pending until confirmed with
    /// [`Core::totp_activate`]. `Conflict` when two-factor sign-in is on.
    /// Needs a recent proof on the session (step-up): a stolen access
    /// token must not set up a factor that would lock the owner out.
    pub async fn totp_begin(&self, who: &Principal, client: &ClientInfo) -> Result<TotpEnrolment> {
        let account = self.account(&who.user_id).await?;
        let credentials = self.credentials_of(&account.id).await?;
        if credentials.totp_secret.is_some() {
            return Err(Error::Conflict(ALREADY_ON));
        }
        self.require_recent_proof(who, None, client).await?;
        let secret = totp::new_secret()?;
        let sealed = {
            use secrecy::ExposeSecret;
            self.second_factor
                .sealer
                .seal(&account.id, secret.expose_secret())?
        };
        if !self.store.set_pending_totp(&account.id, &sealed).await? {
            return Err(Error::TokenInvalid("unknown subject"));
        }
        let e = {
            use secrecy::ExposeSecret;
            totp::enrolment(secret.expose_secret(), &account.email)?
        };
        tracing::info!(user_id = %account.id, event = "mfa.enrolment_started", "TOTP secret issued (pending)");
        Ok(TotpEnrolment {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
            qr_svg: e.qr_svg,
        })
    }

    /// Confirms the pending secret with a code from the app: two-factor
    /// sign-in turns on, the other sessions end, and a new set of recovery
    /// codes is returned (shown once; only their hashes are kept). Needs a
    /// recent proof on the session, or `proof` (the password) in the request.
    pub async fn totp_activate(
        &self,
        who: &Principal,
        code: &str,
        proof: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>> {
        let code = code_field("code", code)?;
        let credentials = self.credentials_of(&who.user_id).await?;
        if credentials.totp_secret.is_some() {
            return Err(Error::Conflict(ALREADY_ON));
        }
        let Some(pending) = credentials.totp_pending.clone() else {
            return Err(Error::Conflict(NOT_PENDING));
        };
        self.require_recent_proof(who, proof, client).await?;
        self.mfa_guarded(&who.user_id, client, async {
            let claimed = match self.totp_step(&who.user_id, &pending, &code)? {
                Some(step) => self.claim_step(&who.user_id, step).await?,
                None => false,
            };
            Ok(if claimed {
                Ok(())
            } else {
                Err(Error::InvalidCode)
            })
        })
        .await??;
        let (codes, hashes) = self.second_factor.recovery.generate()?;
        let now = self.clock.now();
        if !self
            .store
            .activate_totp(&who.user_id, &pending, &hashes, now)
            .await?
        {
            return Err(Error::Conflict(
                "The pending setup changed meanwhile; start again with POST /v1/me/mfa/totp.",
            ));
        }
        let revoked = self
            .store
            .revoke_sessions_of(&who.user_id, Some(&who.sid), now)
            .await?;
        tracing::info!(user_id = %who.user_id, revoked, "two-factor sign-in turned on; other sessions revoked");
        self.audit(AuditEvent::MfaEnabled, Some(&who.user_id), client);
        self.notify(&who.user_id, MailNotice::TwoFactorEnabled)
            .await;
        Ok(codes)
    }

    /// Turns two-factor sign-in off after a proof (a current code or the
    /// password in `proof`, or a recent one on the session); the other
    /// sessions end.
    pub async fn totp_disable(
        &self,
        who: &Principal,
        proof: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<()> {
        let credentials = self.credentials_of(&who.user_id).await?;
        if credentials.totp_secret.is_none() {
            return Err(Error::Conflict(NOT_ON));
        }
        self.require_recent_proof(who, proof, client).await?;
        let now = self.clock.now();
        self.store.disable_totp(&who.user_id, now).await?;
        let revoked = self
            .store
            .revoke_sessions_of(&who.user_id, Some(&who.sid), now)
            .await?;
        tracing::info!(user_id = %who.user_id, revoked, "two-factor sign-in turned off; other sessions revoked");
        self.audit(AuditEvent::MfaDisabled, Some(&who.user_id), client);
        self.notify(&who.user_id, MailNotice::TwoFactorDisabled)
            .await;
        Ok(())
    }

    /// A new set of recovery codes after a proof (a current code or the
    /// password in `proof`, or a recent one on the session); the old set
    /// stops working and the other sessions end.
    pub async fn regenerate_recovery_codes(
        &self,
        who: &Principal,
        proof: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>> {
        let credentials = self.credentials_of(&who.user_id).await?;
        if credentials.totp_secret.is_none() {
            return Err(Error::Conflict(NOT_ON));
        }
        self.require_recent_proof(who, proof, client).await?;
        let (codes, hashes) = self.second_factor.recovery.generate()?;
        let now = self.clock.now();
        if !self
            .store
            .replace_recovery_codes(&who.user_id, &hashes, now)
            .await?
        {
            return Err(Error::Conflict(NOT_ON));
        }
        let revoked = self
            .store
            .revoke_sessions_of(&who.user_id, Some(&who.sid), now)
            .await?;
        tracing::info!(user_id = %who.user_id, revoked, event = "mfa.recovery_codes_regenerated", "new recovery codes; other sessions revoked");
        self.audit(
            AuditEvent::MfaRecoveryCodesRegenerated { revoked },
            Some(&who.user_id),
            client,
        );
        self.notify(&who.user_id, MailNotice::RecoveryCodesRegenerated)
            .await;
        Ok(codes)
    }

    /// For flows that must prove the second factor when an account has one
    /// (password reset): `Ok` when two-factor sign-in is off, or when
    /// `factor` is a right, unused code (which is then used up: a TOTP
    /// step is claimed, a recovery code consumed). Otherwise
    /// [`Error::MfaRequired`] (no factor given, or a wrong or used one;
    /// wrong ones count towards the per-account throttle) or
    /// [`Error::RateLimited`].
    pub async fn check_second_factor(
        &self,
        user_id: &str,
        factor: Option<SecondFactor>,
        client: &ClientInfo,
    ) -> Result<()> {
        let credentials = self.credentials_of(user_id).await?;
        if credentials.totp_secret.is_none() {
            return Ok(());
        }
        let Some(factor) = factor else {
            return Err(Error::MfaRequired(
                "This account has two-factor sign-in on: send `mfa_code` or `recovery_code`.",
            ));
        };
        self.mfa_guarded(user_id, client, async {
            let proven = match self.candidate(user_id, &credentials, &factor).await {
                Ok(Some(candidate)) => self.spend(user_id, candidate, client).await?,
                Ok(None) => None,
                // A malformed code is as wrong as a wrong one here.
                Err(Error::Validation(_)) => None,
                Err(e) => return Err(e),
            };
            Ok(proven.map(|_| ()).ok_or(Error::MfaRequired(
                "The two-factor code is wrong or was already used.",
            )))
        })
        .await?
    }

    /// Checks a current TOTP code a signed-in user gives to confirm a
    /// sensitive change (account deletion): `Ok(Ok(()))` when right and
    /// unused (its step is then claimed), `Ok(Err(InvalidCode))` when wrong,
    /// used, or when the account has no TOTP. Wrong codes count under the
    /// per-account code throttle too, so that guesses spread over several
    /// routes share one budget.
    pub(super) async fn check_current_code(
        &self,
        user_id: &str,
        code: &TotpCode,
        client: &ClientInfo,
    ) -> Result<std::result::Result<(), Error>> {
        let credentials = self.credentials_of(user_id).await?;
        let Some(sealed) = &credentials.totp_secret else {
            return Ok(Err(Error::InvalidCode));
        };
        self.mfa_guarded(user_id, client, async {
            let claimed = match self.totp_step(user_id, sealed, code)? {
                Some(step) => self.claim_step(user_id, step).await?,
                None => false,
            };
            Ok(if claimed {
                Ok(())
            } else {
                Err(Error::InvalidCode)
            })
        })
        .await
    }

    /// The credentials of a user who must exist (a verified caller or the
    /// subject of a verified token).
    async fn credentials_of(&self, user_id: &str) -> Result<CredentialRecord> {
        self.store
            .credentials(user_id)
            .await?
            .ok_or(Error::TokenInvalid("unknown subject"))
    }

    /// Runs `check`, a second-factor check of `user_id` (or a password
    /// confirming a change to it), under the per-account code throttle:
    /// its place is reserved before it runs (429 with `Retry-After` when
    /// wrong attempts fill the limit, see `service::throttle`). `check`
    /// answers `Ok(Ok(_))` when right (the count is cleared),
    /// `Ok(Err(refusal))` when wrong (it counts, and `refusal` is the
    /// answer), and `Err` when it could not tell (the place is given back).
    async fn mfa_guarded<T>(
        &self,
        user_id: &str,
        client: &ClientInfo,
        check: impl std::future::Future<Output = Result<std::result::Result<T, Error>>>,
    ) -> Result<std::result::Result<T, Error>> {
        let keys = [(
            mfa_throttle_key(user_id),
            self.settings.limits.login_max_failures,
        )];
        let attempt = match self.reserve_attempt(&keys).await? {
            Reserved::Granted(a) => a,
            Reserved::Full(a, retry_after) => {
                self.release_attempt(a).await;
                tracing::info!(user_id, event = "rate_limited", "second factor throttled");
                return Err(Error::RateLimited { retry_after });
            }
            Reserved::Busy(retry_after) => return Err(Error::RateLimited { retry_after }),
        };
        match check.await {
            Ok(Ok(proven)) => {
                self.attempt_succeeded(attempt).await?;
                Ok(Ok(proven))
            }
            Ok(Err(refusal)) => {
                self.attempt_failed(attempt).await?;
                self.mfa_failed(user_id, client);
                Ok(Err(refusal))
            }
            Err(e) => {
                self.release_attempt(attempt).await;
                Err(e)
            }
        }
    }

    /// A wrong second factor was counted: metrics, log and audit.
    fn mfa_failed(&self, user_id: &str, client: &ClientInfo) {
        metrics::counter!("portcullis_mfa_failures_total").increment(1);
        tracing::info!(user_id, "wrong second factor");
        self.audit(AuditEvent::MfaFailed, Some(user_id), client);
    }

    /// The step `code` belongs to under the sealed secret, if it is right
    /// now (one step of drift either way).
    fn totp_step(&self, user_id: &str, sealed: &str, code: &TotpCode) -> Result<Option<u64>> {
        use secrecy::ExposeSecret;
        let secret = self.second_factor.sealer.open(user_id, sealed)?;
        Ok(totp::check(
            secret.expose_secret(),
            code.as_str(),
            self.clock.now_u64(),
        )?)
    }

    /// Claims a TOTP step of a user: true the first time only.
    async fn claim_step(&self, user_id: &str, step: u64) -> Result<bool> {
        // Kept until the code can no longer be accepted (one step of drift),
        // plus a step of margin.
        let until = step.saturating_add(3).saturating_mul(STEP_SECS);
        let until = i64::try_from(until).unwrap_or(i64::MAX);
        Ok(self
            .store
            .claim_once(
                &OnceKey::TotpStep(user_id.to_string(), step),
                until,
                self.clock.now(),
            )
            .await?)
    }

    /// Whether `factor` is right for the account, without using it up:
    /// `Some` of what to spend, `None` when wrong.
    async fn candidate(
        &self,
        user_id: &str,
        credentials: &CredentialRecord,
        factor: &SecondFactor,
    ) -> Result<Option<Candidate>> {
        match factor {
            SecondFactor::Code(code) => {
                let code = code_field("code", code)?;
                let Some(sealed) = &credentials.totp_secret else {
                    return Ok(None);
                };
                Ok(self.totp_step(user_id, sealed, &code)?.map(Candidate::Step))
            }
            SecondFactor::RecoveryCode(input) => {
                use secrecy::ExposeSecret;
                let hash = self
                    .second_factor
                    .recovery
                    .hash_input(input.expose_secret());
                Ok(hash
                    .filter(|h| credentials.recovery_codes.contains(h))
                    .map(Candidate::RecoveryCode))
            }
        }
    }

    /// Uses up a right factor: claims the TOTP step or consumes the
    /// recovery code. `None` when someone used it first (a replay).
    async fn spend(
        &self,
        user_id: &str,
        candidate: Candidate,
        client: &ClientInfo,
    ) -> Result<Option<Proven>> {
        match candidate {
            Candidate::Step(step) => {
                Ok(self.claim_step(user_id, step).await?.then_some(Proven::Otp))
            }
            Candidate::RecoveryCode(hash) => {
                let used = self
                    .store
                    .consume_recovery_code(user_id, &hash, self.clock.now())
                    .await?;
                if used {
                    self.audit(AuditEvent::MfaRecoveryCodeUsed, Some(user_id), client);
                }
                Ok(used.then_some(Proven::RecoveryCode))
            }
        }
    }
}

/// A right second factor not yet used up.
#[derive(Debug)]
enum Candidate {
    /// The TOTP step the code belongs to.
    Step(u64),
    /// The hash of a recovery code of the account.
    RecoveryCode(String),
}

#[cfg(test)]
mod tests {
    //! `check_second_factor`, the seam password reset calls, on a real core
    //! (embedded store, manual clock).

    use secrecy::ExposeSecret;

    use super::*;
    use crate::service::Registration;

    const START: i64 = 1_900_000_025;
    const PASSWORD: &str = "correct horse battery staple 42";

    async fn core(dir: &std::path::Path) -> Core {
        crate::service::test_core(dir, START).await
    }

    /// Registers and signs in; returns the caller.
    async fn signed_in(core: &Core, email: &str) -> Principal {
        let input = Registration {
            email: email.into(),
            password: SecretString::from(PASSWORD),
            display_name: None,
            locale: None,
            captcha: None,
        };
        core.register(input, &ClientInfo::default()).await.unwrap();
        let SignIn::Tokens(t) = core
            .login(
                email,
                SecretString::from(PASSWORD),
                None,
                ClientInfo::default(),
            )
            .await
            .unwrap()
        else {
            panic!("no tokens")
        };
        core.authenticate(&t.access_token).await.unwrap()
    }

    fn code(secret: &SecretString, at: i64) -> String {
        let bytes = totp_rs::Secret::try_from_base32(secret.expose_secret()).unwrap();
        totp_rs::Builder::new()
            .with_secret(bytes.as_bytes().to_vec())
            .build()
            .unwrap()
            .generate(at as u64)
            .to_string()
    }

    #[tokio::test]
    async fn check_second_factor_for_password_reset() {
        let dir = tempfile::tempdir().unwrap();
        let core = core(dir.path()).await;
        let who = signed_in(&core, "reset-mfa@example.com").await;
        // Off: nothing to prove.
        core.check_second_factor(&who.user_id, None, &ClientInfo::default())
            .await
            .unwrap();

        let client = ClientInfo::default();
        let e = core.totp_begin(&who, &client).await.unwrap();
        let rcs = core
            .totp_activate(&who, &code(&e.secret, START), None, &client)
            .await
            .unwrap();
        core.clock.advance(30);
        let now = core.clock.now();
        let mfa_required = |r: Result<()>| matches!(r, Err(Error::MfaRequired(_)));

        assert!(mfa_required(
            core.check_second_factor(&who.user_id, None, &ClientInfo::default())
                .await
        ));
        let right = code(&e.secret, now);
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        for bad in [wrong, "12", "not a code"] {
            let f = Some(SecondFactor::Code(bad.into()));
            assert!(mfa_required(
                core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                    .await
            ));
        }
        let f = Some(SecondFactor::Code(right.clone()));
        core.check_second_factor(&who.user_id, f, &ClientInfo::default())
            .await
            .unwrap();
        // The code is used up, and so is a recovery code.
        let f = Some(SecondFactor::Code(right));
        assert!(mfa_required(
            core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                .await
        ));
        let rc = || Some(SecondFactor::RecoveryCode(rcs[0].clone()));
        core.check_second_factor(&who.user_id, rc(), &ClientInfo::default())
            .await
            .unwrap();
        assert!(mfa_required(
            core.check_second_factor(&who.user_id, rc(), &ClientInfo::default())
                .await
        ));
        // Wrong ones count (a success clears the count): one so far, four
        // more make the limit, and then even a right one waits.
        for _ in 0..4 {
            let f = Some(SecondFactor::Code(wrong.into()));
            assert!(mfa_required(
                core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                    .await
            ));
        }
        let f = Some(SecondFactor::RecoveryCode(rcs[1].clone()));
        assert!(matches!(
            core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                .await,
            Err(Error::RateLimited { .. })
        ));
    }
}

//! Checking a second factor: the seam password reset calls, the current
//! code check of changes, the per-account throttle with its reservation
//! (`mfa_guarded`), and claiming a TOTP step or consuming a recovery code.

use super::{Candidate, Proven, SecondFactor, code_field};
use crate::audit::AuditEvent;
use crate::auth::totp::{self, STEP_SECS};
use crate::domain::{TotpCode, UserId};
use crate::service::throttle::Reserved;
use crate::service::{ClientInfo, Core, Error, Result};
use crate::store::{CredentialRecord, OnceKey, mfa_throttle_key};

impl Core {
    /// For flows that must prove the second factor when an account has one
    /// (password reset): `Ok` when two-factor sign-in is off, or when
    /// `factor` is a right, unused code (which is then used up: a TOTP
    /// step is claimed, a recovery code consumed). Otherwise
    /// [`Error::MfaRequired`] (no factor given, or a wrong or used one;
    /// wrong ones count towards the per-account throttle) or
    /// [`Error::RateLimited`].
    pub async fn check_second_factor(
        &self,
        user_id: &UserId,
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
    pub(in crate::service) async fn check_current_code(
        &self,
        user_id: &UserId,
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
    pub(super) async fn credentials_of(&self, user_id: &UserId) -> Result<CredentialRecord> {
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
    pub(super) async fn mfa_guarded<T>(
        &self,
        user_id: &UserId,
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
                tracing::info!(user_id = %user_id, event = "rate_limited", "second factor throttled");
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
    fn mfa_failed(&self, user_id: &UserId, client: &ClientInfo) {
        metrics::counter!("portcullis_mfa_failures_total").increment(1);
        tracing::info!(user_id = %user_id, "wrong second factor");
        self.audit(AuditEvent::MfaFailed, Some(user_id), client);
    }

    /// The step `code` belongs to under the sealed secret, if it is right
    /// now (one step of drift either way).
    pub(super) fn totp_step(
        &self,
        user_id: &UserId,
        sealed: &str,
        code: &TotpCode,
    ) -> Result<Option<u64>> {
        use secrecy::ExposeSecret;
        let secret = self.second_factor.sealer.open(user_id, sealed)?;
        Ok(totp::check(
            secret.expose_secret(),
            code.as_str(),
            self.clock.now_u64(),
        )?)
    }

    /// Claims a TOTP step of a user: true the first time only.
    pub(super) async fn claim_step(&self, user_id: &UserId, step: u64) -> Result<bool> {
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
    pub(super) async fn candidate(
        &self,
        user_id: &UserId,
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
    pub(super) async fn spend(
        &self,
        user_id: &UserId,
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

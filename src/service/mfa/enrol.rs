//! TOTP enrolment (begin, activate with a first code), turning two-factor
//! sign-in off, and regenerating recovery codes; all behind step-up.

use secrecy::SecretString;

use super::{ALREADY_ON, NOT_ON, NOT_PENDING, TotpEnrolment, code_field};
use crate::audit::AuditEvent;
use crate::auth::totp;
use crate::service::{ClientInfo, Core, Error, MailNotice, Principal, Proof, Result};

impl Core {
    /// Starts enrolment: a new secret, pending until confirmed with
    /// [`Core::totp_activate`]. `Conflict` when two-factor sign-in is on.
    /// Needs a recent proof on the session (step-up): a stolen access
    /// token must not set up a factor that would lock the owner out.
    pub async fn totp_begin(&self, who: &Principal, client: &ClientInfo) -> Result<TotpEnrolment> {
        let account = self.account(&who.user_id).await?;
        if account.is_anonymous {
            return Err(Error::AnonymousUser("turn on two-factor sign-in"));
        }
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
}

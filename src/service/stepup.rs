//! Recent authentication (step-up): the guard every credential or recovery
//! change calls ([`Core::require_recent_proof`]), and
//! `POST /v1/me/reauthenticate` ([`Core::reauthenticate`]).
//!
//! An access token proves that someone signed in within its lifetime, not
//! that the person holding it now is the owner: a token leaked by XSS, a
//! log or a shared device is enough to read the account, and must not be
//! enough to add a way in (a passkey, a TOTP secret) or to take the
//! recovery paths. So those changes need a
//! *proof* (the password, a current TOTP code or a passkey assertion),
//! either in the same request or given on the same session within
//! `PORTCULLIS_REAUTH_WINDOW` (default 5 minutes): at sign-in (every kind of
//! sign-in records it on the new session), or through
//! `POST /v1/me/reauthenticate`. The time is kept on the session record
//! (`proven_at`), not in the token: a refresh keeps the session's time and
//! does not renew it, a proof on one session does nothing for another,
//! and a token minted before the proof counts as soon as the proof lands.
//!
//! Every proof goes through the per-user throttle of the other
//! confirmation checks ([`Core::confirm_password`],
//! [`Core::check_current_code`], both under [`Core::throttled_proof`]):
//! wrong proofs of any kind, on any route, share one budget.
//!
//! Routes that will need the guard when they exist (linking and unlinking
//! an identity, granting and revoking a consent) call
//! [`Core::require_recent_proof`] with whatever proof their body carries.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::mfa::code_field;
use super::{ClientInfo, Core, Error, Principal, Result};
use crate::audit::AuditEvent;
use crate::clock::secs;
use crate::domain::UserId;

/// A proof of the user's identity, as a client sends it: exactly one of a
/// kind the account has (any other is refused like a wrong one).
#[derive(Debug)]
pub enum Proof {
    /// The account's password.
    Password(SecretString),
    /// A current code from the authenticator app (accounts with TOTP on).
    /// Recovery codes are not accepted: they are the sign-in fallback for a
    /// lost app, and a signed-in user still has the password or a passkey.
    Code(SecretString),
    /// A fresh assertion by one of the caller's passkeys, for options from
    /// `POST /v1/sessions/passkey/options` (the caller's email, or none).
    Passkey {
        /// The `challenge_id` of those options.
        challenge_id: String,
        /// The `PublicKeyCredential` JSON from `navigator.credentials.get`.
        credential: Value,
    },
}

impl Proof {
    /// The method's name (`methods` of the problem, audit details).
    fn method(&self) -> &'static str {
        match self {
            Self::Password(_) => "password",
            Self::Code(_) => "totp",
            Self::Passkey { .. } => "passkey",
        }
    }
}

impl Core {
    /// The step-up guard: `Ok` when `inline` is a right proof (checked,
    /// throttled), or when none is given and the caller's session proved
    /// itself within `PORTCULLIS_REAUTH_WINDOW`. Otherwise
    /// [`Error::ReauthenticationRequired`] with the methods the account
    /// has; a wrong inline proof is its own refusal (401) and counts.
    ///
    /// An inline proof is good for its own request only: it does not open
    /// the window for later ones (that is what `reauthenticate` is for).
    pub(crate) async fn require_recent_proof(
        &self,
        who: &Principal,
        inline: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<()> {
        if let Some(proof) = inline {
            return self
                .verify_proof(&who.user_id, proof, client)
                .await
                .map(|_| ());
        }
        if self.recently_proven(who).await? {
            return Ok(());
        }
        tracing::info!(user_id = %who.user_id, event = "reauthentication.required", "no recent proof on this session");
        Err(Error::ReauthenticationRequired {
            methods: self.proof_methods(&who.user_id).await?,
        })
    }

    /// `POST /v1/me/reauthenticate`: checks the proof and records it on the
    /// caller's session, opening the window for the changes that need it.
    pub async fn reauthenticate(
        &self,
        who: &Principal,
        proof: Proof,
        client: &ClientInfo,
    ) -> Result<()> {
        let method = match self.verify_proof(&who.user_id, proof, client).await {
            Ok(method) => method,
            Err(e) => {
                if matches!(
                    e,
                    Error::WrongPassword | Error::InvalidCode | Error::PasskeyRejected(_)
                ) {
                    self.audit(
                        AuditEvent::LoginFailed {
                            reason: "reauthentication_failed",
                        },
                        Some(&who.user_id),
                        client,
                    );
                }
                return Err(e);
            }
        };
        let now = self.clock.now();
        if !self.store.record_proof(&who.user_id, &who.sid, now).await? {
            // Revoked between the bearer check and here.
            return Err(Error::TokenInvalid("token revoked"));
        }
        tracing::info!(user_id = %who.user_id, method, event = "session.reauthenticated", "proof recorded on the session");
        self.audit(
            AuditEvent::Reauthenticated {
                sid: who.sid.clone(),
                method,
            },
            Some(&who.user_id),
            client,
        );
        Ok(())
    }

    /// Whether the caller's session proved itself within the window.
    async fn recently_proven(&self, who: &Principal) -> Result<bool> {
        let now = self.clock.now();
        let window = secs(self.settings.tokens.reauth_window);
        let Some(session) = self.store.session(&who.sid).await? else {
            return Ok(false);
        };
        if session.user_id != who.user_id || !session.is_active(now) {
            return Err(Error::TokenInvalid("token revoked"));
        }
        Ok(session
            .proven_at
            .is_some_and(|at| at <= now && now - at < window))
    }

    /// The kinds of proof the account has: `password`, `totp`, `passkey`.
    async fn proof_methods(&self, user_id: &UserId) -> Result<Vec<&'static str>> {
        let creds = self
            .store
            .credentials(user_id)
            .await?
            .ok_or(Error::TokenInvalid("unknown subject"))?;
        let mut methods = Vec::new();
        if creds.has_password() {
            methods.push("password");
        }
        if creds.totp_secret.is_some() {
            methods.push("totp");
        }
        if !creds.passkeys.is_empty() && self.passkeys.is_some() {
            methods.push("passkey");
        }
        Ok(methods)
    }

    /// Checks one proof under the per-user throttle of confirmation checks;
    /// returns the method's name. A malformed code is a 422 and does not
    /// count.
    pub(super) async fn verify_proof(
        &self,
        user_id: &UserId,
        proof: Proof,
        client: &ClientInfo,
    ) -> Result<&'static str> {
        if self.store.credentials(user_id).await?.is_none() {
            return Err(Error::TokenInvalid("unknown subject"));
        }
        let method = proof.method();
        match proof {
            Proof::Password(password) => {
                self.confirm_password(user_id, password, client).await?;
            }
            Proof::Code(code) => {
                let code = code_field("code", code.expose_secret())?;
                self.throttled_proof(
                    user_id,
                    client,
                    self.check_current_code(user_id, &code, client),
                )
                .await?;
            }
            Proof::Passkey {
                challenge_id,
                credential,
            } => {
                self.throttled_proof(user_id, client, async {
                    match self
                        .verify_own_passkey(user_id, &challenge_id, &credential)
                        .await
                    {
                        Ok(_) => Ok(Ok(())),
                        Err(e @ Error::PasskeyRejected(_)) => Ok(Err(e)),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            }
        }
        Ok(method)
    }
}

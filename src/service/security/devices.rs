//! After a successful sign-in: `login.succeeded`, the known devices and
//! the new-sign-in notice, the burst rule, and the "not me" answer that
//! ends the sessions and sends a reset mail.

use secrecy::{ExposeSecret, SecretString};

use super::{NOT_ME_TYP, NotMeClaims, network_of, ua_family};
use crate::audit::{AuditEvent, Suspicion};
use crate::auth::tokens::RegisteredClaims;
use crate::clock::secs;
use crate::domain::UserId;
use crate::service::{Account, ClientInfo, Core, Error, Result};
use crate::store::{MailKind, OnceKey};

impl Core {
    /// After a successful sign-in: records `login.succeeded`, remembers the
    /// device, sends a new-sign-in notice for a new one (not for the first
    /// sign-in of an account) and runs the burst rule. Returns whether the
    /// device was new. A store failure here is logged, never fails the
    /// sign-in.
    pub(in crate::service) async fn signed_in(
        &self,
        account: &Account,
        sid: &str,
        client: &ClientInfo,
    ) -> bool {
        let now = self.clock.now();
        let s = &self.settings.security;
        let family = ua_family(client.user_agent.as_deref());
        let network = network_of(client.ip);
        let key = format!("{family}|{network}");
        let before = match self
            .store
            .note_device(&account.id, &key, &network, now, s.known_devices)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "known devices unavailable: no new-device check");
                self.audit(
                    AuditEvent::LoginSucceeded {
                        sid: sid.to_string(),
                        new_device: false,
                    },
                    Some(&account.id),
                    client,
                );
                return false;
            }
        };
        let first = before.devices.is_empty();
        let new_device = !first && !before.knows(&key);
        self.audit(
            AuditEvent::LoginSucceeded {
                sid: sid.to_string(),
                new_device,
            },
            Some(&account.id),
            client,
        );
        // Burst: distinct networks within the window, fired once at the crossing.
        let since = now - secs(s.detect_burst_window);
        let mut after = before.clone();
        after.sight(&key, &network, now, usize::MAX);
        let threshold = s.detect_burst_networks as usize;
        let (was, is) = (before.networks_since(since), after.networks_since(since));
        if was < threshold && is >= threshold {
            self.audit(
                AuditEvent::Suspicious(Suspicion::Burst {
                    networks: u32::try_from(is).unwrap_or(u32::MAX),
                }),
                Some(&account.id),
                client,
            );
        }
        if new_device {
            // The mail: queued with its non-secret details; its "not me"
            // token is signed when it is sent.
            let detail = crate::service::mail::NewSignInDetail {
                sid: sid.to_string(),
                dev: key.clone(),
                device: family.clone(),
                ip: client.ip.map(|ip| ip.to_string()),
                at: now,
            };
            let id = format!("new_sign_in:{}:{sid}", account.id);
            let queued = match serde_json::to_string(&detail) {
                Ok(detail) => {
                    self.enqueue_detailed(
                        id,
                        MailKind::NewSignIn,
                        Some(&account.id),
                        None,
                        Some(detail),
                    )
                    .await
                }
                Err(e) => Err(Error::Unexpected(e.into())),
            };
            if let Err(e) = queued {
                tracing::warn!(error = %e, user_id = %account.id, "could not queue a new-sign-in notice");
            }
        }
        new_device
    }

    /// A signed, single-use "not me" token for the sign-in `sid` from device `dev`.
    pub(in crate::service) fn not_me_token(
        &self,
        user_id: &UserId,
        sid: &str,
        dev: &str,
    ) -> anyhow::Result<SecretString> {
        let now = self.clock.now_u64();
        let ttl = self.settings.security.not_me_ttl.as_secs();
        let claims = NotMeClaims {
            registered: RegisteredClaims {
                iss: self.tokens.issuer().to_string(),
                aud: self.tokens.audience_for(NOT_ME_TYP),
                sub: user_id.clone(),
                exp: now.saturating_add(ttl),
                iat: now,
                nbf: now,
                jti: uuid::Uuid::new_v4().to_string(),
            },
            sid: sid.to_string(),
            dev: dev.to_string(),
        };
        Ok(SecretString::from(self.tokens.sign(NOT_ME_TYP, &claims)?))
    }

    /// `POST /v1/security/not-me`: the user says a notified sign-in was not
    /// them. Every session of the user ends, the reported device is
    /// forgotten (a new sign-in from it alerts again), a reset mail goes
    /// out, and `suspicious.reported` is recorded. The token works once.
    pub async fn not_me(&self, token: &SecretString, client: &ClientInfo) -> Result<()> {
        let invalid = || Error::LinkInvalid("the link is invalid, expired or already used");
        let now = self.clock.now();
        let claims: NotMeClaims = self
            .tokens
            .verify(token.expose_secret(), NOT_ME_TYP, self.clock.now_u64())
            .map_err(|_| invalid())?;
        let expires = i64::try_from(claims.exp).unwrap_or(i64::MAX);
        if !self
            .store
            .claim_once(&OnceKey::NotMe(claims.jti.clone()), expires, now)
            .await?
        {
            return Err(invalid());
        }
        let Some(user) = self.store.user_by_id(&claims.sub).await? else {
            return Err(invalid());
        };
        let revoked = self.store.revoke_sessions_of(&user.id, None, now).await?;
        // The reported device is no longer "known": another sign-in from it
        // alerts again.
        self.store.forget_device(&user.id, &claims.dev).await?;
        self.audit(
            AuditEvent::Suspicious(Suspicion::Reported {
                sid: claims.sid,
                revoked,
            }),
            Some(&user.id),
            client,
        );
        // The reset mail (its link and code are made when it is sent).
        let id = format!("not_me_reset:{}:{}", user.id, claims.registered.jti);
        if let Err(e) = self
            .enqueue(id, MailKind::PasswordReset, Some(&user.id), None)
            .await
        {
            tracing::warn!(error = %e, user_id = %user.id, "could not queue the reset mail after not-me");
        }
        Ok(())
    }
}

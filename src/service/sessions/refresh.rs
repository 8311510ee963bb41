//! Refresh: rotation of the refresh token with reuse detection.

use crate::audit::{AuditEvent, Suspicion};
use crate::auth::limits::Action;
use crate::clock::secs;
use crate::service::{ClientInfo, Core, Error, IssuedTokens, Result};
use crate::store::{RotateOutcome, Rotation};

impl Core {
    /// Exchanges a refresh token for a new pair (rotation with reuse detection).
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<IssuedTokens> {
        self.rate_limit(Action::Refresh, client)?;
        let claims = self
            .tokens
            .verify_refresh(refresh_token, self.clock.now_u64())?;
        // DPoP, before the rotation: without a proof by the session's key
        // the request is refused and the family goes on (service::dpop).
        let proof = self.request_dpop_jkt()?;
        let bound = claims.cnf.as_ref().map(|c| c.jkt.as_str());
        self.check_refresh_sender(&claims.sub, &claims.sid, bound, proof.as_deref())
            .await?;
        let now = self.clock.now();
        let new_jti = uuid::Uuid::new_v4().to_string();
        let rotation = Rotation {
            sid: &claims.sid,
            presented_jti: &claims.jti,
            new_jti: &new_jti,
            now,
            new_expires_at: now.saturating_add(secs(self.tokens.refresh_ttl)),
            grace_secs: secs(self.settings.tokens.refresh_grace),
        };
        let session = match self.store.rotate(&rotation).await? {
            // What is stored: service::refresh_audit (PORTCULLIS_AUDIT_REFRESH).
            RotateOutcome::Rotated(s) => {
                self.audit_refresh(&s, claims.iat, false, client);
                s
            }
            RotateOutcome::Grace(s) => {
                self.audit_refresh(&s, claims.iat, true, client);
                s
            }
            RotateOutcome::Reused(s) => {
                metrics::counter!("portcullis_refresh_reuse_total").increment(1);
                let event = AuditEvent::TokenReuseDetected { sid: s.id.clone() };
                self.audit(event, Some(&s.user_id), client);
                let rule = Suspicion::TokenReuse { sid: s.id.clone() };
                self.audit(AuditEvent::Suspicious(rule), Some(&s.user_id), client);
                return Err(Error::TokenInvalid("refresh token reused; session revoked"));
            }
            RotateOutcome::Invalid => return Err(Error::TokenInvalid("token revoked")),
        };
        if session.user_id != claims.sub {
            return Err(Error::TokenInvalid("invalid claims"));
        }
        // A bind that raced this refresh (or lost to another key).
        if session.dpop_jkt.is_some() && session.dpop_jkt != proof {
            return Err(Error::DpopBinding(
                "the proof is not by the key this session is bound to",
            ));
        }
        let user = match self.store.user_by_id(&session.user_id).await? {
            Some(u) if !u.disabled => u,
            Some(_) => {
                self.store
                    .revoke_session(&session.user_id, &session.id, now)
                    .await?;
                return Err(Error::TokenInvalid("account disabled"));
            }
            None => return Err(Error::TokenInvalid("unknown subject")),
        };
        if user.anonymous {
            // A guest in use is kept (see `Core::purge_anonymous`).
            self.store.touch_anonymous(&user.id, now).await?;
        }
        self.issue_pair(self.to_account(user), &session)
    }
}

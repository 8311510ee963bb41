//! Ending sessions (sign-out, revoking one) and listing them.

use super::LogoutScope;
use crate::audit::AuditEvent;
use crate::service::{ClientInfo, Core, Error, Principal, Result, SessionSummary};

impl Core {
    /// Ends sessions of the caller.
    pub async fn logout(
        &self,
        who: &Principal,
        scope: LogoutScope,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = self.clock.now();
        let (name, revoked) = match scope {
            LogoutScope::Local => {
                let ended = self
                    .store
                    .revoke_session(&who.user_id, &who.sid, now)
                    .await?;
                ("local", u64::from(ended))
            }
            LogoutScope::Others => {
                let n = self
                    .store
                    .revoke_sessions_of(&who.user_id, Some(&who.sid), now)
                    .await?;
                ("others", n)
            }
            LogoutScope::Global => {
                let n = self
                    .store
                    .revoke_sessions_of(&who.user_id, None, now)
                    .await?;
                ("global", n)
            }
        };
        let event = AuditEvent::Logout {
            scope: name,
            revoked,
        };
        self.audit(event, Some(&who.user_id), client);
        Ok(())
    }

    /// The caller's active sessions, newest first.
    pub async fn sessions(&self, who: &Principal) -> Result<Vec<SessionSummary>> {
        Ok(self
            .store
            .sessions_of(&who.user_id, self.clock.now())
            .await?
            .into_iter()
            .map(|s| SessionSummary::new(s, &who.sid))
            .collect())
    }

    /// Ends one of the caller's sessions; `NotFound` when it is not theirs.
    pub async fn revoke_session(
        &self,
        who: &Principal,
        sid: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        if self
            .store
            .revoke_session(&who.user_id, sid, self.clock.now())
            .await?
        {
            let event = AuditEvent::Logout {
                scope: "session",
                revoked: 1,
            };
            self.audit(event, Some(&who.user_id), client);
            Ok(())
        } else {
            Err(Error::NotFound("Session"))
        }
    }
}

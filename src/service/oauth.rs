//! Standard OAuth 2.0 / OpenID Connect endpoints over the same sessions as
//! the JSON API: the refresh grant (RFC 6749 §6), revocation
//! (RFC 7009), introspection (RFC 7662) and userinfo (OIDC Core §5.3).
//! Nothing new is stored: a refresh through `/oauth/token` is the same
//! rotation as `POST /v1/sessions/refresh`, and revoking a token ends its
//! session, so introspection answers `active: false` at once.

use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{ClientInfo, Core, Error, Result};

/// What introspection tells a resource server about a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    /// True only for a valid, unexpired token of a live session.
    pub active: bool,
    /// The user id.
    pub sub: Option<String>,
    /// The session id.
    pub sid: Option<String>,
    /// Expiry (unix seconds).
    pub exp: Option<u64>,
    /// Issue time (unix seconds).
    pub iat: Option<u64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Audience.
    pub aud: Option<String>,
    /// Token id.
    pub jti: Option<String>,
    /// `access_token` or `refresh_token`.
    pub token_type: Option<&'static str>,
    /// The OAuth client the token was issued to.
    pub client_id: Option<String>,
    /// Roles (access tokens).
    pub roles: Vec<String>,
    /// The DPoP key thumbprint a bound token is bound to (`cnf.jkt`).
    pub cnf_jkt: Option<String>,
}

impl Core {
    /// Whether introspection is on (`PORTCULLIS_INTROSPECTION_TOKEN` set).
    pub fn introspection_enabled(&self) -> bool {
        self.settings.http.introspection_token.is_some()
    }

    /// Checks a resource server's credential for `POST /oauth/introspect`:
    /// `NotFound` when introspection is off, `IntrospectionCallerRefused`
    /// for a missing or wrong token (compared in constant time).
    pub fn check_introspection_caller(&self, presented: Option<&str>) -> Result<()> {
        let Some(expected) = &self.settings.http.introspection_token else {
            return Err(Error::NotFound("Introspection endpoint"));
        };
        match presented {
            Some(p) if bool::from(p.as_bytes().ct_eq(expected.expose_secret().as_bytes())) => {
                Ok(())
            }
            _ => {
                tracing::warn!(
                    event = "introspection.refused",
                    "introspection caller refused: missing or wrong token"
                );
                Err(Error::IntrospectionCallerRefused)
            }
        }
    }

    /// RFC 7662: what `token` is, and whether it is active now. Never an
    /// error for a bad token: that is simply `active: false`.
    pub async fn introspect(&self, token: &str) -> Result<Introspection> {
        let now = self.clock.now_u64();
        if let Ok(c) = self.tokens.verify_access(token, now) {
            // Not `authenticate`: the resource server asking holds the
            // token, not the client's DPoP key; `cnf` tells it what to check.
            let live = self
                .store
                .session_live(&c.sid, &c.sub, self.clock.now())
                .await?;
            let checked = if live {
                Ok(())
            } else {
                Err(Error::TokenInvalid("token revoked"))
            };
            return Ok(match checked {
                // The roles as they are now: a demotion
                // shows at once, as on Portcullis's own admin routes.
                Ok(_) => match self.store.user_by_id(&c.registered.sub).await? {
                    Some(user) if !user.disabled => Introspection {
                        active: true,
                        sub: Some(c.registered.sub.into_string()),
                        sid: Some(c.sid),
                        exp: Some(c.registered.exp),
                        iat: Some(c.registered.iat),
                        iss: Some(c.registered.iss),
                        aud: Some(c.registered.aud),
                        jti: Some(c.registered.jti),
                        token_type: Some("access_token"),
                        client_id: Some(c.client_id),
                        roles: user.roles,
                        cnf_jkt: c.cnf.map(|cnf| cnf.jkt),
                    },
                    _ => Introspection::default(),
                },
                Err(Error::TokenInvalid(_)) => Introspection::default(),
                Err(e) => return Err(e),
            });
        }
        if let Ok(c) = self.tokens.verify_refresh(token, now) {
            let live = self.store.session(&c.sid).await?.is_some_and(|s| {
                s.user_id == c.registered.sub
                    && s.is_active(self.clock.now())
                    && s.current_jti == c.registered.jti
            });
            if live {
                return Ok(Introspection {
                    active: true,
                    sub: Some(c.registered.sub.into_string()),
                    sid: Some(c.sid),
                    exp: Some(c.registered.exp),
                    iat: Some(c.registered.iat),
                    iss: Some(c.registered.iss),
                    aud: Some(c.registered.aud),
                    jti: Some(c.registered.jti),
                    token_type: Some("refresh_token"),
                    cnf_jkt: c.cnf.map(|cnf| cnf.jkt),
                    ..Introspection::default()
                });
            }
        }
        Ok(Introspection::default())
    }

    /// RFC 7009: revokes the session of `token` (an access or a refresh
    /// token). An invalid or already revoked token is not an error.
    pub async fn revoke_token(&self, token: &str, client: &ClientInfo) -> Result<()> {
        let now = self.clock.now_u64();
        let who = match self.tokens.verify_refresh(token, now) {
            Ok(c) => Some((c.registered.sub, c.sid)),
            Err(_) => self
                .tokens
                .verify_access(token, now)
                .ok()
                .map(|c| (c.registered.sub, c.sid)),
        };
        if let Some((user_id, sid)) = who
            && self
                .store
                .revoke_session(&user_id, &sid, self.clock.now())
                .await?
        {
            tracing::info!(
                user_id = %user_id,
                sid = %sid,
                client_ip = %super::sessions::ip_text(client),
                event = "token.revoked",
                "session ended through /oauth/revoke"
            );
            self.audit(
                crate::audit::AuditEvent::TokenRevoked { sid },
                Some(&user_id),
                client,
            );
        }
        Ok(())
    }
}

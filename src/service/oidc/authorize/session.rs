//! The browser session of the hosted pages: its cookie, made from a
//! hosted-page sign-in, checked and ended.

use subtle::ConstantTimeEq;

use super::BrowserSession;
use crate::service::{Core, Error, IssuedTokens, Result};

impl Core {
    /// The browser session behind a cookie value (`<sid>.<secret>`): live,
    /// a sign-in of the hosted pages, its account enabled.
    pub async fn browser_session(&self, cookie: Option<&str>) -> Result<Option<BrowserSession>> {
        let Some((sid, secret)) = cookie.and_then(|c| c.split_once('.')) else {
            return Ok(None);
        };
        if sid.len() > 64 || secret.len() > 64 {
            return Ok(None);
        }
        let now = self.clock.now();
        let Some(s) = self.store.session(sid).await? else {
            return Ok(None);
        };
        if !s.is_active(now)
            || s.client_id.is_some()
            || !bool::from(s.current_jti.as_bytes().ct_eq(secret.as_bytes()))
        {
            return Ok(None);
        }
        match self.store.user_by_id(&s.user_id).await? {
            Some(u) if !u.disabled => {}
            _ => return Ok(None),
        }
        Ok(Some(BrowserSession {
            auth_time: s.proven_at.unwrap_or(s.created_at),
            sid: s.id,
            user_id: s.user_id,
            amr: s.amr,
            idp: s.idp,
        }))
    }

    /// The cookie value of the session a hosted-page sign-in just opened
    /// (its refresh token is never handed out: the session's current
    /// generation id is the cookie's secret). An earlier browser session
    /// on this browser (`previous`) ends.
    pub async fn browser_cookie_for(
        &self,
        tokens: &IssuedTokens,
        previous: Option<&BrowserSession>,
    ) -> Result<(String, BrowserSession)> {
        let claims = self
            .tokens
            .verify_refresh(&tokens.refresh_token, self.clock.now_u64())
            .map_err(|_| {
                Error::Unexpected(anyhow::anyhow!("fresh refresh token did not verify"))
            })?;
        let now = self.clock.now();
        if let Some(p) = previous
            && p.sid != claims.sid
        {
            self.store.revoke_session(&p.user_id, &p.sid, now).await?;
        }
        let session = self
            .store
            .session(&claims.sid)
            .await?
            .ok_or(Error::TokenInvalid("session gone"))?;
        Ok((
            format!("{}.{}", claims.sid, claims.jti),
            BrowserSession {
                sid: session.id,
                user_id: session.user_id,
                auth_time: session.proven_at.unwrap_or(session.created_at),
                amr: session.amr,
                idp: session.idp,
            },
        ))
    }

    /// Ends a browser session (sign-out on the hosted pages).
    pub async fn end_browser_session(&self, b: &BrowserSession) -> Result<()> {
        self.store
            .revoke_session(&b.user_id, &b.sid, self.clock.now())
            .await?;
        Ok(())
    }
}

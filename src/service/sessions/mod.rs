//! Sessions: bearer checks here; sign-in (`sign_in.rs`), opening a
//! session and issuing tokens (`open.rs`), refresh rotation (`refresh.rs`),
//! sign-out, listing and revoking (`end.rs`), one `impl Core` each.

mod end;
mod open;
mod refresh;
mod sign_in;

use super::{Account, BearerToken, ClientInfo, Core, Error, Principal, Result};

/// The client address for a log line (empty when unknown).
pub(super) fn ip_text(client: &ClientInfo) -> String {
    client.ip.map(|ip| ip.to_string()).unwrap_or_default()
}

/// The role that opens the admin API.
pub const ADMIN_ROLE: &str = "admin";

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The caller's session only.
    Local,
    /// Every session of the user but the caller's.
    Others,
    /// Every session of the user.
    Global,
}

impl Core {
    /// Checks an access token and its session; the basis of every bearer route.
    ///
    /// The token's signature is checked once per token (see
    /// [`crate::auth::token_cache`]: claims, key, issuer, audience and
    /// lifetime are checked again on every request); the session is read on
    /// every request (from memory on the embedded store, which invalidates
    /// it with every session write), so a revocation holds at once.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let token = self.verify_bearer(token)?;
        let now = self.clock.now();
        let c = &token.claims;
        if !self.store.session_live(&c.sid, &c.sub, now).await? {
            return Err(Error::TokenInvalid("token revoked"));
        }
        Ok(token.principal())
    }

    /// Checks an access token's signature and claims, not its session: the
    /// first half of [`Core::authenticate`], for routes that check the
    /// session together with what they read (`GET /v1/me`, see
    /// [`Core::me_checked`]).
    pub fn verify_bearer(&self, token: &str) -> Result<BearerToken> {
        let claims =
            self.verified_tokens
                .verify_access(&self.tokens, token, self.clock.now_u64())?;
        // DPoP: the binding is checked on every request, cache or not.
        self.check_sender(&claims)?;
        tracing::Span::current().record("user_id", claims.sub.as_str());
        Ok(BearerToken { claims })
    }

    /// The caller's account, after checking that the token's session is
    /// live, in one store read (one read transaction on the embedded store,
    /// one round trip's wait on MongoDB).
    pub async fn me_checked(&self, token: &BearerToken) -> Result<Account> {
        let c = &token.claims;
        let (live, user) = self
            .store
            .live_session_user(&c.sid, &c.sub, self.clock.now())
            .await?;
        if !live {
            return Err(Error::TokenInvalid("token revoked"));
        }
        user.map(|u| self.to_account(u))
            .ok_or(Error::TokenInvalid("unknown subject"))
    }

    /// Like [`Core::authenticate`], and the account must hold the `admin`
    /// role now (read from the store, so a demotion takes effect at once).
    pub async fn authenticate_admin(&self, token: &str) -> Result<Principal> {
        let who = self.authenticate(token).await?;
        let is_admin = self
            .store
            .user_by_id(&who.user_id)
            .await?
            .is_some_and(|u| !u.disabled && u.roles.iter().any(|r| r == ADMIN_ROLE));
        if !is_admin {
            return Err(Error::Forbidden("this route needs the admin role"));
        }
        Ok(who)
    }
}

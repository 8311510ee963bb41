//! Userinfo (OIDC Core §5.3) and the claims a scope shows, shared with ID
//! tokens.

use super::{UserInfoClaims, has};
use crate::service::{Account, Core, Error, Result};
use crate::store::UserRecord;

impl Core {
    pub(super) fn scoped_claims(
        scope: &[String],
        account: &Account,
        user: &UserRecord,
    ) -> UserInfoClaims {
        let mut out = UserInfoClaims {
            sub: user.id.to_string(),
            ..UserInfoClaims::default()
        };
        if has(scope, "email") {
            out.email = Some(user.email.clone());
            out.email_verified = Some(user.email_verified);
        }
        if has(scope, "profile") {
            out.name = user.display_name.clone();
            out.picture = account.avatar_url.clone();
            out.locale = user.locale.clone();
            out.zoneinfo = user.timezone.clone();
            out.updated_at = Some(user.updated_at);
        }
        out
    }

    /// Userinfo (OIDC Core §5.3) for any access token Portcullis issued:
    /// the session must be live; an OAuth client's session shows the
    /// claims of its granted scopes, a JSON API session every claim.
    pub async fn userinfo(&self, token: &str) -> Result<UserInfoClaims> {
        let claims = self
            .tokens
            .verify_access_any_audience(token, self.clock.now_u64())?;
        // A DPoP-bound token needs the DPoP scheme and a proof by its key.
        self.check_sender(&claims)?;
        let now = self.clock.now();
        let session = self
            .store
            .session(&claims.sid)
            .await?
            .filter(|s| s.user_id == claims.sub && s.is_active(now))
            .ok_or(Error::TokenInvalid("token revoked"))?;
        let user = self
            .store
            .user_by_id(&claims.sub)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::TokenInvalid("unknown subject"))?;
        let scope: Vec<String> = match &session.scope {
            Some(s) => s.split(' ').map(str::to_string).collect(),
            None => vec!["email".into(), "profile".into()],
        };
        let account = self.to_account(user.clone());
        Ok(Self::scoped_claims(&scope, &account, &user))
    }
}

//! Issuing an authorization code: stored as a single-use ceremony record
//! under its SHA-256 (see [`code_key`](super::code_key)).

use super::{AuthorizeRequest, BrowserSession, CodeGrant, code_key};
use crate::service::oidc::{CODE_TTL_SECS, random_token, with_query};
use crate::service::{Core, Error, Result};
use crate::store::{CeremonyKind, CeremonyRecord};

impl Core {
    /// Stores a code for the request and the signed-in user; returns the
    /// redirect carrying it.
    pub(super) async fn issue_code(
        &self,
        r: &AuthorizeRequest,
        b: &BrowserSession,
    ) -> Result<String> {
        let code = random_token();
        let grant = CodeGrant {
            client_id: r.client_id().to_string(),
            redirect_uri: r.redirect_uri.clone(),
            code_challenge: r.code_challenge.clone(),
            scope: r.scope.clone(),
            nonce: r.nonce.clone(),
            auth_time: b.auth_time,
            amr: b.amr.clone(),
            browser_sid: b.sid.clone(),
            idp: b.idp.clone(),
        };
        let state = serde_json::to_string(&grant)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("encoding a code: {e}")))?;
        self.store
            .save_ceremony(&CeremonyRecord {
                id: code_key(&code),
                kind: CeremonyKind::OAuthCode,
                user_id: Some(b.user_id.clone()),
                state,
                expires_at: self.clock.now() + CODE_TTL_SECS,
            })
            .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = r.state.as_deref() {
            params.push(("state", s));
        }
        params.push(("iss", self.tokens.issuer()));
        Ok(with_query(&r.redirect_uri, &params))
    }
}

//! The `authorization_code` grant (RFC 6749 §4.1.3 with PKCE, RFC 7636):
//! the code exchange, replay revocation, the tokens it issues and ID tokens
//! (OIDC Core §2).

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};

use super::{
    CodeExchange, CodeGrantTokens, OAuthFailure, at_hash, failure, has, pkce_ok, session_id_of_code,
};
use crate::audit::AuditEvent;
use crate::clock::secs;
use crate::service::oidc::authorize::{CodeGrant, code_key};
use crate::service::{Account, ClientInfo, Core, Error, Result};
use crate::store::{CeremonyKind, ClientRecord, SessionRecord, UserRecord};

impl Core {
    /// `grant_type=authorization_code`: the code is taken (single use,
    /// atomically), checked against the client, the redirect URI and the
    /// PKCE verifier, and becomes a session of the client. A code used a
    /// second time (even expired) revokes that session.
    pub async fn exchange_code(
        &self,
        client: &ClientRecord,
        x: &CodeExchange,
        info: &ClientInfo,
    ) -> Result<std::result::Result<CodeGrantTokens, OAuthFailure>> {
        let (Some(code), Some(verifier)) = (&x.code, &x.code_verifier) else {
            return Ok(Err(failure(
                "invalid_request",
                "code and code_verifier are required",
            )));
        };
        let Some(redirect_uri) = &x.redirect_uri else {
            return Ok(Err(failure("invalid_request", "redirect_uri is required")));
        };
        if code.len() > 200 {
            return Ok(Err(failure("invalid_grant", "invalid code")));
        }
        let now = self.clock.now();
        let taken = self.store.take_ceremony(&code_key(code), now).await?;
        let Some(ceremony) = taken.filter(|c| c.kind == CeremonyKind::OAuthCode) else {
            self.code_replayed(code, info).await?;
            return Ok(Err(failure(
                "invalid_grant",
                "the code is invalid, expired or was already used",
            )));
        };
        let grant: CodeGrant = serde_json::from_str(&ceremony.state)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("corrupt code record: {e}")))?;
        if grant.client_id != client.id {
            return Ok(Err(failure(
                "invalid_grant",
                "the code is of another client",
            )));
        }
        if &grant.redirect_uri != redirect_uri {
            return Ok(Err(failure(
                "invalid_grant",
                "redirect_uri differs from the authorization request's",
            )));
        }
        if !pkce_ok(verifier, &grant.code_challenge) {
            return Ok(Err(failure(
                "invalid_grant",
                "code_verifier does not match",
            )));
        }
        let user = match ceremony.user_id.as_ref() {
            Some(id) => self.store.user_by_id(id).await?,
            None => None,
        };
        let Some(user) = user.filter(|u| !u.disabled) else {
            return Ok(Err(failure("invalid_grant", "the account cannot sign in")));
        };
        let tokens = self
            .issue_code_grant_tokens(client, &grant, code, user, info)
            .await?;
        Ok(Ok(tokens))
    }

    /// A code that is not (or no longer) stored: if it was used, the
    /// session it became is revoked (RFC 6749 §4.1.2).
    async fn code_replayed(&self, code: &str, info: &ClientInfo) -> Result<()> {
        let sid = session_id_of_code(code);
        let now = self.clock.now();
        if let Some(s) = self.store.session(&sid).await?
            && self.store.revoke_session(&s.user_id, &s.id, now).await?
        {
            tracing::warn!(user_id = %s.user_id, sid = %s.id, event = "code.reused", "authorization code used twice: its session is revoked");
            self.audit(
                AuditEvent::TokenReuseDetected { sid: s.id.clone() },
                Some(&s.user_id),
                info,
            );
        }
        Ok(())
    }

    /// Issues what a code grant answers: the one place tokens of the code
    /// grant are made (sender-constraining binds here). Opens the client's
    /// session (id derived from the code), signs the access token (the
    /// client's audience), a refresh token (`offline_access` or
    /// first-party) and an ID token (`openid`).
    async fn issue_code_grant_tokens(
        &self,
        client: &ClientRecord,
        grant: &CodeGrant,
        code: &str,
        user: UserRecord,
        info: &ClientInfo,
    ) -> Result<CodeGrantTokens> {
        let now = self.clock.now();
        let session = SessionRecord {
            id: session_id_of_code(code),
            user_id: user.id.clone(),
            current_jti: uuid::Uuid::new_v4().to_string(),
            previous_jti: None,
            rotated_at: now,
            generation: 0,
            amr: grant.amr.clone(),
            created_at: now,
            last_used_at: now,
            expires_at: now.saturating_add(secs(self.tokens.refresh_ttl)),
            revoked_at: None,
            user_agent: info
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(256).collect()),
            ip: info.ip.map(|ip| ip.to_string()),
            // Not a proof of its own: step-up asks again.
            proven_at: None,
            idp: grant.idp.clone(),
            client_id: Some(client.id.clone()),
            audience: Some(self.client_audience(client)),
            scope: Some(grant.scope.join(" ")),
            // The DPoP binding seam: a proof on the token request binds.
            dpop_jkt: self.request_dpop_jkt()?,
        };
        self.store.create_session(&session).await?;
        self.enforce_session_cap(&session.user_id).await?;
        let account = self.to_account(user.clone());
        let pair = self.issue_pair(account.clone(), &session)?;
        let offline = has(&grant.scope, "offline_access") || client.first_party;
        let id_token = if has(&grant.scope, "openid") {
            Some(self.id_token(client, grant, &account, &user, &pair.access_token)?)
        } else {
            None
        };
        tracing::info!(user_id = %user.id, client_id = %client.id, sid = %session.id, event = "oauth.code_exchanged", "authorization code exchanged");
        Ok(CodeGrantTokens {
            token_type: pair.token_type(),
            access_token: pair.access_token,
            expires_in: pair.expires_in,
            scope: grant.scope.join(" "),
            id_token,
            refresh_token: offline.then_some(pair.refresh_token),
        })
    }

    /// Signs an ID token for the client (RS256 unless it registered another
    /// algorithm).
    fn id_token(
        &self,
        client: &ClientRecord,
        grant: &CodeGrant,
        account: &Account,
        user: &UserRecord,
        access_token: &str,
    ) -> Result<String> {
        let alg = match client.id_token_signed_response_alg.as_deref() {
            Some("EdDSA") => Algorithm::EdDSA,
            Some("ES256") => Algorithm::ES256,
            _ => Algorithm::RS256,
        };
        let key = self
            .tokens
            .ring()
            .newest(alg)
            .unwrap_or_else(|| self.tokens.ring().signer());
        let now = self.clock.now_u64();
        let mut c = Map::new();
        c.insert("iss".into(), json!(self.tokens.issuer()));
        c.insert("sub".into(), json!(user.id));
        c.insert("aud".into(), json!(client.id));
        c.insert("exp".into(), json!(now + self.tokens.access_ttl.as_secs()));
        c.insert("iat".into(), json!(now));
        c.insert("auth_time".into(), json!(grant.auth_time));
        if let Some(n) = &grant.nonce {
            c.insert("nonce".into(), json!(n));
        }
        c.insert("amr".into(), json!(grant.amr));
        c.insert("azp".into(), json!(client.id));
        c.insert("sid".into(), json!(grant.browser_sid));
        c.insert("at_hash".into(), json!(at_hash(access_token, key.alg)));
        let claims = Self::scoped_claims(&grant.scope, account, user);
        if let Some(e) = claims.email {
            c.insert("email".into(), json!(e));
            c.insert("email_verified".into(), json!(claims.email_verified));
        }
        if has(&grant.scope, "profile") {
            for (k, v) in [
                ("name", claims.name),
                ("picture", claims.picture),
                ("locale", claims.locale),
                ("zoneinfo", claims.zoneinfo),
            ] {
                if let Some(v) = v {
                    c.insert(k.into(), json!(v));
                }
            }
            c.insert("updated_at".into(), json!(claims.updated_at));
        }
        Ok(self.tokens.sign_with(key, "JWT", &Value::Object(c))?)
    }
}

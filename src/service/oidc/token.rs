//! The `authorization_code` grant (RFC 6749 §4.1.3 with PKCE, RFC 7636),
//! ID tokens (OIDC Core §2) and userinfo claims by scope.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use super::authorize::{CodeGrant, code_key};
use crate::audit::AuditEvent;
use crate::clock::secs;
use crate::service::{Account, ClientInfo, Core, Error, Result};
use crate::store::{CeremonyKind, ClientRecord, SessionRecord, UserRecord};

/// How the client authenticated at the token endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic` (`client_secret_basic`), decoded.
    pub basic: Option<(String, String)>,
    /// The `client_id` form field.
    pub client_id: Option<String>,
    /// The `client_secret` form field (`client_secret_post`).
    pub client_secret: Option<String>,
}

/// The fields of an `authorization_code` token request.
#[derive(Debug, Clone, Default)]
pub struct CodeExchange {
    /// The code.
    pub code: Option<String>,
    /// The redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthFailure {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, …
    pub error: &'static str,
    /// Safe to show.
    pub description: &'static str,
}

fn failure(error: &'static str, description: &'static str) -> OAuthFailure {
    OAuthFailure { error, description }
}

/// What the code grant answers.
#[derive(Debug, Clone)]
pub struct CodeGrantTokens {
    /// The access token (the client's audience).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// With `openid`.
    pub id_token: Option<String>,
    /// With `offline_access`, or always for first-party clients.
    pub refresh_token: Option<String>,
    /// `DPoP` when a proof on the token request bound the tokens, else `Bearer`.
    pub token_type: &'static str,
}

/// Userinfo claims, by scope.
#[derive(Debug, Clone, Default)]
pub struct UserInfoClaims {
    /// The user id.
    pub sub: String,
    /// With `email`.
    pub email: Option<String>,
    /// With `email`.
    pub email_verified: Option<bool>,
    /// With `profile`.
    pub name: Option<String>,
    /// With `profile`.
    pub picture: Option<String>,
    /// With `profile`.
    pub locale: Option<String>,
    /// With `profile`.
    pub zoneinfo: Option<String>,
    /// With `profile`.
    pub updated_at: Option<i64>,
}

/// The session a code becomes: derived from the code, so that a second
/// use of the code finds (and revokes) what the first one issued.
fn session_id_of_code(code: &str) -> String {
    let digest = Sha256::digest(format!("portcullis oauth code session\0{code}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// `base64url(SHA-256(verifier)) == challenge` (RFC 7636 §4.6).
fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    use subtle::ConstantTimeEq;
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    valid && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// `at_hash`: the left half of the access token's hash, by the ID token's
/// algorithm (SHA-512 for EdDSA with Ed25519, SHA-256 otherwise).
fn at_hash(access_token: &str, alg: Algorithm) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
        Algorithm::ES384 | Algorithm::RS384 | Algorithm::PS384 => {
            sha2::Sha384::digest(access_token.as_bytes()).to_vec()
        }
        _ => Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

fn has(scope: &[String], s: &str) -> bool {
    scope.iter().any(|x| x == s)
}

// size-check: impl Core over 300 lines: the token endpoint grants; next to split by grant.
impl Core {
    /// The audience of a client's access tokens: its own when registered,
    /// else the service's for first-party clients (their tokens work on
    /// the JSON API), else the client id.
    pub(crate) fn client_audience(&self, client: &ClientRecord) -> String {
        match &client.audience {
            Some(a) => a.clone(),
            None if client.first_party => self.tokens.audience().to_string(),
            None => client.id.clone(),
        }
    }

    /// Authenticates the client at the token endpoint: `client_secret_basic`,
    /// `client_secret_post`, or `none` for public clients.
    pub async fn token_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<std::result::Result<ClientRecord, OAuthFailure>> {
        let bad = || {
            Ok(Err(failure(
                "invalid_client",
                "client authentication failed",
            )))
        };
        let (id, secret) = match (&creds.basic, &creds.client_secret) {
            (Some(_), Some(_)) => {
                return Ok(Err(failure(
                    "invalid_request",
                    "use one client authentication method",
                )));
            }
            (Some((id, secret)), None) => (id.as_str(), Some(secret.as_str())),
            (None, Some(secret)) => match &creds.client_id {
                Some(id) => (id.as_str(), Some(secret.as_str())),
                None => return bad(),
            },
            (None, None) => match &creds.client_id {
                Some(id) => (id.as_str(), None),
                None => {
                    return Ok(Err(failure("invalid_request", "client_id is required")));
                }
            },
        };
        if creds.basic.is_some()
            && let Some(form_id) = &creds.client_id
            && form_id != id
        {
            return bad();
        }
        let Some(client) = self.store.client(id).await? else {
            return bad();
        };
        let confidential = client.client_type == "confidential";
        match secret {
            Some(s) if confidential && Self::client_secret_ok(&client, s) => Ok(Ok(client)),
            None if !confidential => Ok(Ok(client)),
            _ => bad(),
        }
    }

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

    fn scoped_claims(scope: &[String], account: &Account, user: &UserRecord) -> UserInfoClaims {
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

    /// The OAuth client whose session `refresh_token` belongs to; `None`
    /// for a session of the JSON API (or a token that does not verify: the
    /// refresh itself refuses it).
    pub async fn refresh_token_client(&self, refresh_token: &str) -> Result<Option<String>> {
        let Ok(c) = self
            .tokens
            .verify_refresh(refresh_token, self.clock.now_u64())
        else {
            return Ok(None);
        };
        Ok(self.store.session(&c.sid).await?.and_then(|s| s.client_id))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_rfc7636_appendix_b() {
        assert!(pkce_ok(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_ok(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_ok(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn code_sessions_are_stable_and_distinct() {
        assert_eq!(session_id_of_code("a"), session_id_of_code("a"));
        assert_ne!(session_id_of_code("a"), session_id_of_code("b"));
    }
}

//! The `authorization_code` grant (RFC 6749 §4.1.3 with PKCE, RFC 7636),
//! ID tokens (OIDC Core §2) and userinfo claims by scope.
//!
//! Client authentication at the token endpoint and the refresh grant's
//! client here; the `authorization_code` grant and ID tokens (`code.rs`);
//! userinfo claims by scope (`userinfo.rs`).

mod code;
mod userinfo;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use sha2::{Digest, Sha256, Sha512};

use crate::service::{Core, Result};
use crate::store::ClientRecord;

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

//! `POST /oauth/introspect` (RFC 7662): its form, its answer, and the
//! bearer scheme of the resource servers allowed to call it.

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, SecurityScheme};

use super::OAuthError;
use crate::api::problem::Problem;
use crate::service::{Core, Error, Introspection};

/// An introspection request (RFC 7662 §2.1).
#[derive(Debug, Object, serde::Deserialize)]
pub struct IntrospectForm {
    /// The token to describe.
    pub token: Option<String>,
    /// `access_token` or `refresh_token` (a hint; both are tried).
    pub token_type_hint: Option<String>,
}

/// An introspection answer (RFC 7662 §2.2).
#[derive(Debug, Object)]
pub struct IntrospectionView {
    /// Whether the token is valid and its session live right now.
    pub active: bool,
    /// The user id.
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    /// The session id: revoking the session turns `active` false.
    #[oai(skip_serializing_if_is_none)]
    pub sid: Option<String>,
    /// Expiry (unix seconds).
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<u64>,
    /// Issue time (unix seconds).
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<u64>,
    /// Issuer.
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    /// Audience.
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    /// Token id.
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
    /// `Bearer` for access tokens (`DPoP` for DPoP-bound ones).
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// RFC 9449 §6.2: the key a DPoP-bound token is bound to, `{jkt}`.
    #[oai(skip_serializing_if_is_none)]
    pub cnf: Option<ConfirmationView>,
    /// The client the token was issued to.
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    /// Roles (access tokens).
    #[oai(skip_serializing_if_is_none)]
    pub roles: Option<Vec<String>>,
}

/// RFC 7800 `cnf`: the DPoP key thumbprint.
#[derive(Debug, Object)]
pub struct ConfirmationView {
    /// RFC 7638 thumbprint (SHA-256, base64url) of the DPoP public key.
    pub jkt: String,
}

impl From<Introspection> for IntrospectionView {
    fn from(i: Introspection) -> Self {
        let bound = i.cnf_jkt.is_some();
        Self {
            cnf: i.cnf_jkt.map(|jkt| ConfirmationView { jkt }),
            active: i.active,
            sub: i.sub,
            sid: i.sid,
            exp: i.exp,
            iat: i.iat,
            iss: i.iss,
            aud: i.aud,
            jti: i.jti,
            token_type: i.token_type.map(|t| match t {
                "access_token" if bound => "DPoP".to_string(),
                "access_token" => "Bearer".to_string(),
                other => other.to_string(),
            }),
            client_id: i.client_id,
            roles: (!i.roles.is_empty()).then_some(i.roles),
        }
    }
}

/// Responses of `POST /oauth/introspect`.
#[derive(ApiResponse)]
pub enum IntrospectResponse {
    /// What the token is.
    #[oai(status = 200)]
    Ok(
        Json<IntrospectionView>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// RFC 6749 §5.2 error (no `token` parameter).
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>),
    /// Problem details (RFC 9457): no or wrong introspection token.
    #[oai(status = 401)]
    Unauthorized(Problem),
    /// Problem details (RFC 9457): introspection is off.
    #[oai(status = 404)]
    NotFound(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 413)]
    PayloadTooLarge(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 415)]
    UnsupportedMediaType(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 503)]
    Unavailable(Problem),
    /// Unexpected server error.
    #[oai(status = 500)]
    InternalError(Problem),
}

/// `Authorization: Bearer <PORTCULLIS_INTROSPECTION_TOKEN>`: the credential
/// of resource servers at the introspection endpoint.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    checker = "check_introspector",
    rename = "introspectionAuth"
)]
pub struct IntrospectionAuth(());

async fn check_introspector(req: &Request, bearer: Bearer) -> poem::Result<()> {
    let core = req
        .data::<Core>()
        .ok_or_else(|| poem::Error::from(Error::Unexpected(anyhow::anyhow!("no service state"))))?;
    core.check_introspection_caller(Some(&bearer.token))
        .map_err(Into::into)
}

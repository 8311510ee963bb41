//! Standard OAuth 2.0 and OpenID Connect endpoints, so standard
//! clients (AppAuth, oidc-client-ts, oauth4webapi, RFC 7662 resource
//! servers) work with discovery alone:
//!
//! - `POST /oauth/token`: the `refresh_token` grant (RFC 6749 §6); errors
//!   are RFC 6749 §5.2 JSON (`{"error": "invalid_grant"}`), not problems;
//! - `POST /oauth/revoke`: RFC 7009 (200 whatever the token);
//! - `GET`/`POST /oauth/userinfo`: OIDC Core §5.3;
//! - `POST /oauth/introspect`: RFC 7662, for resource servers holding
//!   `PORTCULLIS_INTROSPECTION_TOKEN` (404 when it is unset).
//!
//! Forms are `application/x-www-form-urlencoded`; unknown parameters are
//! ignored (RFC 6749 §3.2).

use poem::Request;
use poem::web::Data;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};

use super::problem::{Problem, problem_of, responses};
use super::{ApiTags, BearerTokenAuth, client_info};
use crate::service::{Core, Error, Introspection};

/// `POST /oauth/token` whose body is not a form: RFC 6749 §5.2
/// `invalid_request` (what OAuth clients parse), not a 415 problem.
pub(super) fn token_request_not_a_form(req: &Request) -> Option<poem::Response> {
    use poem::http::{Method, StatusCode, header};
    if req.method() != Method::POST || req.uri().path() != "/oauth/token" {
        return None;
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return None;
    }
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": "send the parameters as application/x-www-form-urlencoded",
    });
    Some(
        poem::Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .content_type("application/json")
            .header(header::CACHE_CONTROL, NO_STORE)
            .header(header::PRAGMA, "no-cache")
            .body(body.to_string()),
    )
}

/// A token request (RFC 6749 §6).
#[derive(Debug, Object, serde::Deserialize)]
pub struct TokenForm {
    /// `refresh_token` (the only grant this server offers).
    pub grant_type: Option<String>,
    /// The refresh token of the latest pair.
    pub refresh_token: Option<String>,
    /// The client's id (public clients; not checked).
    pub client_id: Option<String>,
    /// Ignored: the new pair has the scope of the old one.
    pub scope: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Object)]
pub struct OAuthTokens {
    /// A new access token.
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a session bound to a DPoP key (RFC 9449).
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// A new refresh token; the one presented is retired.
    pub refresh_token: String,
}

/// An error response (RFC 6749 §5.2).
#[derive(Debug, Object)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant` or `unsupported_grant_type`.
    pub error: String,
    /// A human-readable explanation.
    pub error_description: String,
}

impl OAuthError {
    fn new(error: &str, description: &str) -> Json<Self> {
        Json(Self {
            error: error.to_string(),
            error_description: description.to_string(),
        })
    }
}

const NO_STORE: &str = "no-store";

/// Responses of `POST /oauth/token`.
#[derive(ApiResponse)]
pub enum TokenEndpointResponse {
    /// A new token pair.
    #[oai(status = 200)]
    Ok(
        Json<OAuthTokens>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
    /// RFC 6749 §5.2 error.
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// Problem details (RFC 9457).
    #[oai(status = 413)]
    PayloadTooLarge(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 415)]
    UnsupportedMediaType(Problem),
    /// Problem details (RFC 9457), with `Retry-After`.
    #[oai(status = 429)]
    TooManyRequests(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 503)]
    Unavailable(Problem),
    /// Unexpected server error.
    #[oai(status = 500)]
    InternalError(Problem),
}

impl TokenEndpointResponse {
    fn error(error: &str, description: &str) -> Self {
        Self::BadRequest(OAuthError::new(error, description), NO_STORE.to_string())
    }
}

impl From<Error> for TokenEndpointResponse {
    fn from(e: Error) -> Self {
        match e {
            Error::TokenInvalid(why) => Self::error("invalid_grant", why),
            // RFC 9449 §5: a refresh of a bound session without a proof by
            // its key is an invalid grant for that client.
            Error::DpopBinding(why) => Self::error("invalid_grant", why),
            Error::DpopProofInvalid(why) => Self::error("invalid_dpop_proof", why),
            Error::DpopRequired => Self::error("invalid_dpop_proof", "a DPoP proof is required"),
            Error::AccountDisabled => Self::error("invalid_grant", "account disabled"),
            other => {
                let p = problem_of(&other);
                match p.status().as_u16() {
                    429 => Self::TooManyRequests(p),
                    503 => Self::Unavailable(p),
                    _ => Self::InternalError(p),
                }
            }
        }
    }
}

/// A revocation request (RFC 7009 §2.1).
#[derive(Debug, Object, serde::Deserialize)]
pub struct RevokeForm {
    /// The access or refresh token to revoke (its whole session ends).
    pub token: Option<String>,
    /// `access_token` or `refresh_token` (a hint; both are tried).
    pub token_type_hint: Option<String>,
}

/// Responses of `POST /oauth/revoke`.
#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// Revoked, or the token was not valid anyway (RFC 7009 §2.2).
    #[oai(status = 200)]
    Ok,
    /// RFC 6749 §5.2 error (no `token` parameter).
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>),
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

/// OpenID Connect userinfo (OIDC Core §5.3.2); absent claims are left out.
#[derive(Debug, Object)]
pub struct UserInfo {
    /// The user id (the `sub` of tokens).
    pub sub: String,
    /// The email address.
    pub email: String,
    /// Whether the address was proven.
    pub email_verified: bool,
    /// Display name.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// Avatar URL.
    #[oai(skip_serializing_if_is_none)]
    pub picture: Option<String>,
    /// Preferred locale (BCP 47).
    #[oai(skip_serializing_if_is_none)]
    pub locale: Option<String>,
}

responses! {
    pub enum UserInfoResponse {
        /// The caller's claims.
        Ok(Json<UserInfo>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Unavailable = 503 }
}

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

fn unexpected_to<T>(e: Error, unavailable: fn(Problem) -> T, internal: fn(Problem) -> T) -> T {
    let p = problem_of(&e);
    if p.status().as_u16() == 503 {
        unavailable(p)
    } else {
        internal(p)
    }
}

/// `/oauth/*`.
pub struct OAuthApi;

#[OpenApi(tag = "ApiTags::Oauth")]
impl OAuthApi {
    /// Exchange a refresh token for a new pair (RFC 6749 §6).
    ///
    /// The same rotation as `POST /v1/sessions/refresh`: the presented
    /// refresh token is retired, and presenting a retired one again ends the
    /// session (`invalid_grant`).
    #[oai(path = "/oauth/token", method = "post", operation_id = "oauthToken")]
    async fn token(
        &self,
        req: &Request,
        core: Data<&Core>,
        form: Form<TokenForm>,
    ) -> TokenEndpointResponse {
        let form = form.0;
        match form.grant_type.as_deref() {
            Some("refresh_token") => {}
            Some(_) => {
                return TokenEndpointResponse::error(
                    "unsupported_grant_type",
                    "only the refresh_token grant is offered",
                );
            }
            None => {
                return TokenEndpointResponse::error("invalid_request", "grant_type is required");
            }
        }
        let Some(refresh_token) = form.refresh_token.filter(|t| !t.is_empty()) else {
            return TokenEndpointResponse::error("invalid_request", "refresh_token is required");
        };
        let client = client_info(req, &core);
        match core.refresh(&refresh_token, &client).await {
            Ok(t) => TokenEndpointResponse::Ok(
                Json(OAuthTokens {
                    token_type: t.token_type().to_string(),
                    access_token: t.access_token,
                    expires_in: t.expires_in,
                    refresh_token: t.refresh_token,
                }),
                NO_STORE.to_string(),
                "no-cache".to_string(),
            ),
            Err(e) => e.into(),
        }
    }

    /// Revoke a token (RFC 7009): its whole session ends.
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "oauthRevoke")]
    async fn revoke(
        &self,
        req: &Request,
        core: Data<&Core>,
        form: Form<RevokeForm>,
    ) -> RevokeResponse {
        let Some(token) = form.0.token.filter(|t| !t.is_empty()) else {
            return RevokeResponse::BadRequest(OAuthError::new(
                "invalid_request",
                "token is required",
            ));
        };
        let client = client_info(req, &core);
        match core.revoke_token(&token, &client).await {
            Ok(()) => RevokeResponse::Ok,
            Err(e) => unexpected_to(
                e,
                RevokeResponse::Unavailable,
                RevokeResponse::InternalError,
            ),
        }
    }

    /// The caller's claims (OpenID Connect userinfo).
    #[oai(
        path = "/oauth/userinfo",
        method = "get",
        operation_id = "oauthUserinfo"
    )]
    async fn userinfo(&self, core: Data<&Core>, auth: BearerTokenAuth) -> UserInfoResponse {
        // The session is checked with the account read (one store read).
        match core.me_checked(&auth.0).await {
            Ok(a) => UserInfoResponse::Ok(Json(UserInfo {
                sub: a.id,
                email: a.email,
                email_verified: a.email_verified,
                name: a.display_name,
                picture: a.avatar_url,
                locale: a.locale,
            })),
            Err(e) => e.into(),
        }
    }

    /// The caller's claims, by POST (OIDC Core §5.3.1 allows both).
    #[oai(
        path = "/oauth/userinfo",
        method = "post",
        operation_id = "oauthUserinfoPost"
    )]
    async fn userinfo_post(&self, core: Data<&Core>, auth: BearerTokenAuth) -> UserInfoResponse {
        self.userinfo(core, auth).await
    }

    /// Describe a token (RFC 7662), for resource servers.
    ///
    /// `active` is false as soon as the token's session is revoked (sign-out,
    /// password change, reuse): how a resource server honours a sign-out at
    /// once instead of at the access token's expiry.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "oauthIntrospect"
    )]
    async fn introspect(
        &self,
        core: Data<&Core>,
        _auth: IntrospectionAuth,
        form: Form<IntrospectForm>,
    ) -> IntrospectResponse {
        let Some(token) = form.0.token.filter(|t| !t.is_empty()) else {
            return IntrospectResponse::BadRequest(OAuthError::new(
                "invalid_request",
                "token is required",
            ));
        };
        match core.introspect(&token).await {
            Ok(i) => IntrospectResponse::Ok(Json(i.into()), NO_STORE.to_string()),
            Err(e) => unexpected_to(
                e,
                IntrospectResponse::Unavailable,
                IntrospectResponse::InternalError,
            ),
        }
    }
}

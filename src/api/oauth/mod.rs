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
use super::{ApiTags, client_info};
use crate::service::{Core, Error};

mod introspection;
pub use introspection::{
    ConfirmationView, IntrospectForm, IntrospectResponse, IntrospectionAuth, IntrospectionView,
};

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
    /// `authorization_code`: the code from `/oauth/authorize`.
    pub code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    pub code_verifier: Option<String>,
    /// `client_secret_post`: the confidential client's secret.
    pub client_secret: Option<String>,
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
    /// A new refresh token; the one presented is retired. In a code grant:
    /// with `offline_access`, or always for first-party clients.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// Granted scopes (code grant).
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    /// The ID token (code grant with `openid`).
    #[oai(skip_serializing_if_is_none)]
    pub id_token: Option<String>,
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
    /// RFC 6749 §5.2 `invalid_client`.
    #[oai(status = 401)]
    Unauthorized(
        Json<OAuthError>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "WWW-Authenticate")] String,
    ),
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
        if error == "invalid_client" {
            return Self::Unauthorized(
                OAuthError::new(error, description),
                NO_STORE.to_string(),
                "Basic realm=\"portcullis\"".to_string(),
            );
        }
        Self::BadRequest(OAuthError::new(error, description), NO_STORE.to_string())
    }
}

/// `%XX` and `+` decoding of a form-encoded value (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `Authorization: Basic` of `client_secret_basic`: `Some(None)` when the
/// header is there but malformed.
fn basic_credentials(req: &Request) -> Option<Option<(String, String)>> {
    use base64::Engine;
    let value = req.headers().get(poem::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(decoded.and_then(|d| {
        let (id, secret) = d.split_once(':')?;
        Some((form_decode(id)?, form_decode(secret)?))
    }))
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
    /// The email address (scope `email`).
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// Whether the address was proven (scope `email`).
    #[oai(skip_serializing_if_is_none)]
    pub email_verified: Option<bool>,
    /// Display name.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// Avatar URL.
    #[oai(skip_serializing_if_is_none)]
    pub picture: Option<String>,
    /// Preferred locale (BCP 47).
    #[oai(skip_serializing_if_is_none)]
    pub locale: Option<String>,
    /// IANA time zone (scope `profile`).
    #[oai(skip_serializing_if_is_none)]
    pub zoneinfo: Option<String>,
    /// Unix seconds of the last profile change (scope `profile`).
    #[oai(skip_serializing_if_is_none)]
    pub updated_at: Option<i64>,
}

responses! {
    pub enum UserInfoResponse {
        /// The caller's claims.
        Ok(Json<UserInfo>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Unavailable = 503 }
}

/// `Authorization: Bearer <access token>` at userinfo: any access token
/// Portcullis issued, whatever its audience (checked in the handler).
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT",
    checker = "userinfo_token",
    rename = "bearerAuth"
)]
pub struct UserInfoAuth(String);

async fn userinfo_token(_req: &Request, bearer: Bearer) -> Option<String> {
    Some(bearer.token)
}

fn unexpected_to<T>(e: Error, unavailable: fn(Problem) -> T, internal: fn(Problem) -> T) -> T {
    let p = problem_of(&e);
    if p.status().as_u16() == 503 {
        unavailable(p)
    } else {
        internal(p)
    }
}

/// `grant_type=authorization_code`: client authentication, then the code.
async fn code_grant(req: &Request, core: &Core, form: TokenForm) -> TokenEndpointResponse {
    use crate::service::oidc::{ClientCredentials, CodeExchange};
    let basic = match basic_credentials(req) {
        Some(Some(pair)) => Some(pair),
        Some(None) => {
            return TokenEndpointResponse::error("invalid_client", "malformed Basic credentials");
        }
        None => None,
    };
    let creds = ClientCredentials {
        basic,
        client_id: form.client_id.filter(|s| !s.is_empty()),
        client_secret: form.client_secret.filter(|s| !s.is_empty()),
    };
    let client = match core.token_client(&creds).await {
        Ok(Ok(c)) => c,
        Ok(Err(f)) => return TokenEndpointResponse::error(f.error, f.description),
        Err(e) => return e.into(),
    };
    let exchange = CodeExchange {
        code: form.code.filter(|s| !s.is_empty()),
        redirect_uri: form.redirect_uri.filter(|s| !s.is_empty()),
        code_verifier: form.code_verifier.filter(|s| !s.is_empty()),
    };
    let info = client_info(req, core);
    match core.exchange_code(&client, &exchange, &info).await {
        Ok(Ok(t)) => TokenEndpointResponse::Ok(
            Json(OAuthTokens {
                access_token: t.access_token,
                token_type: t.token_type.to_string(),
                expires_in: t.expires_in,
                refresh_token: t.refresh_token,
                scope: Some(t.scope),
                id_token: t.id_token,
            }),
            NO_STORE.to_string(),
            "no-cache".to_string(),
        ),
        Ok(Err(f)) => TokenEndpointResponse::error(f.error, f.description),
        Err(e) => e.into(),
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
            Some("authorization_code") => return code_grant(req, &core, form).await,
            Some(_) => {
                return TokenEndpointResponse::error(
                    "unsupported_grant_type",
                    "the grants offered are authorization_code and refresh_token",
                );
            }
            None => {
                return TokenEndpointResponse::error("invalid_request", "grant_type is required");
            }
        }
        let Some(refresh_token) = form.refresh_token.filter(|t| !t.is_empty()) else {
            return TokenEndpointResponse::error("invalid_request", "refresh_token is required");
        };
        // A session of an OAuth client refreshes for that client only, which
        // authenticates as at the code grant (RFC 6749 §6).
        match core.refresh_token_client(&refresh_token).await {
            Ok(Some(owner)) => {
                let basic = match basic_credentials(req) {
                    Some(Some(pair)) => Some(pair),
                    Some(None) => {
                        return TokenEndpointResponse::error(
                            "invalid_client",
                            "malformed Basic credentials",
                        );
                    }
                    None => None,
                };
                let creds = crate::service::oidc::ClientCredentials {
                    basic,
                    client_id: form.client_id.clone().filter(|s| !s.is_empty()),
                    client_secret: form.client_secret.clone().filter(|s| !s.is_empty()),
                };
                match core.token_client(&creds).await {
                    Ok(Ok(c)) if c.id == owner => {}
                    Ok(Ok(_)) => {
                        return TokenEndpointResponse::error(
                            "invalid_grant",
                            "the refresh token was issued to another client",
                        );
                    }
                    Ok(Err(f)) => return TokenEndpointResponse::error(f.error, f.description),
                    Err(e) => return e.into(),
                }
            }
            Ok(None) => {}
            Err(e) => return e.into(),
        }
        let client = client_info(req, &core);
        match core.refresh(&refresh_token, &client).await {
            Ok(t) => TokenEndpointResponse::Ok(
                Json(OAuthTokens {
                    token_type: t.token_type().to_string(),
                    access_token: t.access_token,
                    expires_in: t.expires_in,
                    refresh_token: Some(t.refresh_token),
                    scope: None,
                    id_token: None,
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
    async fn userinfo(&self, core: Data<&Core>, auth: UserInfoAuth) -> UserInfoResponse {
        // Any access token Portcullis issued (an OAuth client's audience
        // too); an OAuth client's session shows its granted scopes' claims.
        match core.userinfo(&auth.0).await {
            Ok(a) => UserInfoResponse::Ok(Json(UserInfo {
                sub: a.sub,
                email: a.email,
                email_verified: a.email_verified,
                name: a.name,
                picture: a.picture,
                locale: a.locale,
                zoneinfo: a.zoneinfo,
                updated_at: a.updated_at,
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
    async fn userinfo_post(&self, core: Data<&Core>, auth: UserInfoAuth) -> UserInfoResponse {
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

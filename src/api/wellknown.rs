//! Discovery: the JWKS and the OpenID provider metadata a resource server
//! needs to verify tokens offline.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::service::Core;

/// A JSON Web Key Set (RFC 7517). Keys are public only.
#[derive(Debug, Object)]
pub struct Jwks {
    /// Public keys; `kid` is the RFC 7638 thumbprint.
    pub keys: Vec<serde_json::Value>,
}

/// OpenID provider metadata (RFC 8414 / OIDC Discovery), listing only
/// endpoints that exist and speak the protocol their field names.
#[derive(Debug, Object)]
pub struct OpenIdConfiguration {
    /// The `iss` of every token.
    pub issuer: String,
    /// Where the public keys are.
    pub jwks_uri: String,
    /// RFC 6749 token endpoint (`refresh_token` grant, form-encoded).
    pub token_endpoint: String,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: String,
    /// OIDC userinfo endpoint.
    pub userinfo_endpoint: String,
    /// RFC 7662 introspection endpoint (only when introspection is on).
    #[oai(skip_serializing_if_is_none)]
    pub introspection_endpoint: Option<String>,
    /// `code`.
    pub response_types_supported: Vec<String>,
    /// Subject identifier types (`public`).
    pub subject_types_supported: Vec<String>,
    /// JOSE algorithms of the published keys.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Client authentication at the token endpoint (`none`: public clients).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication at the revocation endpoint (`none`).
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Grant types the token endpoint takes.
    pub grant_types_supported: Vec<String>,
    /// Claims tokens may carry.
    pub claims_supported: Vec<String>,
    /// `/oauth/authorize` (code flow with PKCE, hosted sign-in pages).
    pub authorization_endpoint: String,
    /// RP-initiated logout.
    pub end_session_endpoint: String,
    /// `S256` only.
    pub code_challenge_methods_supported: Vec<String>,
    /// `openid`, `email`, `profile`, `offline_access`.
    pub scopes_supported: Vec<String>,
    /// `none`, `login`, `consent`.
    pub prompt_values_supported: Vec<String>,
    /// `query`.
    pub response_modes_supported: Vec<String>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// Request objects are not supported.
    pub request_parameter_supported: bool,
    /// Request objects by reference are not supported.
    pub request_uri_parameter_supported: bool,
    /// `normal`.
    pub claim_types_supported: Vec<String>,
    /// RFC 9449 §5.1: the algorithms of DPoP proofs this server accepts.
    pub dpop_signing_alg_values_supported: Vec<String>,
}

/// Responses of `GET /.well-known/jwks.json`.
#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set (cacheable for 5 minutes).
    #[oai(status = 200)]
    Ok(Json<Jwks>, #[oai(header = "Cache-Control")] String),
}

/// Responses of `GET /.well-known/openid-configuration`.
#[derive(ApiResponse)]
pub enum OpenIdConfigurationResponse {
    /// Provider metadata.
    #[oai(status = 200)]
    Ok(
        Json<OpenIdConfiguration>,
        #[oai(header = "Cache-Control")] String,
    ),
}

const CACHE: &str = "public, max-age=300";

/// `/.well-known/*`.
pub struct WellKnownApi;

#[OpenApi(tag = "ApiTags::Wellknown")]
impl WellKnownApi {
    /// Public signing keys.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, core: Data<&Core>) -> JwksResponse {
        let keys = core
            .jwks()
            .keys
            .iter()
            .filter_map(|k| serde_json::to_value(k).ok())
            .collect();
        JwksResponse::Ok(Json(Jwks { keys }), CACHE.to_string())
    }

    /// OpenID provider metadata, pointing at the JWKS.
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "openidConfiguration"
    )]
    async fn openid_configuration(&self, core: Data<&Core>) -> OpenIdConfigurationResponse {
        let info = core.issuer_info();
        let base = &info.public_url;
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        OpenIdConfigurationResponse::Ok(
            Json(OpenIdConfiguration {
                issuer: info.issuer.clone(),
                jwks_uri: format!("{base}/.well-known/jwks.json"),
                token_endpoint: format!("{base}/oauth/token"),
                revocation_endpoint: format!("{base}/oauth/revoke"),
                userinfo_endpoint: format!("{base}/oauth/userinfo"),
                introspection_endpoint: core
                    .introspection_enabled()
                    .then(|| format!("{base}/oauth/introspect")),
                response_types_supported: strings(&["code"]),
                authorization_endpoint: format!("{base}/oauth/authorize"),
                end_session_endpoint: format!("{base}/oauth/logout"),
                code_challenge_methods_supported: strings(&["S256"]),
                scopes_supported: strings(&crate::service::oidc::SCOPES),
                prompt_values_supported: strings(&["none", "login", "consent"]),
                response_modes_supported: strings(&["query"]),
                authorization_response_iss_parameter_supported: true,
                request_parameter_supported: false,
                request_uri_parameter_supported: false,
                claim_types_supported: strings(&["normal"]),
                subject_types_supported: strings(&["public"]),
                id_token_signing_alg_values_supported: info.algorithms,
                token_endpoint_auth_methods_supported: strings(&[
                    "none",
                    "client_secret_basic",
                    "client_secret_post",
                ]),
                revocation_endpoint_auth_methods_supported: strings(&["none"]),
                grant_types_supported: strings(&["authorization_code", "refresh_token"]),
                claims_supported: {
                    let mut c = strings(&crate::service::oidc::CLAIMS);
                    c.extend(strings(&["nbf", "jti", "roles", "client_id", "cnf"]));
                    c
                },
                dpop_signing_alg_values_supported: strings(crate::auth::dpop::DPOP_ALGS),
            }),
            CACHE.to_string(),
        )
    }
}

//! The HTTP API: poem-openapi endpoint groups, one per tag. Thin: parse,
//! call the service, map the result.

pub mod captcha;
pub mod health;
pub mod models;
pub mod password;
pub mod sessions;
pub mod types;
pub mod users;
pub mod wellknown;

use std::net::IpAddr;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::{OpenApiService, SecurityScheme, Tags};

use crate::service::{ClientInfo, Portcullis, Principal};

/// Operation groups in the spec and in Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// Accounts and profiles.
    Users,
    /// Sign-in, refresh and sign-out.
    Sessions,
    /// Password changes and resets.
    Password,
    /// Proof-of-work challenges.
    Captcha,
    /// Discovery documents for resource servers.
    Wellknown,
    /// Liveness and readiness.
    Health,
}

/// `Authorization: Bearer <access token>`. The checker verifies the token,
/// then that its session is still live; handlers that take this only run
/// for a verified caller.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_bearer",
    rename = "bearerAuth"
)]
pub struct BearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let core = req.data::<Portcullis>().ok_or_else(|| {
        poem::Error::from(crate::error::ApiError::Unexpected(anyhow::anyhow!(
            "no service state"
        )))
    })?;
    core.authenticate(&bearer.token).await.map_err(Into::into)
}

/// All endpoint groups as one OpenAPI service.
pub type Api = (
    users::UsersApi,
    sessions::SessionsApi,
    password::PasswordApi,
    captcha::CaptchaApi,
    wellknown::WellKnownApi,
    health::HealthApi,
);

/// Builds the OpenAPI service (the same one `portcullis openapi` prints).
pub fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            users::UsersApi,
            sessions::SessionsApi,
            password::PasswordApi,
            captcha::CaptchaApi,
            wellknown::WellKnownApi,
            health::HealthApi,
        ),
        "Portcullis",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A stateless, token-issuing identity service. Errors are RFC 9457 \
         `application/problem+json`. Authenticate with `Authorize` → an \
         `access_token` from `POST /v1/sessions`.",
    )
    .server("/")
}

/// The spec as pretty JSON with a trailing newline (the committed form).
pub fn spec_json() -> String {
    let mut s = service().spec();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The client's address: the socket peer, or the first untrusted hop of
/// `X-Forwarded-For` when the peer is a trusted proxy.
pub fn client_ip(req: &Request, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    if trusted.is_empty() || !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    // Walk from the nearest hop back; the first address not of a trusted
    // proxy is the client.
    for ip in forwarded.iter().rev() {
        if !trusted.iter().any(|n| n.contains(ip)) {
            return Some(*ip);
        }
    }
    forwarded.first().copied().or(Some(peer))
}

pub fn client_info(req: &Request, core: &Portcullis) -> ClientInfo {
    ClientInfo {
        ip: client_ip(req, &core.settings.trusted_proxies),
        user_agent: req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

//! What handlers take from a request besides its body: the verified bearer
//! principal and the client's address.

use std::net::IpAddr;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::service::{ClientInfo, Core, Error, Principal};

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
    let core = req
        .data::<Core>()
        .ok_or_else(|| poem::Error::from(Error::Unexpected(anyhow::anyhow!("no service state"))))?;
    core.authenticate(&bearer.token).await.map_err(Into::into)
}

/// `Authorization: Bearer <access token>` of a caller whose account holds
/// the `admin` role. A handler that takes this cannot run for anyone else:
/// no token → 401, a token without the role → 403.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_admin",
    rename = "bearerAuth"
)]
pub struct AdminAuth(pub Principal);

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let core = req
        .data::<Core>()
        .ok_or_else(|| poem::Error::from(Error::Unexpected(anyhow::anyhow!("no service state"))))?;
    core.authenticate_admin(&bearer.token)
        .await
        .map_err(Into::into)
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

/// Address and user agent of the request's client.
pub fn client_info(req: &Request, core: &Core) -> ClientInfo {
    ClientInfo {
        ip: client_ip(req, core.trusted_proxies()),
        user_agent: req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

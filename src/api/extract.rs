//! What handlers take from a request besides its body: the verified bearer
//! principal and the client's address.

use std::net::IpAddr;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::service::{BearerToken, ClientInfo, Core, Error, Principal};

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

/// The service the routes serve (set by `api::routes`).
fn core_of(req: &Request) -> poem::Result<&Core> {
    req.data::<Core>()
        .ok_or_else(|| poem::Error::from(Error::Unexpected(anyhow::anyhow!("no service state"))))
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let core = core_of(req)?;
    core.authenticate(&bearer.token).await.map_err(Into::into)
}

// The same scheme as `BearerAuth` (same name and, so that the published
// spec does not change, the same description), for a handler that checks
// the session itself together with what it reads (`GET /v1/me`, one read):
// this checker verifies the token's signature and claims only, and hands
// over a `service::BearerToken`, which only use cases that check the
// session accept (`Core::me_checked`), so a handler cannot skip the check
// by mistake. To the client the route is the same: a verified token of a
// live session, or 401.
/// `Authorization: Bearer <access token>`. The checker verifies the token,
/// then that its session is still live; handlers that take this only run
/// for a verified caller.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_token",
    rename = "bearerAuth"
)]
pub struct BearerTokenAuth(pub BearerToken);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<BearerToken> {
    let core = core_of(req)?;
    core.verify_bearer(&bearer.token).map_err(Into::into)
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
    let core = core_of(req)?;
    core.authenticate_admin(&bearer.token)
        .await
        .map_err(Into::into)
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy; then `X-Forwarded-For` is read from the right, skipping trusted
/// hops, and the first untrusted address is the client. Entries may be
/// written `ip`, `ip:port`, `[v6]` or `[v6]:port`. An entry that cannot be
/// parsed ends the walk: the client is then the last trusted hop, never an
/// address further left (which anyone can write).
pub fn client_ip(req: &Request, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    Some(client_ip_from(peer, forwarded_for(req).as_deref(), trusted))
}

/// Every `X-Forwarded-For` header, joined in order (`None` when absent).
fn forwarded_for(req: &Request) -> Option<String> {
    let values: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// One `X-Forwarded-For` entry: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
pub fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// The rules of [`client_ip`] on plain values (unit-tested).
pub fn client_ip_from(peer: IpAddr, forwarded: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut last_trusted = peer;
    for entry in forwarded.unwrap_or("").rsplit(',') {
        if entry.trim().is_empty() && forwarded.is_none_or(|f| f.trim().is_empty()) {
            break;
        }
        match parse_forwarded_entry(entry) {
            Some(ip) if is_trusted(&ip) => last_trusted = ip,
            Some(ip) => return ip,
            None => return last_trusted,
        }
    }
    last_trusted
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<ipnet::IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_entries_with_ports_are_parsed() {
        let t = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        for (xff, want) in [
            ("1.2.3.4", "1.2.3.4"),
            ("6.6.6.6, 1.2.3.4:5678", "1.2.3.4"),
            ("6.6.6.6, [2001:db8::1]:443", "2001:db8::1"),
            ("6.6.6.6, [2001:db8::2]", "2001:db8::2"),
            ("6.6.6.6,1.2.3.4, 10.0.0.7:80", "1.2.3.4"),
        ] {
            assert_eq!(
                client_ip_from(peer, Some(xff), &t).to_string(),
                want,
                "{xff}"
            );
        }
    }

    #[test]
    fn an_unparsable_entry_ends_the_walk_at_the_last_trusted_hop() {
        let t = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip_from(peer, Some("6.6.6.6, garbage"), &t).to_string(),
            "10.0.0.1"
        );
        assert_eq!(
            client_ip_from(peer, Some("6.6.6.6, nonsense:99, 10.0.0.9"), &t).to_string(),
            "10.0.0.9"
        );
        // Not from a trusted proxy: the header means nothing.
        let outside: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip_from(outside, Some("1.2.3.4"), &t), outside);
        // No header: the proxy itself.
        assert_eq!(client_ip_from(peer, None, &t), peer);
    }
}

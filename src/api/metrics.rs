//! `GET /metrics`: Prometheus text, not for everyone.
//!
//! With `PORTCULLIS_METRICS_TOKEN` set, the caller must send it as
//! `Authorization: Bearer <token>` (401 without it, 403 with another).
//! Unset, only loopback clients are answered (403 for the rest): the client
//! address is the one `extract::client_ip` decides, so a trusted proxy on
//! the same host does not open `/metrics` to the world.

use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::problem::Problem;
use crate::service::Core;

/// The handler: checks access, then renders every metric.
#[handler]
pub(super) fn metrics(req: &Request, core: Data<&Core>) -> Response {
    if let Some(refusal) = refusal(req, &core) {
        return refusal.into_response();
    }
    super::middleware::metrics_text()
}

/// Why the caller may not read the metrics; `None` when it may.
fn refusal(req: &Request, core: &Core) -> Option<Problem> {
    let presented = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match core.metrics_token() {
        Some(expected) => match presented {
            None => Some(Problem::new(
                StatusCode::UNAUTHORIZED,
                "authentication-required",
                "Authentication required",
                "Send the metrics token as `Authorization: Bearer <token>`.",
            )),
            Some(p) if bool::from(p.as_bytes().ct_eq(expected.expose_secret().as_bytes())) => None,
            Some(_) => Some(forbidden("The metrics token is wrong.")),
        },
        None => {
            let ip = super::client_ip(req, core.trusted_proxies());
            if ip.is_some_and(|ip| ip.is_loopback()) {
                None
            } else {
                Some(forbidden(
                    "Metrics answer loopback clients only unless PORTCULLIS_METRICS_TOKEN is set.",
                ))
            }
        }
    }
}

fn forbidden(detail: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
}

//! CORS (`PORTCULLIS_CORS_ORIGINS`; in developer mode also any
//! `http://localhost:*` and `http://127.0.0.1:*` page).
//!
//! A listed origin gets the CORS headers; any other origin simply gets none
//! and the request goes on as if it had no `Origin` (never a 403: same-origin
//! pages, Swagger UI and the public discovery documents and JWKS keep
//! working; the browser is what keeps an unlisted page from reading the
//! answer). With origins configured, every response carries `Vary: Origin`,
//! since each can differ by it, so a shared cache never serves one origin's
//! CORS headers to another.

use std::collections::HashSet;
use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

/// Methods a listed origin may use.
const ALLOW_METHODS: &str = "GET, POST, PATCH, PUT, DELETE";
/// Request headers a listed origin may send.
const ALLOW_HEADERS: &str = "authorization, content-type, dpop";
/// Response headers a listed origin's script may read.
const EXPOSE_HEADERS: &str = "www-authenticate, retry-after, etag, x-request-id, dpop-nonce";
/// How long a browser may cache a preflight answer (seconds).
const MAX_AGE: &str = "600";

/// The configured origins.
#[derive(Debug, Clone)]
pub struct CorsOrigins(Arc<HashSet<String>>, bool);

impl CorsOrigins {
    /// From `PORTCULLIS_CORS_ORIGINS` (empty: CORS off).
    pub fn new(origins: &[String]) -> Self {
        Self(
            Arc::new(
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_string())
                    .collect(),
            ),
            false,
        )
    }

    /// Developer mode: also every `http://localhost:*` and
    /// `http://127.0.0.1:*` origin (any port, or none).
    pub fn with_loopback_pages(mut self) -> Self {
        self.1 = true;
        self
    }

    fn is_off(&self) -> bool {
        self.0.is_empty() && !self.1
    }

    fn allows(&self, origin: &str) -> bool {
        self.0.contains(origin) || (self.1 && is_loopback_page(origin))
    }
}

/// `http://localhost` or `http://127.0.0.1`, with or without a port.
fn is_loopback_page(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://localhost")
        .or_else(|| origin.strip_prefix("http://127.0.0.1"))
    else {
        return false;
    };
    match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(port) => {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// The middleware; see the module docs.
pub(super) async fn cors<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    origins: &CorsOrigins,
) -> poem::Result<Response> {
    if origins.is_off() {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let listed = origin.as_ref().filter(|o| origins.allows(o));
    let preflight = req.method() == Method::OPTIONS
        && origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = Response::builder().status(StatusCode::NO_CONTENT).finish();
        if listed.is_some() {
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE),
            );
        }
        r
    } else {
        let mut r = ep.call(req).await?.into_response();
        if listed.is_some() {
            r.headers_mut().insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
        r
    };
    let h = resp.headers_mut();
    if let Some(v) = listed.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(resp)
}

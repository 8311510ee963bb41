//! Middleware around every route: the streaming body limit, security
//! headers, and the request span with its log line and metrics.

use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use super::problem::{Problem, problem_from_poem_error};

/// A method as a static label (no allocation per request).
fn metric_method(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// `GET /metrics`: Prometheus text format.
pub(super) fn metrics_text() -> Response {
    let body = crate::telemetry::metrics()
        .map(|h| h.render())
        .unwrap_or_default();
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

/// `PUT /v1/me/avatar`: its body limit is `PORTCULLIS_AVATAR_MAX_BYTES`.
pub(super) fn is_avatar_upload(req: &Request) -> bool {
    req.method() == Method::PUT && req.uri().path() == "/v1/me/avatar"
}

/// Reads bodies up to the limit; anything larger is a 413 before any
/// handler sees it. Works for chunked bodies too (no Content-Length needed).
///
/// The body must also arrive within `deadline` of the request reaching
/// here (else 408): on HTTP/2 many requests share one connection, so the
/// connection's deadline alone cannot bound each stream.
pub(super) async fn limit_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    max: usize,
    deadline: std::time::Duration,
) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(too_large());
    }
    let has_body =
        declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        match read_limited(req.take_body(), max, deadline).await {
            BodyRead::Whole(bytes) => {
                // Kept for error reports that name the offending fields.
                req.extensions_mut()
                    .insert(super::routes_meta::RawBody(Arc::new(bytes.clone())));
                req.set_body(Body::from(bytes));
            }
            BodyRead::TooLarge => return Ok(too_large()),
            BodyRead::Unfinished => return Ok(not_received()),
        }
    }
    // The whole request is in: the connection's request deadline stops.
    super::timeouts::mark_received(req.remote_addr());
    ep.call(req).await.map(IntoResponse::into_response)
}

/// What became of a request body.
enum BodyRead {
    /// All of it, within the limit.
    Whole(Vec<u8>),
    /// More than the limit.
    TooLarge,
    /// It stopped arriving: the connection's request deadline passed (or
    /// the client went away) before its end.
    Unfinished,
}

/// Reads at most `max` bytes, within `deadline`.
async fn read_limited(body: Body, max: usize, deadline: std::time::Duration) -> BodyRead {
    use tokio::io::AsyncReadExt;
    let mut reader = body.into_async_read().take(max as u64 + 1);
    let mut buf = Vec::new();
    let read = tokio::time::timeout(deadline, reader.read_to_end(&mut buf)).await;
    if !matches!(read, Ok(Ok(_))) {
        // A body trickled past the deadline is a timeout, not a size
        // problem.
        return BodyRead::Unfinished;
    }
    if buf.len() <= max {
        BodyRead::Whole(buf)
    } else {
        BodyRead::TooLarge
    }
}

fn not_received() -> Response {
    let mut resp = Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        "Request timeout",
        "The request body did not arrive in time.",
    )
    .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn too_large() -> Response {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Payload too large",
        "The request body is larger than this endpoint accepts.",
    )
    .into_response()
}

/// Headers every response carries. The CSP is strict for the API and
/// relaxed for Swagger UI, whose page uses inline script and style.
pub(super) async fn security_headers<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
) -> poem::Result<Response> {
    let is_docs = req.uri().path().starts_with("/docs");
    let mut resp = ep.call(req).await?.into_response();
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    let csp = if is_docs {
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    } else {
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    };
    // A page that set its own policy (the built-in email pages) keeps it.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

/// A request id in UUID v4 form, unique without a system call: 64 random
/// bits drawn once per process and a counter (the ids only need to be
/// unique, not unpredictable; `Uuid::new_v4` asks the kernel for 16 random
/// bytes on every request).
fn fresh_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            // No randomness: the process start time keeps ids of
            // different processes apart.
            return std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() << 30 ^ u64::from(d.subsec_nanos()));
        }
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&prefix.to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The `status` label of the request metrics, without an allocation for
/// the common ones.
fn status_label(status: u16) -> metrics::SharedString {
    let s: &'static str = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        302 => "302",
        303 => "303",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        422 => "422",
        429 => "429",
        _ => return metrics::SharedString::from(status.to_string()),
    };
    metrics::SharedString::from(s)
}

/// One span per request (request id, method, route, status, latency, user
/// id), and one log line when it ends. Query strings are not logged. Every
/// response carries `X-Request-Id`: the proxy's when a trusted proxy sent
/// one, else a fresh UUID.
pub(super) async fn trace_request<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    labels: &crate::telemetry::RouteLabels,
    trusted: &[ipnet::IpNet],
) -> poem::Result<Response> {
    let route = labels.label(req.uri().path());
    // Every request line names the client: the address decided
    // by the trusted-proxy rules, not a raw header.
    let client_ip = super::client_ip(&req, trusted)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let method = metric_method(req.method());
    // A caller's `X-Request-Id` is kept only when it comes through a
    // trusted proxy: anyone else could forge ids to confuse log correlation.
    let from_proxy = req
        .remote_addr()
        .as_socket_addr()
        .is_some_and(|a| trusted.iter().any(|n| n.contains(&a.ip())));
    let request_id = from_proxy
        .then(|| req.headers().get("x-request-id"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(fresh_request_id);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        route = %route,
        path = %req.uri().path(),
        client_ip = %client_ip,
        user_id = tracing::field::Empty,
    );
    let start = Instant::now();
    let result = ep.call(req).instrument(span.clone()).await;
    let mut resp = match result {
        Ok(r) => r.into_response(),
        Err(e) => problem_from_poem_error(e),
    };
    let elapsed = start.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    let labels = [
        ("method", metrics::SharedString::from(method)),
        ("route", metrics::SharedString::from(route)),
        ("status", status_label(status)),
    ];
    metrics::counter!("portcullis_http_requests_total", &labels).increment(1);
    metrics::histogram!("portcullis_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_ms, "request failed");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

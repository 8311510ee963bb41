//! Building and running the server: state, routes, middleware.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::Cors;
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use secrecy::ExposeSecret;
use tracing::Instrument;

use crate::auth::password::{load_or_create_pepper, load_or_create_secret};
use crate::auth::{Captcha, KeyRing, Limits, PasswordHasher, TokenService};
use crate::config::Settings;
use crate::domain::PasswordPolicy;
use crate::error::{Problem, problem_from_poem_error, set_problem_base};
use crate::service::Portcullis;
use crate::store::DynStore;
use crate::store::embedded::EmbeddedStore;
use crate::store::mongo::MongoStore;

/// Work of a CAPTCHA: the answer is uniform in 0..=this (about 0.1 s of
/// SHA-256 in a browser on average).
const CAPTCHA_MAX_NUMBER: u64 = 100_000;
/// How long a CAPTCHA challenge may be solved and used.
const CAPTCHA_TTL_SECS: u64 = 600;

/// Opens the store the settings name.
pub async fn open_store(settings: &Settings) -> anyhow::Result<DynStore> {
    if let Some(uri) = &settings.mongodb_uri {
        let store = MongoStore::connect(
            uri.expose_secret(),
            &settings.mongodb_db,
            settings.mongodb_timeout,
        )
        .await
        .with_context(|| {
            format!(
                "opening the MongoDB store (database `{}`, PORTCULLIS_MONGODB_URI)",
                settings.mongodb_db
            )
        })?;
        return Ok(Arc::new(store));
    }
    let store = EmbeddedStore::open(&settings.data_dir)?;
    Ok(Arc::new(store))
}

/// Loads keys (generating dev keys on first start), opens the store and
/// assembles the service core.
pub async fn build_core(settings: Settings) -> anyhow::Result<Portcullis> {
    let (ring, generated) = KeyRing::load_or_generate(&settings.keys_dir, settings.signing_alg)
        .context("loading signing keys")?;
    if let Some(path) = generated {
        tracing::warn!(
            path = %path.display(),
            alg = settings.signing_alg.jose_name(),
            "no signing key found: generated a new one (fine for development; back up keys/ in production)"
        );
    }
    let (pepper, created) = load_or_create_pepper(&settings.keys_dir)?;
    if created {
        tracing::warn!(dir = %settings.keys_dir.display(), "generated the password pepper: losing it invalidates every password");
    }
    let (captcha_key, _) = load_or_create_secret(&settings.keys_dir, "captcha-hmac.key")?;
    let store = open_store(&settings).await?;
    let tokens = TokenService::new(
        Arc::new(ring),
        settings.issuer.clone(),
        settings.audience.clone(),
        settings.access_ttl,
        settings.refresh_ttl,
    );
    let hasher = PasswordHasher::new(pepper, settings.bcrypt_cost, settings.bcrypt_concurrency);
    let policy = PasswordPolicy {
        min_score: settings.password_min_score,
    };
    Ok(Portcullis {
        limits: Arc::new(Limits::new(settings.rate_limit)),
        captcha: Arc::new(Captcha::new(
            captcha_key,
            CAPTCHA_MAX_NUMBER,
            CAPTCHA_TTL_SECS,
        )),
        settings: Arc::new(settings),
        store,
        tokens,
        hasher,
        policy,
    })
}

/// All routes with their middleware.
pub fn routes(core: Portcullis) -> impl Endpoint<Output = Response> {
    set_problem_base(&core.settings.public_url);
    let api = crate::api::service();
    let ui = api.swagger_ui();
    let spec = api.spec_endpoint();
    let cors = (!core.settings.cors_origins.is_empty()).then(|| {
        Cors::new()
            .allow_origins(core.settings.cors_origins.iter().map(String::as_str))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
            .allow_credentials(false)
            .max_age(600)
    });
    let max_body = core.settings.max_body_bytes;
    let spec_doc: serde_json::Value = serde_json::from_str(&api.spec()).unwrap_or_default();
    let mut templates: Vec<String> = spec_doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    templates.extend(["/docs", "/openapi.json", "/metrics"].map(String::from));
    let labels = Arc::new(crate::telemetry::RouteLabels::new(
        templates.iter().map(String::as_str),
    ));
    let _ = crate::telemetry::metrics();
    Route::new()
        .nest("/", api)
        .nest("/docs", ui)
        .at("/openapi.json", spec)
        .at(
            "/metrics",
            poem::get(poem::endpoint::make_sync(|_| metrics_text())),
        )
        .data(core)
        .around(move |ep, req| async move { limit_body(ep, req, max_body).await })
        .catch_all_error(|err| async move { problem_from_poem_error(err) })
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .around(|ep, req| async move { security_headers(ep, req).await })
        .around(move |ep, req| {
            let labels = labels.clone();
            async move { trace_request(ep, req, &labels).await }
        })
}

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
fn metrics_text() -> Response {
    let body = crate::telemetry::metrics()
        .map(|h| h.render())
        .unwrap_or_default();
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

/// Reads bodies up to the limit; anything larger is a 413 before any
/// handler sees it. Works for chunked bodies too (no Content-Length needed).
async fn limit_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    max: usize,
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
        match read_limited(req.take_body(), max).await {
            Some(bytes) => req.set_body(Body::from(bytes)),
            None => return Ok(too_large()),
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Reads at most `max` bytes; `None` when the body is larger or unreadable.
async fn read_limited(body: Body, max: usize) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut reader = body.into_async_read().take(max as u64 + 1);
    let mut buf = Vec::new();
    reader.read_to_end(&mut buf).await.ok()?;
    (buf.len() <= max).then_some(buf)
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
async fn security_headers<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
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
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

/// One span per request (request id, method, route, status, latency, user
/// id), and one log line when it ends. Query strings are not logged.
async fn trace_request<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    labels: &crate::telemetry::RouteLabels,
) -> poem::Result<Response> {
    let route = labels.label(req.uri().path());
    let method = metric_method(req.method());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        route = %route,
        path = %req.uri().path(),
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
        ("status", metrics::SharedString::from(status.to_string())),
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

/// A bound, ready-to-run server.
pub struct Application {
    acceptor: poem::listener::TcpAcceptor,
    addr: SocketAddr,
    core: Portcullis,
}

impl Application {
    /// Builds the core and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listen = settings.listen;
        let core = build_core(settings).await?;
        let acceptor = TcpListener::bind(listen)
            .into_acceptor()
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("listener has no socket address")?;
        Ok(Self {
            acceptor,
            addr,
            core,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn core(&self) -> &Portcullis {
        &self.core
    }

    /// Serves until the future `stop` completes, then drains for up to 10 s.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let core = self.core.clone();
        let purge = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                let now_secs = crate::auth::tokens::now_secs();
                core.limits.housekeeping();
                let now = i64::try_from(now_secs).unwrap_or(0);
                match core.store.purge_expired(now).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "expired sessions purged"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purge of expired sessions failed"),
                }
            }
        });
        tracing::info!(addr = %self.addr, store = %self.core.store.describe(), "portcullis listening");
        let app = routes(self.core);
        let result = poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, stop, Some(Duration::from_secs(10)))
            .await;
        purge.abort();
        result.context("server error")
    }
}

//! The HTTP API: the only module that imports poem. One `#[OpenApi]` group
//! per tag; each handler parses, calls a use case on
//! [`Core`](crate::service::Core) and maps the result. `problem` renders
//! every failure as RFC 9457 problem+json; `middleware` wraps every route;
//! `extract` holds the bearer principal and the client's address.

pub mod admin;
pub mod avatars;
pub mod captcha;
mod cors;
mod dpop;
pub mod extract;
// Federated sign-in.
pub mod federation;
pub mod health;
pub mod hosted;
mod metrics;
pub mod mfa;
mod middleware;
pub mod oauth;
pub mod oidc;
pub mod pages;
pub mod passwords;
// Passkeys.
pub mod passkeys;
// Passwordless sign-in and anonymous users.
mod pages_sign_in;
pub mod passwordless;
pub mod problem;
mod problem_pages;
mod routes_meta;
pub mod security;
pub mod sessions;
mod spec_refine;
pub mod timeouts;
pub mod types;
pub mod users;
pub mod verification;
pub mod views;
pub mod wellknown;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Response, Route};
use poem_openapi::{OpenApiService, Tags};

pub use extract::{AdminAuth, BearerAuth, BearerTokenAuth, client_info, client_ip};
/// Every problem slug with its status, title and meaning (the error reference of the book is generated from it).
pub use problem_pages::PROBLEMS;

use crate::service::Core;

/// Operation groups in the spec and in Swagger UI. Each variant carries the
/// readable name the spec shows (`#[oai(rename)]`), so route files keep
/// naming the variant.
#[derive(Tags)]
pub enum ApiTags {
    /// Accounts and profiles.
    Users,
    /// Sign-in, refresh and sign-out.
    Sessions,
    /// Password changes and resets.
    Password,
    /// Two-factor sign-in: TOTP and recovery codes.
    #[oai(rename = "Two-factor")]
    Mfa,
    /// Email verification.
    Email,
    /// Proof-of-work challenges.
    #[oai(rename = "CAPTCHA")]
    Captcha,
    /// Discovery documents for resource servers.
    #[oai(rename = "Well-known")]
    Wellknown,
    /// Liveness and readiness.
    Health,
    /// Administration: accounts and the audit log (role `admin`).
    Admin,
    /// Passkeys (WebAuthn): registration and sign-in.
    Passkeys,
    /// Standard OAuth 2.0 / OpenID Connect endpoints.
    #[oai(rename = "OAuth")]
    Oauth,
    /// Federated sign-in: upstream identity providers and linked identities.
    Federation,
}

/// Declares the endpoint groups once: the `Api` type and its one value
/// (every group is a unit struct, so its name is both).
/// Two tuples, because poem-openapi implements `OpenApi` for tuples of at
/// most 16 members (a tuple of tuples is one too).
macro_rules! endpoint_groups {
    ($($group:path),+ ; $($more:path),+ $(,)?) => {
        /// All endpoint groups as one OpenAPI service.
        pub type Api = (($($group,)+), ($($more,)+));

        fn all_groups() -> Api {
            (($($group,)+), ($($more,)+))
        }
    };
}

endpoint_groups!(
    users::UsersApi,
    sessions::SessionsApi,
    passwords::PasswordApi,
    mfa::MfaApi,
    captcha::CaptchaApi,
    wellknown::WellKnownApi,
    health::HealthApi,
    avatars::AvatarApi,
    admin::AdminApi,
    security::ActivityApi,
    passwords::RecoveryApi,
    verification::EmailApi;
    passkeys::PasskeysApi,
    passkeys::AssociationApi,
    oauth::OAuthApi,
    passwordless::PasswordlessApi,
    federation::FederationApi,
    oidc::OidcApi,
);

/// Builds the OpenAPI service (the same one `portcullis openapi` prints).
pub fn service() -> OpenApiService<Api, ()> {
    let api = all_groups();
    OpenApiService::new(api, "Portcullis", env!("CARGO_PKG_VERSION"))
        .description(
            "A stateless, token-issuing identity service. Errors are RFC 9457 \
             `application/problem+json`. Authenticate with `Authorize` → an \
             `access_token` from `POST /v1/sessions`.",
        )
        .server("/")
}

/// The spec as pretty JSON with a trailing newline (the committed form):
/// the derived spec with what it cannot say by itself (`spec_refine`).
pub fn spec_json() -> String {
    let derived = service().spec();
    let mut s = match serde_json::from_str::<serde_json::Value>(&derived) {
        Ok(mut v) => {
            spec_refine::refine(&mut v);
            serde_json::to_string_pretty(&v).unwrap_or(derived)
        }
        Err(_) => derived,
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Every route with its middleware, serving `core`. Boxed: the stack of
/// middleware is one deeply nested type, laid out once here (the crate
/// raises `recursion_limit` for it) instead of in every crate that serves it.
pub fn routes(core: Core) -> poem::endpoint::BoxEndpoint<'static, Response> {
    routes_with_floor(core, false)
}

/// The path of the load benchmark's empty endpoint (`portcullis bench floor`).
#[doc(hidden)]
pub const FLOOR_PATH: &str = "/bench/floor";

/// [`routes`]; with `floor`, also an empty `GET` [`FLOOR_PATH`] (200, no
/// body) in the same route tree behind the same middleware: the load
/// benchmark's floor, what HTTP alone costs on this stack. Never mounted
/// by `portcullis serve`.
#[doc(hidden)]
#[allow(
    clippy::too_many_lines,
    reason = "the one list of every mounted route and layer, read whole"
)]
pub fn routes_with_floor(
    core: Core,
    floor: bool,
) -> poem::endpoint::BoxEndpoint<'static, Response> {
    let http = core.settings.http.clone();
    let api = service();
    // Swagger UI and /openapi.json show the refined spec (`spec_json`).
    let refined = spec_json();
    let ui_html = api.swagger_ui_html().replacen(&api.spec(), &refined, 1);
    let ui = poem::get(poem::endpoint::make_sync(move |_| {
        poem::web::Html(ui_html.clone())
    }));
    let spec = poem::get(poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(refined.clone())
    }));
    let mut cors_origins = cors::CorsOrigins::new(&http.cors_origins);
    if core.settings.dev {
        cors_origins = cors_origins.with_loopback_pages();
    }
    let max_body = http.max_body_bytes;
    let avatar_max = core.settings.avatars.max_bytes;
    let body_deadline = http.request_timeout;
    let trusted: Arc<[ipnet::IpNet]> = Arc::from(http.trusted_proxies.as_slice());
    let problem_base: Arc<str> = Arc::from(http.public_url.as_str());
    let spec_doc: serde_json::Value = serde_json::from_str(&api.spec()).unwrap_or_default();
    let mut templates: Vec<String> = spec_doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    templates.extend(["/docs", "/openapi.json", "/metrics", "/problems/{slug}"].map(String::from));
    templates.extend(pages::PATHS.map(String::from));
    templates.push(pages_sign_in::SIGN_IN_PATH.to_string());
    templates.extend(hosted::PATHS.map(String::from));
    if floor {
        templates.push(FLOOR_PATH.to_string());
    }
    let labels = Arc::new(crate::telemetry::RouteLabels::new(
        templates.iter().map(String::as_str),
    ));
    let meta = Arc::new(routes_meta::RoutesMeta::new(
        &spec_doc,
        labels.clone(),
        &[
            ("/docs", &["GET"]),
            ("/openapi.json", &["GET"]),
            ("/metrics", &["GET"]),
            ("/problems/{slug}", &["GET"]),
            // The pages beside the API (their `RouteMethod`s), so that a
            // 405 there names them in `Allow` too.
            (pages::RESET_PATH, &["GET", "POST"]),
            (pages::VERIFY_PATH, &["GET", "POST"]),
            (pages::NOT_ME_PATH, &["GET", "POST"]),
            (pages_sign_in::SIGN_IN_PATH, &["GET", "POST"]),
            (hosted::AUTHORIZE_PATH, &["GET", "POST"]),
            (hosted::LOGOUT_PATH, &["GET", "POST"]),
            (hosted::LOGIN_PATH, &["GET", "POST"]),
            (hosted::MFA_PATH, &["POST"]),
            (hosted::PASSKEY_PATH, &["POST"]),
            (hosted::PASSKEY_SCRIPT_PATH, &["GET"]),
            (hosted::FORGOT_PATH, &["GET", "POST"]),
            (hosted::CONSENT_PATH, &["GET", "POST"]),
            (hosted::PROVIDER_PATH, &["GET"]),
            (hosted::PROVIDER_DONE_PATH, &["GET"]),
        ],
    ));
    let dpop_core = core.clone();
    let _ = crate::telemetry::metrics();
    crate::telemetry::register_counters();
    let mut route = Route::new()
        .nest("/", api)
        .nest("/docs", ui)
        .at("/openapi.json", spec)
        .at(pages::RESET_PATH, pages::reset_page())
        .at(pages::VERIFY_PATH, pages::verify_page())
        .at(pages::NOT_ME_PATH, pages::not_me_page())
        .at(pages_sign_in::SIGN_IN_PATH, pages_sign_in::sign_in_page())
        .at(hosted::AUTHORIZE_PATH, hosted::authorize_route())
        .at(hosted::LOGOUT_PATH, hosted::logout_route())
        .at(hosted::LOGIN_PATH, hosted::login_route())
        .at(hosted::MFA_PATH, hosted::mfa_route())
        .at(hosted::PASSKEY_PATH, hosted::passkey_route())
        .at(hosted::PASSKEY_SCRIPT_PATH, hosted::passkey_script_route())
        .at(hosted::FORGOT_PATH, hosted::forgot_route())
        .at(hosted::CONSENT_PATH, hosted::consent_route())
        .at(hosted::PROVIDER_PATH, hosted::provider_route())
        .at(hosted::PROVIDER_DONE_PATH, hosted::provider_done_route())
        .at("/metrics", poem::get(metrics::metrics))
        .at("/problems/:slug", poem::get(problem_pages::page));
    if floor {
        route = route.at(
            FLOOR_PATH,
            poem::get(poem::endpoint::make_sync(|_| poem::http::StatusCode::OK)),
        );
    }
    route
        .data(hosted::Pages::new(&core.settings))
        .data(core)
        // Each layer's future is boxed: unboxed, every layer's future holds
        // the next one inline, and poem moves (copies) those kilobytes again
        // at each of its boxing points: 12 % of a `GET /v1/me` went to
        // memcpy (measured with callgrind). A few small allocations cost less.
        .around(move |ep, req| {
            let meta = meta.clone();
            Box::pin(async move { routes_meta::explain(ep, req, &meta).await })
        })
        .around(move |ep, req| {
            Box::pin(async move {
                if let Some(refused) = oauth::token_request_not_a_form(&req) {
                    return Ok(refused);
                }
                // The avatar upload is the one body allowed past the JSON limit.
                let max = if middleware::is_avatar_upload(&req) {
                    avatar_max
                } else {
                    max_body
                };
                middleware::limit_body(ep, req, max, body_deadline).await
            })
        })
        .catch_all_error(|err| async move { problem::problem_from_poem_error(err) })
        .around(move |ep, req| {
            let core = dpop_core.clone();
            Box::pin(async move { dpop::dpop(ep, req, &core).await })
        })
        .around(move |ep, req| {
            let origins = cors_origins.clone();
            Box::pin(async move { cors::cors(ep, req, &origins).await })
        })
        .around(|ep, req| Box::pin(async move { middleware::security_headers(ep, req).await }))
        .around(move |ep, req| {
            let labels = labels.clone();
            let trusted = trusted.clone();
            Box::pin(async move { middleware::trace_request(ep, req, &labels, &trusted).await })
        })
        .around(move |ep, req| {
            let base = problem_base.clone();
            Box::pin(async move { problem::with_problem_base(base, ep.call(req)).await })
        })
        .boxed()
}

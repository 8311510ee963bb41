//! One error type for the HTTP layer, rendered as RFC 9457 problem+json.
//!
//! Expected failures are variants; `Unexpected` takes everything else. A 5xx
//! cause is logged with its whole chain; the client only sees a generic text.
//! Every 401 carries `WWW-Authenticate: Bearer` (RFC 6750) and every 429 a
//! `Retry-After`.

use std::sync::OnceLock;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

static PROBLEM_BASE: OnceLock<String> = OnceLock::new();

/// Sets the base the problem `type` URIs are built on (`<public url>/problems/`).
/// The first call wins; one process serves one public URL.
pub fn set_problem_base(public_url: &str) {
    let _ = PROBLEM_BASE.set(format!("{}/problems/", public_url.trim_end_matches('/')));
}

fn problem_type(slug: &str) -> String {
    let base = PROBLEM_BASE
        .get()
        .map(String::as_str)
        .unwrap_or("http://localhost:8080/problems/");
    format!("{base}{slug}")
}

/// One field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Name of the offending field of the request body.
    pub field: String,
    /// JSON pointer to the field (RFC 6901).
    pub pointer: String,
    /// Machine-readable reason, e.g. `too_short`, `too_common`, `invalid`.
    pub code: String,
    /// Human-readable explanation.
    pub detail: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            pointer: format!("/{field}"),
            code: code.to_string(),
            detail: detail.into(),
        }
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Problem")]
pub struct ProblemBody {
    /// URI identifying the kind of problem; ends in `/problems/<slug>`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    pub detail: String,
    /// Field-level failures (validation problems only).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// A problem+json response: body plus the headers its status calls for.
#[derive(Debug, Clone)]
pub struct Problem {
    pub body: ProblemBody,
    www_authenticate: Option<String>,
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        let www_authenticate =
            (status == StatusCode::UNAUTHORIZED).then(|| "Bearer realm=\"portcullis\"".to_string());
        Self {
            body: ProblemBody {
                type_: problem_type(slug),
                title: title.to_string(),
                status: status.as_u16(),
                detail: detail.into(),
                errors: None,
            },
            www_authenticate,
            retry_after: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn with_bearer_error(mut self, code: &str, description: &str) -> Self {
        self.www_authenticate = Some(format!(
            "Bearer realm=\"portcullis\", error=\"{code}\", error_description=\"{description}\""
        ));
        self
    }
}

impl Payload for Problem {
    const CONTENT_TYPE: &'static str = PROBLEM_JSON;

    fn schema_ref() -> MetaSchemaRef {
        ProblemBody::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ProblemBody::register(registry);
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut resp = Response::builder()
            .status(status)
            .content_type(PROBLEM_JSON)
            .header(header::CACHE_CONTROL, "no-store")
            .body(body);
        if let Some(v) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("wrong password")]
    WrongPassword,
    #[error("authentication required")]
    Unauthenticated,
    #[error("token invalid: {0}")]
    TokenInvalid(&'static str),
    #[error("account disabled")]
    AccountDisabled,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("rate limited")]
    RateLimited { retry_after: u64 },
    #[error("captcha required")]
    CaptchaRequired,
    #[error("store unavailable")]
    Unavailable,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    /// The problem document a client sees. Logs 5xx causes.
    pub fn to_problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            Self::Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.detail))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut p = Problem::new(
                    S::UNPROCESSABLE_ENTITY,
                    "validation",
                    "Validation failed",
                    detail,
                );
                p.body.errors = Some(errors.clone());
                p
            }
            Self::BadRequest(detail) => Problem::new(
                S::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
                detail,
            ),
            Self::InvalidCredentials => Problem::new(
                S::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid credentials",
                "The email address or password is wrong.",
            ),
            Self::WrongPassword => Problem::new(
                S::UNAUTHORIZED,
                "invalid-credentials",
                "Invalid credentials",
                "The current password is wrong.",
            ),
            Self::Unauthenticated => Problem::new(
                S::UNAUTHORIZED,
                "authentication-required",
                "Authentication required",
                "Send an access token as `Authorization: Bearer <token>`.",
            ),
            Self::TokenInvalid(why) => Problem::new(
                S::UNAUTHORIZED,
                "token-invalid",
                "Token invalid",
                format!("The token is invalid: {why}."),
            )
            .with_bearer_error("invalid_token", why),
            Self::AccountDisabled => Problem::new(
                S::FORBIDDEN,
                "account-disabled",
                "Account disabled",
                "This account has been disabled.",
            ),
            Self::Forbidden(why) => Problem::new(S::FORBIDDEN, "forbidden", "Forbidden", *why)
                .with_bearer_error("insufficient_scope", why),
            Self::NotFound(what) => Problem::new(
                S::NOT_FOUND,
                "not-found",
                "Not found",
                format!("{what} not found."),
            ),
            Self::Conflict(why) => Problem::new(S::CONFLICT, "conflict", "Conflict", *why),
            Self::RateLimited { retry_after } => {
                let mut p = Problem::new(
                    S::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    format!("Too many attempts; retry in {retry_after} seconds."),
                );
                p.retry_after = Some(*retry_after);
                p
            }
            Self::CaptchaRequired => Problem::new(
                S::BAD_REQUEST,
                "captcha-required",
                "CAPTCHA required",
                "Solve the challenge from GET /v1/captcha and send it as `captcha`.",
            ),
            Self::Unavailable => {
                tracing::error!("store unavailable");
                unavailable()
            }
            Self::Unexpected(e) => {
                tracing::error!(error = ?e, "unexpected error");
                internal()
            }
        }
    }
}

/// 503 problem.
pub fn unavailable() -> Problem {
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        "The service cannot reach its store; try again shortly.",
    );
    p.retry_after = Some(5);
    p
}

/// 500 problem; the cause is logged by the caller, never shown.
pub fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "Something went wrong on our side.",
    )
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.to_problem().status()
    }

    fn as_response(&self) -> Response {
        self.to_problem().into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
                Self::Unavailable
            }
            crate::store::StoreError::Conflict => Self::Conflict("already exists"),
            crate::store::StoreError::Other(e) => Self::Unexpected(e),
        }
    }
}

/// Maps any error that escaped an endpoint (the router's 404/405, body and
/// parameter parse failures, 413, 415, a failed bearer check) to problem+json.
pub fn problem_from_poem_error(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.to_problem().into_response();
    }
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    let status = err.status();
    let problem = if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            format!("The request body is not valid: {}", sanitize(&e.reason)),
        )
    } else if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            format!("The multipart body is not valid: {}", sanitize(&e.reason)),
        )
    } else if let Some(e) = err.downcast_ref::<ParseParamError>() {
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            format!(
                "Parameter `{}` is not valid: {}",
                e.name,
                sanitize(&e.reason)
            ),
        );
        p.body.errors = Some(vec![FieldError::new(
            e.name,
            "invalid",
            sanitize(&e.reason),
        )]);
        p
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            format!("Path segment `{}` is not valid.", e.name),
        )
    } else if err.is::<AuthorizationError>() {
        ApiError::Unauthenticated.to_problem()
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            match e {
                ContentTypeError::NotSupported { .. } => {
                    "This endpoint takes `application/json`.".to_string()
                }
                ContentTypeError::ExpectContentType => {
                    "Send a `Content-Type` header (`application/json`).".to_string()
                }
            },
        )
    } else {
        match status {
            StatusCode::NOT_FOUND => {
                Problem::new(status, "not-found", "Not found", "No such resource.")
            }
            StatusCode::METHOD_NOT_ALLOWED => Problem::new(
                status,
                "method-not-allowed",
                "Method not allowed",
                "This resource does not support that method.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                status,
                "payload-too-large",
                "Payload too large",
                "The request body is larger than this endpoint accepts.",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
                status,
                "unsupported-media-type",
                "Unsupported media type",
                "This endpoint does not accept that content type.",
            ),
            StatusCode::UNAUTHORIZED => ApiError::Unauthenticated.to_problem(),
            s if s.is_server_error() => {
                tracing::error!(error = %err, "unhandled server error");
                internal()
            }
            s => Problem::new(
                s,
                "bad-request",
                s.canonical_reason().unwrap_or("Bad request"),
                "The request could not be processed.",
            ),
        }
    };
    problem.into_response()
}

/// Parse messages may quote the offending input; keep them short and printable.
fn sanitize(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    cleaned
}

/// Declares an operation's response enum: its success variants plus one
/// problem+json variant per documented error status, and the mapping from
/// [`ApiError`]. A status the operation does not document becomes a logged 500.
#[macro_export]
macro_rules! responses {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$okmeta:meta])* $ok:ident $( ( $($okty:ty),+ ) )? = $okstatus:tt, )+
        }
        errors { $( $err:ident = $status:tt ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(poem_openapi::ApiResponse)]
        pub enum $name {
            $( $(#[$okmeta])* #[oai(status = $okstatus)] $ok $( ( $($okty),+ ) )?, )+
            $( #[oai(status = $status)] $err($crate::error::Problem), )*
            /// Unexpected server error.
            #[oai(status = 500)]
            InternalError($crate::error::Problem),
        }

        impl From<$crate::error::ApiError> for $name {
            fn from(e: $crate::error::ApiError) -> Self {
                let p = e.to_problem();
                match p.status().as_u16() {
                    $( $status => Self::$err(p), )*
                    500 => Self::InternalError(p),
                    other => {
                        tracing::error!(status = other, op = stringify!($name), "undocumented error status");
                        Self::InternalError($crate::error::internal())
                    }
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let r = ApiError::TokenInvalid("expired")
            .to_problem()
            .into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let h = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(h.starts_with("Bearer "));
        assert!(h.contains("error=\"invalid_token\""));
        let r = ApiError::InvalidCredentials.to_problem().into_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let r = ApiError::RateLimited { retry_after: 7 }
            .to_problem()
            .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "7");
        assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), PROBLEM_JSON);
    }

    #[test]
    fn unexpected_errors_hide_their_cause() {
        let p = ApiError::Unexpected(anyhow::anyhow!("secret driver detail")).to_problem();
        assert_eq!(p.body.status, 500);
        assert!(!p.body.detail.contains("secret"));
    }

    fn body_of(r: Response) -> serde_json::Value {
        let bytes = futures_executor(r.into_body().into_vec()).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest::proptest! {
        #[test]
        fn any_parse_failure_maps_to_a_well_formed_400(reason in "\\PC{0,500}") {
            let err = poem::Error::from(poem_openapi::error::ParseRequestPayloadError { reason: reason.clone() });
            let r = problem_from_poem_error(err);
            proptest::prop_assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            proptest::prop_assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), PROBLEM_JSON);
            let body = body_of(r);
            proptest::prop_assert_eq!(body["status"].as_u64(), Some(400));
            let detail = body["detail"].as_str().unwrap();
            proptest::prop_assert!(detail.chars().all(|c| !c.is_control()));
            proptest::prop_assert!(detail.len() < 1500);
        }

        #[test]
        fn any_status_maps_to_a_problem(code in 400u16..600) {
            let status = StatusCode::from_u16(code).unwrap();
            let r = problem_from_poem_error(poem::Error::from_status(status));
            proptest::prop_assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), PROBLEM_JSON);
            let body = body_of(r);
            proptest::prop_assert!(body["type"].as_str().unwrap().contains("/problems/"));
        }
    }

    #[test]
    fn type_uri_ends_with_slug() {
        let p = ApiError::Validation(vec![FieldError::new("email", "invalid", "bad")]).to_problem();
        assert!(p.body.type_.ends_with("/problems/validation"));
        assert_eq!(p.body.errors.unwrap()[0].pointer, "/email");
    }
}

//! Everything HTTP about failures: RFC 9457 problem+json rendering, the
//! mapping from [`service::Error`](crate::service::Error) to a status and a
//! slug, the mapping of framework errors (404, 405, 413, 415, parse
//! failures), `WWW-Authenticate` on every 401 (RFC 6750) and `Retry-After` on
//! every 429. A 5xx cause is logged with its whole chain; the client only
//! sees a generic text.
//!
//! Problem `type` URIs are `<public url>/problems/<slug>`. The base is set
//! per request by [`with_problem_base`] (a task-local, no process global);
//! outside a request (unit tests) the URI is the relative `/problems/<slug>`.

use std::future::Future;
use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;

use crate::service::{Error, FieldError};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

tokio::task_local! {
    static PROBLEM_BASE: Arc<str>;
}

/// Runs `f` (a request) with problem `type` URIs based on `public_url`.
pub async fn with_problem_base<F: Future>(public_url: Arc<str>, f: F) -> F::Output {
    PROBLEM_BASE.scope(public_url, f).await
}

fn problem_type(slug: &str) -> String {
    PROBLEM_BASE
        .try_with(|base| format!("{base}/problems/{slug}"))
        .unwrap_or_else(|_| format!("/problems/{slug}"))
}

/// One field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "FieldError")]
pub struct FieldErrorBody {
    /// Name of the offending field of the request body.
    pub field: String,
    /// JSON pointer to the field (RFC 6901).
    pub pointer: String,
    /// Machine-readable reason, e.g. `too_short`, `too_common`, `invalid`.
    pub code: String,
    /// Human-readable explanation.
    pub detail: String,
}

impl FieldErrorBody {
    /// A failure of `field`; the pointer is `/<field>`.
    pub fn new(field: &str, code: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            pointer: format!("/{field}"),
            code: code.to_string(),
            detail: detail.into(),
        }
    }
}

impl From<&FieldError> for FieldErrorBody {
    fn from(e: &FieldError) -> Self {
        Self::new(&e.field, &e.code, e.detail.clone())
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
    pub errors: Option<Vec<FieldErrorBody>>,
    /// The proofs the account can give (`password`, `totp`, `passkey`):
    /// `reauthentication-required` problems only.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
}

/// A problem+json response: body plus the headers its status calls for.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The JSON body.
    pub body: ProblemBody,
    www_authenticate: Option<String>,
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem of kind `slug` with the headers `status` calls for.
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
                methods: None,
            },
            www_authenticate,
            retry_after: None,
        }
    }

    /// The HTTP status.
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

/// The problem document a client sees for a use-case failure. Logs 5xx causes.
pub fn problem_of(e: &Error) -> Problem {
    use StatusCode as S;
    match e {
        Error::Validation(errors) => {
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
            p.body.errors = Some(errors.iter().map(FieldErrorBody::from).collect());
            p
        }
        Error::InvalidCredentials => Problem::new(
            S::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
            "The email address or password is wrong.",
        ),
        Error::WrongPassword => Problem::new(
            S::UNAUTHORIZED,
            "invalid-credentials",
            "Invalid credentials",
            "The current password is wrong.",
        ),
        Error::InvalidCode => Problem::new(
            S::UNAUTHORIZED,
            "invalid-code",
            "Invalid code",
            "The two-factor code is wrong, expired or was already used.",
        ),
        Error::MfaRequired(why) => Problem::new(
            S::UNAUTHORIZED,
            "mfa-required",
            "Second factor required",
            *why,
        ),
        Error::Unauthenticated => Problem::new(
            S::UNAUTHORIZED,
            "authentication-required",
            "Authentication required",
            "Send an access token as `Authorization: Bearer <token>`.",
        ),
        Error::IntrospectionCallerRefused => Problem::new(
            S::UNAUTHORIZED,
            "authentication-required",
            "Authentication required",
            "Send the resource servers' introspection credential (`PORTCULLIS_INTROSPECTION_TOKEN`) as `Authorization: Bearer <credential>`; an access token is not one.",
        ),
        Error::TokenInvalid(why) => Problem::new(
            S::UNAUTHORIZED,
            "token-invalid",
            "Token invalid",
            format!("The token is invalid: {why}."),
        )
        .with_bearer_error("invalid_token", why),
        Error::LinkInvalid(why) => Problem::new(
            S::BAD_REQUEST,
            "token-invalid-or-expired",
            "Link invalid or expired",
            format!("{why}."),
        ),
        Error::AccountDisabled => Problem::new(
            S::FORBIDDEN,
            "account-disabled",
            "Account disabled",
            "This account has been disabled.",
        ),
        Error::Forbidden(why) => Problem::new(S::FORBIDDEN, "forbidden", "Forbidden", *why)
            .with_bearer_error("insufficient_scope", why),
        Error::NotFound(what) => Problem::new(
            S::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} not found."),
        ),
        Error::Conflict(why) => Problem::new(S::CONFLICT, "conflict", "Conflict", *why),
        Error::RateLimited { retry_after } => {
            let mut p = Problem::new(
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("Too many attempts; retry in {retry_after} seconds."),
            );
            p.retry_after = Some(*retry_after);
            p
        }
        Error::CaptchaRequired => Problem::new(
            S::BAD_REQUEST,
            "captcha-required",
            "CAPTCHA required",
            "Solve the challenge from GET /v1/captcha and send it as `captcha`.",
        ),
        Error::UnsupportedMedia(why) => Problem::new(
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            *why,
        ),
        Error::TicketInvalid => Problem::new(
            S::BAD_REQUEST,
            "token-invalid-or-expired",
            "Link or code invalid or expired",
            "The link or code is invalid, expired, already used or replaced by a newer one. Request a new one.",
        ),
        Error::EmailUnverified => Problem::new(
            S::FORBIDDEN,
            "email-unverified",
            "Email address not verified",
            "Confirm your email address with the link or code we sent, then sign in.",
        ),
        // Passkeys (issue 12).
        Error::PasskeyInvalid(why) => Problem::new(
            S::BAD_REQUEST,
            "passkey-invalid",
            "Passkey not registered",
            format!("The passkey could not be registered: {why}."),
        ),
        Error::PasskeyRejected(why) => Problem::new(
            S::UNAUTHORIZED,
            "passkey-rejected",
            "Passkey rejected",
            format!("The passkey sign-in failed: {why}."),
        ),
        // Step-up (issue 20). RFC 9470's challenge: the token is fine, the
        // authentication behind it is not recent enough.
        Error::ReauthenticationRequired { methods } => {
            let mut p = Problem::new(
                S::UNAUTHORIZED,
                "reauthentication-required",
                "Reauthentication required",
                "This change needs a recent proof that it is you: send `password`, `code` or `passkey` with it, or confirm first with POST /v1/me/reauthenticate.",
            )
            .with_bearer_error(
                "insufficient_user_authentication",
                "a recent authentication is required",
            );
            p.body.methods = Some(methods.iter().map(|m| (*m).to_string()).collect());
            p
        }
        Error::PasskeyLimit { max } => Problem::new(
            S::CONFLICT,
            "passkey-limit",
            "Too many passkeys",
            format!(
                "The account has {max} passkeys, the most allowed: remove one before adding another."
            ),
        ),
        Error::Unavailable => {
            tracing::error!("store unavailable");
            unavailable()
        }
        Error::Unexpected(e) => {
            tracing::error!(error = ?e, "unexpected error");
            internal()
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

impl poem::error::ResponseError for Error {
    fn status(&self) -> StatusCode {
        problem_of(self).status()
    }

    fn as_response(&self) -> Response {
        problem_of(self).into_response()
    }
}

/// Maps any error that escaped an endpoint (the router's 404/405, body and
/// parameter parse failures, 413, 415, a failed bearer check) to problem+json.
pub fn problem_from_poem_error(err: poem::Error) -> Response {
    if let Some(e) = err.downcast_ref::<Error>() {
        return problem_of(e).into_response();
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
            format!(
                "The request body is not valid: {}",
                sanitize(&without_type_names(&e.reason))
            ),
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
        p.body.errors = Some(vec![FieldErrorBody::new(
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
        problem_of(&Error::Unauthenticated)
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            match e {
                ContentTypeError::NotSupported { .. } => {
                    "This endpoint does not take that content type (see the API documentation; JSON endpoints take `application/json`).".to_string()
                }
                ContentTypeError::ExpectContentType => {
                    "Send a `Content-Type` header (`application/json` for JSON endpoints).".to_string()
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
            StatusCode::UNAUTHORIZED => problem_of(&Error::Unauthenticated),
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

/// poem-openapi's parse messages name internal types (`failed to parse
/// "string(password)": ... (occurred while parsing "LoginRequest")`); a
/// client needs the reason, not our type names (issue 9).
fn without_type_names(reason: &str) -> String {
    let mut out = String::new();
    let mut rest = reason;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("failed to parse \"")
            && let Some(end) = r.find("\": ")
        {
            rest = &r[end + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix(" (occurred while parsing \"")
            && let Some(end) = r.find("\")")
        {
            rest = &r[end + 2..];
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
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
/// [`Error`]. A status the operation does not document becomes a logged 500
/// (the spec stays honest: every status a client can see is listed).
macro_rules! responses {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$okmeta:meta])* $ok:ident $( ( $($okty:ty),+ ) )? = $okstatus:tt, )+
        }
        errors { $( $err:ident = $status:tt ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[doc = concat!("Responses of the `", stringify!($name), "` operation.")]
        #[derive(poem_openapi::ApiResponse)]
        pub enum $name {
            $( $(#[$okmeta])* #[oai(status = $okstatus)] $ok $( ( $($okty),+ ) )?, )+
            $(
                #[doc = "Problem details (RFC 9457)."]
                #[oai(status = $status)]
                $err($crate::api::problem::Problem),
            )*
            /// Unexpected server error.
            #[oai(status = 500)]
            InternalError($crate::api::problem::Problem),
        }

        impl From<$crate::service::Error> for $name {
            fn from(e: $crate::service::Error) -> Self {
                let p = $crate::api::problem::problem_of(&e);
                match p.status().as_u16() {
                    $( $status => Self::$err(p), )*
                    500 => Self::InternalError(p),
                    other => {
                        tracing::error!(status = other, op = stringify!($name), "undocumented error status");
                        Self::InternalError($crate::api::problem::internal())
                    }
                }
            }
        }
    };
}
pub(crate) use responses;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let r = problem_of(&Error::TokenInvalid("expired")).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let h = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(h.starts_with("Bearer "));
        assert!(h.contains("error=\"invalid_token\""));
        let r = problem_of(&Error::InvalidCredentials).into_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let r = problem_of(&Error::RateLimited { retry_after: 7 }).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "7");
        assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), PROBLEM_JSON);
    }

    #[test]
    fn unexpected_errors_hide_their_cause() {
        let p = problem_of(&Error::Unexpected(anyhow::anyhow!("secret driver detail")));
        assert_eq!(p.body.status, 500);
        assert!(!p.body.detail.contains("secret"));
    }

    fn body_of(r: Response) -> serde_json::Value {
        let bytes = block_on(r.into_body().into_vec()).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
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
    fn parse_messages_lose_internal_type_names() {
        let m = without_type_names(
            "failed to parse \"string(password)\": is required (occurred while parsing \"LoginRequest\")",
        );
        assert_eq!(m, "is required");
    }

    #[test]
    fn type_uri_ends_with_slug() {
        let p = problem_of(&Error::Validation(vec![FieldError::new(
            "email", "invalid", "bad",
        )]));
        assert!(p.body.type_.ends_with("/problems/validation"));
        assert_eq!(p.body.errors.unwrap()[0].pointer, "/email");
    }
}

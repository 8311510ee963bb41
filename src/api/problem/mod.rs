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
//!
//! The mapping of use-case errors lives in `service_errors.rs`, that of
//! framework errors in `framework.rs`; both are re-exported here.

use std::future::Future;
use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;

use crate::service::FieldError;

mod framework;
mod service_errors;

pub use framework::problem_from_poem_error;
pub use service_errors::{internal, problem_of, unavailable};

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
    /// The token to link the identity with once signed in
    /// (`POST /v1/me/identities`): `link-required` problems only.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_token: Option<String>,
    /// The RFC 9449 error code (`invalid_dpop_proof`, `use_dpop_nonce`,
    /// `invalid_token`): DPoP problems only, the same code as in
    /// `WWW-Authenticate: DPoP error=...`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A problem+json response: body plus the headers its status calls for.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The JSON body.
    pub body: ProblemBody,
    www_authenticate: Option<String>,
    retry_after: Option<u64>,
    /// A server nonce for the client's next DPoP proof (`DPoP-Nonce`).
    dpop_nonce: Option<String>,
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
                link_token: None,
                error: None,
            },
            www_authenticate,
            retry_after: None,
            dpop_nonce: None,
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

impl Problem {
    /// A DPoP failure (RFC 9449 §7.1): `WWW-Authenticate: DPoP` with the
    /// error `code`, the accepted algorithms, and `code` in the body too.
    pub(crate) fn with_dpop_error(mut self, code: &str, description: &str) -> Self {
        let algs = crate::auth::dpop::DPOP_ALGS.join(" ");
        self.www_authenticate = Some(format!(
            "DPoP realm=\"portcullis\", error=\"{code}\", error_description=\"{description}\", algs=\"{algs}\""
        ));
        self.body.error = Some(code.to_string());
        self
    }

    /// Sends `nonce` as `DPoP-Nonce` (the nonce a retry must carry).
    pub(crate) fn with_dpop_nonce(mut self, nonce: String) -> Self {
        self.dpop_nonce = Some(nonce);
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
        if let Some(v) = self.dpop_nonce.and_then(|v| HeaderValue::from_str(&v).ok()) {
            resp.headers_mut().insert("dpop-nonce", v);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

/// Declares an operation's response enum: its success variants plus one
/// problem+json variant per documented error status, and the mapping from
/// [`Error`]. A status the operation does not document becomes a logged 500
/// (the spec stays honest: every status a client can see is listed).
macro_rules! responses {
    // `body_errors`: the framework's refusals of a request body, which every
    // operation that takes one can answer before its handler runs: 400 (it
    // does not parse), 413 (too large), 415 (not a media type it takes).
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$okmeta:meta])* $ok:ident $( ( $($okty:ty),+ ) )? = $okstatus:tt, )+
        }
        errors { body_errors $(, $err:ident = $status:tt )* $(,)? }
    ) => {
        $crate::api::problem::responses! {
            $(#[$meta])*
            pub enum $name {
                $( $(#[$okmeta])* $ok $( ( $($okty),+ ) )? = $okstatus, )+
            }
            errors { BadRequest = 400, PayloadTooLarge = 413, UnsupportedMediaType = 415 $(, $err = $status )* }
        }
    };
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
    use super::framework::without_type_names;
    use super::*;
    use crate::service::Error;

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

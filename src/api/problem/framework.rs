//! Errors that escaped an endpoint (the router's 404 and 405, parse
//! failures, 413, 415, a failed bearer check) as problem+json, with reasons
//! cleaned of Rust type names before a client sees them.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use super::{FieldErrorBody, Problem, internal, problem_of};
use crate::service::Error;

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
        by_status(status, &err)
    };
    problem.into_response()
}

/// An escaped error known only by its status (router, body limit, ...).
fn by_status(status: StatusCode, err: &poem::Error) -> Problem {
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
}

/// poem-openapi's parse messages name internal types (`failed to parse
/// "string(password)": ... (occurred while parsing "LoginRequest")`); a
/// client needs the reason, not our type names.
pub(super) fn without_type_names(reason: &str) -> String {
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

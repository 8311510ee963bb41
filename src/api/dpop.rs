//! DPoP on the HTTP side (RFC 9449): the middleware that checks a request's
//! `DPoP` proof before its handler runs and puts what it found in scope
//! (`service::dpop` says why before, and what the use cases do with it).
//!
//! Two kinds of request are looked at; a `DPoP` header on any other is
//! ignored (it could bind nothing, and checking one spends a store write):
//!
//! - `Authorization: DPoP <token>` is accepted wherever `Bearer` is: the
//!   scheme is noted, the header handed on as `Bearer <token>` (so the
//!   routes' one security scheme parses it), and the proof must carry
//!   `ath` of that token. Whether the token may be used so is decided by
//!   the bearer check (`Core::check_sender`), on every request.
//! - A token-issuing request (`POST /v1/sessions` and every `POST
//!   /v1/sessions/...` but the passkey options and the email-link request,
//!   and `POST /oauth/token`): its proof is checked before any credential
//!   is spent; without one it is refused here in `PORTCULLIS_DPOP=required`
//!   mode.
//!
//! Then:
//!
//! - Failures: on the JSON API a 401 problem with `WWW-Authenticate: DPoP
//!   error="invalid_dpop_proof"` (or `use_dpop_nonce` and a `DPoP-Nonce`
//!   header); at `/oauth/token` RFC 9449 §5's 400 JSON error, as OAuth
//!   clients expect.
//! - In nonce mode every answer to a request with a proof carries the
//!   current `DPoP-Nonce` (and `Cache-Control: no-store`), so a client
//!   keeps a fresh one without a failed round trip.

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::problem::problem_of;
use crate::service::dpop::{DpopInput, RequestDpop, with_request_dpop};
use crate::service::{Core, Error};

/// Whether `method` `path` issues tokens.
fn issues_tokens(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    if path == "/oauth/token" || path == "/v1/sessions" {
        return true;
    }
    path.starts_with("/v1/sessions/") && !path.ends_with("/options") && path != "/v1/sessions/email"
}

/// `DPoP <token>` (scheme case-insensitive): the token.
fn dpop_token(req: &Request) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("DPoP")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The middleware; see the module docs.
pub(super) async fn dpop<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    core: &Core,
) -> poem::Result<Response> {
    let has_proof = req.headers().contains_key("dpop");
    let token = dpop_token(&req);
    let path = req.uri().path().to_string();
    let issues = issues_tokens(req.method(), &path);
    if token.is_none() && !issues {
        // A bearer request, or one that issues nothing: a `DPoP` header on
        // it binds nothing and is not checked (checking spends a store
        // write); the bearer check still refuses a bound token sent so.
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    if !has_proof && token.is_none() && !core.dpop_required() {
        // A token request without a proof in optional mode: bearer tokens.
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let proofs: Vec<String> = req
        .headers()
        .get_all("dpop")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect();
    let proof_refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
    let method = req.method().as_str().to_string();
    let input = DpopInput {
        proofs: &proof_refs,
        method: &method,
        path: &path,
        access_token: token.as_deref(),
        issues_tokens: issues,
    };
    let token_endpoint = path == "/oauth/token";
    let jkt = match core.check_dpop_request(&input).await {
        Ok(jkt) => jkt,
        Err(e) if token_endpoint => return Ok(token_endpoint_error(&e)),
        Err(e) => return Ok(problem_of(&e).into_response()),
    };
    if let Some(t) = &token
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
    {
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    let found = RequestDpop {
        jkt,
        dpop_scheme: token.is_some(),
    };
    let mut resp = with_request_dpop(found, ep.call(req))
        .await
        .map(IntoResponse::into_response)?;
    if let Some(v) = core
        .dpop_nonce()
        .and_then(|n| HeaderValue::from_str(&n).ok())
    {
        let h = resp.headers_mut();
        h.insert("dpop-nonce", v);
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(resp)
}

/// RFC 9449 §5 at the token endpoint: 400 `{error, error_description}`.
fn token_endpoint_error(e: &Error) -> Response {
    let (code, why, nonce) = match e {
        Error::DpopNonceRequired(n) => (
            "use_dpop_nonce",
            "a server nonce is required",
            Some(n.clone()),
        ),
        Error::DpopProofInvalid(why) => ("invalid_dpop_proof", *why, None),
        Error::DpopRequired => ("invalid_dpop_proof", "a DPoP proof is required", None),
        other => return problem_of(other).into_response(),
    };
    let body = serde_json::json!({ "error": code, "error_description": why });
    let mut resp = Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(body.to_string());
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        resp.headers_mut().insert("dpop-nonce", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_issuing_routes() {
        let post = Method::POST;
        for p in [
            "/v1/sessions",
            "/v1/sessions/refresh",
            "/v1/sessions/mfa",
            "/v1/sessions/passkey",
            "/v1/sessions/id-token",
            "/v1/sessions/federation",
            "/v1/sessions/email/verify",
            "/v1/sessions/anonymous",
            "/oauth/token",
        ] {
            assert!(issues_tokens(&post, p), "{p}");
        }
        for p in [
            "/v1/sessions/passkey/options",
            "/v1/sessions/email",
            "/v1/users",
            "/oauth/revoke",
        ] {
            assert!(!issues_tokens(&post, p), "{p}");
        }
        assert!(!issues_tokens(&Method::DELETE, "/v1/sessions"));
        assert!(!issues_tokens(&Method::GET, "/v1/sessions"));
    }
}

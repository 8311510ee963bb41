//! Parsing and checking an authorization request, its error redirect, and
//! the request sealed for the hosted pages.

use super::{AuthorizeFailure, AuthorizeParams, AuthorizeRequest, REQUEST_TYP, non_empty};
use crate::service::oidc::{REQUEST_TTL_SECS, SCOPES, with_query};
use crate::service::{Core, Error, Result};
use crate::store::ClientRecord;

impl Core {
    /// The error redirect of RFC 6749 §4.1.2.1 (with `state` and `iss`).
    pub fn authorize_error(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> String {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", self.tokens.issuer()));
        with_query(redirect_uri, &params)
    }

    /// Validates `GET /oauth/authorize`: a client and redirect URI first
    /// (a page when either is wrong), then everything else (errors to the
    /// redirect URI).
    #[allow(
        clippy::too_many_lines,
        reason = "the checks of an authorization request in RFC 6749 / OIDC order, each a few lines"
    )]
    pub async fn authorize_request(
        &self,
        p: &AuthorizeParams,
    ) -> Result<std::result::Result<(AuthorizeRequest, ClientRecord), AuthorizeFailure>> {
        let page = |why: &str| Ok(Err(AuthorizeFailure::Page(why.to_string())));
        let Some(client_id) = non_empty(&p.client_id) else {
            return page("The request names no client (client_id is missing).");
        };
        let Some(client) = self.store.client(client_id).await? else {
            return page("The application that sent you here is not registered.");
        };
        let Some(redirect_uri) = non_empty(&p.redirect_uri) else {
            return page("The request has no redirect_uri.");
        };
        if !client
            .redirect_uris
            .iter()
            .any(|r| crate::service::oidc::redirect_uri_matches(r, redirect_uri))
        {
            return page("The redirect_uri of the request is not registered for this application.");
        }
        let state = non_empty(&p.state);
        let fail = |error: &str, why: &str| {
            Ok(Err(AuthorizeFailure::Redirect(self.authorize_error(
                redirect_uri,
                state,
                error,
                why,
            ))))
        };
        if non_empty(&p.request).is_some() {
            return fail("request_not_supported", "request objects are not supported");
        }
        if non_empty(&p.request_uri).is_some() {
            return fail("request_uri_not_supported", "request_uri is not supported");
        }
        match non_empty(&p.response_type) {
            None => return fail("invalid_request", "response_type is required"),
            Some("code") => {}
            Some(_) => {
                return fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                );
            }
        }
        if let Some(mode) = non_empty(&p.response_mode)
            && mode != "query"
        {
            return fail("invalid_request", "only response_mode=query is supported");
        }
        if state.is_some_and(|s| s.len() > 2048)
            || non_empty(&p.nonce).is_some_and(|n| n.len() > 512)
        {
            return fail("invalid_request", "state or nonce too long");
        }
        let Some(challenge) = non_empty(&p.code_challenge) else {
            return fail(
                "invalid_request",
                "code_challenge is required (PKCE with S256)",
            );
        };
        if non_empty(&p.code_challenge_method) != Some("S256") {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        if challenge.len() != 43
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return fail("invalid_request", "code_challenge is not a S256 challenge");
        }
        // Unknown scopes (address, phone) are left out, not refused.
        let mut scope: Vec<String> = non_empty(&p.scope)
            .unwrap_or("")
            .split(' ')
            .filter(|s| SCOPES.contains(s) && client.scopes.iter().any(|c| c == s))
            .map(str::to_string)
            .collect();
        scope.sort();
        scope.dedup();
        let prompt: Vec<String> = non_empty(&p.prompt)
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if prompt
            .iter()
            .any(|v| !["none", "login", "consent", "select_account"].contains(&v.as_str()))
        {
            return fail("invalid_request", "prompt must be none, login or consent");
        }
        if prompt.iter().any(|v| v == "none") && prompt.len() > 1 {
            return fail("invalid_request", "prompt=none cannot be combined");
        }
        let max_age = match non_empty(&p.max_age) {
            None => None,
            Some(m) => match m.parse::<i64>() {
                Ok(v) if v >= 0 => Some(v),
                _ => return fail("invalid_request", "max_age must be a non-negative integer"),
            },
        };
        let now = self.clock.now_u64();
        let request = AuthorizeRequest {
            iss: self.tokens.issuer().to_string(),
            aud: self.tokens.audience_for(REQUEST_TYP),
            sub: client.id.clone(),
            exp: now + REQUEST_TTL_SECS,
            nbf: now,
            iat: now,
            redirect_uri: redirect_uri.to_string(),
            scope,
            state: state.map(str::to_string),
            nonce: non_empty(&p.nonce).map(str::to_string),
            code_challenge: challenge.to_string(),
            prompt,
            max_age,
            login_hint: non_empty(&p.login_hint).map(|h| h.chars().take(254).collect()),
            ui_locales: non_empty(&p.ui_locales).map(|h| h.chars().take(100).collect()),
        };
        Ok(Ok((request, client)))
    }

    /// The request as a signed token for the hosted pages.
    pub fn seal_request(&self, r: &AuthorizeRequest) -> Result<String> {
        Ok(self.tokens.sign(REQUEST_TYP, r)?)
    }

    /// A sealed request back, if it is ours and not expired.
    pub fn open_request(&self, sealed: &str) -> Result<AuthorizeRequest> {
        self.tokens
            .verify(sealed, REQUEST_TYP, self.clock.now_u64())
            .map_err(|_| {
                Error::TokenInvalid("the sign-in request expired; start again from the app")
            })
    }
}

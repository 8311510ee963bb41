//! `GET /oauth/authorize`, the browser session and the decision between a
//! code, the sign-in page and the consent page.
//!
//! The validated request travels through the hosted pages as a signed,
//! short-lived token (`authreq+jwt`, 10 minutes), so nothing is stored
//! before a user signs in and no page can alter it. A code is stored as a
//! WebAuthn-style ceremony record (single use, taken atomically on both
//! backends) under the SHA-256 of the code, for 60 seconds.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{CODE_TTL_SECS, REQUEST_TTL_SECS, SCOPES, random_token, sha256_hex, with_query};
use crate::audit::AuditEvent;
use crate::auth::tokens::TimeClaims;
use crate::domain::UserId;
use crate::service::{ClientInfo, Core, Error, IssuedTokens, Result};
use crate::store::{CeremonyKind, CeremonyRecord, ClientRecord, ConsentRecord};

/// The browser session cookie of the hosted pages.
pub const SESSION_COOKIE: &str = "__Host-portcullis";

/// JOSE `typ` of a sealed authorization request.
const REQUEST_TYP: &str = "authreq+jwt";

/// The parameters of `GET /oauth/authorize`, as sent (unknown ones ignored).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeParams {
    /// The client.
    pub client_id: Option<String>,
    /// Where to answer; must be registered.
    pub redirect_uri: Option<String>,
    /// `code`.
    pub response_type: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// Echoed back.
    pub state: Option<String>,
    /// Copied into the ID token.
    pub nonce: Option<String>,
    /// PKCE challenge.
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
    /// `none`, `login`, `consent`.
    pub prompt: Option<String>,
    /// Seconds since the last sign-in allowed.
    pub max_age: Option<String>,
    /// Prefills the email field.
    pub login_hint: Option<String>,
    /// Preferred languages of the pages.
    pub ui_locales: Option<String>,
    /// Request objects are not supported.
    pub request: Option<String>,
    /// Request objects by reference are not supported.
    pub request_uri: Option<String>,
    /// Only `query` is supported.
    pub response_mode: Option<String>,
}

/// A validated authorization request (also the claims of its sealed form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    iss: String,
    aud: String,
    /// The client id.
    pub sub: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    /// The registered redirect URI it answers to (as presented).
    pub redirect_uri: String,
    /// Scopes asked for and allowed to the client.
    pub scope: Vec<String>,
    /// Echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// `prompt` values.
    #[serde(default)]
    pub prompt: Vec<String>,
    /// `max_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `login_hint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// `ui_locales`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
}

impl TimeClaims for AuthorizeRequest {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn nbf(&self) -> u64 {
        self.nbf
    }
}

impl AuthorizeRequest {
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.sub
    }

    fn prompts(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

/// Why a request cannot be answered with a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeFailure {
    /// Unknown client or redirect URI: a page, never a redirect.
    Page(String),
    /// An error sent back to the (valid) redirect URI.
    Redirect(String),
}

/// What the browser is sent to next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Back to the client (a code or an error).
    Redirect(String),
    /// The sign-in page, carrying the sealed request.
    Login(String),
    /// The consent page, carrying the sealed request.
    Consent(String),
}

/// The user signed in on this browser (the session behind the cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// Its session id (the ID token's `sid`).
    pub sid: String,
    /// The user.
    pub user_id: UserId,
    /// Unix seconds of the last proof on it (`auth_time`).
    pub auth_time: i64,
    /// How the user signed in.
    pub amr: Vec<String>,
    /// The upstream identity provider of a federated sign-in.
    pub idp: Option<String>,
}

/// What a code stands for (the ceremony's state).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: Vec<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub browser_sid: String,
    /// The browser session's upstream provider (the `idp` of the
    /// client's session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

// size-check: impl Core over 300 lines: the authorization request from parsing to the code; next to split (request, consent, code).
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
            .any(|r| super::redirect_uri_matches(r, redirect_uri))
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

    /// The browser session behind a cookie value (`<sid>.<secret>`): live,
    /// a sign-in of the hosted pages, its account enabled.
    pub async fn browser_session(&self, cookie: Option<&str>) -> Result<Option<BrowserSession>> {
        let Some((sid, secret)) = cookie.and_then(|c| c.split_once('.')) else {
            return Ok(None);
        };
        if sid.len() > 64 || secret.len() > 64 {
            return Ok(None);
        }
        let now = self.clock.now();
        let Some(s) = self.store.session(sid).await? else {
            return Ok(None);
        };
        if !s.is_active(now)
            || s.client_id.is_some()
            || !bool::from(s.current_jti.as_bytes().ct_eq(secret.as_bytes()))
        {
            return Ok(None);
        }
        match self.store.user_by_id(&s.user_id).await? {
            Some(u) if !u.disabled => {}
            _ => return Ok(None),
        }
        Ok(Some(BrowserSession {
            auth_time: s.proven_at.unwrap_or(s.created_at),
            sid: s.id,
            user_id: s.user_id,
            amr: s.amr,
            idp: s.idp,
        }))
    }

    /// The cookie value of the session a hosted-page sign-in just opened
    /// (its refresh token is never handed out: the session's current
    /// generation id is the cookie's secret). An earlier browser session
    /// on this browser (`previous`) ends.
    pub async fn browser_cookie_for(
        &self,
        tokens: &IssuedTokens,
        previous: Option<&BrowserSession>,
    ) -> Result<(String, BrowserSession)> {
        let claims = self
            .tokens
            .verify_refresh(&tokens.refresh_token, self.clock.now_u64())
            .map_err(|_| {
                Error::Unexpected(anyhow::anyhow!("fresh refresh token did not verify"))
            })?;
        let now = self.clock.now();
        if let Some(p) = previous
            && p.sid != claims.sid
        {
            self.store.revoke_session(&p.user_id, &p.sid, now).await?;
        }
        let session = self
            .store
            .session(&claims.sid)
            .await?
            .ok_or(Error::TokenInvalid("session gone"))?;
        Ok((
            format!("{}.{}", claims.sid, claims.jti),
            BrowserSession {
                sid: session.id,
                user_id: session.user_id,
                auth_time: session.proven_at.unwrap_or(session.created_at),
                amr: session.amr,
                idp: session.idp,
            },
        ))
    }

    /// Ends a browser session (sign-out on the hosted pages).
    pub async fn end_browser_session(&self, b: &BrowserSession) -> Result<()> {
        self.store
            .revoke_session(&b.user_id, &b.sid, self.clock.now())
            .await?;
        Ok(())
    }

    fn needs_consent(
        client: &ClientRecord,
        r: &AuthorizeRequest,
        consent: Option<&ConsentRecord>,
    ) -> bool {
        if r.prompts("consent") {
            return true;
        }
        if client.first_party {
            return false;
        }
        match consent {
            Some(c) => !r.scope.iter().all(|s| c.scopes.contains(s)),
            None => true,
        }
    }

    /// What happens to a validated request for the user signed in on this
    /// browser (`fresh`: they signed in for this very request, so
    /// `prompt=login` and `max_age` are satisfied).
    pub async fn authorize_decide(
        &self,
        r: &AuthorizeRequest,
        browser: Option<&BrowserSession>,
        fresh: bool,
    ) -> Result<Decision> {
        let error = |e: &str, why: &str| {
            Ok(Decision::Redirect(self.authorize_error(
                &r.redirect_uri,
                r.state.as_deref(),
                e,
                why,
            )))
        };
        let Some(client) = self.store.client(r.client_id()).await? else {
            return Err(Error::NotFound("Client"));
        };
        let none = r.prompts("none");
        let now = self.clock.now();
        // `max_age`: a sign-in at least that many whole seconds old is too
        // old (so `max_age=0` always asks again).
        let signed_in = browser.filter(|b| {
            fresh
                || (!r.prompts("login")
                    && !r.prompts("select_account")
                    && r.max_age.is_none_or(|m| now - b.auth_time < m))
        });
        let Some(b) = signed_in else {
            if none {
                return error("login_required", "the user is not signed in");
            }
            return Ok(Decision::Login(self.seal_request(r)?));
        };
        let consent = self.store.consent(&b.user_id, &client.id).await?;
        if Self::needs_consent(&client, r, consent.as_ref()) {
            if none {
                return error("consent_required", "the user has not consented");
            }
            return Ok(Decision::Consent(self.seal_request(r)?));
        }
        Ok(Decision::Redirect(self.issue_code(r, b).await?))
    }

    /// The consent page's answer: `allow` stores the consent (remembered
    /// per user, client and scopes) and issues a code; otherwise
    /// `access_denied`.
    pub async fn authorize_consent(
        &self,
        r: &AuthorizeRequest,
        b: &BrowserSession,
        allow: bool,
        client: &ClientInfo,
    ) -> Result<String> {
        if !allow {
            return Ok(self.authorize_error(
                &r.redirect_uri,
                r.state.as_deref(),
                "access_denied",
                "the user did not consent",
            ));
        }
        let now = self.clock.now();
        let previous = self.store.consent(&b.user_id, r.client_id()).await?;
        let mut scopes = previous
            .as_ref()
            .map(|c| c.scopes.clone())
            .unwrap_or_default();
        scopes.extend(r.scope.iter().cloned());
        scopes.sort();
        scopes.dedup();
        self.store
            .put_consent(&ConsentRecord {
                user_id: b.user_id.clone(),
                client_id: r.client_id().to_string(),
                scopes,
                created_at: previous.map_or(now, |c| c.created_at),
                updated_at: now,
            })
            .await?;
        self.audit(
            AuditEvent::ConsentGranted {
                client_id: r.client_id().to_string(),
            },
            Some(&b.user_id),
            client,
        );
        self.issue_code(r, b).await
    }

    /// Stores a code for the request and the signed-in user; returns the
    /// redirect carrying it.
    async fn issue_code(&self, r: &AuthorizeRequest, b: &BrowserSession) -> Result<String> {
        let code = random_token();
        let grant = CodeGrant {
            client_id: r.client_id().to_string(),
            redirect_uri: r.redirect_uri.clone(),
            code_challenge: r.code_challenge.clone(),
            scope: r.scope.clone(),
            nonce: r.nonce.clone(),
            auth_time: b.auth_time,
            amr: b.amr.clone(),
            browser_sid: b.sid.clone(),
            idp: b.idp.clone(),
        };
        let state = serde_json::to_string(&grant)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("encoding a code: {e}")))?;
        self.store
            .save_ceremony(&CeremonyRecord {
                id: code_key(&code),
                kind: CeremonyKind::OAuthCode,
                user_id: Some(b.user_id.clone()),
                state,
                expires_at: self.clock.now() + CODE_TTL_SECS,
            })
            .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = r.state.as_deref() {
            params.push(("state", s));
        }
        params.push(("iss", self.tokens.issuer()));
        Ok(with_query(&r.redirect_uri, &params))
    }
}

/// The store key of a code: its SHA-256 (the store never holds a code).
pub(super) fn code_key(code: &str) -> String {
    format!("code-{}", sha256_hex(code))
}

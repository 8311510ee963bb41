//! `/v1/sessions`: sign in, refresh, list, sign out.

use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::mfa::LoginResult;
use super::problem::responses;
use super::types::{Secret, Text};
use super::views::{SessionView, TokensView};
use super::{ApiTags, BearerAuth, client_info};
use crate::service::{Core, LogoutScope};

/// Sign-in with email and password.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address of the account.
    pub email: Text,
    /// The account's password.
    pub password: Secret,
    /// ALTCHA solution (base64 JSON) when a CAPTCHA is required.
    pub captcha: Option<Text>,
}

/// A refresh token to exchange.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the latest pair.
    pub refresh_token: Secret,
}

/// Which sessions `DELETE /v1/sessions` ends.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum Scope {
    /// This session only (the default).
    Local,
    /// Every session of the user except this one.
    Others,
    /// Every session of the user.
    Global,
}

impl From<Scope> for LogoutScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Local => Self::Local,
            Scope::Others => Self::Others,
            Scope::Global => Self::Global,
        }
    }
}

responses! {
    pub enum LoginResponse {
        /// Signed in: a token pair; or, when the account has two-factor
        /// sign-in on, `{mfa_required: true, mfa_token, expires_in, methods}`
        /// and no tokens (continue with `POST /v1/sessions/mfa`).
        Ok(Json<LoginResult>) = 200,
    }
    errors { body_errors, Unauthorized = 401, Forbidden = 403, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum RefreshResponse {
        /// A new token pair; the presented refresh token is retired.
        Ok(Json<TokensView>) = 200,
    }
    errors { body_errors, Unauthorized = 401, TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum LogoutResponse {
        /// Signed out.
        NoContent = 204,
    }
    errors { body_errors, Unauthorized = 401, Unavailable = 503 }
}

responses! {
    pub enum ListSessionsResponse {
        /// Active sessions, newest first.
        Ok(Json<Vec<SessionView>>) = 200,
    }
    errors { Unauthorized = 401, Unavailable = 503 }
}

responses! {
    pub enum RevokeSessionResponse {
        /// Session ended.
        NoContent = 204,
    }
    errors { body_errors, Unauthorized = 401, NotFound = 404, Unavailable = 503 }
}

/// `/v1/sessions`.
pub struct SessionsApi;

#[OpenApi(tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// Sign in with email and password.
    #[oai(path = "/v1/sessions", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<LoginRequest>,
    ) -> LoginResponse {
        let body = body.0;
        let client = client_info(req, &core);
        match core
            .login(
                &body.email.0,
                body.password.0,
                body.captcha.as_ref().map(|c| c.0.as_str()),
                client,
            )
            .await
        {
            Ok(signed_in) => LoginResponse::Ok(Json(signed_in.into())),
            Err(e) => e.into(),
        }
    }

    /// Exchange a refresh token for a new pair.
    ///
    /// Refresh tokens are single use. Presenting a retired one revokes its
    /// whole session, except within the short grace window
    /// (`PORTCULLIS_REFRESH_GRACE`, default 10 s) after its rotation, when
    /// it yields the session's current pair (concurrent tabs refreshing).
    #[oai(
        path = "/v1/sessions/refresh",
        method = "post",
        operation_id = "refresh"
    )]
    async fn refresh(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<RefreshRequest>,
    ) -> RefreshResponse {
        use secrecy::ExposeSecret;
        let client = client_info(req, &core);
        // An OAuth client's session refreshes at /oauth/token, where the
        // client authenticates.
        match core
            .refresh_token_client(body.0.refresh_token.0.expose_secret())
            .await
        {
            Ok(None) => {}
            Ok(Some(_)) => {
                return crate::service::Error::TokenInvalid(
                    "an OAuth client's refresh token: refresh it at /oauth/token",
                )
                .into();
            }
            Err(e) => return e.into(),
        }
        match core
            .refresh(body.0.refresh_token.0.expose_secret(), &client)
            .await
        {
            Ok(tokens) => RefreshResponse::Ok(Json(tokens.into())),
            Err(e) => e.into(),
        }
    }

    /// Sign out: this session (`local`, default), all others (`others`) or all (`global`).
    #[oai(path = "/v1/sessions", method = "delete", operation_id = "logout")]
    async fn logout(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        scope: Query<Option<Scope>>,
    ) -> LogoutResponse {
        let client = client_info(req, &core);
        match core
            .logout(&auth.0, scope.0.unwrap_or(Scope::Local).into(), &client)
            .await
        {
            Ok(()) => LogoutResponse::NoContent,
            Err(e) => e.into(),
        }
    }

    /// The caller's active sessions.
    #[oai(path = "/v1/sessions", method = "get", operation_id = "listSessions")]
    async fn list(&self, core: Data<&Core>, auth: BearerAuth) -> ListSessionsResponse {
        match core.sessions(&auth.0).await {
            Ok(list) => ListSessionsResponse::Ok(Json(list.into_iter().map(Into::into).collect())),
            Err(e) => e.into(),
        }
    }

    /// End one of the caller's sessions.
    #[oai(
        path = "/v1/sessions/:sid",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        sid: Path<String>,
    ) -> RevokeSessionResponse {
        let client = client_info(req, &core);
        match core.revoke_session(&auth.0, &sid.0, &client).await {
            Ok(()) => RevokeSessionResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}

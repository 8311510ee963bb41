//! Federated sign-in: the providers, server nonces, native ID-token
//! sign-in, the redirect flow (authorize, callback, code exchange) and the
//! caller's linked identities.

use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Form, Json};
use poem_openapi::{Object, OpenApi};

use super::mfa::LoginResult;
use super::problem::{Problem, responses};
use super::types::{Secret, Text};
use super::users::{PasskeyProof, one_proof};
use super::views::rfc3339;
use super::{ApiTags, BearerAuth, client_info};
use crate::service::{
    AuthorizeRequest, CallbackParams, Core, IdentitySummary, LinkOffer, ProviderInfo,
};

/// A configured identity provider.
#[derive(Debug, Object)]
#[oai(rename = "Provider")]
pub struct ProviderView {
    /// The id to use in requests and routes.
    pub id: String,
    /// `google`, `apple`, `microsoft`, `github` or `oidc`.
    pub kind: String,
    /// The button label.
    pub name: String,
}

impl From<ProviderInfo> for ProviderView {
    fn from(p: ProviderInfo) -> Self {
        Self {
            id: p.id,
            kind: p.kind.to_string(),
            name: p.name,
        }
    }
}

/// A server nonce for a native sign-in.
#[derive(Debug, Object)]
#[oai(rename = "FederationNonce")]
pub struct NonceView {
    /// Hand it to the platform SDK as the nonce (raw; or its SHA-256 hex,
    /// as iOS does). Single use.
    pub nonce: String,
    /// Seconds it stays usable.
    pub expires_in: u64,
}

/// Apple's first-time name, as the native SDK gives it.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PersonName {
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
}

impl PersonName {
    fn joined(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.given_name, &self.family_name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// A native sign-in with a provider's ID token.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct IdTokenSignIn {
    /// The provider id (`GET /v1/providers`).
    pub provider: Text,
    /// The ID token the platform SDK returned.
    pub id_token: Secret,
    /// The server nonce (`POST /v1/federation/nonce`) the token was made for.
    pub nonce: Text,
    /// Apple's first-time name (fills an empty display name).
    pub name: Option<PersonName>,
}

/// The one-time code of a redirect flow and the client's PKCE verifier.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CodeExchange {
    /// The `code` the callback redirected with (5 minutes, single use).
    pub code: Secret,
    /// The verifier of the `code_challenge` sent to `authorize`.
    pub code_verifier: Secret,
}

/// What to link: exactly one of `link_token`, `{provider, id_token, nonce}`
/// or `{code, code_verifier}`; plus, optionally, a recent proof
/// (`password`, `passkey`, or a TOTP `code` when no `code_verifier` is sent).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LinkRequest {
    /// From a `link-required` answer (10 minutes, single use).
    pub link_token: Option<Secret>,
    /// A provider id, with `id_token` and `nonce`.
    pub provider: Option<Text>,
    /// A native ID token.
    pub id_token: Option<Secret>,
    /// The server nonce of `id_token`.
    pub nonce: Option<Text>,
    /// A one-time code from a redirect begun with `intent=link` (with
    /// `code_verifier`); without `code_verifier`, a current TOTP code as the
    /// recent proof.
    pub code: Option<Secret>,
    /// The PKCE verifier of that redirect.
    pub code_verifier: Option<Secret>,
    /// The account's password, as a recent proof.
    pub password: Option<Secret>,
    /// A passkey assertion, as a recent proof.
    pub passkey: Option<PasskeyProof>,
}

/// A linked identity.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Identity")]
pub struct IdentityView {
    /// Its id (for `DELETE /v1/me/identities/{id}`).
    pub id: String,
    /// The provider id.
    pub provider: String,
    /// The email the provider gave last.
    #[oai(nullable)]
    pub email: Option<String>,
    /// RFC 3339 timestamp.
    pub created_at: String,
    /// RFC 3339 timestamp of the last sign-in with it.
    #[oai(nullable)]
    pub last_used_at: Option<String>,
}

impl From<IdentitySummary> for IdentityView {
    fn from(i: IdentitySummary) -> Self {
        Self {
            id: i.id,
            provider: i.provider,
            email: i.email,
            created_at: rfc3339(i.created_at),
            last_used_at: i.last_used_at.map(rfc3339),
        }
    }
}

/// The provider's answer as `form_post` sends it (Apple).
#[derive(Debug, Object, serde::Deserialize)]
pub struct CallbackForm {
    /// Our state.
    pub state: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The provider's error.
    pub error: Option<String>,
    /// The provider's error text (not shown).
    pub error_description: Option<String>,
    /// Apple: the user's name and email, JSON, first authorization only.
    pub user: Option<String>,
    /// Apple sends the ID token here too; the one from the token endpoint is used.
    pub id_token: Option<String>,
    /// Microsoft and others may add `session_state`.
    pub session_state: Option<String>,
    /// Some providers echo the issuer (RFC 9207).
    pub iss: Option<String>,
}

responses! {
    pub enum ProvidersResponse {
        /// The configured providers, in configuration order.
        Ok(Json<Vec<ProviderView>>) = 200,
    }
    errors { Unavailable = 503 }
}

responses! {
    pub enum NonceResponse {
        /// A fresh nonce.
        Ok(Json<NonceView>) = 200,
    }
    errors { TooManyRequests = 429, Unavailable = 503 }
}

responses! {
    pub enum FederatedSignInResponse {
        /// Signed in (a token pair, `amr: ["fed"]`, `idp`); or
        /// `{mfa_required: true, ...}` when the account has a second factor.
        Ok(Json<LoginResult>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, TooManyRequests = 429, BadGateway = 502, Unavailable = 503 }
}

/// Responses of the redirect steps (`authorize`, `callback`).
#[derive(poem_openapi::ApiResponse)]
pub enum RedirectResponse {
    /// To the provider (authorize), or back to `redirect_to` (callback).
    #[oai(status = 302)]
    Found(
        #[oai(header = "Location")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// Problem details (RFC 9457).
    #[oai(status = 400)]
    BadRequest(Problem),
    /// The provider's `form_post` body is too large (framework answer).
    #[oai(status = 413)]
    PayloadTooLarge(Problem),
    /// The callback's POST is not `application/x-www-form-urlencoded`
    /// (framework answer).
    #[oai(status = 415)]
    UnsupportedMediaType(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 429)]
    TooManyRequests(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 502)]
    BadGateway(Problem),
    /// Problem details (RFC 9457).
    #[oai(status = 503)]
    Unavailable(Problem),
    /// Unexpected server error.
    #[oai(status = 500)]
    InternalError(Problem),
}

impl From<crate::service::Error> for RedirectResponse {
    fn from(e: crate::service::Error) -> Self {
        let p = super::problem::problem_of(&e);
        match p.status().as_u16() {
            400 => Self::BadRequest(p),
            413 => Self::PayloadTooLarge(p),
            415 => Self::UnsupportedMediaType(p),
            429 => Self::TooManyRequests(p),
            502 => Self::BadGateway(p),
            503 => Self::Unavailable(p),
            500 => Self::InternalError(p),
            other => {
                tracing::error!(
                    status = other,
                    op = "RedirectResponse",
                    "undocumented error status"
                );
                Self::InternalError(super::problem::internal())
            }
        }
    }
}

responses! {
    pub enum IdentitiesResponse {
        /// The caller's linked identities, oldest first.
        Ok(Json<Vec<IdentityView>>) = 200,
    }
    errors { Unauthorized = 401, Unavailable = 503 }
}

responses! {
    pub enum LinkResponse {
        /// Linked.
        Created(Json<IdentityView>) = 201,
    }
    errors { BadRequest = 400, Unauthorized = 401, Conflict = 409, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, TooManyRequests = 429, BadGateway = 502, Unavailable = 503 }
}

responses! {
    pub enum UnlinkResponse {
        /// Unlinked.
        NoContent = 204,
    }
    errors { Unauthorized = 401, NotFound = 404, Conflict = 409, TooManyRequests = 429, Unavailable = 503 }
}

fn found(location: String) -> RedirectResponse {
    RedirectResponse::Found(location, "no-store".to_string())
}

/// Federated sign-in routes.
pub struct FederationApi;

#[OpenApi(tag = "ApiTags::Federation")]
impl FederationApi {
    /// The configured identity providers.
    #[oai(path = "/v1/providers", method = "get", operation_id = "listProviders")]
    async fn providers(&self, core: Data<&Core>) -> ProvidersResponse {
        ProvidersResponse::Ok(Json(core.providers().into_iter().map(Into::into).collect()))
    }

    /// A single-use server nonce (10 minutes) for a native sign-in.
    #[oai(
        path = "/v1/federation/nonce",
        method = "post",
        operation_id = "federationNonce"
    )]
    async fn nonce(&self, req: &Request, core: Data<&Core>) -> NonceResponse {
        match core.federation_nonce(&client_info(req, &core)).await {
            Ok(n) => NonceResponse::Ok(Json(NonceView {
                nonce: n.nonce,
                expires_in: n.expires_in,
            })),
            Err(e) => e.into(),
        }
    }

    /// Sign in with a provider's ID token (native apps).
    ///
    /// The token must be signed by the provider, for its `CLIENT_ID` or one
    /// of its `NATIVE_CLIENT_IDS`, unexpired, never used before, and carry
    /// the server nonce (or its SHA-256 hex). 409 `link-required` carries a
    /// `link_token`.
    #[oai(
        path = "/v1/sessions/id-token",
        method = "post",
        operation_id = "signInWithIdToken"
    )]
    async fn id_token(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<IdTokenSignIn>,
    ) -> FederatedSignInResponse {
        use secrecy::ExposeSecret;
        let body = body.0;
        let name = body.name.as_ref().and_then(PersonName::joined);
        match core
            .sign_in_with_id_token(
                &body.provider.0,
                body.id_token.0.expose_secret(),
                &body.nonce.0,
                name,
                &client_info(req, &core),
            )
            .await
        {
            Ok(s) => FederatedSignInResponse::Ok(Json(s.into())),
            Err(e) => e.into(),
        }
    }

    /// Begin a redirect sign-in (or link, `intent=link`) with a provider.
    ///
    /// Needs an allowed `redirect_to` and the client's PKCE challenge
    /// (`S256`); redirects to the provider.
    #[oai(
        path = "/v1/federation/:provider/authorize",
        method = "get",
        operation_id = "federationAuthorize"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn authorize(
        &self,
        req: &Request,
        core: Data<&Core>,
        provider: Path<String>,
        redirect_to: Query<Option<String>>,
        code_challenge: Query<Option<String>>,
        code_challenge_method: Query<Option<String>>,
        intent: Query<Option<String>>,
    ) -> RedirectResponse {
        let request = AuthorizeRequest {
            redirect_to: redirect_to.0,
            code_challenge: code_challenge.0,
            code_challenge_method: code_challenge_method.0,
            intent: intent.0,
        };
        match core
            .federation_authorize(&provider.0, request, &client_info(req, &core))
            .await
        {
            Ok(url) => found(url),
            Err(e) => e.into(),
        }
    }

    /// The provider's answer (query).
    #[oai(
        path = "/v1/federation/:provider/callback",
        method = "get",
        operation_id = "federationCallback"
    )]
    async fn callback(
        &self,
        req: &Request,
        core: Data<&Core>,
        provider: Path<String>,
        state: Query<Option<String>>,
        code: Query<Option<String>>,
        error: Query<Option<String>>,
    ) -> RedirectResponse {
        let params = CallbackParams {
            state: state.0,
            code: code.0,
            error: error.0,
            user: None,
        };
        match core
            .federation_callback(&provider.0, params, &client_info(req, &core))
            .await
        {
            Ok(url) => found(url),
            Err(e) => e.into(),
        }
    }

    /// The provider's answer (`response_mode=form_post`, as Apple sends it).
    #[oai(
        path = "/v1/federation/:provider/callback",
        method = "post",
        operation_id = "federationCallbackFormPost"
    )]
    async fn callback_form(
        &self,
        req: &Request,
        core: Data<&Core>,
        provider: Path<String>,
        form: Form<CallbackForm>,
    ) -> RedirectResponse {
        let form = form.0;
        let params = CallbackParams {
            state: form.state,
            code: form.code,
            error: form.error,
            user: form.user,
        };
        match core
            .federation_callback(&provider.0, params, &client_info(req, &core))
            .await
        {
            Ok(url) => found(url),
            Err(e) => e.into(),
        }
    }

    /// Finish a redirect sign-in: the one-time code and the PKCE verifier.
    #[oai(
        path = "/v1/sessions/federation",
        method = "post",
        operation_id = "signInWithFederationCode"
    )]
    async fn exchange(
        &self,
        req: &Request,
        core: Data<&Core>,
        body: Json<CodeExchange>,
    ) -> FederatedSignInResponse {
        use secrecy::ExposeSecret;
        match core
            .sign_in_with_code(
                body.0.code.0.expose_secret(),
                body.0.code_verifier.0.expose_secret(),
                &client_info(req, &core),
            )
            .await
        {
            Ok(s) => FederatedSignInResponse::Ok(Json(s.into())),
            Err(e) => e.into(),
        }
    }

    /// The caller's linked identities.
    #[oai(
        path = "/v1/me/identities",
        method = "get",
        operation_id = "listIdentities"
    )]
    async fn list(&self, core: Data<&Core>, auth: BearerAuth) -> IdentitiesResponse {
        match core.identities(&auth.0).await {
            Ok(list) => IdentitiesResponse::Ok(Json(list.into_iter().map(Into::into).collect())),
            Err(e) => e.into(),
        }
    }

    /// Link an identity to the caller's account (needs a recent proof).
    ///
    /// A guest (anonymous user) needs no proof and becomes a full account
    /// with the same id and the provider's verified address (422
    /// `provider-email-unverified` without one; 409 `conflict` when
    /// another account holds it; nothing is linked then).
    #[oai(
        path = "/v1/me/identities",
        method = "post",
        operation_id = "linkIdentity"
    )]
    async fn link(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        body: Json<LinkRequest>,
    ) -> LinkResponse {
        use secrecy::ExposeSecret;
        let mut b = body.0;
        // `code` is the flow's code beside a `code_verifier`, else a TOTP code.
        let totp = if b.code_verifier.is_none() {
            b.code.take()
        } else {
            None
        };
        let proof = match one_proof(b.password, totp, b.passkey) {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        let expose = |s: Secret| s.0.expose_secret().to_string();
        let offer = match (
            b.link_token,
            b.provider,
            b.id_token,
            b.nonce,
            b.code,
            b.code_verifier,
        ) {
            (Some(t), None, None, None, None, None) => LinkOffer::LinkToken(expose(t)),
            (None, Some(p), Some(t), Some(n), None, None) => LinkOffer::IdToken {
                provider: p.0,
                id_token: expose(t),
                nonce: n.0,
            },
            (None, None, None, None, Some(c), Some(v)) => LinkOffer::Code {
                code: expose(c),
                code_verifier: expose(v),
            },
            _ => {
                return crate::service::Error::Validation(vec![crate::service::FieldError::new(
                    "link_token",
                    "invalid",
                    "send exactly one of link_token, {provider, id_token, nonce} or {code, code_verifier}",
                )])
                .into();
            }
        };
        match core
            .link_identity(&auth.0, offer, proof, &client_info(req, &core))
            .await
        {
            Ok(i) => LinkResponse::Created(Json(i.into())),
            Err(e) => e.into(),
        }
    }

    /// Unlink one of the caller's identities (needs a recent proof; refused
    /// with 409 `last-credential` when it is the account's last way in).
    #[oai(
        path = "/v1/me/identities/:id",
        method = "delete",
        operation_id = "unlinkIdentity"
    )]
    async fn unlink(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        id: Path<String>,
    ) -> UnlinkResponse {
        match core
            .unlink_identity(&auth.0, &id.0, &client_info(req, &core))
            .await
        {
            Ok(()) => UnlinkResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}

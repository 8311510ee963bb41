//! Portcullis as an OpenID provider, the JSON side: registered clients
//! (`/v1/admin/clients`, role `admin`) and a user's consents
//! (`/v1/me/consents`). The browser side (`/oauth/authorize`,
//! `/oauth/logout`, the hosted pages) is in `hosted.rs`; the code grant in
//! `oauth.rs`.

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::problem::responses;
use super::views::rfc3339;
use super::{AdminAuth, ApiTags, BearerAuth, client_info};
use crate::service::Core;
use crate::service::oidc::{ClientChanges, ClientType, ConsentSummary, NewClient};
use crate::store::ClientRecord;

/// `public` (no secret) or `confidential` (a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ClientTypeView {
    /// Native apps and SPAs: PKCE, no secret.
    Public,
    /// Server-side apps: a secret at the token endpoint.
    Confidential,
}

/// A registered OAuth client.
#[derive(Debug, Object)]
#[oai(rename = "OAuthClient")]
pub struct ClientView {
    /// The `client_id`.
    pub id: String,
    /// Shown on the consent page.
    pub name: String,
    /// Exact redirect URIs (loopback ones match on any port).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to.
    pub post_logout_redirect_uris: Vec<String>,
    /// `public` or `confidential`.
    #[oai(rename = "type")]
    pub client_type: ClientTypeView,
    /// First-party clients skip consent and always get a refresh token.
    pub first_party: bool,
    /// Scopes it may ask for.
    pub scopes: Vec<String>,
    /// `aud` of its access tokens (unset: the client id, or the service's
    /// audience for first-party clients).
    #[oai(skip_serializing_if_is_none)]
    pub audience: Option<String>,
    /// Algorithm of its ID tokens (unset: RS256).
    #[oai(skip_serializing_if_is_none)]
    pub id_token_signed_response_alg: Option<String>,
    /// The secret of a confidential client: in the answer to its creation
    /// only, never again (it is stored hashed).
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl ClientView {
    fn new(c: ClientRecord, secret: Option<String>) -> Self {
        Self {
            client_type: if c.client_type == "confidential" {
                ClientTypeView::Confidential
            } else {
                ClientTypeView::Public
            },
            id: c.id,
            name: c.name,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            first_party: c.first_party,
            scopes: c.scopes,
            audience: c.audience,
            id_token_signed_response_alg: c.id_token_signed_response_alg,
            client_secret: secret,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// A client to register.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateClientRequest {
    /// Shown on the consent page (1 to 100 characters).
    pub name: String,
    /// Redirect URIs: `https://…`, loopback `http://127.0.0.1/…` or
    /// `http://[::1]/…` (any port), or a private-use scheme
    /// (`com.example.app:/cb`).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to.
    #[oai(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// `public` (default) or `confidential`.
    #[oai(rename = "type")]
    pub client_type: Option<ClientTypeView>,
    /// Skip consent, always issue a refresh token (default false).
    #[oai(default)]
    pub first_party: bool,
    /// Scopes it may ask for (default: openid, email, profile,
    /// offline_access).
    pub scopes: Option<Vec<String>>,
    /// `aud` of its access tokens.
    pub audience: Option<String>,
    /// ID token algorithm: one of the published keys' (default RS256).
    pub id_token_signed_response_alg: Option<String>,
}

/// Changes to a client; fields left out stay as they are (`null` clears
/// `audience` and `id_token_signed_response_alg`).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateClientRequest {
    /// New name.
    pub name: Option<String>,
    /// New redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// New logout redirect URIs.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// First-party or not.
    pub first_party: Option<bool>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New audience (`null` clears it).
    pub audience: poem_openapi::types::MaybeUndefined<String>,
    /// New ID token algorithm (`null` clears it).
    pub id_token_signed_response_alg: poem_openapi::types::MaybeUndefined<String>,
}

fn maybe(v: poem_openapi::types::MaybeUndefined<String>) -> Option<Option<String>> {
    use poem_openapi::types::MaybeUndefined as M;
    match v {
        M::Undefined => None,
        M::Null => Some(None),
        M::Value(s) => Some(Some(s)),
    }
}

/// A consent a user gave a client.
#[derive(Debug, Object)]
#[oai(rename = "Consent")]
pub struct ConsentView {
    /// The client.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// RFC 3339: first grant.
    pub created_at: String,
    /// RFC 3339: last grant.
    pub updated_at: String,
}

impl From<ConsentSummary> for ConsentView {
    fn from(c: ConsentSummary) -> Self {
        Self {
            client_id: c.client_id,
            client_name: c.client_name,
            scopes: c.scopes,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

responses! {
    pub enum ListClientsResponse {
        /// Every registered client.
        Ok(Json<Vec<ClientView>>) = 200,
    }
    errors { Unauthorized = 401, Forbidden = 403, Unavailable = 503 }
}

responses! {
    pub enum CreateClientResponse {
        /// Registered; `client_secret` (confidential clients) is shown this once.
        Created(Json<ClientView>) = 201,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, Unavailable = 503 }
}

responses! {
    pub enum ClientResponse {
        /// The client.
        Ok(Json<ClientView>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422, Unavailable = 503 }
}

responses! {
    pub enum DeleteClientResponse {
        /// Removed.
        Deleted = 204,
    }
    errors { Unauthorized = 401, Forbidden = 403, NotFound = 404, Unavailable = 503 }
}

responses! {
    pub enum ListConsentsResponse {
        /// The caller's consents.
        Ok(Json<Vec<ConsentView>>) = 200,
    }
    errors { Unauthorized = 401, Unavailable = 503 }
}

responses! {
    pub enum RevokeConsentResponse {
        /// Withdrawn; that client's sessions ended.
        Deleted = 204,
    }
    errors { Unauthorized = 401, NotFound = 404, Unavailable = 503 }
}

/// `/v1/admin/clients...` (tag Admin) and `/v1/me/consents...` (tag Users).
pub struct OidcApi;

#[OpenApi]
impl OidcApi {
    /// Every registered OAuth client (secrets are never shown).
    #[oai(
        path = "/v1/admin/clients",
        method = "get",
        operation_id = "adminListClients",
        tag = "ApiTags::Admin"
    )]
    async fn list(&self, core: Data<&Core>, _auth: AdminAuth) -> ListClientsResponse {
        match core.clients().await {
            Ok(list) => ListClientsResponse::Ok(Json(
                list.into_iter().map(|c| ClientView::new(c, None)).collect(),
            )),
            Err(e) => e.into(),
        }
    }

    /// Register an OAuth client; a confidential one gets its secret in this
    /// answer only.
    #[oai(
        path = "/v1/admin/clients",
        method = "post",
        operation_id = "adminCreateClient",
        tag = "ApiTags::Admin"
    )]
    async fn create(
        &self,
        core: Data<&Core>,
        _auth: AdminAuth,
        body: Json<CreateClientRequest>,
    ) -> CreateClientResponse {
        let b = body.0;
        let new = NewClient {
            name: b.name,
            redirect_uris: b.redirect_uris,
            post_logout_redirect_uris: b.post_logout_redirect_uris,
            client_type: match b.client_type {
                Some(ClientTypeView::Confidential) => ClientType::Confidential,
                _ => ClientType::Public,
            },
            first_party: b.first_party,
            scopes: b.scopes,
            audience: b.audience,
            id_token_signed_response_alg: b.id_token_signed_response_alg,
        };
        match core.create_client(new).await {
            Ok(r) => CreateClientResponse::Created(Json(ClientView::new(r.client, r.secret))),
            Err(e) => e.into(),
        }
    }

    /// One registered client.
    #[oai(
        path = "/v1/admin/clients/:id",
        method = "get",
        operation_id = "adminGetClient",
        tag = "ApiTags::Admin"
    )]
    async fn get(&self, core: Data<&Core>, _auth: AdminAuth, id: Path<String>) -> ClientResponse {
        match core.client(&id.0).await {
            Ok(c) => ClientResponse::Ok(Json(ClientView::new(c, None))),
            Err(e) => e.into(),
        }
    }

    /// Change a client (its type and secret stay).
    #[oai(
        path = "/v1/admin/clients/:id",
        method = "patch",
        operation_id = "adminUpdateClient",
        tag = "ApiTags::Admin"
    )]
    async fn update(
        &self,
        core: Data<&Core>,
        _auth: AdminAuth,
        id: Path<String>,
        body: Json<UpdateClientRequest>,
    ) -> ClientResponse {
        let b = body.0;
        let changes = ClientChanges {
            name: b.name,
            redirect_uris: b.redirect_uris,
            post_logout_redirect_uris: b.post_logout_redirect_uris,
            first_party: b.first_party,
            scopes: b.scopes,
            audience: maybe(b.audience),
            id_token_signed_response_alg: maybe(b.id_token_signed_response_alg),
        };
        match core.update_client(&id.0, changes).await {
            Ok(c) => ClientResponse::Ok(Json(ClientView::new(c, None))),
            Err(e) => e.into(),
        }
    }

    /// Remove a client: its codes and ID token hints stop working.
    #[oai(
        path = "/v1/admin/clients/:id",
        method = "delete",
        operation_id = "adminDeleteClient",
        tag = "ApiTags::Admin"
    )]
    async fn delete(
        &self,
        core: Data<&Core>,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> DeleteClientResponse {
        match core.delete_client(&id.0).await {
            Ok(()) => DeleteClientResponse::Deleted,
            Err(e) => e.into(),
        }
    }

    /// The apps the caller consented to, and the scopes granted.
    #[oai(
        path = "/v1/me/consents",
        method = "get",
        operation_id = "listConsents",
        tag = "ApiTags::Users"
    )]
    async fn list_consents(&self, core: Data<&Core>, auth: BearerAuth) -> ListConsentsResponse {
        match core.consents(&auth.0).await {
            Ok(list) => {
                ListConsentsResponse::Ok(Json(list.into_iter().map(ConsentView::from).collect()))
            }
            Err(e) => e.into(),
        }
    }

    /// Withdraw a consent: the app's sessions end, and it asks again next
    /// time. Needs a recent proof on this session
    /// (`POST /v1/me/reauthenticate`), else 401 `reauthentication-required`.
    #[oai(
        path = "/v1/me/consents/:client_id",
        method = "delete",
        operation_id = "revokeConsent",
        tag = "ApiTags::Users"
    )]
    async fn revoke(
        &self,
        req: &Request,
        core: Data<&Core>,
        auth: BearerAuth,
        client_id: Path<String>,
    ) -> RevokeConsentResponse {
        match core
            .revoke_consent(&auth.0, &client_id.0, &client_info(req, &core))
            .await
        {
            Ok(()) => RevokeConsentResponse::Deleted,
            Err(e) => e.into(),
        }
    }
}

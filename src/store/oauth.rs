//! Records and store trait of Portcullis as an OpenID provider: the
//! registered OAuth clients and the consents users gave them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

use super::StoreResult;

/// A registered OAuth client (an app that signs users in *with*
/// Portcullis). The secret is kept only as its SHA-256 (hex): it is a
/// random 256-bit value, so a fast hash is enough, and it is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The `client_id`.
    pub id: String,
    /// Name shown on the consent page.
    pub name: String,
    /// Where authorization responses may go (exact, see `service::oidc`).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// `public` or `confidential`.
    pub client_type: String,
    /// First-party clients skip consent and always get a refresh token.
    #[serde(default)]
    pub first_party: bool,
    /// Scopes the client may ask for.
    pub scopes: Vec<String>,
    /// `aud` of its access tokens; `None`: the default (see `service::oidc`).
    #[serde(default)]
    pub audience: Option<String>,
    /// JOSE algorithm of its ID tokens; `None`: RS256.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// SHA-256 (hex) of the secret of a confidential client.
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A user's consent to a client: the scopes granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The user.
    pub user_id: UserId,
    /// The client.
    pub client_id: String,
    /// Scopes granted (sorted, no duplicates).
    pub scopes: Vec<String>,
    /// Unix seconds of the first grant.
    pub created_at: i64,
    /// Unix seconds of the last grant.
    pub updated_at: i64,
}

/// Registered clients and consents.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// Registers a client; `Conflict` (nothing written) when its id is taken.
    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()>;
    /// The client with this id.
    async fn client(&self, id: &str) -> StoreResult<Option<ClientRecord>>;
    /// Every client, by id.
    async fn clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Replaces a client (same id); false when there is no such client.
    async fn replace_client(&self, client: &ClientRecord) -> StoreResult<bool>;
    /// Removes a client; false when there was none.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;
    /// Stores (or replaces) the consent of `consent.user_id` to
    /// `consent.client_id`.
    async fn put_consent(&self, consent: &ConsentRecord) -> StoreResult<()>;
    /// The user's consent to the client.
    async fn consent(
        &self,
        user_id: &UserId,
        client_id: &str,
    ) -> StoreResult<Option<ConsentRecord>>;
    /// Every consent of the user, by client id.
    async fn consents_of(&self, user_id: &UserId) -> StoreResult<Vec<ConsentRecord>>;
    /// Removes the user's consent to the client; false when there was none.
    async fn delete_consent(&self, user_id: &UserId, client_id: &str) -> StoreResult<bool>;
}

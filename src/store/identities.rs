//! Linked identities of upstream providers (federated sign-in): a record
//! kind of its own, [`IdentityRecord`], and its trait, [`IdentityStore`].
//!
//! An identity is `(provider, iss, sub)`, unique across all accounts: the
//! backends keep a unique index on it, so of two racing links of one
//! identity exactly one succeeds. Its email is only what the provider said
//! last; an identity signs in to its account whatever its email becomes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

use super::StoreResult;

/// One identity of an upstream provider, linked to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// Our id (UUIDv7 text), used in `/v1/me/identities/{id}`.
    pub id: String,
    /// The account it signs in to.
    pub user_id: UserId,
    /// The provider id of the configuration (`google`, `acme`).
    pub provider: String,
    /// The provider's issuer (`iss` of its ID tokens).
    pub iss: String,
    /// The provider's subject (`sub`; GitHub's numeric user id).
    pub sub: String,
    /// The email the provider gave last, when it gave one.
    #[serde(default)]
    pub email: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last sign-in with it.
    #[serde(default)]
    pub last_used_at: Option<i64>,
}

impl IdentityRecord {
    /// The unique key `(provider, iss, sub)` as one string (the parts
    /// joined by a newline, which none of them may hold).
    pub fn key(&self) -> String {
        identity_key(&self.provider, &self.iss, &self.sub)
    }
}

/// The unique key of an identity (see [`IdentityRecord::key`]).
pub fn identity_key(provider: &str, iss: &str, sub: &str) -> String {
    format!("{provider}\n{iss}\n{sub}")
}

/// What [`IdentityStore::unlink_identity`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRemoval {
    /// Removed; the identity as it was.
    Removed(IdentityRecord),
    /// The user has no identity with that id.
    NotFound,
    /// Refused: the account has no password, no passkey and no other
    /// identity, so removing it would lock the user out.
    LastCredential,
}

/// Linked identities.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Links an identity to its account. `Conflict` (nothing written) when
    /// `(provider, iss, sub)` or the id is linked already (to any account);
    /// false when there is no such user.
    async fn link_identity(&self, identity: &IdentityRecord) -> StoreResult<bool>;
    /// The identity with this `(provider, iss, sub)`.
    async fn identity_by_key(
        &self,
        provider: &str,
        iss: &str,
        sub: &str,
    ) -> StoreResult<Option<IdentityRecord>>;
    /// The user's identities, oldest first.
    async fn identities_of(&self, user_id: &UserId) -> StoreResult<Vec<IdentityRecord>>;
    /// Records a sign-in with identity `id`: `last_used_at` becomes `now`
    /// and `email` the address the provider gave this time (when it gave
    /// one). No error when it is gone.
    async fn touch_identity(&self, id: &str, email: Option<&str>, now: i64) -> StoreResult<()>;
    /// Unlinks identity `id` of `user_id`, unless the account would be left
    /// without any way in (no password, no passkey, no other identity):
    /// then [`IdentityRemoval::LastCredential`] and nothing changes.
    async fn unlink_identity(&self, user_id: &UserId, id: &str) -> StoreResult<IdentityRemoval>;
    /// Unlinks every identity of the user (account deletion, a password
    /// reset claiming an unverified account); returns how many.
    async fn delete_identities_of(&self, user_id: &UserId) -> StoreResult<u64>;
}

//! Anonymous users ([`AnonymousStore`]): the writes only a guest account
//! has. A guest is an ordinary [`UserRecord`](super::UserRecord) with
//! `anonymous: true`, created with
//! [`UserStore::create_user`](super::UserStore::create_user) under a
//! stand-in address; these methods keep its last use, upgrade it in place
//! and delete it once unused.

use async_trait::async_trait;

use crate::domain::UserId;

use super::StoreResult;

/// The guest-account side of the store.
#[async_trait]
pub trait AnonymousStore: Send + Sync {
    /// Records that the anonymous user `id` was used at `now` (sign-in,
    /// refresh); false, and nothing written, when there is no such
    /// anonymous user.
    async fn touch_anonymous(&self, id: &UserId, now: i64) -> StoreResult<bool>;
    /// Ids of anonymous users last used before `cutoff` (at most `limit`).
    async fn stale_anonymous(&self, cutoff: i64, limit: usize) -> StoreResult<Vec<UserId>>;
    /// Deletes the anonymous user `id` with its sessions and avatar, only
    /// if it is still anonymous and was last used before `cutoff` (checked
    /// in the same atomic step as the deletion of the account, so a guest
    /// that upgraded or refreshed meanwhile stays). True when deleted.
    async fn delete_stale_anonymous(&self, id: &UserId, cutoff: i64) -> StoreResult<bool>;
    /// Turns the anonymous user `id` into a full account in one atomic
    /// step: its address becomes `email` (normalized; verified as
    /// `email_verified` says), its
    /// password hash `password_hash`, it is no longer anonymous, and
    /// `updated_at` is `now`. The id, sessions and everything else stay.
    /// `Conflict` (and nothing changed) when another account holds
    /// `email`; false when there is no such anonymous user (gone, or
    /// already upgraded).
    async fn upgrade_anonymous(
        &self,
        id: &UserId,
        email: &str,
        email_verified: bool,
        password_hash: &str,
        now: i64,
    ) -> StoreResult<bool>;
}

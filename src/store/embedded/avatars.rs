//! [`AvatarStore`] on redb: `avatars` (user id → JSON [`AvatarRecord`]),
//! and the etag on the account's value in `users`, written in the same
//! transaction.

use async_trait::async_trait;
use redb::{ReadableDatabase, TableDefinition};

use super::users::{StoredUser, USERS};
use super::{EmbeddedStore, encode, get_json, other};
use crate::domain::UserId;
use crate::store::{AvatarRecord, AvatarStore, StoreResult};

/// User id → JSON [`AvatarRecord`].
pub(super) const AVATARS: TableDefinition<&str, &[u8]> = TableDefinition::new("avatars");

/// Sets (or clears) the account's avatar etag in the caller's transaction;
/// false when there is no such account.
fn set_etag(txn: &redb::WriteTransaction, user_id: &str, etag: Option<&str>) -> StoreResult<bool> {
    let mut users = txn.open_table(USERS).map_err(other)?;
    let Some(mut stored) = get_json::<StoredUser>(&users, user_id)? else {
        return Ok(false);
    };
    stored.user.avatar_etag = etag.map(str::to_string);
    users
        .insert(user_id, encode(&stored)?.as_slice())
        .map_err(other)?;
    Ok(true)
}

#[async_trait]
impl AvatarStore for EmbeddedStore {
    async fn put_avatar(&self, avatar: &AvatarRecord) -> StoreResult<bool> {
        let avatar = avatar.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            if !set_etag(&txn, &avatar.user_id, Some(&avatar.etag))? {
                return Ok(false);
            }
            txn.open_table(AVATARS)
                .map_err(other)?
                .insert(avatar.user_id.as_str(), encode(&avatar)?.as_slice())
                .map_err(other)?;
            txn.commit().map_err(other)?;
            Ok(true)
        })
        .await
    }

    async fn avatar(&self, user_id: &UserId) -> StoreResult<Option<AvatarRecord>> {
        let id = user_id.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            get_json(&txn.open_table(AVATARS).map_err(other)?, &id)
        })
        .await
    }

    async fn delete_avatar(&self, user_id: &UserId) -> StoreResult<bool> {
        let id = user_id.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let removed = txn
                .open_table(AVATARS)
                .map_err(other)?
                .remove(id.as_str())
                .map_err(other)?
                .is_some();
            set_etag(&txn, &id, None)?;
            txn.commit().map_err(other)?;
            Ok(removed)
        })
        .await
    }
}

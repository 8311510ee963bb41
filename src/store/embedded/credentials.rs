//! [`CredentialStore`] on redb: the credential fields of the account's
//! value in `users` (see [`super::users::StoredUser`]).

use async_trait::async_trait;
use redb::ReadableDatabase;

use super::users::{StoredUser, USERS};
use super::{EmbeddedStore, get_json, modify, other};
use crate::store::{CredentialRecord, CredentialStore, StoreResult};

#[async_trait]
impl CredentialStore for EmbeddedStore {
    async fn credentials(&self, user_id: &str) -> StoreResult<Option<CredentialRecord>> {
        let id = user_id.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            get_json(&txn.open_table(USERS).map_err(other)?, &id)
        })
        .await
    }

    async fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let id = user_id.to_string();
        let hash = hash.to_string();
        self.run(move |db| {
            // The whole stored value, so the profile is written back.
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                stored.credentials.password_hash = hash;
                stored.credentials.legacy_bcrypt = false;
                stored.user.updated_at = now;
                (Some(stored), ())
            })?;
            Ok(done.is_some())
        })
        .await
    }
}

//! [`CredentialStore`] on redb: the credential fields of the account's
//! value in `users` (see [`super::users::StoredUser`]).

use async_trait::async_trait;
use redb::ReadableDatabase;

use super::users::{StoredUser, USERS};
use super::{EmbeddedStore, get_json, modify, other};
use crate::store::{
    CredentialRecord, CredentialStore, PasskeyRecord, PasskeyRemoval, StoreError, StoreResult,
};

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
                stored.user.updated_at = now;
                (Some(stored), ())
            })?;
            Ok(done.is_some())
        })
        .await
    }

    // Passkeys (issue 12).
    async fn add_passkey(
        &self,
        user_id: &str,
        passkey: &PasskeyRecord,
        now: i64,
    ) -> StoreResult<bool> {
        let id = user_id.to_string();
        let passkey = passkey.clone();
        self.run(move |db| {
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                if stored.credentials.passkeys.contains_key(&passkey.id) {
                    return (None, Err(StoreError::Conflict));
                }
                stored
                    .credentials
                    .passkeys
                    .insert(passkey.id.clone(), passkey);
                sync_passkey_count(&mut stored, now);
                (Some(stored), Ok(()))
            })?;
            done.transpose().map(|d| d.is_some())
        })
        .await
    }

    async fn update_passkey(&self, user_id: &str, passkey: &PasskeyRecord) -> StoreResult<bool> {
        let id = user_id.to_string();
        let passkey = passkey.clone();
        self.run(move |db| {
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                match stored.credentials.passkeys.get_mut(&passkey.id) {
                    Some(slot) => {
                        *slot = passkey;
                        (Some(stored), true)
                    }
                    None => (None, false),
                }
            })?;
            Ok(done.unwrap_or(false))
        })
        .await
    }

    async fn remove_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        now: i64,
    ) -> StoreResult<PasskeyRemoval> {
        let id = user_id.to_string();
        let passkey_id = passkey_id.to_string();
        self.run(move |db| {
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                let creds = &stored.credentials;
                if !creds.passkeys.contains_key(&passkey_id) {
                    return (None, PasskeyRemoval::NotFound);
                }
                if !creds.has_password() && creds.passkeys.len() <= 1 {
                    return (None, PasskeyRemoval::LastCredential);
                }
                stored.credentials.passkeys.remove(&passkey_id);
                sync_passkey_count(&mut stored, now);
                (Some(stored), PasskeyRemoval::Removed)
            })?;
            Ok(done.unwrap_or(PasskeyRemoval::NotFound))
        })
        .await
    }
}

/// The profile's count follows the credentials (one value, one write).
fn sync_passkey_count(stored: &mut StoredUser, now: i64) {
    stored.user.passkey_count =
        u32::try_from(stored.credentials.passkeys.len()).unwrap_or(u32::MAX);
    stored.user.updated_at = now;
}

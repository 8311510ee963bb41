//! [`CredentialStore`] on MongoDB: the credential fields of the account's
//! document in `users` (see `users.rs`).

use async_trait::async_trait;
use mongodb::bson::{self, Document, doc};

use super::{MongoStore, from_doc};
use crate::store::{
    CredentialRecord, CredentialStore, PasskeyRecord, PasskeyRemoval, StoreError, StoreResult,
};

/// The fields of [`CredentialRecord`] in a user document: left out of
/// profile reads, the only ones credential reads fetch. A test checks the
/// list against the record.
pub(super) const CREDENTIAL_FIELDS: &[&str] = &[
    "password_hash",
    // Passkeys (issue 12).
    "passkeys",
];

/// The dotted path of one passkey in the `passkeys` map; `None` for an id
/// that could step out of it (passkey ids are UUIDs: no `.` or `$`).
fn passkey_path(passkey_id: &str) -> Option<String> {
    let safe = !passkey_id.is_empty()
        && passkey_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    safe.then(|| format!("passkeys.{passkey_id}"))
}

/// Projection of a credential read: the credential fields only.
fn credential_projection() -> Document {
    CREDENTIAL_FIELDS
        .iter()
        .map(|f| (f.to_string(), 1.into()))
        .collect()
}

#[async_trait]
impl CredentialStore for MongoStore {
    async fn credentials(&self, user_id: &str) -> StoreResult<Option<CredentialRecord>> {
        self.run(
            self.users
                .find_one(doc! { "_id": user_id })
                .projection(credential_projection()),
        )
        .await?
        .map(from_doc)
        .transpose()
    }

    async fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        // `$set` of these fields only: the profile stays.
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id },
                doc! { "$set": { "password_hash": hash, "updated_at": now } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    // Passkeys (issue 12). Each write is one `update_one` on the account's
    // document, guarded by its filter; `passkey_count` moves with it.
    async fn add_passkey(
        &self,
        user_id: &str,
        passkey: &PasskeyRecord,
        now: i64,
    ) -> StoreResult<bool> {
        let Some(path) = passkey_path(&passkey.id) else {
            return Err(StoreError::Other(anyhow::anyhow!("invalid passkey id")));
        };
        let record = bson::to_bson(passkey)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding a passkey")))?;
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id, &path: { "$exists": false } },
                doc! {
                    "$set": { &path: record, "updated_at": now },
                    "$inc": { "passkey_count": 1 },
                },
            ))
            .await?;
        if r.matched_count > 0 {
            return Ok(true);
        }
        // No match: no such user, or the id is taken.
        let exists = self
            .run(
                self.users
                    .find_one(doc! { "_id": user_id })
                    .projection(doc! { "_id": 1 }),
            )
            .await?
            .is_some();
        if exists {
            Err(StoreError::Conflict)
        } else {
            Ok(false)
        }
    }

    async fn update_passkey(&self, user_id: &str, passkey: &PasskeyRecord) -> StoreResult<bool> {
        let Some(path) = passkey_path(&passkey.id) else {
            return Ok(false);
        };
        let record = bson::to_bson(passkey)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding a passkey")))?;
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id, &path: { "$exists": true } },
                doc! { "$set": { &path: record } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn remove_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        now: i64,
    ) -> StoreResult<PasskeyRemoval> {
        let Some(path) = passkey_path(passkey_id) else {
            return Ok(PasskeyRemoval::NotFound);
        };
        // Removable when the account keeps a way in: a password (a
        // non-empty string) or another passkey.
        let r = self
            .run(self.users.update_one(
                doc! {
                    "_id": user_id,
                    &path: { "$exists": true },
                    "$or": [
                        { "password_hash": { "$gt": "" } },
                        { "passkey_count": { "$gt": 1 } },
                    ],
                },
                doc! {
                    "$unset": { &path: "" },
                    "$inc": { "passkey_count": -1 },
                    "$set": { "updated_at": now },
                },
            ))
            .await?;
        if r.matched_count > 0 {
            return Ok(PasskeyRemoval::Removed);
        }
        let held = self
            .credentials(user_id)
            .await?
            .is_some_and(|c| c.passkeys.contains_key(passkey_id));
        Ok(if held {
            PasskeyRemoval::LastCredential
        } else {
            PasskeyRemoval::NotFound
        })
    }
}

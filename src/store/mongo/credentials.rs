//! [`CredentialStore`] on MongoDB: the credential fields of the account's
//! document in `users` (see `users.rs`).

use async_trait::async_trait;
use mongodb::bson::{Document, doc};

use super::{MongoStore, from_doc};
use crate::store::{CredentialRecord, CredentialStore, StoreResult};

/// The fields of [`CredentialRecord`] in a user document: left out of
/// profile reads, the only ones credential reads fetch. A test checks the
/// list against the record.
pub(super) const CREDENTIAL_FIELDS: &[&str] = &["password_hash", "legacy_bcrypt"];

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
        // `$set`/`$unset` of these fields only: the profile stays. A
        // peppered hash is never legacy.
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id },
                doc! {
                    "$set": { "password_hash": hash, "updated_at": now },
                    "$unset": { "legacy_bcrypt": "" },
                },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }
}

//! [`IdentityStore`] on MongoDB: the `identities` collection, `_id` the
//! identity id, with a unique index on `key` (`provider\niss\nsub`, see
//! [`IdentityRecord::key`]): an insert under a unique index is atomic on
//! MongoDB and FerretDB alike, so of two racing links of one identity
//! exactly one wins.
//!
//! Unlinking must not leave an account without a way in, which reads the
//! account and its other identities before deleting one: two steps that
//! FerretDB cannot make one transaction. Unlinks of one user are therefore
//! taken in turn under a short lease (an insert of `unlink:<user id>` in
//! `revocations`, which also expires), so two racing unlinks of a user's
//! last two identities cannot both pass the check.

use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Document, doc};

use super::errors::map_err;
use super::{MongoStore, from_doc, to_doc};
use crate::domain::UserId;
use crate::store::{
    CredentialRecord, CredentialStore, IdentityRecord, IdentityRemoval, IdentityStore, StoreError,
    StoreResult, UserStore, identity_key,
};

/// How long an unlink lease holds if its holder never gives it back.
const LEASE_SECS: i64 = 10;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl MongoStore {
    /// Takes the unlink lease of `user_id`, waiting for another holder
    /// (at most about two seconds); a lease left by a crashed holder is
    /// broken once expired.
    async fn take_unlink_lease(&self, user_id: &UserId) -> StoreResult<String> {
        let id = format!("unlink:{user_id}");
        for _ in 0..40 {
            let now = unix_now();
            let lease = doc! { "_id": &id, "expires_at": now + LEASE_SECS };
            match self.insert(&self.revocations, lease).await {
                Ok(()) => return Ok(id),
                Err(StoreError::Conflict) => {
                    self.run(
                        self.revocations
                            .delete_one(doc! { "_id": &id, "expires_at": { "$lte": now } }),
                    )
                    .await?;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "another unlink of this account is in progress".into(),
        ))
    }
}

#[async_trait]
impl IdentityStore for MongoStore {
    async fn link_identity(&self, identity: &IdentityRecord) -> StoreResult<bool> {
        if self.user_by_id(&identity.user_id).await?.is_none() {
            return Ok(false);
        }
        let mut d = to_doc(identity)?;
        d.insert("key", identity.key());
        self.insert(&self.identities, d).await?;
        Ok(true)
    }

    async fn identity_by_key(
        &self,
        provider: &str,
        iss: &str,
        sub: &str,
    ) -> StoreResult<Option<IdentityRecord>> {
        self.find_record(
            &self.identities,
            doc! { "key": identity_key(provider, iss, sub) },
        )
        .await
    }

    async fn identities_of(&self, user_id: &UserId) -> StoreResult<Vec<IdentityRecord>> {
        let mut cursor = self
            .run(
                self.identities
                    .find(doc! { "user_id": user_id })
                    .sort(doc! { "created_at": 1, "_id": 1 }),
            )
            .await?;
        let mut out = Vec::new();
        while self.run(cursor.advance()).await? {
            let d: Document = cursor.deserialize_current().map_err(map_err)?;
            out.push(from_doc(d)?);
        }
        Ok(out)
    }

    async fn touch_identity(&self, id: &str, email: Option<&str>, now: i64) -> StoreResult<()> {
        let mut set = doc! { "last_used_at": now };
        if let Some(email) = email {
            set.insert("email", email);
        }
        self.run(
            self.identities
                .update_one(doc! { "_id": id }, doc! { "$set": set }),
        )
        .await?;
        Ok(())
    }

    async fn unlink_identity(&self, user_id: &UserId, id: &str) -> StoreResult<IdentityRemoval> {
        let lease = self.take_unlink_lease(user_id).await?;
        let outcome = async {
            let mine = self.identities_of(user_id).await?;
            let Some(found) = mine.iter().find(|i| i.id == id).cloned() else {
                return Ok(IdentityRemoval::NotFound);
            };
            let creds: Option<CredentialRecord> = self.credentials(user_id).await?;
            let other_way_in =
                mine.len() > 1 || creds.is_some_and(|c| c.has_password() || !c.passkeys.is_empty());
            if !other_way_in {
                return Ok(IdentityRemoval::LastCredential);
            }
            self.run(
                self.identities
                    .delete_one(doc! { "_id": id, "user_id": user_id }),
            )
            .await?;
            Ok(IdentityRemoval::Removed(found))
        }
        .await;
        self.run(self.revocations.delete_one(doc! { "_id": &lease }))
            .await?;
        outcome
    }

    async fn delete_identities_of(&self, user_id: &UserId) -> StoreResult<u64> {
        let r = self
            .run(self.identities.delete_many(doc! { "user_id": user_id }))
            .await?;
        Ok(r.deleted_count)
    }
}

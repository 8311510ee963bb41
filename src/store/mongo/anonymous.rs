//! [`AnonymousStore`] on MongoDB: guests are documents of `users` with
//! `anonymous: true` and `last_active_at`. No transactions: each rule is
//! one single-document operation whose filter carries the condition.

use async_trait::async_trait;
use mongodb::bson::{Document, doc};

use super::{EXPIRES_AT_DATE, MongoStore, date_of, is_duplicate_key, map_err, run_bounded_raw};

/// How long an upgrade's hold on an address lives if its holder dies.
const ADDRESS_LOCK_SECS: i64 = 30;
use crate::domain::UserId;
use crate::store::{AnonymousStore, StoreError, StoreResult};

/// A guest last used before `cutoff` (one created before `last_active_at`
/// existed counts from its creation).
fn stale_filter(cutoff: i64) -> Document {
    doc! {
        "anonymous": true,
        "$or": [
            { "last_active_at": { "$lt": cutoff } },
            { "last_active_at": { "$exists": false }, "created_at": { "$lt": cutoff } },
        ],
    }
}

#[async_trait]
impl AnonymousStore for MongoStore {
    async fn touch_anonymous(&self, id: &UserId, now: i64) -> StoreResult<bool> {
        let r = self
            .run(self.users.update_one(
                doc! { "_id": id, "anonymous": true },
                doc! { "$set": { "last_active_at": now } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn stale_anonymous(&self, cutoff: i64, limit: usize) -> StoreResult<Vec<UserId>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cursor = self
            .run(
                self.users
                    .find(stale_filter(cutoff))
                    .projection(doc! { "_id": 1 })
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX)),
            )
            .await?;
        let mut ids = Vec::new();
        while self.run(cursor.advance()).await? {
            let d: Document = cursor.deserialize_current().map_err(map_err)?;
            if let Ok(id) = d.get_str("_id") {
                ids.push(UserId::from(id));
            }
        }
        Ok(ids)
    }

    async fn delete_stale_anonymous(&self, id: &UserId, cutoff: i64) -> StoreResult<bool> {
        // The account first, by a filter that re-checks the rule: a guest
        // that upgraded or was used meanwhile is not matched. Then its
        // sessions and avatar (an interruption between leaves sessions of
        // a gone account: refresh refuses them, the purge of expired
        // sessions removes them).
        let mut filter = stale_filter(cutoff);
        filter.insert("_id", id);
        let r = self.run(self.users.delete_one(filter)).await?;
        if r.deleted_count == 0 {
            return Ok(false);
        }
        self.run(self.sessions.delete_many(doc! { "user_id": id }))
            .await?;
        self.run(self.avatars.delete_one(doc! { "_id": id }))
            .await?;
        Ok(true)
    }

    async fn upgrade_anonymous(
        &self,
        id: &UserId,
        email: &str,
        email_verified: bool,
        password_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        // Upgrades racing for one address: each first inserts a hold on
        // the address (an `_id` insert: a clash is reported on MongoDB and
        // FerretDB alike); the loser answers `Conflict`. Then, as
        // `change_email`, the address held by an account is refused; on
        // MongoDB the unique index also decides a race with a sign-up
        // (duplicate key); FerretDB v1 reports no clash on update, so
        // there the check is what stands (see the module docs on FerretDB).
        let lock_id = format!("upgrade:{email}");
        self.run(
            self.revocations
                .delete_one(doc! { "_id": &lock_id, "expires_at": { "$lte": now } }),
        )
        .await?;
        let expires_at = now.saturating_add(ADDRESS_LOCK_SECS);
        let lock = doc! {
            "_id": &lock_id,
            "kind": "upgrade",
            "expires_at": expires_at,
            EXPIRES_AT_DATE: date_of(expires_at),
        };
        self.insert(&self.revocations, lock).await?;
        let upgraded = self
            .upgrade_locked(id, email, email_verified, password_hash, now)
            .await;
        // Best effort: a hold not deleted expires.
        if let Err(e) = self
            .run(self.revocations.delete_one(doc! { "_id": &lock_id }))
            .await
        {
            tracing::warn!(error = %e, "could not release an upgrade's hold on an address");
        }
        upgraded
    }
}

impl MongoStore {
    /// The upgrade itself, under the hold on the address.
    async fn upgrade_locked(
        &self,
        id: &str,
        email: &str,
        email_verified: bool,
        password_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let holder = self
            .run(
                self.users
                    .find_one(doc! { "email": email })
                    .projection(doc! { "_id": 1 }),
            )
            .await?;
        if holder.is_some() {
            return Err(StoreError::Conflict);
        }
        let change = doc! {
            "$set": {
                "email": email,
                "email_verified": email_verified,
                "password_hash": password_hash,
                "updated_at": now,
            },
            "$unset": { "anonymous": "", "last_active_at": "", "legacy_bcrypt": "" },
        };
        match run_bounded_raw(
            self.op_timeout,
            self.users
                .update_one(doc! { "_id": id, "anonymous": true }, change),
        )
        .await?
        {
            Ok(r) => Ok(r.matched_count > 0),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::Conflict),
            Err(e) => Err(map_err(e)),
        }
    }
}

//! [`ThrottleStore`] on MongoDB: an account's failed sign-ins are one
//! document in `revocations` under [`RevocationId::LoginFailures`].
//!
//! Reserved attempts (issue 9) must not race, and a conditional update is
//! not atomic on FerretDB v1 (see the module docs of `mongo`): so each
//! reservation is an insert of a slot document `try:<n>:<account>`, `n` in
//! `0..limit`, decided by the unique `_id`. A slot whose `expires_at` has
//! passed is deleted (conditionally) and raced for again with one more
//! insert, as single-use claims are. Of racing reservations, at most
//! `limit` inserts succeed.

use async_trait::async_trait;
use mongodb::bson::{Bson, doc};

use super::{
    EXPIRES_AT_DATE, MongoStore, RevocationId, date_of, is_duplicate_key, map_err, run_bounded_raw,
};
use crate::store::{LoginFailures, StoreError, StoreResult, ThrottleStore};

/// `kind` of a reserved-attempt slot document.
const ATTEMPT_KIND: &str = "attempt";

impl MongoStore {
    async fn failure_record(&self, account: &str) -> StoreResult<Option<LoginFailures>> {
        let id = RevocationId::LoginFailures(account).id();
        let Some(d) = self
            .run(self.revocations.find_one(doc! { "_id": id }))
            .await?
        else {
            return Ok(None);
        };
        let times = d
            .get_array("times")
            .map(|a| a.iter().filter_map(Bson::as_i64).collect())
            .unwrap_or_default();
        let expires_at = d.get_i64("expires_at").unwrap_or(0);
        Ok(Some(LoginFailures { times, expires_at }))
    }

    /// Times of the account's live reserved attempts within the window.
    async fn attempt_times(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>> {
        let filter = doc! {
            "kind": ATTEMPT_KIND,
            "account": account,
            "at": { "$gt": now - window, "$lte": now },
        };
        let mut cursor = self.run(self.revocations.find(filter)).await?;
        let mut times = Vec::new();
        while self.run(cursor.advance()).await? {
            let d: mongodb::bson::Document = cursor.deserialize_current().map_err(map_err)?;
            times.extend(d.get_i64("at").ok());
        }
        Ok(times)
    }

    /// The account's slot documents: slot number → `expires_at`.
    async fn taken_slots(&self, account: &str) -> StoreResult<std::collections::HashMap<u32, i64>> {
        let filter = doc! { "kind": ATTEMPT_KIND, "account": account };
        let mut cursor = self.run(self.revocations.find(filter)).await?;
        let mut taken = std::collections::HashMap::new();
        while self.run(cursor.advance()).await? {
            let d: mongodb::bson::Document = cursor.deserialize_current().map_err(map_err)?;
            let slot = d.get_i64("slot").ok().and_then(|n| u32::try_from(n).ok());
            if let Some(n) = slot {
                taken.insert(n, d.get_i64("expires_at").unwrap_or(0));
            }
        }
        Ok(taken)
    }

    /// One insert of slot `slot`; `Ok(false)` when the slot is taken.
    async fn take_slot(&self, slot: mongodb::bson::Document) -> StoreResult<bool> {
        match self.insert(&self.revocations, slot).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl ThrottleStore for MongoStore {
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()> {
        // Read, add, write back: the list is short and trimmed here, and a
        // lost increment under a race only undercounts by one.
        let id = RevocationId::LoginFailures(account).id();
        let mut record = self.failure_record(account).await?.unwrap_or_default();
        record.push(now, window);
        let d = doc! {
            "_id": &id,
            "times": &record.times,
            "expires_at": record.expires_at,
            EXPIRES_AT_DATE: date_of(record.expires_at),
        };
        let upsert = self
            .revocations
            .replace_one(doc! { "_id": &id }, d)
            .upsert(true);
        match run_bounded_raw(self.op_timeout, upsert).await? {
            Ok(_) => Ok(()),
            // Two first failures raced on the upsert: one of them is stored.
            Err(e) if is_duplicate_key(&e) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn login_failures(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>> {
        let record = self.failure_record(account).await?;
        let mut times = record.map(|r| r.within(now, window)).unwrap_or_default();
        times.extend(self.attempt_times(account, now, window).await?);
        times.sort_unstable();
        Ok(times)
    }

    async fn clear_login_failures(&self, account: &str) -> StoreResult<()> {
        self.run(
            self.revocations
                .delete_one(doc! { "_id": RevocationId::LoginFailures(account).id() }),
        )
        .await?;
        self.run(
            self.revocations
                .delete_many(doc! { "kind": ATTEMPT_KIND, "account": account }),
        )
        .await
        .map(|_| ())
    }

    async fn reserve_login_attempt(
        &self,
        account: &str,
        limit: u32,
        now: i64,
        window: i64,
    ) -> StoreResult<Option<String>> {
        // Failures recorded the older way count against the same limit.
        let recorded = self
            .failure_record(account)
            .await?
            .map_or(0, |r| r.within(now, window).len());
        let slots = limit.saturating_sub(u32::try_from(recorded).unwrap_or(u32::MAX));
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now + window;
        // One read of the slots taken, so a busy account costs a couple of
        // round trips, not one per slot (which would also make the answer's
        // timing depend on how many failures an account has).
        let taken = self.taken_slots(account).await?;
        for n in 0..slots {
            let live = taken.get(&n).is_some_and(|exp| *exp > now);
            if live {
                continue;
            }
            let id = RevocationId::Attempt(account, n).id();
            let slot = doc! {
                "_id": &id,
                "kind": ATTEMPT_KIND,
                "account": account,
                "slot": i64::from(n),
                "at": now,
                "nonce": &nonce,
                "expires_at": expires_at,
                EXPIRES_AT_DATE: date_of(expires_at),
            };
            if taken.contains_key(&n) {
                // Expired: free it (conditionally), then race for it.
                self.run(
                    self.revocations
                        .delete_one(doc! { "_id": &id, "expires_at": { "$lte": now } }),
                )
                .await?;
            }
            if self.take_slot(slot).await? {
                return Ok(Some(nonce));
            }
        }
        Ok(None)
    }

    async fn release_login_attempt(&self, account: &str, attempt: &str) -> StoreResult<()> {
        self.run(
            self.revocations
                .delete_one(doc! { "kind": ATTEMPT_KIND, "account": account, "nonce": attempt }),
        )
        .await
        .map(|_| ())
    }
}

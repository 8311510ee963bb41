//! [`ThrottleStore`] on MongoDB: an account's failed sign-ins are one
//! document in `revocations` under [`RevocationId::LoginFailures`].

use async_trait::async_trait;
use mongodb::bson::{Bson, doc};

use super::{
    EXPIRES_AT_DATE, MongoStore, RevocationId, date_of, is_duplicate_key, map_err, run_bounded_raw,
};
use crate::store::{LoginFailures, StoreResult, ThrottleStore};

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
        Ok(record.map(|r| r.within(now, window)).unwrap_or_default())
    }

    async fn clear_login_failures(&self, account: &str) -> StoreResult<()> {
        self.run(
            self.revocations
                .delete_one(doc! { "_id": RevocationId::LoginFailures(account).id() }),
        )
        .await
        .map(|_| ())
    }
}

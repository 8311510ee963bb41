//! [`OnceStore`] on MongoDB: a claim is a document in `revocations` under
//! [`RevocationId::Once`], decided by the unique `_id` (an insert is atomic
//! on MongoDB and FerretDB alike).

use async_trait::async_trait;
use mongodb::bson::doc;

use super::{EXPIRES_AT_DATE, MongoStore, RevocationId, date_of};
use crate::store::{OnceKey, OnceStore, StoreError, StoreResult};

#[async_trait]
impl OnceStore for MongoStore {
    async fn claim_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> StoreResult<bool> {
        let id = RevocationId::Once(key).id();
        let record = doc! {
            "_id": &id,
            "expires_at": expires_at,
            EXPIRES_AT_DATE: date_of(expires_at),
        };
        match self.insert(&self.revocations, record.clone()).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => {
                // Taken: free it only if it has expired (no TTL deletion on
                // FerretDB), then race for it again with one more insert.
                let freed = self
                    .run(
                        self.revocations
                            .delete_one(doc! { "_id": &id, "expires_at": { "$lte": now } }),
                    )
                    .await?;
                if freed.deleted_count == 0 {
                    return Ok(false);
                }
                match self.insert(&self.revocations, record).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::Conflict) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

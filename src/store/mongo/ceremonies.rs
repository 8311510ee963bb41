//! [`CeremonyStore`] on MongoDB: a ceremony is a document in `revocations`
//! under `RevocationId::Ceremony` (so it expires and is purged like the
//! other short-lived records). Taking it is decided by a claim of
//! [`OnceKey::Ceremony`] (an insert under the unique `_id`, atomic on
//! MongoDB and FerretDB alike): of racing takers only the claimant gets it,
//! then the document is deleted.

use async_trait::async_trait;
use mongodb::bson::doc;

use super::{MongoStore, RevocationId, from_doc, to_doc};
use crate::store::{CeremonyRecord, CeremonyStore, OnceKey, OnceStore, StoreResult};

#[async_trait]
impl CeremonyStore for MongoStore {
    async fn save_ceremony(&self, ceremony: &CeremonyRecord) -> StoreResult<()> {
        let mut d = to_doc(ceremony)?;
        d.insert("_id", RevocationId::Ceremony(&ceremony.id).id());
        self.insert(&self.revocations, d).await
    }

    async fn take_ceremony(&self, id: &str, now: i64) -> StoreResult<Option<CeremonyRecord>> {
        let key = RevocationId::Ceremony(id).id();
        // `expires_at` checked on read: FerretDB deletes nothing by TTL.
        let Some(d) = self
            .run(
                self.revocations
                    .find_one(doc! { "_id": &key, "expires_at": { "$gt": now } }),
            )
            .await?
        else {
            return Ok(None);
        };
        let mut ceremony: CeremonyRecord = from_doc(d)?;
        ceremony.id = id.to_string();
        if !self
            .claim_once(&OnceKey::Ceremony(id.to_string()), ceremony.expires_at, now)
            .await?
        {
            return Ok(None);
        }
        self.run(self.revocations.delete_one(doc! { "_id": &key }))
            .await?;
        Ok(Some(ceremony))
    }
}

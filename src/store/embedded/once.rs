//! [`OnceStore`] on redb: `single_use` (stored key → expiry).

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{EmbeddedStore, other};
use crate::store::{OnceKey, OnceStore, StoreResult};

/// [`OnceKey::stored_key`] → when the claim may be forgotten (unix seconds).
pub(super) const ONCE: TableDefinition<&str, i64> = TableDefinition::new("single_use");

/// Forgets the claims expired by `now`, in the caller's transaction.
pub(super) fn purge_expired(txn: &WriteTransaction, now: i64) -> StoreResult<()> {
    let mut once = txn.open_table(ONCE).map_err(other)?;
    once.retain(|_, exp| exp > now).map_err(other)
}

#[async_trait]
impl OnceStore for EmbeddedStore {
    async fn claim_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> StoreResult<bool> {
        let key = key.stored_key();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(ONCE).map_err(other)?;
                let live = t
                    .get(key.as_str())
                    .map_err(other)?
                    .is_some_and(|v| v.value() > now);
                if live {
                    return Ok(false);
                }
                t.insert(key.as_str(), expires_at).map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(true)
        })
        .await
    }
}

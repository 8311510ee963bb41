//! [`CeremonyStore`] on redb: `webauthn_ceremonies` (id → [`CeremonyRecord`]
//! JSON). Taking one removes it in the same write transaction, so of racing
//! takers exactly one gets it (redb admits one writer at a time).

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{EmbeddedStore, decode, encode, get_json, other};
use crate::store::{CeremonyRecord, CeremonyStore, StoreError, StoreResult};

/// Ceremony id → the ceremony as JSON.
pub(super) const CEREMONIES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("webauthn_ceremonies");

/// Forgets the ceremonies expired by `now`, in the caller's transaction.
pub(super) fn purge_expired(txn: &WriteTransaction, now: i64) -> StoreResult<()> {
    let mut t = txn.open_table(CEREMONIES).map_err(other)?;
    // A record that does not decode is dropped too: it can never be finished.
    t.retain(|_, v| decode::<CeremonyRecord>(v).is_ok_and(|c| c.expires_at > now))
        .map_err(other)
}

#[async_trait]
impl CeremonyStore for EmbeddedStore {
    async fn save_ceremony(&self, ceremony: &CeremonyRecord) -> StoreResult<()> {
        let ceremony = ceremony.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(CEREMONIES).map_err(other)?;
                if t.get(ceremony.id.as_str()).map_err(other)?.is_some() {
                    return Err(StoreError::Conflict);
                }
                t.insert(ceremony.id.as_str(), encode(&ceremony)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn take_ceremony(&self, id: &str, now: i64) -> StoreResult<Option<CeremonyRecord>> {
        let id = id.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let found = {
                let mut t = txn.open_table(CEREMONIES).map_err(other)?;
                let found: Option<CeremonyRecord> = get_json(&t, &id)?;
                if found.is_some() {
                    t.remove(id.as_str()).map_err(other)?;
                }
                found
            };
            txn.commit().map_err(other)?;
            Ok(found.filter(|c| c.expires_at > now))
        })
        .await
    }
}

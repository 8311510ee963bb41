//! [`OAuthStore`] on redb: `oauth_clients` (id → JSON [`ClientRecord`]) and
//! `oauth_consents` (`<user id>/<client id>` → JSON [`ConsentRecord`]).

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{EmbeddedStore, decode, encode, get_json, other};
use crate::domain::UserId;
use crate::store::{ClientRecord, ConsentRecord, OAuthStore, StoreError, StoreResult};

/// Client id → JSON [`ClientRecord`].
pub(super) const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauth_clients");
/// `<user id>/<client id>` → JSON [`ConsentRecord`].
pub(super) const CONSENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauth_consents");

fn consent_key(user_id: &str, client_id: &str) -> String {
    format!("{user_id}/{client_id}")
}

#[async_trait]
impl OAuthStore for EmbeddedStore {
    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let client = client.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(CLIENTS).map_err(other)?;
                if t.get(client.id.as_str()).map_err(other)?.is_some() {
                    return Err(StoreError::Conflict);
                }
                t.insert(client.id.as_str(), encode(&client)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn client(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        self.read_now(|db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(CLIENTS).map_err(other)?;
            get_json(&t, id)
        })
    }

    async fn clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.run(|db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(CLIENTS).map_err(other)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(other)? {
                let (_, v) = item.map_err(other)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn replace_client(&self, client: &ClientRecord) -> StoreResult<bool> {
        let client = client.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let found = {
                let mut t = txn.open_table(CLIENTS).map_err(other)?;
                let found = t.get(client.id.as_str()).map_err(other)?.is_some();
                if found {
                    t.insert(client.id.as_str(), encode(&client)?.as_slice())
                        .map_err(other)?;
                }
                found
            };
            txn.commit().map_err(other)?;
            Ok(found)
        })
        .await
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let found = {
                let mut t = txn.open_table(CLIENTS).map_err(other)?;
                t.remove(id.as_str()).map_err(other)?.is_some()
            };
            txn.commit().map_err(other)?;
            Ok(found)
        })
        .await
    }

    async fn put_consent(&self, consent: &ConsentRecord) -> StoreResult<()> {
        let consent = consent.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(CONSENTS).map_err(other)?;
                let key = consent_key(&consent.user_id, &consent.client_id);
                t.insert(key.as_str(), encode(&consent)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn consent(
        &self,
        user_id: &UserId,
        client_id: &str,
    ) -> StoreResult<Option<ConsentRecord>> {
        self.read_now(|db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(CONSENTS).map_err(other)?;
            get_json(&t, &consent_key(user_id, client_id))
        })
    }

    async fn consents_of(&self, user_id: &UserId) -> StoreResult<Vec<ConsentRecord>> {
        let prefix = format!("{user_id}/");
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(CONSENTS).map_err(other)?;
            let mut out = Vec::new();
            for item in t.range(prefix.as_str()..).map_err(other)? {
                let (k, v) = item.map_err(other)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_consent(&self, user_id: &UserId, client_id: &str) -> StoreResult<bool> {
        let key = consent_key(user_id, client_id);
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let found = {
                let mut t = txn.open_table(CONSENTS).map_err(other)?;
                t.remove(key.as_str()).map_err(other)?.is_some()
            };
            txn.commit().map_err(other)?;
            Ok(found)
        })
        .await
    }
}

//! [`OAuthStore`] on MongoDB: `oauth_clients` (`_id` the client id) and
//! `oauth_consents` (`_id` `<user id>/<client id>`). Each write is one
//! single-document operation; creating a client is an insert under the
//! unique `_id`.

use async_trait::async_trait;
use mongodb::bson::{Document, doc};

use super::{MongoStore, from_doc, map_err, to_doc};
use crate::domain::UserId;
use crate::store::{ClientRecord, ConsentRecord, OAuthStore, StoreResult};

const CLIENTS: &str = "oauth_clients";
const CONSENTS: &str = "oauth_consents";

fn consent_key(user_id: &str, client_id: &str) -> String {
    format!("{user_id}/{client_id}")
}

impl MongoStore {
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        coll: &str,
        filter: Document,
    ) -> StoreResult<Vec<T>> {
        let mut cursor = self
            .run(
                self.db
                    .collection::<Document>(coll)
                    .find(filter)
                    .sort(doc! { "_id": 1 }),
            )
            .await?;
        let mut out = Vec::new();
        while self.run(cursor.advance()).await? {
            let d: Document = cursor.deserialize_current().map_err(map_err)?;
            out.push(from_doc(d)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl OAuthStore for MongoStore {
    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        self.insert(&self.db.collection(CLIENTS), to_doc(client)?)
            .await
    }

    async fn client(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        self.find_record(&self.db.collection(CLIENTS), doc! { "_id": id })
            .await
    }

    async fn clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.all(CLIENTS, doc! {}).await
    }

    async fn replace_client(&self, client: &ClientRecord) -> StoreResult<bool> {
        let r = self
            .run(
                self.db
                    .collection::<Document>(CLIENTS)
                    .replace_one(doc! { "_id": &client.id }, to_doc(client)?),
            )
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let r = self
            .run(
                self.db
                    .collection::<Document>(CLIENTS)
                    .delete_one(doc! { "_id": id }),
            )
            .await?;
        Ok(r.deleted_count > 0)
    }

    async fn put_consent(&self, consent: &ConsentRecord) -> StoreResult<()> {
        let key = consent_key(&consent.user_id, &consent.client_id);
        let mut d = to_doc(consent)?;
        d.insert("_id", key.as_str());
        self.run(
            self.db
                .collection::<Document>(CONSENTS)
                .replace_one(doc! { "_id": &key }, d)
                .upsert(true),
        )
        .await?;
        Ok(())
    }

    async fn consent(
        &self,
        user_id: &UserId,
        client_id: &str,
    ) -> StoreResult<Option<ConsentRecord>> {
        self.find_record(
            &self.db.collection(CONSENTS),
            doc! { "_id": consent_key(user_id, client_id) },
        )
        .await
    }

    async fn consents_of(&self, user_id: &UserId) -> StoreResult<Vec<ConsentRecord>> {
        let mut out: Vec<ConsentRecord> = self.all(CONSENTS, doc! { "user_id": user_id }).await?;
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(out)
    }

    async fn delete_consent(&self, user_id: &UserId, client_id: &str) -> StoreResult<bool> {
        let r = self
            .run(
                self.db
                    .collection::<Document>(CONSENTS)
                    .delete_one(doc! { "_id": consent_key(user_id, client_id) }),
            )
            .await?;
        Ok(r.deleted_count > 0)
    }
}

//! [`UserStore`] on MongoDB: the `users` collection, one document per
//! account (profile and credential fields side by side, `_id` the user id,
//! unique index on `email`). Profile reads project the credential fields
//! away, so a hash never leaves the server on a profile read.

use async_trait::async_trait;
use mongodb::bson::{self, Document, doc};
use mongodb::options::ReturnDocument;

use super::credentials::CREDENTIAL_FIELDS;
use super::{MongoStore, from_doc, is_duplicate_key, map_err, run_bounded_raw, to_doc};
use crate::store::{
    CredentialRecord, ProfileUpdate, StoreError, StoreResult, UserRecord, UserStore,
};

/// The stored document of an account: the profile's fields, then the
/// credentials' (the layout the first release wrote, in one document so
/// that account and credentials are written atomically).
pub(super) fn user_doc(user: &UserRecord, credentials: &CredentialRecord) -> StoreResult<Document> {
    let mut d = to_doc(user)?;
    let secrets = bson::to_document(credentials)
        .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding credentials")))?;
    d.extend(secrets);
    Ok(d)
}

/// Projection of a profile read: every field but the credentials.
pub(super) fn profile_projection() -> Document {
    CREDENTIAL_FIELDS
        .iter()
        .map(|f| (f.to_string(), 0.into()))
        .collect()
}

impl MongoStore {
    /// Inserts many accounts at once (benchmark seeding). Unordered: on a
    /// duplicate email the others are still inserted, and the result is
    /// `Conflict`.
    pub async fn bulk_insert_users(
        &self,
        users: &[(UserRecord, CredentialRecord)],
    ) -> StoreResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let docs = users
            .iter()
            .map(|(u, c)| user_doc(u, c))
            .collect::<StoreResult<Vec<_>>>()?;
        match run_bounded_raw(self.op_timeout, self.users.insert_many(docs).ordered(false)).await? {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::Conflict),
            Err(e) => Err(map_err(e)),
        }
    }

    /// The stored document of one account, as a profile read sees it
    /// (credential fields projected away).
    pub(super) async fn profile_doc(&self, filter: Document) -> StoreResult<Option<Document>> {
        self.run(self.users.find_one(filter).projection(profile_projection()))
            .await
    }

    async fn find_user(&self, filter: Document) -> StoreResult<Option<UserRecord>> {
        self.profile_doc(filter).await?.map(from_doc).transpose()
    }
}

#[async_trait]
impl UserStore for MongoStore {
    async fn create_user(
        &self,
        user: &UserRecord,
        credentials: &CredentialRecord,
    ) -> StoreResult<()> {
        self.insert(&self.users, user_doc(user, credentials)?).await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        self.find_user(doc! { "_id": id }).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.find_user(doc! { "email": email }).await
    }

    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let mut set = doc! { "updated_at": now };
        if let Some(name) = &update.display_name {
            set.insert("display_name", name.clone());
        }
        if let Some(verified) = update.email_verified {
            set.insert("email_verified", verified);
        }
        // `$set` of profile fields only: the credentials stay. FerretDB v1
        // takes no projection here, so the document comes back whole; the
        // hash is dropped by decoding into `UserRecord` and goes no further.
        self.run(
            self.users
                .find_one_and_update(doc! { "_id": id }, doc! { "$set": set })
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(from_doc)
        .transpose()
    }
}

//! [`UserStore`] on MongoDB: the `users` collection, one document per
//! account (profile and credential fields side by side, `_id` the user id,
//! unique index on `email`). Profile reads project the credential fields
//! away, so a hash never leaves the server on a profile read.

use async_trait::async_trait;
use mongodb::bson::{self, Document, doc};
use mongodb::options::ReturnDocument;

use super::credentials::CREDENTIAL_FIELDS;
use super::{MongoStore, from_doc, is_duplicate_key, map_err, run_bounded_raw, to_doc};
use crate::domain::UserId;
use crate::store::{
    AdminUpdate, CredentialRecord, ProfileUpdate, StoreError, StoreResult, UserRecord, UserStore,
};

/// Sets `field` to the value, or unsets it for `None` (an unset field is
/// left out of the document, as a record that never had it).
fn set_or_unset(set: &mut Document, unset: &mut Document, field: &str, value: &Option<String>) {
    match value {
        Some(v) => {
            set.insert(field, v.clone());
        }
        None => {
            unset.insert(field, "");
        }
    }
}

/// `s` with the characters that mean something in a regular expression
/// escaped, for an anchored prefix match.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.^$|?*+()[]{}-/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

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

    async fn create_users(
        &self,
        users: &[(UserRecord, CredentialRecord)],
    ) -> StoreResult<Vec<bool>> {
        // One insert each: the unique index decides, and a duplicate is a
        // skip, not a failure of the batch.
        let mut created = Vec::with_capacity(users.len());
        for (user, credentials) in users {
            match self.insert(&self.users, user_doc(user, credentials)?).await {
                Ok(()) => created.push(true),
                Err(StoreError::Conflict) => created.push(false),
                Err(e) => return Err(e),
            }
        }
        Ok(created)
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        self.find_user(doc! { "_id": id }).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.find_user(doc! { "email": email }).await
    }

    async fn update_profile(
        &self,
        id: &UserId,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let mut set = doc! { "updated_at": now };
        let mut unset = Document::new();
        if let Some(name) = &update.display_name {
            set.insert("display_name", name.clone());
        }
        for (field, value) in [
            ("locale", &update.locale),
            ("timezone", &update.timezone),
            ("metadata", &update.metadata),
        ] {
            if let Some(value) = value {
                set_or_unset(&mut set, &mut unset, field, value);
            }
        }
        if let Some(verified) = update.email_verified {
            set.insert("email_verified", verified);
        }
        let mut change = doc! { "$set": set };
        if !unset.is_empty() {
            change.insert("$unset", unset);
        }
        // `$set` of profile fields only: the credentials stay. FerretDB v1
        // takes no projection here, so the document comes back whole; the
        // hash is dropped by decoding into `UserRecord` and goes no further.
        self.run(
            self.users
                .find_one_and_update(doc! { "_id": id }, change)
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(from_doc)
        .transpose()
    }

    async fn change_email(&self, id: &UserId, email: &str, now: i64) -> StoreResult<bool> {
        // The address held by another account: refused up front. On
        // MongoDB the unique index on `email` also decides a race (duplicate
        // key → Conflict); FerretDB v1 does not report a clash on update,
        // so there only this check stands (see the module docs on FerretDB).
        let holder = self
            .run(
                self.users
                    .find_one(doc! { "email": email })
                    .projection(doc! { "_id": 1 }),
            )
            .await?;
        if holder
            .as_ref()
            .and_then(|d| d.get_str("_id").ok())
            .is_some_and(|holder| holder != id)
        {
            return Err(StoreError::Conflict);
        }
        let change = doc! { "$set": {
            "email": email,
            "email_verified": true,
            "updated_at": now,
        } };
        match run_bounded_raw(
            self.op_timeout,
            self.users.update_one(doc! { "_id": id }, change),
        )
        .await?
        {
            Ok(r) => Ok(r.matched_count > 0),
            Err(e) if is_duplicate_key(&e) => Err(StoreError::Conflict),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn list_users(
        &self,
        email_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut filter = Document::new();
        let mut email = Document::new();
        if !email_prefix.is_empty() {
            email.insert("$regex", format!("^{}", regex_escape(email_prefix)));
        }
        if let Some(after) = after {
            email.insert("$gt", after);
        }
        if !email.is_empty() {
            filter.insert("email", email);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.all_of(
            self.users
                .find(filter)
                .projection(profile_projection())
                .sort(doc! { "email": 1 })
                .limit(limit),
        )
        .await
    }

    async fn admin_update(
        &self,
        id: &UserId,
        update: &AdminUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let mut set = doc! { "updated_at": now };
        if let Some(disabled) = update.disabled {
            set.insert("disabled", disabled);
        }
        if let Some(roles) = &update.roles {
            set.insert("roles", roles.clone());
        }
        if let Some(verified) = update.email_verified {
            set.insert("email_verified", verified);
        }
        self.run(
            self.users
                .find_one_and_update(doc! { "_id": id }, doc! { "$set": set })
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(from_doc)
        .transpose()
    }

    async fn delete_user(&self, id: &UserId) -> StoreResult<bool> {
        // No transactions: sessions and the avatar first, the account
        // last, so an interrupted deletion leaves an account that can be
        // deleted again (never sessions of a gone account that nothing
        // would clean up before they expire).
        self.run(self.sessions.delete_many(doc! { "user_id": id }))
            .await?;
        self.run(self.avatars.delete_one(doc! { "_id": id }))
            .await?;
        self.run(self.identities.delete_many(doc! { "user_id": id }))
            .await?;
        let r = self.run(self.users.delete_one(doc! { "_id": id })).await?;
        Ok(r.deleted_count > 0)
    }
}

//! [`UserStore`] on redb: `users` (id → [`StoredUser`] JSON) and
//! `users_by_email` (normalized email → id).

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{EmbeddedStore, encode, get_json, modify, other};
use crate::store::{
    CredentialRecord, ProfileUpdate, StoreError, StoreResult, UserRecord, UserStore,
};

/// Id → the account as one JSON value ([`StoredUser`]).
pub(super) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// Normalized email → id (the unique index).
pub(super) const EMAILS: TableDefinition<&str, &str> = TableDefinition::new("users_by_email");

/// An account as stored: profile and credentials in one JSON object, the
/// fields of both side by side (the layout of the first release; key order
/// inside the object does not matter to any reader). Reading a
/// [`UserRecord`] or a [`CredentialRecord`] alone from it works because
/// serde ignores the other's fields.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredUser {
    #[serde(flatten)]
    pub user: UserRecord,
    #[serde(flatten)]
    pub credentials: CredentialRecord,
}

impl EmbeddedStore {
    /// Inserts many accounts in one write transaction (benchmark seeding);
    /// `Conflict`, and nothing written, when an email or id is taken.
    pub async fn bulk_insert_users(
        &self,
        users: &[(UserRecord, CredentialRecord)],
    ) -> StoreResult<()> {
        let users: Vec<StoredUser> = users
            .iter()
            .map(|(user, credentials)| StoredUser {
                user: user.clone(),
                credentials: credentials.clone(),
            })
            .collect();
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
            {
                let mut ut = txn.open_table(USERS).map_err(other)?;
                let mut et = txn.open_table(EMAILS).map_err(other)?;
                for stored in &users {
                    let u = &stored.user;
                    if et.get(u.email.as_str()).map_err(other)?.is_some()
                        || ut.get(u.id.as_str()).map_err(other)?.is_some()
                    {
                        return Err(StoreError::Conflict);
                    }
                    et.insert(u.email.as_str(), u.id.as_str()).map_err(other)?;
                    ut.insert(u.id.as_str(), encode(stored)?.as_slice())
                        .map_err(other)?;
                }
            }
            txn.commit().map_err(other)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(
        &self,
        user: &UserRecord,
        credentials: &CredentialRecord,
    ) -> StoreResult<()> {
        self.bulk_insert_users(&[(user.clone(), credentials.clone())])
            .await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            get_json(&txn.open_table(USERS).map_err(other)?, &id)
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let email = email.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let emails = txn.open_table(EMAILS).map_err(other)?;
            let Some(id) = emails
                .get(email.as_str())
                .map_err(other)?
                .map(|v| v.value().to_string())
            else {
                return Ok(None);
            };
            get_json(&txn.open_table(USERS).map_err(other)?, &id)
        })
        .await
    }

    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        let update = update.clone();
        self.run(move |db| {
            // The whole stored value, so the credentials are written back.
            modify(db, USERS, &id, |mut stored: StoredUser| {
                if let Some(name) = update.display_name {
                    stored.user.display_name = name;
                }
                if let Some(verified) = update.email_verified {
                    stored.user.email_verified = verified;
                }
                stored.user.updated_at = now;
                let user = stored.user.clone();
                (Some(stored), user)
            })
        })
        .await
    }
}

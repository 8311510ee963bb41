//! [`UserStore`] on redb: `users` (id → [`StoredUser`] JSON) and
//! `users_by_email` (normalized email → id).

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use std::ops::Bound;

use super::avatars::AVATARS;
use super::sessions::delete_all_of;
use super::{EmbeddedStore, decode, encode, get_json, modify, other};
use crate::domain::UserId;
use crate::store::{
    AdminUpdate, CredentialRecord, ProfileUpdate, StoreError, StoreResult, UserRecord, UserStore,
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
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
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

    async fn create_users(
        &self,
        users: &[(UserRecord, CredentialRecord)],
    ) -> StoreResult<Vec<bool>> {
        let users: Vec<StoredUser> = users
            .iter()
            .map(|(user, credentials)| StoredUser {
                user: user.clone(),
                credentials: credentials.clone(),
            })
            .collect();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let mut created = Vec::with_capacity(users.len());
            {
                let mut ut = txn.open_table(USERS).map_err(other)?;
                let mut et = txn.open_table(EMAILS).map_err(other)?;
                for stored in &users {
                    let u = &stored.user;
                    let taken = et.get(u.email.as_str()).map_err(other)?.is_some()
                        || ut.get(u.id.as_str()).map_err(other)?.is_some();
                    if !taken {
                        et.insert(u.email.as_str(), u.id.as_str()).map_err(other)?;
                        ut.insert(u.id.as_str(), encode(stored)?.as_slice())
                            .map_err(other)?;
                    }
                    created.push(!taken);
                }
            }
            txn.commit().map_err(other)?;
            Ok(created)
        })
        .await
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        self.read_now(move |db| {
            let txn = db.begin_read().map_err(other)?;
            get_json(&txn.open_table(USERS).map_err(other)?, &id)
        })
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let email = email.to_string();
        self.read_now(move |db| {
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
    }

    async fn update_profile(
        &self,
        id: &UserId,
        update: &ProfileUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        let update = update.clone();
        self.write(move |db| {
            // The whole stored value, so the credentials are written back.
            modify(db, USERS, &id, |mut stored: StoredUser| {
                let u = &mut stored.user;
                if let Some(name) = update.display_name {
                    u.display_name = name;
                }
                if let Some(locale) = update.locale {
                    u.locale = locale;
                }
                if let Some(timezone) = update.timezone {
                    u.timezone = timezone;
                }
                if let Some(metadata) = update.metadata {
                    u.metadata = metadata;
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

    async fn change_email(&self, id: &UserId, email: &str, now: i64) -> StoreResult<bool> {
        let (id, email) = (id.to_string(), email.to_string());
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let changed = {
                let mut ut = txn.open_table(USERS).map_err(other)?;
                let mut et = txn.open_table(EMAILS).map_err(other)?;
                let current: Option<StoredUser> = ut
                    .get(id.as_str())
                    .map_err(other)?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                match current {
                    None => false,
                    Some(mut stored) => {
                        let holder = et
                            .get(email.as_str())
                            .map_err(other)?
                            .map(|v| v.value().to_string());
                        if holder.is_some_and(|h| h != id) {
                            return Err(StoreError::Conflict);
                        }
                        et.remove(stored.user.email.as_str()).map_err(other)?;
                        et.insert(email.as_str(), id.as_str()).map_err(other)?;
                        stored.user.email = email.clone();
                        stored.user.email_verified = true;
                        stored.user.updated_at = now;
                        ut.insert(id.as_str(), encode(&stored)?.as_slice())
                            .map_err(other)?;
                        true
                    }
                }
            };
            txn.commit().map_err(other)?;
            Ok(changed)
        })
        .await
    }

    async fn list_users(
        &self,
        email_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>> {
        let prefix = email_prefix.to_string();
        let after = after.map(str::to_string);
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let emails = txn.open_table(EMAILS).map_err(other)?;
            let users = txn.open_table(USERS).map_err(other)?;
            // Start at the later of the prefix and the cursor.
            let start = match &after {
                Some(a) if a.as_str() >= prefix.as_str() => Bound::Excluded(a.as_str()),
                _ => Bound::Included(prefix.as_str()),
            };
            let mut out = Vec::new();
            for item in emails
                .range::<&str>((start, Bound::Unbounded))
                .map_err(other)?
            {
                if out.len() >= limit {
                    break;
                }
                let (email, id) = item.map_err(other)?;
                if !email.value().starts_with(prefix.as_str()) {
                    break;
                }
                if let Some(u) = get_json::<UserRecord>(&users, id.value())? {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn admin_update(
        &self,
        id: &UserId,
        update: &AdminUpdate,
        now: i64,
    ) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        let update = update.clone();
        self.write(move |db| {
            modify(db, USERS, &id, |mut stored: StoredUser| {
                let u = &mut stored.user;
                if let Some(disabled) = update.disabled {
                    u.disabled = disabled;
                }
                if let Some(roles) = update.roles {
                    u.roles = roles;
                }
                if let Some(verified) = update.email_verified {
                    u.email_verified = verified;
                }
                u.updated_at = now;
                let user = u.clone();
                (Some(stored), user)
            })
        })
        .await
    }

    async fn delete_user(&self, id: &UserId) -> StoreResult<bool> {
        let id = id.to_string();
        let cache = self.sessions.clone();
        self.write(move |db| {
            // One write transaction: the account, its email index entry, its
            // sessions and its avatar go together or not at all.
            let txn = super::commit::begin_write(db)?;
            let mut ended = Vec::new();
            {
                let mut users = txn.open_table(USERS).map_err(other)?;
                let Some(user) = get_json::<UserRecord>(&users, &id)? else {
                    return Ok(false);
                };
                users.remove(id.as_str()).map_err(other)?;
                txn.open_table(EMAILS)
                    .map_err(other)?
                    .remove(user.email.as_str())
                    .map_err(other)?;
                ended.extend(delete_all_of(&txn, &id)?);
                txn.open_table(AVATARS)
                    .map_err(other)?
                    .remove(id.as_str())
                    .map_err(other)?;
            }
            // Federated sign-in: its linked identities go with it.
            super::identities::delete_all_of(&txn, &id)?;
            let committed = txn.commit().map_err(other);
            cache.invalidate(ended.iter().map(String::as_str));
            committed?;
            Ok(true)
        })
        .await
    }
}

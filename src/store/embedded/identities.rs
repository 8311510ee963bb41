//! [`IdentityStore`] on redb: `identities` (id → [`IdentityRecord`] JSON),
//! `identities_by_key` (`provider\niss\nsub` → id, the unique index) and
//! `identities_by_user` (`<user id>/<id>`). Each write is one transaction
//! (redb admits one writer at a time), so the unique key and the
//! last-credential rule cannot race.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::users::USERS;
use super::{EmbeddedStore, encode, get_json, other};
use crate::domain::UserId;
use crate::store::{
    CredentialRecord, IdentityRecord, IdentityRemoval, IdentityStore, StoreError, StoreResult,
    identity_key,
};

/// Id → the identity as JSON.
pub(super) const IDENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("identities");
/// `provider\niss\nsub` → id.
pub(super) const IDENTITY_KEYS: TableDefinition<&str, &str> =
    TableDefinition::new("identities_by_key");
/// `<user id>/<identity id>`.
pub(super) const USER_IDENTITIES: TableDefinition<&str, ()> =
    TableDefinition::new("identities_by_user");

fn user_key(user_id: &str, id: &str) -> String {
    format!("{user_id}/{id}")
}

/// Ids of the user's identities, from the index.
fn ids_of(t: &impl ReadableTable<&'static str, ()>, user_id: &str) -> StoreResult<Vec<String>> {
    let prefix = format!("{user_id}/");
    let mut ids = Vec::new();
    for item in t.range(prefix.as_str()..).map_err(other)? {
        let (k, _) = item.map_err(other)?;
        match k.value().strip_prefix(prefix.as_str()) {
            Some(id) => ids.push(id.to_string()),
            None => break,
        }
    }
    Ok(ids)
}

/// Whether `user_id` has a linked identity.
pub(super) fn has_identities(db: &redb::Database, user_id: &str) -> StoreResult<bool> {
    let txn = db.begin_read().map_err(other)?;
    let by_user = txn.open_table(USER_IDENTITIES).map_err(other)?;
    Ok(!ids_of(&by_user, user_id)?.is_empty())
}

/// Removes every identity of `user_id` in the caller's transaction (account
/// deletion); returns how many.
pub(super) fn delete_all_of(txn: &WriteTransaction, user_id: &str) -> StoreResult<u64> {
    let mut by_user = txn.open_table(USER_IDENTITIES).map_err(other)?;
    let mut records = txn.open_table(IDENTITIES).map_err(other)?;
    let mut keys = txn.open_table(IDENTITY_KEYS).map_err(other)?;
    let mut n = 0;
    for id in ids_of(&by_user, user_id)? {
        if let Some(found) = get_json::<IdentityRecord>(&records, &id)? {
            keys.remove(found.key().as_str()).map_err(other)?;
        }
        records.remove(id.as_str()).map_err(other)?;
        by_user
            .remove(user_key(user_id, &id).as_str())
            .map_err(other)?;
        n += 1;
    }
    Ok(n)
}

#[async_trait]
impl IdentityStore for EmbeddedStore {
    async fn link_identity(&self, identity: &IdentityRecord) -> StoreResult<bool> {
        let identity = identity.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let users = txn.open_table(USERS).map_err(other)?;
                if users
                    .get(identity.user_id.as_str())
                    .map_err(other)?
                    .is_none()
                {
                    return Ok(false);
                }
                let mut keys = txn.open_table(IDENTITY_KEYS).map_err(other)?;
                let mut records = txn.open_table(IDENTITIES).map_err(other)?;
                let key = identity.key();
                if keys.get(key.as_str()).map_err(other)?.is_some()
                    || records.get(identity.id.as_str()).map_err(other)?.is_some()
                {
                    return Err(StoreError::Conflict);
                }
                keys.insert(key.as_str(), identity.id.as_str())
                    .map_err(other)?;
                records
                    .insert(identity.id.as_str(), encode(&identity)?.as_slice())
                    .map_err(other)?;
                txn.open_table(USER_IDENTITIES)
                    .map_err(other)?
                    .insert(user_key(&identity.user_id, &identity.id).as_str(), ())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(true)
        })
        .await
    }

    async fn identity_by_key(
        &self,
        provider: &str,
        iss: &str,
        sub: &str,
    ) -> StoreResult<Option<IdentityRecord>> {
        let key = identity_key(provider, iss, sub);
        self.read_now(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let keys = txn.open_table(IDENTITY_KEYS).map_err(other)?;
            let Some(id) = keys.get(key.as_str()).map_err(other)? else {
                return Ok(None);
            };
            let id = id.value().to_string();
            get_json(&txn.open_table(IDENTITIES).map_err(other)?, &id)
        })
    }

    async fn identities_of(&self, user_id: &UserId) -> StoreResult<Vec<IdentityRecord>> {
        let user_id = user_id.to_string();
        self.read_now(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let by_user = txn.open_table(USER_IDENTITIES).map_err(other)?;
            let records = txn.open_table(IDENTITIES).map_err(other)?;
            let mut out = Vec::new();
            for id in ids_of(&by_user, &user_id)? {
                if let Some(found) = get_json::<IdentityRecord>(&records, &id)? {
                    out.push(found);
                }
            }
            out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(out)
        })
    }

    async fn touch_identity(&self, id: &str, email: Option<&str>, now: i64) -> StoreResult<()> {
        let id = id.to_string();
        let email = email.map(str::to_string);
        self.write(move |db| {
            super::modify(db, IDENTITIES, &id, |mut found: IdentityRecord| {
                found.last_used_at = Some(now);
                if email.is_some() {
                    found.email = email;
                }
                (Some(found), ())
            })?;
            Ok(())
        })
        .await
    }

    async fn unlink_identity(&self, user_id: &UserId, id: &str) -> StoreResult<IdentityRemoval> {
        let user_id = user_id.to_string();
        let id = id.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let outcome = {
                let mut records = txn.open_table(IDENTITIES).map_err(other)?;
                let found = get_json::<IdentityRecord>(&records, &id)?;
                match found {
                    Some(found) if found.user_id == user_id => {
                        let mut by_user = txn.open_table(USER_IDENTITIES).map_err(other)?;
                        let others = ids_of(&by_user, &user_id)?.len().saturating_sub(1);
                        let creds: Option<CredentialRecord> =
                            get_json(&txn.open_table(USERS).map_err(other)?, &user_id)?;
                        let other_way_in = others > 0
                            || creds.is_some_and(|c| c.has_password() || !c.passkeys.is_empty());
                        if other_way_in {
                            records.remove(id.as_str()).map_err(other)?;
                            by_user
                                .remove(user_key(&user_id, &id).as_str())
                                .map_err(other)?;
                            txn.open_table(IDENTITY_KEYS)
                                .map_err(other)?
                                .remove(found.key().as_str())
                                .map_err(other)?;
                            IdentityRemoval::Removed(found)
                        } else {
                            IdentityRemoval::LastCredential
                        }
                    }
                    _ => IdentityRemoval::NotFound,
                }
            };
            if matches!(outcome, IdentityRemoval::Removed(_)) {
                txn.commit().map_err(other)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn delete_identities_of(&self, user_id: &UserId) -> StoreResult<u64> {
        let user_id = user_id.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let n = delete_all_of(&txn, &user_id)?;
            txn.commit().map_err(other)?;
            Ok(n)
        })
        .await
    }
}

//! [`AnonymousStore`] on redb. Guests live in `users` like every account;
//! the purge finds stale ones by a scan of `users` (off the async runtime,
//! in one read transaction: about a second per million accounts, once per
//! housekeeping round), which costs no index to keep in step with every
//! other write of an account.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};

use super::avatars::AVATARS;
use super::sessions::delete_all_of;
use super::users::{EMAILS, StoredUser, USERS};
use super::{EmbeddedStore, decode, encode, get_json, modify, other};
use crate::domain::UserId;
use crate::store::{AnonymousStore, StoreError, StoreResult, UserRecord};

/// Whether `u` is a guest last used before `cutoff`.
fn stale(u: &UserRecord, cutoff: i64) -> bool {
    u.anonymous && u.last_active_at.unwrap_or(u.created_at) < cutoff
}

#[async_trait]
impl AnonymousStore for EmbeddedStore {
    async fn touch_anonymous(&self, id: &UserId, now: i64) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(move |db| {
            Ok(modify(db, USERS, &id, |mut stored: StoredUser| {
                if !stored.user.anonymous {
                    return (None, false);
                }
                stored.user.last_active_at = Some(now);
                (Some(stored), true)
            })?
            .unwrap_or(false))
        })
        .await
    }

    async fn stale_anonymous(&self, cutoff: i64, limit: usize) -> StoreResult<Vec<UserId>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let users = txn.open_table(USERS).map_err(other)?;
            let mut out = Vec::new();
            for item in users.iter().map_err(other)? {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = item.map_err(other)?;
                let u: UserRecord = decode(v.value())?;
                if stale(&u, cutoff) {
                    out.push(u.id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_stale_anonymous(&self, id: &UserId, cutoff: i64) -> StoreResult<bool> {
        let id = id.to_string();
        let cache = self.sessions.clone();
        self.write(move |db| {
            // One write transaction: the check and the whole deletion (as
            // `delete_user` does it) together.
            let txn = super::commit::begin_write(db)?;
            let mut ended = Vec::new();
            {
                let mut users = txn.open_table(USERS).map_err(other)?;
                let Some(user) = get_json::<UserRecord>(&users, &id)? else {
                    return Ok(false);
                };
                if !stale(&user, cutoff) {
                    return Ok(false);
                }
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
            let committed = txn.commit().map_err(other);
            cache.invalidate(ended.iter().map(String::as_str));
            committed?;
            Ok(true)
        })
        .await
    }

    async fn upgrade_anonymous(
        &self,
        id: &UserId,
        email: &str,
        email_verified: bool,
        password_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (id, email, hash) = (id.to_string(), email.to_string(), password_hash.to_string());
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let upgraded = {
                let mut ut = txn.open_table(USERS).map_err(other)?;
                let mut et = txn.open_table(EMAILS).map_err(other)?;
                let current: Option<StoredUser> = ut
                    .get(id.as_str())
                    .map_err(other)?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                match current {
                    Some(mut stored) if stored.user.anonymous => {
                        if et.get(email.as_str()).map_err(other)?.is_some() {
                            return Err(StoreError::Conflict);
                        }
                        et.remove(stored.user.email.as_str()).map_err(other)?;
                        et.insert(email.as_str(), id.as_str()).map_err(other)?;
                        stored.user.email = email.clone();
                        stored.user.email_verified = email_verified;
                        stored.user.anonymous = false;
                        stored.user.last_active_at = None;
                        stored.user.updated_at = now;
                        stored.credentials.password_hash = hash.clone();
                        stored.credentials.legacy_bcrypt = false;
                        ut.insert(id.as_str(), encode(&stored)?.as_slice())
                            .map_err(other)?;
                        true
                    }
                    _ => false,
                }
            };
            txn.commit().map_err(other)?;
            Ok(upgraded)
        })
        .await
    }
}

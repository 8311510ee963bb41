//! The embedded store: redb, a pure-Rust ACID key-value store in one file
//! (`<data dir>/portcullis.redb`). Every write is one transaction committed
//! with `Durability::Immediate` (fsync before the commit returns), so a write
//! that answered 2xx survives `kill -9` and power loss; redb's copy-on-write
//! B-trees and checksummed commit slots make a torn write roll back to the
//! last commit on open. redb serializes writers, which makes the
//! compare-and-swap of refresh rotation trivially atomic.
//!
//! Records are JSON values in tables keyed by id, with index tables for the
//! email and for a user's sessions.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    LoginFailures, ProfileUpdate, RotateOutcome, Rotation, SessionRecord, SessionStore, Store,
    StoreError, StoreResult, UserRecord, UserStore, classify_rotation,
};

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const EMAILS: TableDefinition<&str, &str> = TableDefinition::new("users_by_email");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Failed sign-ins by account (JSON [`LoginFailures`]).
const FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("login_failures");
/// Single-use keys and when they may be forgotten.
const ONCE: TableDefinition<&str, i64> = TableDefinition::new("single_use");
/// Key: `<user id>/<session id>`.
const USER_SESSIONS: TableDefinition<&str, ()> = TableDefinition::new("sessions_by_user");

/// The redb-backed store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn encode<T: Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Other(e.into()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes)
        .context("corrupt record")
        .map_err(StoreError::Other)
}

fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Other(anyhow::Error::new(e))
}

fn user_session_key(user_id: &str, sid: &str) -> String {
    format!("{user_id}/{sid}")
}

/// Read-modify-write of one record in one write transaction (redb admits
/// one writer at a time, so nothing interleaves). `f` gets the record and
/// returns the version to write back, if any, and a result. `None` when
/// there is no record at `key`.
fn modify<T, R>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    f: impl FnOnce(T) -> (Option<T>, R),
) -> StoreResult<Option<R>>
where
    T: Serialize + DeserializeOwned,
{
    let txn = db.begin_write().map_err(other)?;
    let result = {
        let mut t = txn.open_table(table).map_err(other)?;
        let Some(current): Option<T> = t
            .get(key)
            .map_err(other)?
            .map(|v| decode(v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let (next, result) = f(current);
        if let Some(next) = next {
            t.insert(key, encode(&next)?.as_slice()).map_err(other)?;
        }
        result
    };
    txn.commit().map_err(other)?;
    Ok(Some(result))
}

impl EmbeddedStore {
    /// Opens (or creates) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let path = data_dir.join("portcullis.redb");
        let db = Database::create(&path).with_context(|| format!("opening {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(USERS)?;
        txn.open_table(EMAILS)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(USER_SESSIONS)?;
        txn.open_table(ONCE)?;
        txn.open_table(FAILURES)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs blocking database work off the async runtime.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Other(anyhow::anyhow!("store task failed: {e}")))?
    }

    fn get_session(db: &Database, sid: &str) -> StoreResult<Option<SessionRecord>> {
        let txn = db.begin_read().map_err(other)?;
        let t = txn.open_table(SESSIONS).map_err(other)?;
        t.get(sid)
            .map_err(other)?
            .map(|v| decode(v.value()))
            .transpose()
    }
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn bulk_insert_users(&self, users: &[UserRecord]) -> StoreResult<()> {
        let users = users.to_vec();
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
            {
                let mut ut = txn.open_table(USERS).map_err(other)?;
                let mut et = txn.open_table(EMAILS).map_err(other)?;
                for u in &users {
                    if et.get(u.email.as_str()).map_err(other)?.is_some() {
                        return Err(StoreError::Conflict);
                    }
                    et.insert(u.email.as_str(), u.id.as_str()).map_err(other)?;
                    ut.insert(u.id.as_str(), encode(u)?.as_slice())
                        .map_err(other)?;
                }
            }
            txn.commit().map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.bulk_insert_users(std::slice::from_ref(user)).await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let id = id.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(USERS).map_err(other)?;
            t.get(id.as_str())
                .map_err(other)?
                .map(|v| decode(v.value()))
                .transpose()
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
            let users = txn.open_table(USERS).map_err(other)?;
            users
                .get(id.as_str())
                .map_err(other)?
                .map(|v| decode(v.value()))
                .transpose()
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
            modify(db, USERS, &id, |mut user: UserRecord| {
                if let Some(name) = update.display_name {
                    user.display_name = name;
                }
                user.updated_at = now;
                (Some(user.clone()), user)
            })
        })
        .await
    }

    async fn set_password_hash(&self, id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let id = id.to_string();
        let hash = hash.to_string();
        self.run(move |db| {
            let done = modify(db, USERS, &id, |mut user: UserRecord| {
                user.password_hash = hash;
                user.updated_at = now;
                (Some(user), ())
            })?;
            Ok(done.is_some())
        })
        .await
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let s = session.clone();
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
            {
                let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
                if sessions.get(s.id.as_str()).map_err(other)?.is_some() {
                    return Err(StoreError::Conflict);
                }
                sessions
                    .insert(s.id.as_str(), encode(&s)?.as_slice())
                    .map_err(other)?;
                let mut by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
                by_user
                    .insert(user_session_key(&s.user_id, &s.id).as_str(), ())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        let sid = sid.to_string();
        self.run(move |db| Self::get_session(db, &sid)).await
    }

    async fn rotate(&self, rotation: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let sid = rotation.sid.to_string();
        let presented = rotation.presented_jti.to_string();
        let new_jti = rotation.new_jti.to_string();
        let (now, new_expires_at, grace_secs) =
            (rotation.now, rotation.new_expires_at, rotation.grace_secs);
        self.run(move |db| {
            let r = Rotation {
                sid: &sid,
                presented_jti: &presented,
                new_jti: &new_jti,
                now,
                new_expires_at,
                grace_secs,
            };
            let outcome = modify(db, SESSIONS, &sid, |current: SessionRecord| {
                let outcome = classify_rotation(&current, &r);
                let write = match &outcome {
                    RotateOutcome::Rotated(next) | RotateOutcome::Reused(next) => {
                        Some(next.clone())
                    }
                    RotateOutcome::Grace(_) | RotateOutcome::Invalid => None,
                };
                (write, outcome)
            })?;
            Ok(outcome.unwrap_or(RotateOutcome::Invalid))
        })
        .await
    }

    async fn sessions_of(&self, user_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
        let prefix = format!("{user_id}/");
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
            let sessions = txn.open_table(SESSIONS).map_err(other)?;
            let mut out = Vec::new();
            for item in by_user.range(prefix.as_str()..).map_err(other)? {
                let (k, _) = item.map_err(other)?;
                let key = k.value();
                let Some(sid) = key.strip_prefix(prefix.as_str()) else {
                    break;
                };
                if let Some(v) = sessions.get(sid).map_err(other)? {
                    let s: SessionRecord = decode(v.value())?;
                    if s.is_active(now) {
                        out.push(s);
                    }
                }
            }
            out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            Ok(out)
        })
        .await
    }

    async fn revoke_session(&self, user_id: &str, sid: &str, now: i64) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        let sid = sid.to_string();
        self.run(move |db| {
            let revoked = modify(db, SESSIONS, &sid, |mut s: SessionRecord| {
                if s.user_id != user_id || !s.is_active(now) {
                    return (None, false);
                }
                s.revoked_at = Some(now);
                (Some(s), true)
            })?;
            Ok(revoked == Some(true))
        })
        .await
    }

    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let prefix = format!("{user_id}/");
        let keep = keep.map(str::to_string);
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
            let mut n = 0;
            {
                let by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
                let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
                let mut sids = Vec::new();
                for item in by_user.range(prefix.as_str()..).map_err(other)? {
                    let (k, _) = item.map_err(other)?;
                    match k.value().strip_prefix(prefix.as_str()) {
                        Some(sid) => sids.push(sid.to_string()),
                        None => break,
                    }
                }
                for sid in sids {
                    if keep.as_deref() == Some(sid.as_str()) {
                        continue;
                    }
                    let Some(mut s): Option<SessionRecord> = sessions
                        .get(sid.as_str())
                        .map_err(other)?
                        .map(|v| decode(v.value()))
                        .transpose()?
                    else {
                        continue;
                    };
                    if s.is_active(now) {
                        s.revoked_at = Some(now);
                        sessions
                            .insert(sid.as_str(), encode(&s)?.as_slice())
                            .map_err(other)?;
                        n += 1;
                    }
                }
            }
            txn.commit().map_err(other)?;
            Ok(n)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
            let mut n = 0;
            {
                let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
                let mut by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
                let mut expired = Vec::new();
                for item in sessions.iter().map_err(other)? {
                    let (k, v) = item.map_err(other)?;
                    let s: SessionRecord = decode(v.value())?;
                    if s.expires_at <= now {
                        expired.push((k.value().to_string(), s.user_id));
                    }
                }
                let mut once = txn.open_table(ONCE).map_err(other)?;
                once.retain(|_, exp| exp > now).map_err(other)?;
                let mut failures = txn.open_table(FAILURES).map_err(other)?;
                failures
                    .retain(|_, v| {
                        serde_json::from_slice::<LoginFailures>(v).is_ok_and(|r| r.expires_at > now)
                    })
                    .map_err(other)?;
                for (sid, user_id) in expired {
                    sessions.remove(sid.as_str()).map_err(other)?;
                    by_user
                        .remove(user_session_key(&user_id, &sid).as_str())
                        .map_err(other)?;
                    n += 1;
                }
            }
            txn.commit().map_err(other)?;
            Ok(n)
        })
        .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()> {
        let account = account.to_string();
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
            {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                let mut record: LoginFailures = t
                    .get(account.as_str())
                    .map_err(other)?
                    .map(|v| decode(v.value()))
                    .transpose()?
                    .unwrap_or_default();
                record.push(now, window);
                t.insert(account.as_str(), encode(&record)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn login_failures(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>> {
        let account = account.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(FAILURES).map_err(other)?;
            let record: Option<LoginFailures> = t
                .get(account.as_str())
                .map_err(other)?
                .map(|v| decode(v.value()))
                .transpose()?;
            Ok(record.map(|r| r.within(now, window)).unwrap_or_default())
        })
        .await
    }

    async fn clear_login_failures(&self, account: &str) -> StoreResult<()> {
        let account = account.to_string();
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
            {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                t.remove(account.as_str()).map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn claim_once(&self, key: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
        let key = key.to_string();
        self.run(move |db| {
            let txn = db.begin_write().map_err(other)?;
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

    async fn ping(&self) -> StoreResult<()> {
        self.run(|db| {
            let txn = db.begin_read().map_err(other)?;
            txn.open_table(USERS).map_err(other)?;
            Ok(())
        })
        .await
    }

    fn describe(&self) -> String {
        "embedded (redb)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        super::super::conformance::run_all(store).await;
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let user = super::super::conformance::user("reopen@example.com");
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store.create_user(&user).await.unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            store.user_by_email("reopen@example.com").await.unwrap(),
            Some(user)
        );
    }
}

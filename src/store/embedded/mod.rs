//! The embedded store: redb, a pure-Rust ACID key-value store in one file
//! (`<data dir>/portcullis.redb`). Every write is one transaction committed
//! with `Durability::Immediate` (fsync before the commit returns), so a write
//! that answered 2xx survives `kill -9` and power loss; redb's copy-on-write
//! B-trees and checksummed commit slots make a torn write roll back to the
//! last commit on open. redb serializes writers, which makes the
//! compare-and-swap of refresh rotation trivially atomic.
//!
//! Records are JSON values in tables keyed by id, with index tables for the
//! email and for a user's sessions. A user's profile and credentials are one
//! JSON value in `users` ([`users::StoredUser`]; see
//! [`records`](super::records)). One file per trait: `users.rs`,
//! `credentials.rs`, `sessions.rs`, `once.rs`, `throttles.rs`, `avatars.rs`,
//! `security.rs`, `email.rs` (tickets and the mail queue), `ceremonies.rs`.

mod anonymous;
mod avatars;
mod commit;
// Session state in memory.
mod cache;
mod credentials;
mod email;
// Federated sign-in.
mod identities;
mod once;
mod security;
// Passkeys.
mod ceremonies;
mod oauth;
mod sessions;
mod throttles;
mod users;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::UserId;

use super::{Store, StoreError, StoreResult, UserRecord};

/// The redb-backed store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// The thread that runs the store's writes (see [`commit::Writer`]).
    writer: Arc<commit::Writer>,
    /// What the bearer check reads of sessions, invalidated by every
    /// session write of this store (see `cache.rs`).
    sessions: Arc<cache::SessionCache>,
}

fn encode<T: Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Other(e.into()))
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes)
        .context("corrupt record")
        .map_err(StoreError::Other)
}

fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Other(anyhow::Error::new(e))
}

/// The JSON record at `key`, decoded; `None` when there is none.
fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> StoreResult<Option<T>> {
    table
        .get(key)
        .map_err(other)?
        .map(|v| decode(v.value()))
        .transpose()
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
    let txn = commit::begin_write(db)?;
    let Some(result) = modify_in(&txn, table, key, f)? else {
        return Ok(None);
    };
    txn.commit().map_err(other)?;
    Ok(Some(result))
}

/// [`modify`] in the caller's write transaction (which commits).
fn modify_in<T, R>(
    txn: &redb::WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    f: impl FnOnce(T) -> (Option<T>, R),
) -> StoreResult<Option<R>>
where
    T: Serialize + DeserializeOwned,
{
    let mut t = txn.open_table(table).map_err(other)?;
    let Some(current) = get_json::<T>(&t, key)? else {
        return Ok(None);
    };
    let (next, result) = f(current);
    if let Some(next) = next {
        t.insert(key, encode(&next)?.as_slice()).map_err(other)?;
    }
    Ok(Some(result))
}

/// The embedded store's file is open in another process (a running
/// server): redb lets one process at a time open it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is open in another process (a running portcullis server?): the embedded store opens in one process at a time; stop that process first, or share a MongoDB store (PORTCULLIS_MONGODB_URI)",
    path.display()
)]
pub struct StoreInUse {
    /// The database file.
    pub path: std::path::PathBuf,
}

/// Bytes of redb page cache unless configured (`PORTCULLIS_REDB_CACHE_SIZE`;
/// redb's own default, 1 GiB, let the RSS grow with the store under load).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl EmbeddedStore {
    /// Opens (or creates) the database in `data_dir`, with the default cache.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the database in `data_dir`; redb caches at most
    /// `cache_bytes` of pages in memory (reads beyond it go to the file,
    /// usually the kernel's page cache).
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let path = data_dir.join("portcullis.redb");
        let db = match redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(&path)
        {
            Ok(db) => db,
            Err(
                redb::DatabaseError::DatabaseAlreadyOpen
                | redb::DatabaseError::LockProtocolMismatch,
            ) => return Err(StoreInUse { path }.into()),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("opening {}", path.display())));
            }
        };
        let txn = db.begin_write()?;
        txn.open_table(users::USERS)?;
        txn.open_table(users::EMAILS)?;
        txn.open_table(sessions::SESSIONS)?;
        txn.open_table(sessions::USER_SESSIONS)?;
        txn.open_table(sessions::ENDED_USER_SESSIONS)?;
        txn.open_table(once::ONCE)?;
        txn.open_table(throttles::FAILURES)?;
        txn.open_table(avatars::AVATARS)?;
        security::create_tables(&txn)?;
        txn.open_table(email::TICKETS)?;
        txn.open_table(email::MAIL_QUEUE)?;
        txn.open_table(email::MAIL_SENT)?;
        txn.open_table(ceremonies::CEREMONIES)?;
        txn.open_table(identities::IDENTITIES)?;
        txn.open_table(identities::IDENTITY_KEYS)?;
        txn.open_table(identities::USER_IDENTITIES)?;
        txn.open_table(oauth::CLIENTS)?;
        txn.open_table(oauth::CONSENTS)?;
        txn.commit()?;
        let db = Arc::new(db);
        Ok(Self {
            writer: Arc::new(commit::Writer::start(db.clone())?),
            db,
            sessions: Arc::new(cache::SessionCache::new(cache::DEFAULT_CAPACITY)),
        })
    }

    /// Runs a point read (a key or two, no scan) on the calling thread. A
    /// redb read never waits for a writer (nor for its fsync), and a read
    /// of cached pages costs about 21k instructions, against about 25k and
    /// two thread switches through `spawn_blocking` (measured under
    /// callgrind, `examples/redb_read_cost.rs`); only a page missing from
    /// redb's cache makes it a `pread` on an async worker.
    fn read_now<T>(&self, f: impl FnOnce(&Database) -> StoreResult<T>) -> StoreResult<T> {
        f(&self.db)
    }

    /// Runs a write on the store's writer thread (see [`commit::Writer`]):
    /// answered once the batch holding it is durable.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// Runs blocking database work off the async runtime (reads: scans and
    /// listings; writes go through [`Self::write`]). Should the work begin a
    /// write transaction anyway, it returns only once that write is durable
    /// (whatever the work's own result: a write committed before an error
    /// is still a write), with a flush of its own.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let (result, wrote) = commit::tracking_writes(|| f(&db));
            if wrote {
                commit::flush(&db)?;
            }
            result
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("store task failed: {e}")))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let cache = self.sessions.clone();
        self.write(move |db| {
            let txn = commit::begin_write(db)?;
            let sessions = sessions::purge_expired(&txn, now)?;
            once::purge_expired(&txn, now)?;
            throttles::purge_expired(&txn, now)?;
            ceremonies::purge_expired(&txn, now)?;
            txn.commit().map_err(other)?;
            cache.invalidate_expired(now);
            Ok(sessions)
        })
        .await
    }

    async fn live_session_user(
        &self,
        sid: &str,
        user_id: &UserId,
        now: i64,
    ) -> StoreResult<(bool, Option<UserRecord>)> {
        sessions::live(self, sid, user_id, now, true)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(|db| {
            let txn = db.begin_read().map_err(other)?;
            txn.open_table(users::USERS).map_err(other)?;
            Ok(())
        })
        .await
    }

    fn describe(&self) -> String {
        "embedded (redb)".to_string()
    }
}

//! [`ThrottleStore`] on redb: `login_failures` (account → JSON
//! [`LoginFailures`]: the failures and the places of checks in flight).
//! Every change is one write transaction, and redb admits one writer at a
//! time, so nothing here can race.

use async_trait::async_trait;
use redb::{ReadableDatabase, TableDefinition, WriteTransaction};

use super::{EmbeddedStore, encode, get_json, other};
use crate::store::{LoginFailures, StoreResult, ThrottleStore};

/// Failed sign-ins by account (JSON [`LoginFailures`]).
pub(super) const FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("login_failures");

/// Deletes the failure records expired by `now` (and any that do not
/// decode), in the caller's transaction.
pub(super) fn purge_expired(txn: &WriteTransaction, now: i64) -> StoreResult<()> {
    let mut failures = txn.open_table(FAILURES).map_err(other)?;
    failures
        .retain(|_, v| serde_json::from_slice::<LoginFailures>(v).is_ok_and(|r| r.expires_at > now))
        .map_err(other)
}

#[async_trait]
impl ThrottleStore for EmbeddedStore {
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()> {
        let account = account.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_volatile_write(db)?;
            {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                let mut record: LoginFailures = get_json(&t, &account)?.unwrap_or_default();
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
            let record: Option<LoginFailures> =
                get_json(&txn.open_table(FAILURES).map_err(other)?, &account)?;
            Ok(record.map(|r| r.within(now, window)).unwrap_or_default())
        })
        .await
    }

    async fn reserve_login_attempt(
        &self,
        account: &str,
        limit: u32,
        now: i64,
        window: i64,
    ) -> StoreResult<Option<String>> {
        // redb admits one writer at a time: the count and the push are one
        // transaction, so racing reservations cannot pass the limit.
        let account = account.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_volatile_write(db)?;
            let granted = {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                let mut record: LoginFailures = get_json(&t, &account)?.unwrap_or_default();
                let granted = record.reserve(limit, now, window);
                if granted.is_some() {
                    t.insert(account.as_str(), encode(&record)?.as_slice())
                        .map_err(other)?;
                }
                granted
            };
            txn.commit().map_err(other)?;
            Ok(granted)
        })
        .await
    }

    async fn fail_login_attempt(
        &self,
        account: &str,
        attempt: &str,
        now: i64,
        window: i64,
    ) -> StoreResult<()> {
        let (account, attempt) = (account.to_string(), attempt.to_string());
        self.write(move |db| {
            let txn = super::commit::begin_volatile_write(db)?;
            {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                let mut record: LoginFailures = get_json(&t, &account)?.unwrap_or_default();
                record.unreserve(&attempt);
                record.push(now, window);
                t.insert(account.as_str(), encode(&record)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn release_login_attempt(&self, account: &str, attempt: &str) -> StoreResult<()> {
        let (account, attempt) = (account.to_string(), attempt.to_string());
        self.write(move |db| {
            let txn = super::commit::begin_volatile_write(db)?;
            {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                let record: Option<LoginFailures> = get_json(&t, &account)?;
                if let Some(mut record) = record
                    && record.unreserve(&attempt)
                {
                    if record.is_empty() {
                        t.remove(account.as_str()).map_err(other)?;
                    } else {
                        t.insert(account.as_str(), encode(&record)?.as_slice())
                            .map_err(other)?;
                    }
                }
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn clear_login_failures(&self, account: &str) -> StoreResult<()> {
        let account = account.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_volatile_write(db)?;
            {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                let record: Option<LoginFailures> = get_json(&t, &account)?;
                match record {
                    // Checks still in flight keep their places.
                    Some(mut record) if !record.pending.is_empty() => {
                        record.times.clear();
                        t.insert(account.as_str(), encode(&record)?.as_slice())
                            .map_err(other)?;
                    }
                    Some(_) => {
                        t.remove(account.as_str()).map_err(other)?;
                    }
                    None => {}
                }
            }
            txn.commit().map_err(other)
        })
        .await
    }
}

//! [`ThrottleStore`] on redb: `login_failures` (account → JSON
//! [`LoginFailures`]).

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
                if record.within(now, window).len() >= limit as usize {
                    false
                } else {
                    record.push(now, window);
                    t.insert(account.as_str(), encode(&record)?.as_slice())
                        .map_err(other)?;
                    true
                }
            };
            txn.commit().map_err(other)?;
            Ok(granted.then(|| now.to_string()))
        })
        .await
    }

    async fn release_login_attempt(&self, account: &str, attempt: &str) -> StoreResult<()> {
        let Ok(at) = attempt.parse::<i64>() else {
            return Ok(());
        };
        let account = account.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_volatile_write(db)?;
            {
                let mut t = txn.open_table(FAILURES).map_err(other)?;
                let record: Option<LoginFailures> = get_json(&t, &account)?;
                if let Some(mut record) = record
                    && let Some(i) = record.times.iter().rposition(|t| *t == at)
                {
                    record.times.remove(i);
                    t.insert(account.as_str(), encode(&record)?.as_slice())
                        .map_err(other)?;
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
                t.remove(account.as_str()).map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }
}

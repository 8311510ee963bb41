//! [`AuditStore`], [`WebhookStore`] and [`DeviceStore`] on redb:
//! `audit_events` (sortable id → JSON [`AuditRecord`]) with the index
//! `audit_by_user` (`<user id>/<event id>`), `webhook_queue` (event id →
//! JSON [`WebhookDelivery`]) and `known_devices` (user id → JSON
//! [`KnownDevices`]).

use std::ops::Bound;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{EmbeddedStore, decode, encode, get_json, other};
use crate::domain::UserId;
use crate::store::{
    AuditQuery, AuditRecord, AuditStore, DeviceStore, KnownDevices, StoreResult, WebhookDelivery,
    WebhookStore,
};

/// Audit events by id.
pub(super) const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_events");
/// `<user id>/<event id>` → (): a user's events in id order.
pub(super) const AUDIT_BY_USER: TableDefinition<&str, ()> = TableDefinition::new("audit_by_user");
/// Pending webhook deliveries by event id.
pub(super) const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_queue");
/// Known devices by user id.
pub(super) const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("known_devices");

/// Creates the tables (at open).
pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(AUDIT)?;
    txn.open_table(AUDIT_BY_USER)?;
    txn.open_table(WEBHOOKS)?;
    txn.open_table(DEVICES)?;
    Ok(())
}

/// `(lower, upper)` bounds of ids under `prefix` (`""` for the whole table).
fn bounds(prefix: &str, q: &AuditQuery) -> (Bound<String>, Bound<String>) {
    let lower = Bound::Included(format!("{prefix}{}", q.lower_id().unwrap_or_default()));
    let upper = match q.upper_id() {
        Some(u) => Bound::Excluded(format!("{prefix}{u}")),
        // Every id is digits and hex: `~` sorts after all of them.
        None => Bound::Excluded(format!("{prefix}~")),
    };
    (lower, upper)
}

fn as_str(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(s) => Bound::Included(s.as_str()),
        Bound::Excluded(s) => Bound::Excluded(s.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[async_trait]
impl AuditStore for EmbeddedStore {
    async fn append_audit(&self, events: &[AuditRecord]) -> StoreResult<()> {
        let events = events.to_vec();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(AUDIT).map_err(other)?;
                let mut by_user = txn.open_table(AUDIT_BY_USER).map_err(other)?;
                for e in &events {
                    if t.get(e.id.as_str()).map_err(other)?.is_some() {
                        continue;
                    }
                    t.insert(e.id.as_str(), encode(e)?.as_slice())
                        .map_err(other)?;
                    if let Some(user) = &e.user_id {
                        by_user
                            .insert(format!("{user}/{}", e.id).as_str(), ())
                            .map_err(other)?;
                    }
                }
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn audit_events(&self, query: &AuditQuery, now: i64) -> StoreResult<Vec<AuditRecord>> {
        let q = query.clone();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let events = txn.open_table(AUDIT).map_err(other)?;
            let mut out = Vec::new();
            if let Some(user) = &q.user_id {
                let prefix = format!("{user}/");
                let (lo, hi) = bounds(&prefix, &q);
                let index = txn.open_table(AUDIT_BY_USER).map_err(other)?;
                for item in index
                    .range::<&str>((as_str(&lo), as_str(&hi)))
                    .map_err(other)?
                    .rev()
                {
                    let (k, _) = item.map_err(other)?;
                    let id = k.value().strip_prefix(prefix.as_str()).unwrap_or_default();
                    if let Some(e) = get_json::<AuditRecord>(&events, id)?
                        && q.matches(&e, now)
                    {
                        out.push(e);
                        if out.len() >= q.limit {
                            break;
                        }
                    }
                }
            } else {
                let (lo, hi) = bounds("", &q);
                for item in events
                    .range::<&str>((as_str(&lo), as_str(&hi)))
                    .map_err(other)?
                    .rev()
                {
                    let (_, v) = item.map_err(other)?;
                    let e: AuditRecord = decode(v.value())?;
                    if q.matches(&e, now) {
                        out.push(e);
                        if out.len() >= q.limit {
                            break;
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn purge_audit(&self, now: i64) -> StoreResult<u64> {
        // In chunks of PURGE_CHUNK events, one write transaction each, so
        // the writer serves other writes between chunks whatever the size
        // of the table.
        let mut after: Option<String> = None;
        let mut purged = 0;
        loop {
            let from = after.clone();
            let (last, n) = self
                .write(move |db| purge_audit_chunk(db, from.as_deref(), now))
                .await?;
            purged += n;
            match last {
                Some(last) => after = Some(last),
                None => return Ok(purged),
            }
        }
    }

    async fn add_audit_counts(&self, events: &[AuditRecord]) -> StoreResult<()> {
        let events = events.to_vec();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(AUDIT).map_err(other)?;
                let mut by_user = txn.open_table(AUDIT_BY_USER).map_err(other)?;
                for e in events {
                    let stored = match get_json::<AuditRecord>(&t, &e.id)? {
                        Some(old) => old.counted(e.count()),
                        None => {
                            if let Some(user) = &e.user_id {
                                by_user
                                    .insert(format!("{user}/{}", e.id).as_str(), ())
                                    .map_err(other)?;
                            }
                            e
                        }
                    };
                    t.insert(stored.id.as_str(), encode(&stored)?.as_slice())
                        .map_err(other)?;
                }
            }
            txn.commit().map_err(other)
        })
        .await
    }
}

/// Audit events one purge transaction looks at, at most.
const PURGE_CHUNK: usize = 1000;

/// Deletes the expired events among the next [`PURGE_CHUNK`] after `after`
/// (from the start when `None`); returns the last id looked at (`None`
/// when the table's end was reached) and how many were deleted.
fn purge_audit_chunk(
    db: &redb::Database,
    after: Option<&str>,
    now: i64,
) -> StoreResult<(Option<String>, u64)> {
    let txn = super::commit::begin_write(db)?;
    let mut purged = 0;
    let mut last = None;
    {
        let mut t = txn.open_table(AUDIT).map_err(other)?;
        let mut by_user = txn.open_table(AUDIT_BY_USER).map_err(other)?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut expired = Vec::new();
        let mut seen = 0;
        for item in t.range::<&str>((lower, Bound::Unbounded)).map_err(other)? {
            let (k, v) = item.map_err(other)?;
            let id = k.value().to_string();
            match serde_json::from_slice::<AuditRecord>(v.value()).ok() {
                Some(e) if e.expires_at > now => {}
                Some(e) => expired.push((id.clone(), e.user_id)),
                None => expired.push((id.clone(), None)),
            }
            seen += 1;
            if seen >= PURGE_CHUNK {
                last = Some(id);
                break;
            }
        }
        for (id, user) in expired {
            t.remove(id.as_str()).map_err(other)?;
            if let Some(user) = user {
                by_user
                    .remove(format!("{user}/{id}").as_str())
                    .map_err(other)?;
            }
            purged += 1;
        }
    }
    txn.commit().map_err(other)?;
    Ok((last, purged))
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn enqueue_webhooks(&self, deliveries: &[WebhookDelivery]) -> StoreResult<()> {
        let deliveries = deliveries.to_vec();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(WEBHOOKS).map_err(other)?;
                for d in &deliveries {
                    if t.get(d.id.as_str()).map_err(other)?.is_none() {
                        t.insert(d.id.as_str(), encode(d)?.as_slice())
                            .map_err(other)?;
                    }
                }
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn due_webhooks(&self, now: i64, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(WEBHOOKS).map_err(other)?;
            let mut out = Vec::new();
            // Ids are time-ordered: iteration is oldest first.
            for item in t.iter().map_err(other)? {
                let (_, v) = item.map_err(other)?;
                let d: WebhookDelivery = decode(v.value())?;
                if d.next_at <= now && d.expires_at > now {
                    out.push(d);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn webhook_done(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(WEBHOOKS).map_err(other)?;
                t.remove(id.as_str()).map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn webhook_retry(&self, id: &str, attempts: u32, next_at: i64) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |db| {
            super::modify::<WebhookDelivery, ()>(db, WEBHOOKS, &id, |mut d| {
                d.attempts = attempts;
                d.next_at = next_at;
                (Some(d), ())
            })
            .map(|_| ())
        })
        .await
    }

    async fn purge_webhooks(&self, now: i64) -> StoreResult<u64> {
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let before;
            let after;
            {
                let mut t = txn.open_table(WEBHOOKS).map_err(other)?;
                before = t.len().map_err(other)?;
                t.retain(|_, v| {
                    serde_json::from_slice::<WebhookDelivery>(v).is_ok_and(|d| d.expires_at > now)
                })
                .map_err(other)?;
                after = t.len().map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(before.saturating_sub(after))
        })
        .await
    }
}

#[async_trait]
impl DeviceStore for EmbeddedStore {
    async fn note_device(
        &self,
        user_id: &UserId,
        key: &str,
        network: &str,
        now: i64,
        max: usize,
    ) -> StoreResult<KnownDevices> {
        let (user_id, key, network) = (user_id.to_string(), key.to_string(), network.to_string());
        self.write(move |db| {
            let txn = super::commit::begin_volatile_write(db)?;
            let before;
            {
                let mut t = txn.open_table(DEVICES).map_err(other)?;
                before = get_json::<KnownDevices>(&t, &user_id)?.unwrap_or_default();
                let mut after = before.clone();
                after.sight(&key, &network, now, max);
                t.insert(user_id.as_str(), encode(&after)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(before)
        })
        .await
    }

    async fn forget_device(&self, user_id: &UserId, key: &str) -> StoreResult<()> {
        let (user_id, key) = (user_id.to_string(), key.to_string());
        self.write(move |db| {
            super::modify::<KnownDevices, ()>(db, DEVICES, &user_id, |mut d| {
                d.forget(&key);
                (Some(d), ())
            })
            .map(|_| ())
        })
        .await
    }
}

//! [`AuditStore`], [`WebhookStore`] and [`DeviceStore`] on MongoDB:
//! collections `audit_events` (`_id` the sortable event id; TTL index on
//! `expires_at_date` where the server has TTL, and the purge everywhere),
//! `audit_counts` (counts added to an aggregated event after its first),
//! `webhook_queue` (`_id` the event id) and `known_devices` (`_id` the user
//! id). Every operation is single-document or an idempotent batch: an
//! event or delivery written twice keeps one copy (duplicate `_id`).

use async_trait::async_trait;
use mongodb::bson::{self, Document, doc};
use mongodb::{Collection, IndexModel};

use super::{MongoStore, index, is_duplicate_key, map_err, run_bounded_raw, to_doc};
use crate::domain::UserId;
use crate::store::{
    AuditQuery, AuditRecord, AuditStore, DeviceStore, KnownDevices, StoreError, StoreResult,
    WebhookDelivery, WebhookStore,
};

const AUDIT_EVENTS: &str = "audit_events";
const WEBHOOK_QUEUE: &str = "webhook_queue";
const KNOWN_DEVICES: &str = "known_devices";
/// Counts added to an aggregated audit event after its first (see
/// `add_audit_counts`).
const AUDIT_COUNTS: &str = "audit_counts";

impl MongoStore {
    fn audit_coll(&self) -> Collection<Document> {
        self.db.collection(AUDIT_EVENTS)
    }

    fn webhook_coll(&self) -> Collection<Document> {
        self.db.collection(WEBHOOK_QUEUE)
    }

    fn device_coll(&self) -> Collection<Document> {
        self.db.collection(KNOWN_DEVICES)
    }

    fn count_coll(&self) -> Collection<Document> {
        self.db.collection(AUDIT_COUNTS)
    }

    /// Indexes of the security collections; returns whether the audit TTL
    /// index was accepted (FerretDB v1: no, and the purge does its work).
    pub(super) async fn ensure_security_indexes(&self) -> StoreResult<bool> {
        let audit = self.audit_coll();
        let models: [IndexModel; 3] = [
            index(doc! { "user_id": 1, "_id": -1 }, "user_id_id"),
            index(doc! { "kind": 1, "_id": -1 }, "kind_id"),
            index(doc! { "expires_at": 1 }, "expires_at"),
        ];
        for m in models {
            self.create_index(&audit, m).await?;
        }
        self.create_index(
            &self.webhook_coll(),
            index(doc! { "next_at": 1 }, "next_at"),
        )
        .await?;
        self.create_index(
            &self.count_coll(),
            index(doc! { "event_id": 1 }, "event_id"),
        )
        .await?;
        self.create_ttl_index(&audit).await
    }

    /// Inserts documents, skipping any whose `_id` is already there.
    async fn insert_all_once(
        &self,
        coll: &Collection<Document>,
        docs: Vec<Document>,
    ) -> StoreResult<()> {
        if docs.is_empty() {
            return Ok(());
        }
        match run_bounded_raw(
            self.op_timeout,
            coll.insert_many(docs.clone()).ordered(false),
        )
        .await?
        {
            Ok(_) => Ok(()),
            // Some were there already (a retried batch): insert one by one,
            // ignoring exactly the duplicates.
            Err(_) => {
                for d in docs {
                    match self.insert(coll, d).await {
                        Ok(()) | Err(StoreError::Conflict) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }
}

#[async_trait]
impl AuditStore for MongoStore {
    async fn append_audit(&self, events: &[AuditRecord]) -> StoreResult<()> {
        let docs = events.iter().map(to_doc).collect::<StoreResult<Vec<_>>>()?;
        self.insert_all_once(&self.audit_coll(), docs).await
    }

    async fn audit_events(&self, q: &AuditQuery, now: i64) -> StoreResult<Vec<AuditRecord>> {
        let mut filter = doc! { "expires_at": { "$gt": now } };
        let mut id = Document::new();
        if let Some(lo) = q.lower_id() {
            id.insert("$gte", lo);
        }
        if let Some(hi) = q.upper_id() {
            id.insert("$lt", hi);
        }
        if !id.is_empty() {
            filter.insert("_id", id);
        }
        if let Some(u) = &q.user_id {
            filter.insert("user_id", u);
        }
        if let Some(ip) = &q.ip {
            filter.insert("ip", ip);
        }
        if let Some(k) = &q.kind {
            match k.strip_suffix('*') {
                // Kinds are lower-case letters, `.` and `_`: all sort below `~`.
                Some(prefix) => {
                    filter.insert("kind", doc! { "$gte": prefix, "$lt": format!("{prefix}~") });
                }
                None => {
                    filter.insert("kind", k);
                }
            }
        }
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let found: Vec<AuditRecord> = self
            .all_of(
                self.audit_coll()
                    .find(filter)
                    .sort(doc! { "_id": -1 })
                    .limit(limit),
            )
            .await?;
        // The same rule as the embedded store decides, whatever the
        // server's query engine did.
        let out = found.into_iter().filter(|e| q.matches(e, now)).collect();
        self.with_extra_counts(out).await
    }

    async fn purge_audit(&self, now: i64) -> StoreResult<u64> {
        let r = self
            .run(
                self.audit_coll()
                    .delete_many(doc! { "expires_at": { "$lte": now } }),
            )
            .await?;
        self.run(
            self.count_coll()
                .delete_many(doc! { "expires_at": { "$lte": now } }),
        )
        .await?;
        Ok(r.deleted_count)
    }

    async fn add_audit_counts(&self, events: &[AuditRecord]) -> StoreResult<()> {
        // A conditional update is not atomic on FerretDB v1: the first
        // count of an event is the event itself (an insert under its `_id`),
        // any later one a document of its own in `audit_counts` (inserts
        // are atomic), added up when the event is read.
        for e in events {
            match self.insert(&self.audit_coll(), to_doc(e)?).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    let extra = doc! {
                        "_id": uuid::Uuid::now_v7().simple().to_string(),
                        "event_id": &e.id,
                        "n": i64::try_from(e.count()).unwrap_or(i64::MAX),
                        "expires_at": e.expires_at,
                    };
                    self.insert(&self.count_coll(), extra).await?;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

impl MongoStore {
    /// `events` with the counts stored beside them (`audit_counts`) added.
    async fn with_extra_counts(
        &self,
        mut events: Vec<AuditRecord>,
    ) -> StoreResult<Vec<AuditRecord>> {
        let counted: Vec<&str> = events
            .iter()
            .filter(|e| e.details.contains_key("count"))
            .map(|e| e.id.as_str())
            .collect();
        if counted.is_empty() {
            return Ok(events);
        }
        let filter = doc! { "event_id": { "$in": counted } };
        let mut extra = std::collections::HashMap::<String, u64>::new();
        for d in self.all_docs(self.count_coll().find(filter)).await? {
            if let (Ok(id), Ok(n)) = (d.get_str("event_id"), d.get_i64("n")) {
                *extra.entry(id.to_string()).or_default() += u64::try_from(n).unwrap_or(0);
            }
        }
        for e in &mut events {
            if let Some(n) = extra.get(&e.id) {
                *e = e.clone().counted(*n);
            }
        }
        Ok(events)
    }
}

#[async_trait]
impl WebhookStore for MongoStore {
    async fn enqueue_webhooks(&self, deliveries: &[WebhookDelivery]) -> StoreResult<()> {
        let docs = deliveries
            .iter()
            .map(to_doc)
            .collect::<StoreResult<Vec<_>>>()?;
        self.insert_all_once(&self.webhook_coll(), docs).await
    }

    async fn due_webhooks(&self, now: i64, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let filter = doc! { "next_at": { "$lte": now }, "expires_at": { "$gt": now } };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.all_of(
            self.webhook_coll()
                .find(filter)
                .sort(doc! { "_id": 1 })
                .limit(limit),
        )
        .await
    }

    async fn webhook_done(&self, id: &str) -> StoreResult<()> {
        self.run(self.webhook_coll().delete_one(doc! { "_id": id }))
            .await
            .map(|_| ())
    }

    async fn webhook_retry(&self, id: &str, attempts: u32, next_at: i64) -> StoreResult<()> {
        self.run(self.webhook_coll().update_one(
            doc! { "_id": id },
            doc! { "$set": { "attempts": i64::from(attempts), "next_at": next_at } },
        ))
        .await
        .map(|_| ())
    }

    async fn purge_webhooks(&self, now: i64) -> StoreResult<u64> {
        let r = self
            .run(
                self.webhook_coll()
                    .delete_many(doc! { "expires_at": { "$lte": now } }),
            )
            .await?;
        Ok(r.deleted_count)
    }
}

#[async_trait]
impl DeviceStore for MongoStore {
    async fn note_device(
        &self,
        user_id: &UserId,
        key: &str,
        network: &str,
        now: i64,
        max: usize,
    ) -> StoreResult<KnownDevices> {
        let coll = self.device_coll();
        let before: KnownDevices = match self.run(coll.find_one(doc! { "_id": user_id })).await? {
            Some(mut d) => {
                d.remove("_id");
                bson::from_document(d).map_err(|e| {
                    StoreError::Other(anyhow::Error::new(e).context("corrupt record"))
                })?
            }
            None => KnownDevices::default(),
        };
        let mut after = before.clone();
        after.sight(key, network, now, max);
        let mut d = bson::to_document(&after)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding a record")))?;
        d.insert("_id", user_id);
        // Read, update, write back (one document): two racing sign-ins of
        // one user may lose one sighting, which costs one extra alert later.
        let upsert = coll.replace_one(doc! { "_id": user_id }, d).upsert(true);
        match run_bounded_raw(self.op_timeout, upsert).await? {
            Ok(_) => Ok(before),
            Err(e) if is_duplicate_key(&e) => Ok(before),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn forget_device(&self, user_id: &UserId, key: &str) -> StoreResult<()> {
        // FerretDB v1 does not match `$pull` conditions on subdocuments: read,
        // update, write back, as `note_device` does.
        let coll = self.device_coll();
        let Some(mut d) = self.run(coll.find_one(doc! { "_id": user_id })).await? else {
            return Ok(());
        };
        d.remove("_id");
        let mut devices: KnownDevices = bson::from_document(d)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("corrupt record")))?;
        devices.forget(key);
        let mut d = bson::to_document(&devices)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding a record")))?;
        d.insert("_id", user_id);
        self.run(coll.replace_one(doc! { "_id": user_id }, d))
            .await
            .map(|_| ())
    }
}

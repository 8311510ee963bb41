//! [`ThrottleStore`] on MongoDB: documents in `revocations`.
//!
//! A conditional update is not atomic on FerretDB v1 (see the module docs
//! of `mongo`), and neither is `$push`/`$inc` (an update there is a read,
//! then a replace by `_id`: racing increments are lost, which let 1,500 of
//! 2,000 simultaneous wrong TOTP codes be checked against a limit of 5,
//! finding H4 of the security probe). So every count here is a number of
//! documents, and only inserts decide races:
//!
//! - A reservation is an insert of a slot document
//!   `try:<n>:<account>`, `n` in `0..limit`, decided by the unique `_id`.
//!   It starts `state: "pending"`, expiring after
//!   [`RESERVATION_TTL`]; a failed check turns it into
//!   `state: "failed"` expiring after the window (an update of the slot by
//!   its owner alone, so nothing races it); a check that did not fail
//!   deletes it. A slot whose `expires_at` has passed is deleted
//!   (conditionally) and raced for again with one more insert, as
//!   single-use claims are. Of racing reservations, at most `limit`
//!   inserts succeed.
//! - A failure recorded without a reservation
//!   ([`ThrottleStore::record_login_failure`]) is an insert of its own
//!   document `failed:<nonce>:<account>`: racing failures all count.
//! - The document `fail:<account>` (its `times` array) is how earlier
//!   releases recorded failures: still read, counted and cleared, never
//!   written.

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};

use super::{EXPIRES_AT_DATE, MongoStore, RevocationId, date_of};
use crate::store::rules::RESERVATION_TTL;
use crate::store::{LoginFailures, StoreError, StoreResult, ThrottleStore};

/// `kind` of a reserved-attempt slot document.
const ATTEMPT_KIND: &str = "attempt";
/// `kind` of a failure recorded without a reservation.
const FAILURE_KIND: &str = "failure";
/// `state` of a slot whose check is in flight (a slot without `state`, as
/// earlier releases wrote them, counts as failed).
const PENDING: &str = "pending";
/// `state` of a slot whose check failed.
const FAILED: &str = "failed";

/// One stored document of an account's count, as read.
struct Counted {
    /// Slot number (slot documents only).
    slot: Option<u32>,
    /// In flight (a pending slot), else a failure.
    pending: bool,
    at: i64,
    expires_at: i64,
}

impl Counted {
    /// A failure within `(now - window, now]`, still stored.
    fn failure_within(&self, now: i64, window: i64) -> bool {
        !self.pending && self.expires_at > now && self.at > now - window && self.at <= now
    }
}

impl MongoStore {
    /// The record earlier releases kept (see the module docs).
    async fn failure_record(&self, account: &str) -> StoreResult<Option<LoginFailures>> {
        let id = RevocationId::LoginFailures(account).id();
        let Some(d) = self
            .run(self.revocations.find_one(doc! { "_id": id }))
            .await?
        else {
            return Ok(None);
        };
        let times = d
            .get_array("times")
            .map(|a| a.iter().filter_map(Bson::as_i64).collect())
            .unwrap_or_default();
        let expires_at = d.get_i64("expires_at").unwrap_or(0);
        Ok(Some(LoginFailures {
            times,
            expires_at,
            pending: Vec::new(),
        }))
    }

    /// Every slot and failure document of the account, in one read.
    async fn counted(&self, account: &str) -> StoreResult<Vec<Counted>> {
        let filter = doc! {
            "account": account,
            "kind": { "$in": [ATTEMPT_KIND, FAILURE_KIND] },
        };
        let mut found = Vec::new();
        for d in self.all_docs(self.revocations.find(filter)).await? {
            let slot = d.get_i64("slot").ok().and_then(|n| u32::try_from(n).ok());
            let is_slot = d.get_str("kind") == Ok(ATTEMPT_KIND);
            if is_slot && slot.is_none() {
                continue;
            }
            found.push(Counted {
                slot,
                pending: is_slot && d.get_str("state") == Ok(PENDING),
                at: d.get_i64("at").unwrap_or(0),
                expires_at: d.get_i64("expires_at").unwrap_or(0),
            });
        }
        Ok(found)
    }

    /// Failures of the account within the window, oldest first, and the
    /// documents read on the way.
    async fn failures_and_docs(
        &self,
        account: &str,
        now: i64,
        window: i64,
    ) -> StoreResult<(Vec<i64>, Vec<Counted>)> {
        let record = self.failure_record(account).await?;
        let mut times = record.map(|r| r.within(now, window)).unwrap_or_default();
        let docs = self.counted(account).await?;
        times.extend(
            docs.iter()
                .filter(|c| c.failure_within(now, window))
                .map(|c| c.at),
        );
        times.sort_unstable();
        Ok((times, docs))
    }

    /// One insert of slot `slot`; `Ok(false)` when the slot is taken.
    async fn take_slot(&self, slot: Document) -> StoreResult<bool> {
        match self.insert(&self.revocations, slot).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl ThrottleStore for MongoStore {
    async fn record_login_failure(&self, account: &str, now: i64, window: i64) -> StoreResult<()> {
        // One document per failure: inserts never lose each other.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now + window;
        let d = doc! {
            "_id": RevocationId::Failure(account, &nonce).id(),
            "kind": FAILURE_KIND,
            "account": account,
            "at": now,
            "expires_at": expires_at,
            EXPIRES_AT_DATE: date_of(expires_at),
        };
        self.insert(&self.revocations, d).await
    }

    async fn login_failures(&self, account: &str, now: i64, window: i64) -> StoreResult<Vec<i64>> {
        let (mut times, _) = self.failures_and_docs(account, now, window).await?;
        // Only the count near the limit matters (as on the other backend).
        let excess = times.len().saturating_sub(LoginFailures::MAX_KEPT);
        times.drain(..excess);
        Ok(times)
    }

    async fn clear_login_failures(&self, account: &str) -> StoreResult<()> {
        self.run(
            self.revocations
                .delete_one(doc! { "_id": RevocationId::LoginFailures(account).id() }),
        )
        .await?;
        // Failures and failed slots; pending slots stay with their checks.
        self.run(self.revocations.delete_many(doc! {
            "account": account,
            "kind": { "$in": [ATTEMPT_KIND, FAILURE_KIND] },
            "state": { "$ne": PENDING },
        }))
        .await
        .map(|_| ())
    }

    async fn reserve_login_attempt(
        &self,
        account: &str,
        limit: u32,
        now: i64,
        window: i64,
    ) -> StoreResult<Option<String>> {
        // One read of what the account holds, so a busy account costs a
        // couple of round trips, not one per slot (which would also make
        // the answer's timing depend on how many failures it has).
        let (failures, docs) = self.failures_and_docs(account, now, window).await?;
        // Failures that hold no slot (recorded without a reservation, or
        // the older way) count against the same limit.
        let unslotted = failures.len()
            - docs
                .iter()
                .filter(|c| c.slot.is_some() && c.failure_within(now, window))
                .count();
        let slots = limit.saturating_sub(u32::try_from(unslotted).unwrap_or(u32::MAX));
        let taken: std::collections::HashMap<u32, i64> = docs
            .iter()
            .filter_map(|c| c.slot.map(|n| (n, c.expires_at)))
            .collect();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now + RESERVATION_TTL.min(window);
        for n in 0..slots {
            let live = taken.get(&n).is_some_and(|exp| *exp > now);
            if live {
                continue;
            }
            let id = RevocationId::Attempt(account, n).id();
            let slot = doc! {
                "_id": &id,
                "kind": ATTEMPT_KIND,
                "account": account,
                "slot": i64::from(n),
                "state": PENDING,
                "at": now,
                "nonce": &nonce,
                "expires_at": expires_at,
                EXPIRES_AT_DATE: date_of(expires_at),
            };
            if taken.contains_key(&n) {
                // Expired: free it (conditionally), then race for it.
                self.run(
                    self.revocations
                        .delete_one(doc! { "_id": &id, "expires_at": { "$lte": now } }),
                )
                .await?;
            }
            if self.take_slot(slot).await? {
                return Ok(Some(nonce));
            }
        }
        Ok(None)
    }

    async fn fail_login_attempt(
        &self,
        account: &str,
        attempt: &str,
        now: i64,
        window: i64,
    ) -> StoreResult<()> {
        // Only the reservation's owner knows its nonce: nothing else
        // updates this document, so the update cannot lose to a racer.
        let expires_at = now + window;
        let settled = self
            .run(self.revocations.update_one(
                doc! { "kind": ATTEMPT_KIND, "account": account, "nonce": attempt },
                doc! { "$set": {
                    "state": FAILED,
                    "at": now,
                    "expires_at": expires_at,
                    EXPIRES_AT_DATE: date_of(expires_at),
                } },
            ))
            .await?;
        if settled.matched_count == 0 {
            // The place freed by itself meanwhile: the failure still counts.
            self.record_login_failure(account, now, window).await?;
        }
        Ok(())
    }

    async fn release_login_attempt(&self, account: &str, attempt: &str) -> StoreResult<()> {
        self.run(
            self.revocations
                .delete_one(doc! { "kind": ATTEMPT_KIND, "account": account, "nonce": attempt }),
        )
        .await
        .map(|_| ())
    }
}

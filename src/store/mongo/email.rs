//! [`TicketStore`] and [`MailQueueStore`] on MongoDB.
//!
//! - Tickets are documents in `revocations` under `RevocationId::Ticket`
//!   (`ticket:<kind>:<user id>`): one per user and kind, so storing a newer
//!   one replaces the older; they expire on `expires_at` like the rest of
//!   that collection.
//! - The queue is the `mail_queue` collection. A claim must be exclusive
//!   across replicas, and conditional updates are not atomic on FerretDB v1
//!   (see the module docs of [`mongo`](super)), so the claim of attempt `n`
//!   of a mail is decided by an insert under a unique `_id`: the single-use
//!   key `OnceKey::MailLease(id, n)`, which lives until the lease ends. Only
//!   the winner then moves the mail's `attempts` to `n + 1` and its
//!   `next_attempt_at` to the end of the lease. A winner that dies between
//!   the two steps leaves the mail due with `attempts = n`: once the lease
//!   expires, the next claimer frees the key and takes the attempt.

use async_trait::async_trait;
use mongodb::bson::{Bson, doc};

use super::{EXPIRES_AT_DATE, MongoStore, RevocationId, date_of, from_doc, to_doc};
use crate::store::{
    EmailTicket, MailQueueStats, MailQueueStore, OnceKey, OnceStore, QueuedMail, StoreError,
    StoreResult, TicketKind, TicketStore,
};

/// How many due mails one claim looks at before giving up for this round.
const CLAIM_CANDIDATES: i64 = 10;

#[async_trait]
impl TicketStore for MongoStore {
    async fn put_ticket(&self, ticket: &EmailTicket) -> StoreResult<()> {
        let id = RevocationId::Ticket(ticket.kind, &ticket.user_id).id();
        let mut d = to_doc(ticket)?;
        d.insert("_id", id.as_str());
        self.run(
            self.revocations
                .replace_one(doc! { "_id": &id }, d)
                .upsert(true),
        )
        .await?;
        Ok(())
    }

    async fn ticket(
        &self,
        kind: TicketKind,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Option<EmailTicket>> {
        let id = RevocationId::Ticket(kind, user_id).id();
        let Some(mut d) = self
            .run(
                self.revocations
                    .find_one(doc! { "_id": &id, "expires_at": { "$gt": now } }),
            )
            .await?
        else {
            return Ok(None);
        };
        d.remove("_id");
        from_doc(d).map(Some)
    }

    async fn delete_ticket(
        &self,
        kind: TicketKind,
        user_id: &str,
        jti: Option<&str>,
    ) -> StoreResult<bool> {
        let id = RevocationId::Ticket(kind, user_id).id();
        let mut filter = doc! { "_id": &id };
        if let Some(jti) = jti {
            filter.insert("jti", jti);
        }
        let r = self.run(self.revocations.delete_one(filter)).await?;
        Ok(r.deleted_count > 0)
    }
}

#[async_trait]
impl MailQueueStore for MongoStore {
    async fn enqueue_mail(&self, mail: &QueuedMail) -> StoreResult<bool> {
        match self.insert(&self.mail_queue, to_doc(mail)?).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn claim_mail(&self, now: i64, lease_until: i64) -> StoreResult<Option<QueuedMail>> {
        let due = doc! {
            "sent_at": Bson::Null,
            "next_attempt_at": { "$lte": now },
            "expires_at": { "$gt": now },
        };
        let candidates = self
            .all_docs(
                self.mail_queue
                    .find(due)
                    .sort(doc! { "next_attempt_at": 1 })
                    .limit(CLAIM_CANDIDATES),
            )
            .await?;
        for d in candidates {
            let mut mail: QueuedMail = from_doc(d)?;
            let lease = OnceKey::MailLease(mail.id.clone(), mail.attempts);
            if !self.claim_once(&lease, lease_until, now).await? {
                continue;
            }
            let moved = self
                .run(self.mail_queue.update_one(
                    doc! { "_id": &mail.id, "attempts": mail.attempts, "sent_at": Bson::Null },
                    doc! { "$set": {
                        "attempts": mail.attempts + 1,
                        "next_attempt_at": lease_until,
                    } },
                ))
                .await?;
            if moved.matched_count == 0 {
                continue;
            }
            mail.attempts += 1;
            mail.next_attempt_at = lease_until;
            return Ok(Some(mail));
        }
        Ok(None)
    }

    async fn mail_sent(
        &self,
        id: &str,
        attempt: u32,
        now: i64,
        keep_until: i64,
    ) -> StoreResult<()> {
        self.run(self.mail_queue.update_one(
            doc! { "_id": id, "attempts": attempt, "sent_at": Bson::Null },
            doc! { "$set": {
                "sent_at": now,
                "last_error": Bson::Null,
                "expires_at": keep_until,
                EXPIRES_AT_DATE: date_of(keep_until),
            } },
        ))
        .await?;
        Ok(())
    }

    async fn mail_failed(
        &self,
        id: &str,
        attempt: u32,
        error: &str,
        retry_at: i64,
    ) -> StoreResult<()> {
        self.run(self.mail_queue.update_one(
            doc! { "_id": id, "attempts": attempt, "sent_at": Bson::Null },
            doc! { "$set": { "next_attempt_at": retry_at, "last_error": error } },
        ))
        .await?;
        Ok(())
    }

    async fn mail_queue_stats(&self, now: i64) -> StoreResult<MailQueueStats> {
        let pending = doc! { "sent_at": Bson::Null, "expires_at": { "$gt": now } };
        let count = self
            .run(self.mail_queue.count_documents(pending.clone()))
            .await?;
        let oldest = self
            .run(
                self.mail_queue
                    .find_one(pending)
                    .sort(doc! { "created_at": 1 }),
            )
            .await?
            .and_then(|d| d.get_i64("created_at").ok());
        Ok(MailQueueStats {
            pending: count,
            oldest_created_at: oldest,
        })
    }

    async fn purge_email_records(&self, now: i64) -> StoreResult<u64> {
        // Tickets live in `revocations`, which `purge_expired` empties.
        let r = self
            .run(
                self.mail_queue
                    .delete_many(doc! { "expires_at": { "$lte": now } }),
            )
            .await?;
        Ok(r.deleted_count)
    }
}

//! [`TicketStore`] and [`MailQueueStore`] on redb: `email_tickets`
//! (`<kind>:<user id>` → JSON [`EmailTicket`]), `mail_queue` (id → JSON
//! [`QueuedMail`], unsent mail only) and `mail_sent` (id → until when the
//! id refuses a duplicate). Sent mail moves out of `mail_queue`, so the
//! claim's scan stays as short as the backlog. redb admits one writer at a
//! time, so a claim is a plain read-modify-write in one transaction.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{EmbeddedStore, decode, encode, get_json, other};
use crate::store::{
    EmailTicket, MailQueueStats, MailQueueStore, QueuedMail, StoreResult, TicketKind, TicketStore,
};

/// `<kind>:<user id>` → JSON [`EmailTicket`].
pub(super) const TICKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("email_tickets");
/// Mail id → JSON [`QueuedMail`], for mail not sent yet.
pub(super) const MAIL_QUEUE: TableDefinition<&str, &[u8]> = TableDefinition::new("mail_queue");
/// Id of a sent mail → when its record may be forgotten (unix seconds).
pub(super) const MAIL_SENT: TableDefinition<&str, i64> = TableDefinition::new("mail_sent");

fn ticket_key(kind: TicketKind, user_id: &str) -> String {
    format!("{}:{user_id}", kind.as_str())
}

#[async_trait]
impl TicketStore for EmbeddedStore {
    async fn put_ticket(&self, ticket: &EmailTicket) -> StoreResult<()> {
        let ticket = ticket.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(TICKETS).map_err(other)?;
                let key = ticket_key(ticket.kind, &ticket.user_id);
                t.insert(key.as_str(), encode(&ticket)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn ticket(
        &self,
        kind: TicketKind,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Option<EmailTicket>> {
        let key = ticket_key(kind, user_id);
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(TICKETS).map_err(other)?;
            let ticket: Option<EmailTicket> = get_json(&t, &key)?;
            Ok(ticket.filter(|t| t.expires_at > now))
        })
        .await
    }

    async fn delete_ticket(
        &self,
        kind: TicketKind,
        user_id: &str,
        jti: Option<&str>,
    ) -> StoreResult<bool> {
        let key = ticket_key(kind, user_id);
        let jti = jti.map(str::to_string);
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let deleted = {
                let mut t = txn.open_table(TICKETS).map_err(other)?;
                let current: Option<EmailTicket> = get_json(&t, &key)?;
                match current {
                    Some(c) if jti.as_deref().is_none_or(|j| j == c.jti) => {
                        t.remove(key.as_str()).map_err(other)?;
                        true
                    }
                    _ => false,
                }
            };
            txn.commit().map_err(other)?;
            Ok(deleted)
        })
        .await
    }
}

/// Applies `f` to the mail `id` in one write transaction when its
/// `attempts` is `attempt` (only the claimer of that attempt may record
/// its outcome).
fn update_mail(
    db: &redb::Database,
    id: &str,
    attempt: u32,
    f: impl FnOnce(&mut QueuedMail),
) -> StoreResult<()> {
    let txn = super::commit::begin_write(db)?;
    {
        let mut t = txn.open_table(MAIL_QUEUE).map_err(other)?;
        let Some(mut mail) = get_json::<QueuedMail>(&t, id)? else {
            return Ok(());
        };
        if mail.attempts != attempt || mail.sent_at.is_some() {
            return Ok(());
        }
        f(&mut mail);
        t.insert(id, encode(&mail)?.as_slice()).map_err(other)?;
    }
    txn.commit().map_err(other)
}

#[async_trait]
impl MailQueueStore for EmbeddedStore {
    async fn enqueue_mail(&self, mail: &QueuedMail) -> StoreResult<bool> {
        let mail = mail.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let sent = txn.open_table(MAIL_SENT).map_err(other)?;
                if sent.get(mail.id.as_str()).map_err(other)?.is_some() {
                    return Ok(false);
                }
                let mut t = txn.open_table(MAIL_QUEUE).map_err(other)?;
                if t.get(mail.id.as_str()).map_err(other)?.is_some() {
                    return Ok(false);
                }
                t.insert(mail.id.as_str(), encode(&mail)?.as_slice())
                    .map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(true)
        })
        .await
    }

    async fn claim_mail(&self, now: i64, lease_until: i64) -> StoreResult<Option<QueuedMail>> {
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let claimed = {
                let mut t = txn.open_table(MAIL_QUEUE).map_err(other)?;
                // The table holds unsent mail only: a scan for the earliest
                // due one is as short as the backlog.
                let mut due: Option<QueuedMail> = None;
                for entry in t.iter().map_err(other)? {
                    let (_, v) = entry.map_err(other)?;
                    let Ok(mail) = decode::<QueuedMail>(v.value()) else {
                        continue;
                    };
                    let is_due = mail.sent_at.is_none()
                        && mail.next_attempt_at <= now
                        && mail.expires_at > now;
                    if is_due
                        && due
                            .as_ref()
                            .is_none_or(|d| mail.next_attempt_at < d.next_attempt_at)
                    {
                        due = Some(mail);
                    }
                }
                match due {
                    Some(mut mail) => {
                        mail.attempts += 1;
                        mail.next_attempt_at = lease_until;
                        t.insert(mail.id.as_str(), encode(&mail)?.as_slice())
                            .map_err(other)?;
                        Some(mail)
                    }
                    None => None,
                }
            };
            if claimed.is_some() {
                txn.commit().map_err(other)?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn mail_sent(
        &self,
        id: &str,
        attempt: u32,
        now: i64,
        keep_until: i64,
    ) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut t = txn.open_table(MAIL_QUEUE).map_err(other)?;
                let Some(mail) = get_json::<QueuedMail>(&t, &id)? else {
                    return Ok(());
                };
                if mail.attempts != attempt {
                    return Ok(());
                }
                t.remove(id.as_str()).map_err(other)?;
                let mut sent = txn.open_table(MAIL_SENT).map_err(other)?;
                sent.insert(id.as_str(), keep_until.max(now))
                    .map_err(other)?;
            }
            txn.commit().map_err(other)
        })
        .await
    }

    async fn mail_failed(
        &self,
        id: &str,
        attempt: u32,
        error: &str,
        retry_at: i64,
    ) -> StoreResult<()> {
        let id = id.to_string();
        let error = error.to_string();
        self.write(move |db| {
            update_mail(db, &id, attempt, |m| {
                m.next_attempt_at = retry_at;
                m.last_error = Some(error);
            })
        })
        .await
    }

    async fn mail_queue_stats(&self, now: i64) -> StoreResult<MailQueueStats> {
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let t = txn.open_table(MAIL_QUEUE).map_err(other)?;
            let mut stats = MailQueueStats::default();
            for entry in t.iter().map_err(other)? {
                let (_, v) = entry.map_err(other)?;
                let Ok(mail) = decode::<QueuedMail>(v.value()) else {
                    continue;
                };
                if mail.sent_at.is_none() && mail.expires_at > now {
                    stats.pending += 1;
                    stats.oldest_created_at = Some(
                        stats
                            .oldest_created_at
                            .map_or(mail.created_at, |o| o.min(mail.created_at)),
                    );
                }
            }
            Ok(stats)
        })
        .await
    }

    async fn purge_email_records(&self, now: i64) -> StoreResult<u64> {
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let mut purged = 0;
            {
                let mut q = txn.open_table(MAIL_QUEUE).map_err(other)?;
                q.retain(|_, v| {
                    let keep = decode::<QueuedMail>(v).is_ok_and(|m| m.expires_at > now);
                    if !keep {
                        purged += 1;
                    }
                    keep
                })
                .map_err(other)?;
                let mut sent = txn.open_table(MAIL_SENT).map_err(other)?;
                sent.retain(|_, exp| {
                    let keep = exp > now;
                    if !keep {
                        purged += 1;
                    }
                    keep
                })
                .map_err(other)?;
                let mut t = txn.open_table(TICKETS).map_err(other)?;
                t.retain(|_, v| decode::<EmailTicket>(v).is_ok_and(|t| t.expires_at > now))
                    .map_err(other)?;
            }
            txn.commit().map_err(other)?;
            Ok(purged)
        })
        .await
    }
}

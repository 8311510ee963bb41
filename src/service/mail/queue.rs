//! Queueing mail: security notices and the queue record every mail kind
//! goes through; the purge of sent and given-up records.

use super::{GIVE_UP_AFTER, Notice};
use crate::domain::UserId;
use crate::service::{Core, Result};
use crate::store::{MailKind, QueuedMail};

impl Core {
    /// Queues a security notice for `user_id`. Never fails the caller: a
    /// notice that cannot be queued is logged (the change it reports has
    /// already happened).
    pub async fn notify(&self, user_id: &UserId, notice: Notice) {
        let id = format!(
            "notice:{}:{user_id}:{}",
            notice.as_str(),
            uuid::Uuid::now_v7().simple()
        );
        let kind = MailKind::Notice(notice.as_str().to_string());
        if let Err(e) = self.enqueue(id, kind, Some(user_id), None).await {
            tracing::warn!(error = %e, user_id = %user_id, notice = notice.as_str(), "could not queue a security notice");
        }
    }

    /// Queues one mail under the idempotency key `id` and wakes the sender.
    pub(in crate::service) async fn enqueue(
        &self,
        id: String,
        kind: MailKind,
        user_id: Option<&str>,
        email: Option<&str>,
    ) -> Result<()> {
        self.enqueue_detailed(id, kind, user_id, email, None).await
    }

    /// [`Core::enqueue`] with non-secret `detail` (JSON text) to render from.
    pub(in crate::service) async fn enqueue_detailed(
        &self,
        id: String,
        kind: MailKind,
        user_id: Option<&str>,
        email: Option<&str>,
        detail: Option<String>,
    ) -> Result<()> {
        let now = self.clock.now();
        let mail = QueuedMail {
            id,
            kind,
            user_id: user_id.map(UserId::from),
            email: email.map(str::to_string),
            locale: None,
            detail,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            sent_at: None,
            expires_at: now.saturating_add(GIVE_UP_AFTER),
        };
        if self.store.enqueue_mail(&mail).await? {
            metrics::counter!("portcullis_mail_queued_total").increment(1);
            self.mail.wake.notify_one();
        }
        Ok(())
    }

    /// Waits until a mail is queued by this process or `max` has passed.
    pub async fn wait_for_mail(&self, max: std::time::Duration) {
        let _ = tokio::time::timeout(max, self.mail.wake.notified()).await;
    }

    /// Where mail goes, for the start-up log.
    pub fn mailer_name(&self) -> String {
        self.mail.mailer.describe()
    }

    /// Purges sent and given-up queue records and dead tickets.
    pub(in crate::service) async fn purge_mail(&self) -> Result<u64> {
        Ok(self.store.purge_email_records(self.clock.now()).await?)
    }
}

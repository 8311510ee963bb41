//! Background tasks that run beside the server: the purge of expired
//! records and idle rate-limit buckets, and the mail sender.

use std::time::Duration;

use crate::service::Core;

/// How often expired records are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Handles of the running background tasks.
pub struct Jobs {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Jobs {
    /// Stops every task.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Jobs {
    /// The tasks end with their server, also when its future is dropped
    /// rather than stopped (a server task aborted in tests).
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How often the mail sender looks for due mail when nothing wakes it
/// (mail queued by another replica, retries coming due).
pub const MAIL_POLL_EVERY: Duration = Duration::from_secs(1);
/// Most mails sent in one round before the sender yields.
const MAIL_ROUND: usize = 50;

/// The mail sender: sends due mail from the store's queue, woken when this
/// process queues one and at least every [`MAIL_POLL_EVERY`].
fn spawn_mail_sender(core: Core) -> tokio::task::JoinHandle<()> {
    // Every mail counter exists (at 0) from start-up: the recorder first.
    let _ = crate::telemetry::metrics();
    for name in [
        "portcullis_mail_queued_total",
        "portcullis_mail_sent_total",
        "portcullis_mail_failed_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    tokio::spawn(async move {
        loop {
            match core.send_due_mail(MAIL_ROUND).await {
                // A full round: there may be more right away.
                Ok(r) if r.sent + r.dropped + r.failed >= MAIL_ROUND => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mail sender: store unavailable; will retry"),
            }
            core.wait_for_mail(MAIL_POLL_EVERY).await;
        }
    })
}

/// Starts the background tasks for `core`.
pub fn spawn(core: Core) -> Jobs {
    let mail = spawn_mail_sender(core.clone());
    let purge = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            match core.housekeeping().await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired records purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
            }
        }
    });
    Jobs {
        tasks: vec![purge, mail],
    }
}

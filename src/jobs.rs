//! Background tasks that run beside the server: the purge of expired
//! records and idle rate-limit buckets, the mail sender, the audit flusher,
//! the purge of audit events past retention, the purge of unused anonymous
//! users and the webhook delivery loop.

use std::time::Duration;

use crate::audit::{AuditSink, MAX_BATCH, RefusalTake, SinkMessage};
use crate::service::Core;
use crate::store::{AuditRecord, DynStore};
use crate::webhooks::{WebhookSender, backoff_secs, delivery_of};

/// How often expired records are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the webhook queue is polled for due deliveries.
pub const WEBHOOK_POLL: Duration = Duration::from_secs(1);
/// How long a clean shutdown waits for the audit buffer to be stored.
pub const AUDIT_FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(10);

/// Handles of the running background tasks.
pub struct Jobs {
    tasks: Vec<tokio::task::JoinHandle<()>>,
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

impl Jobs {
    /// Stops every task.
    pub fn stop(self) {
        drop(self);
    }

    /// Clean shutdown: stores the buffered audit events (bounded wait),
    /// then stops every task. Webhook deliveries wait in the store and
    /// resume at the next start.
    pub async fn shutdown(self, core: &Core) {
        if core.close_audit(AUDIT_FLUSH_ON_SHUTDOWN).await {
            tracing::info!("audit events flushed");
        } else {
            tracing::warn!("audit events not flushed before shutdown");
        }
        self.stop();
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
    for name in [
        "portcullis_mail_queue_pending",
        "portcullis_mail_queue_age_seconds",
    ] {
        metrics::gauge!(name).increment(0.0);
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
    crate::audit::register_metrics();
    let mut tasks = vec![spawn_mail_sender(core.clone())];
    let purge_core = core.clone();
    tasks.push(tokio::spawn(async move {
        let core = purge_core;
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            match core.housekeeping().await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired records purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
            }
            match core.purge_security_records().await {
                Ok((events, hooks)) if events + hooks > 0 => {
                    tracing::info!(
                        events,
                        webhooks = hooks,
                        "audit events past retention purged"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge of audit events failed"),
            }
            // Anonymous users unused for `PORTCULLIS_ANONYMOUS_TTL`.
            if let Err(e) = core.purge_anonymous().await {
                tracing::warn!(error = %e, "purge of unused anonymous users failed");
            }
        }
    }));
    let security = &core.settings.security;
    let sender = match (&security.webhook_url, &security.webhook_secret) {
        (Some(url), Some(secret)) => match WebhookSender::new(url.clone(), secret.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "webhook client could not be built: webhooks off");
                None
            }
        },
        _ => None,
    };
    if let Some(rx) = core.security.sink.take_receiver() {
        let (store, clock, queue) = (core.store.clone(), core.clock.clone(), sender.is_some());
        let sink = core.security.sink.clone();
        tasks.push(tokio::spawn(audit_flusher(rx, sink, store, clock, queue)));
    }
    if let Some(sender) = sender {
        tasks.push(tokio::spawn(webhook_deliverer(core.clone(), sender)));
    }
    Jobs { tasks }
}

/// How often the flusher looks for refusal windows to close.
pub const REFUSAL_TICK: Duration = Duration::from_secs(1);

/// Drains the audit buffer: each batch (whatever queued up, at most
/// [`MAX_BATCH`]) is queued for webhooks, then stored; then the flush
/// requests that arrived with it are answered. Refusals are not in the
/// channel but counted in the sink: each cycle stores the counts of the
/// windows that ended (one event per network, action and minute, and one
/// webhook), and a flush request stores the open ones' counts so far.
async fn audit_flusher(
    mut rx: tokio::sync::mpsc::Receiver<SinkMessage>,
    sink: AuditSink,
    store: DynStore,
    clock: crate::clock::Clock,
    webhooks: bool,
) {
    let mut batch = Vec::new();
    let mut waiters = Vec::new();
    loop {
        let first = tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => Some(m),
                None => break,
            },
            () = tokio::time::sleep(REFUSAL_TICK) => None,
        };
        let mut close_all = false;
        let mut next = first;
        while let Some(msg) = next {
            match msg {
                SinkMessage::Event(e) => batch.push(e),
                SinkMessage::Flush(done) => waiters.push(done),
                SinkMessage::Close(done) => {
                    close_all = true;
                    waiters.push(done);
                }
            }
            next = if batch.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let now = clock.now();
        let refusals = sink.take_refusals(now, !waiters.is_empty(), close_all);
        if !batch.is_empty() {
            write_batch(&store, &batch, now, webhooks).await;
            batch.clear();
        }
        write_refusals(&store, refusals, now, webhooks).await;
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

/// Stores refusal counts (adding them to the window's one event) and
/// queues the webhook of each closed window, retrying a failing store like
/// [`write_batch`]. Each count is added once: a retry resends only those
/// not yet stored.
async fn write_refusals(store: &DynStore, take: RefusalTake, now: i64, webhooks: bool) {
    for closed in &take.closed {
        crate::audit::log(closed);
    }
    let mut deltas = take.deltas.as_slice();
    let mut hooks: Vec<_> = if webhooks {
        take.closed.iter().map(|e| delivery_of(e, now)).collect()
    } else {
        Vec::new()
    };
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=5 {
        let result = async {
            while let Some((first, rest)) = deltas.split_first() {
                store.add_audit_counts(std::slice::from_ref(first)).await?;
                metrics::counter!("portcullis_audit_writes_total", "result" => "stored")
                    .increment(1);
                deltas = rest;
            }
            if !hooks.is_empty() {
                store.enqueue_webhooks(&hooks).await?;
                hooks.clear();
            }
            Ok::<(), crate::store::StoreError>(())
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, attempt, "storing refusal counts failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, events = deltas.len(), "refusal counts could not be stored");
                metrics::counter!("portcullis_audit_writes_total", "result" => "failed")
                    .increment(deltas.len() as u64);
            }
        }
    }
}

/// Stores one batch, retrying a failing store a few times (about 6 s in
/// all) before giving the batch up (counted as failed; the events were
/// logged when emitted).
async fn write_batch(store: &DynStore, batch: &[AuditRecord], now: i64, webhooks: bool) {
    metrics::histogram!("portcullis_audit_batch_size").record(batch.len() as f64);
    let n = batch.len() as u64;
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=5 {
        let result = async {
            // Queue the webhooks first: an event stored but never queued
            // would break at-least-once delivery; the reverse only delays.
            if webhooks {
                let deliveries: Vec<_> = batch.iter().map(|e| delivery_of(e, now)).collect();
                store.enqueue_webhooks(&deliveries).await?;
            }
            store.append_audit(batch).await
        }
        .await;
        match result {
            Ok(()) => {
                metrics::counter!("portcullis_audit_writes_total", "result" => "stored")
                    .increment(n);
                return;
            }
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, attempt, "storing audit events failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, events = n, "audit events could not be stored");
                metrics::counter!("portcullis_audit_writes_total", "result" => "failed")
                    .increment(n);
            }
        }
    }
}

/// Sends due webhook deliveries, oldest first; a failure waits for its
/// backoff. An entry leaves the queue only after a 2xx.
async fn webhook_deliverer(core: Core, sender: WebhookSender) {
    let mut tick = tokio::time::interval(WEBHOOK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = core.clock.now();
        let due = match core.store.due_webhooks(now, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "webhook queue unavailable");
                continue;
            }
        };
        for d in due {
            match sender.send(&d, now).await {
                Ok(()) => {
                    metrics::counter!("portcullis_webhook_deliveries_total", "result" => "delivered")
                        .increment(1);
                    if let Err(e) = core.store.webhook_done(&d.id).await {
                        tracing::warn!(error = %e, "delivered webhook not removed; it will be sent again");
                    }
                }
                Err(why) => {
                    metrics::counter!("portcullis_webhook_deliveries_total", "result" => "failed")
                        .increment(1);
                    let attempts = d.attempts.saturating_add(1);
                    let next_at = now.saturating_add(backoff_secs(attempts));
                    if next_at >= d.expires_at {
                        metrics::counter!("portcullis_webhook_deliveries_total", "result" => "abandoned")
                            .increment(1);
                        tracing::error!(event_id = %d.id, attempts, "webhook abandoned");
                        let _ = core.store.webhook_done(&d.id).await;
                        continue;
                    }
                    tracing::warn!(event_id = %d.id, attempts, reason = %why, "webhook delivery failed; will retry");
                    if let Err(e) = core.store.webhook_retry(&d.id, attempts, next_at).await {
                        tracing::warn!(error = %e, "webhook retry not recorded");
                    }
                }
            }
        }
    }
}

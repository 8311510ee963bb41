//! The buffer between the request path and the store: [`AuditSink`] (a
//! bounded channel drained by the flusher in `jobs.rs`), the refusal
//! tallies (one stored event per network, action and minute), and the
//! audit metrics registered at start-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{CHANNEL_CAPACITY, Suspicion};
use crate::store::AuditRecord;

/// What the channel carries to the flusher.
#[derive(Debug)]
pub enum SinkMessage {
    /// An event to store.
    Event(AuditRecord),
    /// Answer once everything queued before this is stored, the refusals
    /// counted so far included.
    Flush(oneshot::Sender<()>),
    /// As `Flush`, and close every open refusal tally (delivering its
    /// webhook): the process is about to end.
    Close(oneshot::Sender<()>),
}

/// Length of the window refusals are counted in (a minute).
pub const REFUSAL_WINDOW_SECS: i64 = 60;
/// A window's tallies are closed (and webhook-delivered) this long after
/// it ended, so that refusals still in flight at its end are counted in it.
pub const REFUSAL_CLOSE_GRACE_SECS: i64 = 2;
/// Most open tallies (distinct network, action and minute); past it new
/// networks are counted under [`OTHER_NETWORKS`], so memory stays bounded
/// whatever the number of networks a flood comes from.
pub const MAX_TALLIES: usize = 10_000;
/// The network of the tally that counts refusals past [`MAX_TALLIES`].
pub const OTHER_NETWORKS: &str = "other";

/// Which tally a refusal counts in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TallyKey {
    /// Start of the window (Unix seconds, a multiple of
    /// [`REFUSAL_WINDOW_SECS`]).
    window: i64,
    /// Event type.
    kind: String,
    /// The `action` detail (`sign_in`, ...), empty when none.
    action: String,
    /// Client network (IPv4 /24, IPv6 /64).
    network: String,
}

/// One (network, action, minute) of refusals.
#[derive(Debug)]
struct Tally {
    /// The aggregated record, without its count.
    record: AuditRecord,
    /// Refusals counted by this process in the window.
    total: u64,
    /// Of which not yet stored.
    unstored: u64,
}

impl Tally {
    fn with_count(&self, count: u64) -> AuditRecord {
        let mut r = self.record.clone();
        r.details.insert("count".into(), count.to_string());
        r
    }
}

/// The id of the one stored event of a (network, action, window): the
/// window's time prefix, then 32 hex digits of a digest of the rest. Every
/// replica computes the same id, so their counts add up in one record.
fn tally_id(key: &TallyKey) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{}|{}|{}", key.kind, key.action, key.network));
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", crate::store::security::time_prefix(key.window))
}

/// What [`AuditSink::take_refusals`] hands the flusher.
#[derive(Debug, Default)]
pub struct RefusalTake {
    /// Counts to add to the stored aggregates (`details.count` is the
    /// number not stored yet).
    pub deltas: Vec<AuditRecord>,
    /// Windows closed: their aggregate with this process's whole count,
    /// for the webhook.
    pub closed: Vec<AuditRecord>,
}

/// The sending side of the audit buffer (cheap to clone), and the
/// receiving side until the flusher takes it.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<SinkMessage>,
    rx: Arc<Mutex<Option<mpsc::Receiver<SinkMessage>>>>,
    /// Refusals counted, not yet closed.
    tallies: Arc<Mutex<HashMap<TallyKey, Tally>>>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").finish_non_exhaustive()
    }
}

impl Default for AuditSink {
    fn default() -> Self {
        Self::new(CHANNEL_CAPACITY)
    }
}

impl AuditSink {
    /// A buffer of `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            tallies: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts a refusal (see [`AuditEvent::is_refusal`]) from a client on
    /// `network`: no channel message, no store write; the flusher stores
    /// one event per (network, action, minute) with the count
    /// ([`AuditSink::take_refusals`]).
    pub fn push_refusal(&self, record: AuditRecord, network: String) {
        let window = record.at.div_euclid(REFUSAL_WINDOW_SECS) * REFUSAL_WINDOW_SECS;
        let mut key = TallyKey {
            window,
            kind: record.kind.clone(),
            action: record.details.get("action").cloned().unwrap_or_default(),
            network,
        };
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        if !tallies.contains_key(&key) && tallies.len() >= MAX_TALLIES {
            key.network = OTHER_NETWORKS.to_string();
        }
        let tally = tallies.entry(key).or_insert_with_key(|key| {
            let mut r = record;
            r.id = tally_id(key);
            r.expires_at = r.expires_at.saturating_sub(r.at).saturating_add(window);
            r.at = window;
            r.user_id = None;
            r.details.insert("network".into(), key.network.clone());
            Tally {
                record: r,
                total: 0,
                unstored: 0,
            }
        });
        tally.total = tally.total.saturating_add(1);
        tally.unstored = tally.unstored.saturating_add(1);
    }

    /// The refusal counts to store at `now`: those of windows over (closed:
    /// they also come back in `closed`, for the webhook), and with `open`
    /// those of the current windows too (a read wants to see them). With
    /// `close_all` every window closes (shutdown).
    pub fn take_refusals(&self, now: i64, open: bool, close_all: bool) -> RefusalTake {
        let mut take = RefusalTake::default();
        let Ok(mut tallies) = self.tallies.lock() else {
            return take;
        };
        tallies.retain(|key, tally| {
            let closing =
                close_all || now >= key.window + REFUSAL_WINDOW_SECS + REFUSAL_CLOSE_GRACE_SECS;
            if tally.unstored > 0 && (open || closing) {
                take.deltas.push(tally.with_count(tally.unstored));
                tally.unstored = 0;
            }
            if closing {
                take.closed.push(tally.with_count(tally.total));
            }
            !closing
        });
        take.deltas.sort_by(|a, b| a.id.cmp(&b.id));
        take.closed.sort_by(|a, b| a.id.cmp(&b.id));
        take
    }

    /// Queues a record for the flusher without waiting; a full buffer
    /// drops it (counted, and already logged by the caller).
    pub fn push(&self, record: AuditRecord) {
        if self.tx.try_send(SinkMessage::Event(record)).is_err() {
            metrics::counter!("portcullis_audit_writes_total", "result" => "dropped").increment(1);
            tracing::warn!("audit buffer full: event logged but not stored");
        }
    }

    /// Waits (at most `limit`) until everything queued so far is stored;
    /// false when the flusher did not answer in time (or is not running).
    pub async fn flush(&self, limit: Duration) -> bool {
        self.request(limit, SinkMessage::Flush).await
    }

    /// [`AuditSink::flush`], closing every refusal window (shutdown).
    pub async fn close(&self, limit: Duration) -> bool {
        self.request(limit, SinkMessage::Close).await
    }

    async fn request(
        &self,
        limit: Duration,
        message: impl FnOnce(oneshot::Sender<()>) -> SinkMessage,
    ) -> bool {
        let (done, wait) = oneshot::channel();
        let sent = tokio::time::timeout(limit, self.tx.send(message(done))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return false;
        }
        matches!(tokio::time::timeout(limit, wait).await, Ok(Ok(())))
    }

    /// The receiving side, once (for the flusher task).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<SinkMessage>> {
        self.rx.lock().ok().and_then(|mut r| r.take())
    }
}

/// Registers the audit, webhook and detection counters at 0, so they exist
/// from start-up (the recorder is installed first: a counter registered
/// before it would go nowhere).
pub fn register_metrics() {
    let _ = crate::telemetry::metrics();
    let _ = metrics::histogram!("portcullis_audit_batch_size");
    for result in ["stored", "failed", "dropped"] {
        metrics::counter!("portcullis_audit_writes_total", "result" => result).increment(0);
    }
    for result in ["delivered", "failed", "abandoned"] {
        metrics::counter!("portcullis_webhook_deliveries_total", "result" => result).increment(0);
    }
    for rule in Suspicion::RULES {
        metrics::counter!("portcullis_suspicious_events_total", "rule" => rule).increment(0);
    }
}

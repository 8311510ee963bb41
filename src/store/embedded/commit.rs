//! Group commit: many writes, one fsync.
//!
//! Every write of the embedded store runs in a transaction of its own, as it
//! always has (redb admits one writer at a time, so a rotation's
//! compare-and-swap still sees every earlier write), but commits it with
//! [`Durability::None`]: the new state is visible to later transactions at
//! once and nothing is flushed. The write is answered only after an empty
//! transaction committed with [`Durability::Immediate`] that *began after*
//! its own commit: redb makes every earlier non-durable commit durable with
//! it (one fsync of the file, see `Durability::None`'s documentation).
//!
//! Writes run on one thread, [`Writer`]: it runs the jobs that queued while
//! it was busy, one transaction after another, then flushes once for all of
//! them and wakes their callers. (Before it, each write ran on tokio's
//! blocking pool and waited for a shared flush on a condition variable:
//! `perf stat` counted about 8 thread switches a refresh then, under 2
//! now.) Blocking work that writes without going through the writer (none
//! today) is still safe: [`super::EmbeddedStore::run`] sees the write and
//! flushes before it returns.
//!
//! What a client sees is unchanged: no write is acknowledged before it is on
//! disk, and a `kill -9` loses only writes nobody was told about. A read may
//! see a write that is not yet durable; if the process then dies, that write
//! is gone and so is everything that followed from it, since every write
//! that came after it waits for the same or a later flush.

use std::cell::Cell;

use redb::{Database, Durability, WriteTransaction};

use super::other;
use crate::store::{StoreError, StoreResult};

/// Counter of store writes (committed write transactions) on the embedded
/// store.
pub const WRITES_METRIC: &str = "portcullis_store_writes_total";
/// Counter of fsyncs (durable commits) on the embedded store: writes per
/// fsync is the batch size.
pub const FLUSHES_METRIC: &str = "portcullis_store_flushes_total";

thread_local! {
    /// Set when the current job began a durable write transaction, so that
    /// the writer thread (or [`super::EmbeddedStore::run`]) flushes before
    /// answering.
    static WROTE: Cell<bool> = const { Cell::new(false) };
}

/// Begins a write transaction that commits without an fsync. Every write
/// of the embedded store begins here (never with `db.begin_write()`), so
/// that the writer thread (and [`super::EmbeddedStore::run`]) can tell that
/// a flush must come before the answer.
pub(super) fn begin_write(db: &Database) -> StoreResult<WriteTransaction> {
    let mut txn = db.begin_write().map_err(other)?;
    txn.set_durability(Durability::None).map_err(other)?;
    WROTE.with(|w| w.set(true));
    metrics::counter!(WRITES_METRIC).increment(1);
    Ok(txn)
}

/// Begins a write transaction for state that no client is ever told was
/// stored: the sign-in throttle's attempt reservations and failure records,
/// and the known-device marks of new-sign-in notices. It commits without an
/// fsync and, unlike [`begin_write`], does not make its caller wait for a
/// flush: the next flush (any durable write's) carries it. A `kill -9`
/// may forget the last moments of it, which is what expiry does to it
/// anyway (a throttle window starts afresh; a device gets one more
/// notice). Its atomicity is untouched: it is still one transaction, and a
/// reservation still cannot be raced. A sign-in thus waits for one fsync
/// (its session), not five.
pub(super) fn begin_volatile_write(db: &Database) -> StoreResult<WriteTransaction> {
    let mut txn = db.begin_write().map_err(other)?;
    txn.set_durability(Durability::None).map_err(other)?;
    metrics::counter!(WRITES_METRIC).increment(1);
    Ok(txn)
}

/// Runs `f` and reports whether it began a write transaction.
pub(super) fn tracking_writes<T>(f: impl FnOnce() -> T) -> (T, bool) {
    WROTE.with(|w| w.set(false));
    let out = f();
    (out, WROTE.with(|w| w.replace(false)))
}

/// One durable commit: an empty transaction with `Durability::Immediate`,
/// which persists it and every non-durable commit before it (one fsync).
pub(super) fn flush(db: &Database) -> StoreResult<()> {
    let mut txn = db.begin_write().map_err(other)?;
    txn.set_durability(Durability::Immediate).map_err(other)?;
    txn.commit().map_err(other)?;
    metrics::counter!(FLUSHES_METRIC).increment(1);
    Ok(())
}

/// What the writer thread hands back once a job's batch is flushed: sends
/// the job's result, or the flush's error, to its caller.
type Completion = Box<dyn FnOnce(Option<&str>) + Send>;
/// A write for the writer thread: runs its transaction(s) and returns its
/// completion.
type WriteJob = Box<dyn FnOnce(&Database) -> Completion + Send>;

/// Most jobs one flush waits for: a bound on how long the first write of a
/// burst waits for the last.
const MAX_BATCH: usize = 256;

/// One thread that runs every known write of the store, one transaction
/// after another, and flushes once per batch: the jobs that queued while
/// the previous batch ran and flushed. Compared with a write on tokio's
/// blocking pool that then waits for a flush on a condition variable, a
/// write here costs no thread switch of its own under load (the thread is
/// busy, the queue is full); its caller is woken once, when its batch is
/// durable. redb admits one writer at a time anyway.
///
/// Dropping the last handle closes the queue and joins the thread, so the
/// database is closed when the store is (a reopen right after a drop finds
/// the file free).
pub(super) struct Writer {
    jobs: Option<crossbeam_channel::Sender<WriteJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread for `db`.
    pub(super) fn start(db: std::sync::Arc<Database>) -> anyhow::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<WriteJob>();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&db, &queue))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the writer thread; returns its result once the batch
    /// holding it is durable (at once if it began no durable write).
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let (reply, result) = tokio::sync::oneshot::channel::<StoreResult<T>>();
        let job: WriteJob = Box::new(move |db| {
            let out = f(db);
            Box::new(move |flush_error: Option<&str>| {
                let out = match flush_error {
                    Some(e) => Err(StoreError::Other(anyhow::anyhow!("flush failed: {e}"))),
                    None => out,
                };
                let _ = reply.send(out);
            })
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("store writer stopped")))?
            .send(job)
            .map_err(|_| StoreError::Other(anyhow::anyhow!("store writer stopped")))?;
        result
            .await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("store writer failed")))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None; // closes the queue: the thread ends after its batch
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

fn writer_loop(db: &Database, queue: &crossbeam_channel::Receiver<WriteJob>) {
    while let Ok(first) = queue.recv() {
        let mut done: Vec<Completion> = Vec::new();
        let mut durable = false;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            // A panicking job must not take the writer down with it: its
            // caller sees its reply dropped ("store writer failed").
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tracking_writes(|| job(db))
            }));
            if let Ok((completion, wrote)) = ran {
                durable |= wrote;
                done.push(completion);
            }
            if done.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        let flushed = if durable { flush(db) } else { Ok(()) };
        let error = flushed.err().map(|e| e.to_string());
        for completion in done {
            completion(error.as_deref());
        }
    }
}

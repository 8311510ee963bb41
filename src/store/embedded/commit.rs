//! Group commit: many writes, one fsync.
//!
//! Every write of the embedded store runs in a transaction of its own, as it
//! always has (redb admits one writer at a time, so a rotation's
//! compare-and-swap still sees every earlier write), but commits it with
//! [`Durability::None`]: the new state is visible to later transactions at
//! once and nothing is flushed. Before the write is answered, the caller
//! waits in [`GroupCommit::wait_durable`] for an empty transaction committed
//! with [`Durability::Immediate`] that *began after* its own commit: redb
//! makes every earlier non-durable commit durable with it (one fsync of the
//! file, see `Durability::None`'s documentation). Writers that arrive while
//! such a flush runs queue behind it and share the next one, so under load
//! one fsync carries as many writes as arrived during the previous one.
//!
//! What a client sees is unchanged: no write is acknowledged before it is on
//! disk, and a `kill -9` loses only writes nobody was told about. A read may
//! see a write that is not yet durable; if the process then dies, that write
//! is gone and so is everything that followed from it, since every write
//! that came after it waits for the same or a later flush.

use std::cell::Cell;
use std::sync::{Condvar, Mutex};

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
    /// Set when the current blocking task began a write transaction, so
    /// that [`super::EmbeddedStore::run`] knows to wait for a flush.
    static WROTE: Cell<bool> = const { Cell::new(false) };
}

/// Begins a write transaction that commits without an fsync. Every write
/// of the embedded store begins here (never with `db.begin_write()`), so
/// that [`super::EmbeddedStore::run`] can tell that it must wait for the
/// group's flush before it answers.
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

/// The flush schedule: which durable commits have started and finished.
/// Writers wait here on the blocking thread that ran their transaction (no
/// extra hop through the async runtime); one of them runs each flush.
#[derive(Debug, Default)]
pub(super) struct GroupCommit {
    state: Mutex<Flushes>,
    /// Signalled when a flush finishes (successfully or not).
    finished: Condvar,
}

#[derive(Debug, Default)]
struct Flushes {
    /// The number of the last flush that began (flushes are numbered 1, 2…).
    started: u64,
    /// Whether a flush is running now.
    running: bool,
    /// The number of the last flush that succeeded.
    succeeded: u64,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Other(anyhow::anyhow!("group commit state poisoned"))
}

impl GroupCommit {
    /// Returns once every write committed before this call is durable.
    ///
    /// The flush that covers a write must begin after the write's commit,
    /// so the caller needs flush number `started + 1` (a flush running now
    /// may have begun before its commit). If no flush is running, the
    /// caller runs that flush itself; otherwise it waits for the running
    /// one to finish and looks again, by when the next flush (run by
    /// whichever waiter gets there first) carries every write that queued
    /// meanwhile. A failed flush fails only its leader's write; the others
    /// wake, find no success and lead a new flush.
    pub(super) fn wait_durable(&self, db: &Database) -> StoreResult<()> {
        let mut s = self.state.lock().map_err(poisoned)?;
        let target = s.started + 1;
        loop {
            if s.succeeded >= target {
                return Ok(());
            }
            if !s.running {
                s.running = true;
                s.started += 1;
                let number = s.started;
                drop(s);
                let flushed = flush(db);
                let mut s = self.state.lock().map_err(poisoned)?;
                s.running = false;
                if flushed.is_ok() {
                    s.succeeded = number;
                }
                drop(s);
                self.finished.notify_all();
                return flushed;
            }
            s = self.finished.wait(s).map_err(poisoned)?;
        }
    }
}

/// One durable commit: an empty transaction with `Durability::Immediate`,
/// which persists it and every non-durable commit before it (one fsync).
fn flush(db: &Database) -> StoreResult<()> {
    let mut txn = db.begin_write().map_err(other)?;
    txn.set_durability(Durability::Immediate).map_err(other)?;
    txn.commit().map_err(other)?;
    metrics::counter!(FLUSHES_METRIC).increment(1);
    Ok(())
}

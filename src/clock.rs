//! The one source of "now".
//!
//! Every expiry rule (token lifetimes, refresh grace windows, sign-in
//! failure windows, and later reset tokens, TOTP steps and retention) reads
//! the time from a [`Clock`] held by the service core, never from the system
//! directly, so tests can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Unix time in whole seconds.
pub type UnixTime = i64;

/// A clock: the system's, or a manual one for tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: seconds set by hand (tests).
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands still at `start` until moved with
    /// [`Clock::advance`] or [`Clock::set`]. Clones share the same time.
    pub fn manual(start: UnixTime) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(start))),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> UnixTime {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            None => system_now(),
        }
    }

    /// [`Clock::now`] as an unsigned number (for JWT claims); 0 before 1970.
    pub fn now_u64(&self) -> u64 {
        u64::try_from(self.now()).unwrap_or(0)
    }

    /// Moves a manual clock forward by `secs` (no effect on the system clock).
    pub fn advance(&self, secs: i64) {
        if let Some(t) = &self.manual {
            t.fetch_add(secs, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock (no effect on the system clock).
    pub fn set(&self, now: UnixTime) {
        if let Some(t) = &self.manual {
            t.store(now, Ordering::SeqCst);
        }
    }
}

fn system_now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Converts a duration to whole seconds for arithmetic on [`UnixTime`].
pub fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = Clock::manual(1_000);
        let shared = c.clone();
        assert_eq!(c.now(), 1_000);
        shared.advance(30);
        assert_eq!(c.now(), 1_030);
        c.set(5);
        assert_eq!(shared.now(), 5);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(Clock::system().now() > 1_577_836_800);
        Clock::system().advance(10); // no effect, no panic
    }
}

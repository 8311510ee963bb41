//! Session state in memory for the bearer check.
//!
//! A read-through cache of sid → what [`Core::authenticate`] needs of a
//! session (its user, expiry and revocation time), for this process's
//! embedded store. The embedded store has one process writing it, so every
//! write that changes a session passes through this process, and each such
//! store function invalidates the sessions it wrote right after its commit,
//! before it returns: no caller can forget it, and a session revoked by a
//! request that returned is refused from then on.
//!
//! A reader must not put back a value older than an invalidation: a reader
//! that read the session before a revocation committed, and inserts after
//! that revocation's invalidation ran, would leave a live-looking entry
//! behind. So the cache keeps an epoch, bumped under the lock by every
//! invalidation; a reader takes the epoch before its read transaction
//! begins and inserts only if the epoch is still the same (checked under the
//! same lock). Any write that committed before the reader's read shows in
//! what it read; any write that committed after it bumps the epoch (after
//! the commit, so after the reader took it), and the insert is dropped. A
//! dropped insert costs a store read next time, never a stale answer.
//!
//! Bounded: when full, entries expired at the time of the insert go first,
//! then arbitrary ones until an eighth of the room is free.
//!
//! [`Core::authenticate`]: crate::service::Core::authenticate

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::store::SessionRecord;

/// Default bound on cached sessions (an entry is about 150 bytes).
pub(super) const DEFAULT_CAPACITY: usize = 65_536;

/// What the bearer check needs of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SessionState {
    user_id: Box<str>,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl SessionState {
    /// The state of a stored session.
    pub(super) fn of(s: &SessionRecord) -> Self {
        Self {
            user_id: s.user_id.as_str().into(),
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
        }
    }

    /// Whether the session belongs to `user_id` and is active at `now`
    /// (the rule of [`SessionRecord::is_active`]).
    pub(super) fn is_live_for(&self, user_id: &str, now: i64) -> bool {
        &*self.user_id == user_id && self.revoked_at.is_none() && self.expires_at > now
    }
}

struct Inner {
    map: HashMap<String, SessionState>,
    /// Bumped by every invalidation (see the module docs).
    epoch: u64,
}

/// Sid → [`SessionState`], invalidated by the store's session writes.
pub(super) struct SessionCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// The epoch a reader took before its read (see [`SessionCache::epoch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Epoch(u64);

impl SessionCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                epoch: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under the lock is a single map operation or a
        // counter bump: a panic elsewhere cannot leave it half-done.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the cached session `sid` is live for `user_id` at `now`;
    /// `None` when it is not cached (read the store).
    pub(super) fn is_live(&self, sid: &str, user_id: &str, now: i64) -> Option<bool> {
        self.lock()
            .map
            .get(sid)
            .map(|s| s.is_live_for(user_id, now))
    }

    /// The epoch to hand to [`SessionCache::insert`]: take it before the
    /// read transaction begins.
    pub(super) fn epoch(&self) -> Epoch {
        Epoch(self.lock().epoch)
    }

    /// Caches what a reader read, unless a session write was invalidated
    /// since the reader took `epoch` (then what it read may be stale).
    pub(super) fn insert(&self, epoch: Epoch, sid: &str, state: SessionState, now: i64) {
        let mut inner = self.lock();
        if inner.epoch != epoch.0 {
            return;
        }
        if inner.map.len() >= self.capacity && !inner.map.contains_key(sid) {
            inner.map.retain(|_, s| s.expires_at > now);
            let target = self.capacity - self.capacity / 8;
            if inner.map.len() >= target {
                let excess = inner.map.len() + 1 - target.max(1);
                let victims: Vec<String> = inner.map.keys().take(excess).cloned().collect();
                for k in victims {
                    inner.map.remove(&k);
                }
            }
        }
        inner.map.insert(sid.to_string(), state);
    }

    /// Forgets these sessions; call right after the transaction that
    /// changed them committed, before answering.
    pub(super) fn invalidate<'a>(&self, sids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        inner.epoch = inner.epoch.wrapping_add(1);
        for sid in sids {
            inner.map.remove(sid);
        }
    }

    /// Forgets the sessions expired at `now` (what a purge deleted); call
    /// right after the purge committed.
    pub(super) fn invalidate_expired(&self, now: i64) {
        let mut inner = self.lock();
        inner.epoch = inner.epoch.wrapping_add(1);
        inner.map.retain(|_, s| s.expires_at > now);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(user: &str, revoked_at: Option<i64>) -> SessionState {
        SessionState {
            user_id: user.into(),
            expires_at: 2_000,
            revoked_at,
        }
    }

    #[test]
    fn a_read_older_than_an_invalidation_is_not_cached() {
        let cache = SessionCache::new(16);
        // The reader takes the epoch, then reads the live session...
        let epoch = cache.epoch();
        let read = state("u1", None);
        // ...a revocation commits and invalidates meanwhile...
        cache.invalidate(["s1"]);
        // ...and the reader's stale value must not go in.
        cache.insert(epoch, "s1", read, 1_000);
        assert_eq!(cache.is_live("s1", "u1", 1_000), None);
        // A reader that began after the invalidation caches what it read.
        let epoch = cache.epoch();
        cache.insert(epoch, "s1", state("u1", Some(1_000)), 1_000);
        assert_eq!(cache.is_live("s1", "u1", 1_000), Some(false));
    }

    #[test]
    fn an_invalidation_after_the_insert_removes_it() {
        let cache = SessionCache::new(16);
        let epoch = cache.epoch();
        cache.insert(epoch, "s1", state("u1", None), 1_000);
        assert_eq!(cache.is_live("s1", "u1", 1_000), Some(true));
        assert_eq!(cache.is_live("s1", "u2", 1_000), Some(false));
        assert_eq!(cache.is_live("s1", "u1", 2_000), Some(false), "expired");
        cache.invalidate(["s1"]);
        assert_eq!(cache.is_live("s1", "u1", 1_000), None);
    }

    #[test]
    fn expired_entries_go_with_a_purge_and_the_bound_holds() {
        let cache = SessionCache::new(8);
        for i in 0..40 {
            let epoch = cache.epoch();
            cache.insert(epoch, &format!("s{i}"), state("u", None), 1_000);
            assert!(cache.len() <= 8);
        }
        cache.invalidate_expired(2_000);
        assert_eq!(cache.len(), 0);
    }
}

//! [`SessionStore`] on redb: `sessions` (sid → JSON [`SessionRecord`]),
//! `sessions_by_user` (`<user id>/<sid>` → ()) for the sessions not ended,
//! and `sessions_by_user_ended` for those ended before they expired.
//!
//! The split keeps [`SessionStore::sessions_of`], which the session cap
//! calls on every sign-in, from reading a user's whole history: a session
//! signed out, revoked or evicted stays stored until it expires (up to the
//! refresh lifetime), and a user who signs in often had hundreds of them.
//! An ended session's index entry moves in the transaction that ends it.
//! `sessions_by_user` may still hold ended sessions (stores written before
//! the split): every reader checks the record itself, so the index only
//! decides what is read, never what is answered. Deleting an account reads
//! both.

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::cache::{SessionCache, SessionState};
use super::users::USERS;
use super::{EmbeddedStore, decode, encode, get_json, modify, modify_in, other};
use crate::domain::UserId;
use crate::store::{
    RotateOutcome, Rotation, SessionRecord, SessionStore, StoreError, StoreResult, UserRecord,
    classify_rotation,
};

/// Sid → JSON [`SessionRecord`].
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Key: `<user id>/<session id>`.
pub(super) const USER_SESSIONS: TableDefinition<&str, ()> =
    TableDefinition::new("sessions_by_user");
/// Key: `<user id>/<session id>` of a session ended before it expired.
pub(super) const ENDED_USER_SESSIONS: TableDefinition<&str, ()> =
    TableDefinition::new("sessions_by_user_ended");

pub(super) fn user_session_key(user_id: &str, sid: &str) -> String {
    format!("{user_id}/{sid}")
}

/// Sids of the user's sessions, from the index.
pub(super) fn sids_of(
    by_user: &impl ReadableTable<&'static str, ()>,
    user_id: &str,
) -> StoreResult<Vec<String>> {
    let prefix = format!("{user_id}/");
    let mut sids = Vec::new();
    for item in by_user.range(prefix.as_str()..).map_err(other)? {
        let (k, _) = item.map_err(other)?;
        match k.value().strip_prefix(prefix.as_str()) {
            Some(sid) => sids.push(sid.to_string()),
            None => break,
        }
    }
    Ok(sids)
}

/// Moves the index entries of `sids`, sessions of `user_id` just ended,
/// to the ended index, in the caller's transaction.
fn index_ended<'a>(
    txn: &WriteTransaction,
    user_id: &str,
    sids: impl IntoIterator<Item = &'a str>,
) -> StoreResult<()> {
    let mut live = txn.open_table(USER_SESSIONS).map_err(other)?;
    let mut ended = txn.open_table(ENDED_USER_SESSIONS).map_err(other)?;
    for sid in sids {
        let key = user_session_key(user_id, sid);
        live.remove(key.as_str()).map_err(other)?;
        ended.insert(key.as_str(), ()).map_err(other)?;
    }
    Ok(())
}

/// One refresh attempt on `r.sid` in a write transaction of its own; a
/// reuse ends the family (its index entry moves with it). The caller
/// invalidates the session cache, whatever the outcome.
fn rotate_in(db: &Database, r: &Rotation<'_>) -> StoreResult<RotateOutcome> {
    let txn = super::commit::begin_write(db)?;
    let outcome = modify_in(&txn, SESSIONS, r.sid, |current: SessionRecord| {
        let outcome = classify_rotation(&current, r);
        let write = match &outcome {
            RotateOutcome::Rotated(next) | RotateOutcome::Reused(next) => Some(next.clone()),
            RotateOutcome::Grace(_) | RotateOutcome::Invalid => None,
        };
        (write, outcome)
    })?;
    let Some(outcome) = outcome else {
        return Ok(RotateOutcome::Invalid);
    };
    if let RotateOutcome::Reused(ended) = &outcome {
        index_ended(&txn, &ended.user_id, [r.sid])?;
    }
    txn.commit().map_err(other)?;
    Ok(outcome)
}

/// Ends `sid` if it is a live session of `user_id`, in a write transaction
/// of its own (its index entry moves with it); whether it did. The caller
/// invalidates the session cache, whatever the outcome.
fn revoke_in(db: &Database, user_id: &str, sid: &str, now: i64) -> StoreResult<bool> {
    let txn = super::commit::begin_write(db)?;
    let revoked = modify_in(&txn, SESSIONS, sid, |mut s: SessionRecord| {
        if s.user_id != user_id || !s.is_active(now) {
            return (None, false);
        }
        s.revoked_at = Some(now);
        (Some(s), true)
    })?;
    if revoked != Some(true) {
        // Nothing written: the transaction is dropped.
        return Ok(false);
    }
    index_ended(&txn, user_id, [sid])?;
    txn.commit().map_err(other)?;
    Ok(true)
}

/// Deletes every session of `user_id`, ended or not, and their index
/// entries, in the caller's transaction (the account is going); returns
/// their ids.
pub(super) fn delete_all_of(txn: &WriteTransaction, user_id: &str) -> StoreResult<Vec<String>> {
    let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
    let mut deleted = Vec::new();
    for index in [USER_SESSIONS, ENDED_USER_SESSIONS] {
        let mut by_user = txn.open_table(index).map_err(other)?;
        for sid in sids_of(&by_user, user_id)? {
            sessions.remove(sid.as_str()).map_err(other)?;
            by_user
                .remove(user_session_key(user_id, &sid).as_str())
                .map_err(other)?;
            deleted.push(sid);
        }
    }
    Ok(deleted)
}

/// Deletes the sessions expired by `now` (and their index entries), in the
/// caller's transaction; returns how many.
pub(super) fn purge_expired(txn: &WriteTransaction, now: i64) -> StoreResult<u64> {
    let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
    let mut by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
    let mut ended = txn.open_table(ENDED_USER_SESSIONS).map_err(other)?;
    let mut expired = Vec::new();
    for item in sessions.iter().map_err(other)? {
        let (k, v) = item.map_err(other)?;
        let s: SessionRecord = decode(v.value())?;
        if s.expires_at <= now {
            expired.push((k.value().to_string(), s.user_id));
        }
    }
    let mut n = 0;
    for (sid, user_id) in expired {
        sessions.remove(sid.as_str()).map_err(other)?;
        let key = user_session_key(&user_id, &sid);
        by_user.remove(key.as_str()).map_err(other)?;
        ended.remove(key.as_str()).map_err(other)?;
        n += 1;
    }
    Ok(n)
}

/// Caches what a reader read of `sid` (taken at `epoch`, before its read
/// transaction began) and returns it.
fn remember(
    cache: &SessionCache,
    epoch: super::cache::Epoch,
    sid: &str,
    read: Option<SessionRecord>,
    now: i64,
) -> Option<SessionState> {
    let state = read.as_ref().map(SessionState::of);
    if let Some(state) = &state {
        cache.insert(epoch, sid, state.clone(), now);
    }
    state
}

/// The bearer check on redb: from the cache, else one read transaction
/// (whose result is cached unless a session write intervened); when the
/// session is live and `with_user`, the account `user_id` from the same
/// read transaction.
pub(super) fn read_live(
    db: &Database,
    cache: &SessionCache,
    sid: &str,
    user_id: &UserId,
    now: i64,
    with_user: bool,
) -> StoreResult<(bool, Option<UserRecord>)> {
    let cached = cache.is_live(sid, user_id, now);
    if cached == Some(false) || (cached == Some(true) && !with_user) {
        return Ok((cached == Some(true), None));
    }
    // Taken before the read transaction begins (see `cache.rs`).
    let epoch = cache.epoch();
    let txn = db.begin_read().map_err(other)?;
    let live = match cached {
        Some(live) => live,
        None => {
            let read = get_json(&txn.open_table(SESSIONS).map_err(other)?, sid)?;
            remember(cache, epoch, sid, read, now).is_some_and(|s| s.is_live_for(user_id, now))
        }
    };
    if !live || !with_user {
        return Ok((live, None));
    }
    let user = get_json(&txn.open_table(USERS).map_err(other)?, user_id)?;
    Ok((true, user))
}

/// [`read_live`] for the async traits, run on the async thread itself,
/// without a hop to the blocking pool (measured with
/// `examples/redb_read_cost.rs`): a point read of a cached page costs
/// about 21k instructions (1.8 µs), the hop about 4k instructions more in
/// user space plus two thread switches (10 µs a read in all, measured on
/// the same machine). A redb read never waits for a writer's fsync (its
/// locks are released before the flush); it can block only on a page
/// missing from redb's cache (a `pread`), which the hot sessions and
/// accounts of the bearer check are not. Writes and scans keep using the
/// blocking pool.
pub(super) fn live(
    store: &EmbeddedStore,
    sid: &str,
    user_id: &UserId,
    now: i64,
    with_user: bool,
) -> StoreResult<(bool, Option<UserRecord>)> {
    read_live(&store.db, &store.sessions, sid, user_id, now, with_user)
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let s = session.clone();
        let cache = self.sessions.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            {
                let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
                if sessions.get(s.id.as_str()).map_err(other)?.is_some() {
                    return Err(StoreError::Conflict);
                }
                sessions
                    .insert(s.id.as_str(), encode(&s)?.as_slice())
                    .map_err(other)?;
                let mut by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
                by_user
                    .insert(user_session_key(&s.user_id, &s.id).as_str(), ())
                    .map_err(other)?;
            }
            let committed = txn.commit().map_err(other);
            cache.invalidate([s.id.as_str()]);
            committed
        })
        .await
    }

    async fn session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        let sid = sid.to_string();
        self.read_now(move |db| {
            let txn = db.begin_read().map_err(other)?;
            get_json(&txn.open_table(SESSIONS).map_err(other)?, &sid)
        })
    }

    async fn session_live(&self, sid: &str, user_id: &UserId, now: i64) -> StoreResult<bool> {
        Ok(live(self, sid, user_id, now, false)?.0)
    }

    async fn rotate(&self, rotation: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let sid = rotation.sid.to_string();
        let presented = rotation.presented_jti.to_string();
        let new_jti = rotation.new_jti.to_string();
        let (now, new_expires_at, grace_secs) =
            (rotation.now, rotation.new_expires_at, rotation.grace_secs);
        let cache = self.sessions.clone();
        self.write(move |db| {
            let r = Rotation {
                sid: &sid,
                presented_jti: &presented,
                new_jti: &new_jti,
                now,
                new_expires_at,
                grace_secs,
            };
            let outcome = rotate_in(db, &r);
            cache.invalidate([sid.as_str()]);
            outcome
        })
        .await
    }

    async fn sessions_of(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<SessionRecord>> {
        let user_id = user_id.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            let by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
            let sessions = txn.open_table(SESSIONS).map_err(other)?;
            let mut out = Vec::new();
            for sid in sids_of(&by_user, &user_id)? {
                if let Some(s) = get_json::<SessionRecord>(&sessions, &sid)?
                    && s.is_active(now)
                {
                    out.push(s);
                }
            }
            out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            Ok(out)
        })
        .await
    }

    async fn revoke_session(&self, user_id: &UserId, sid: &str, now: i64) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        let sid = sid.to_string();
        let cache = self.sessions.clone();
        self.write(move |db| {
            let revoked = revoke_in(db, &user_id, &sid, now);
            cache.invalidate([sid.as_str()]);
            revoked
        })
        .await
    }

    async fn record_proof(&self, user_id: &UserId, sid: &str, at: i64) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        let sid = sid.to_string();
        let cache = self.sessions.clone();
        self.write(move |db| {
            let done = modify(db, SESSIONS, &sid, |mut s: SessionRecord| {
                if s.user_id != user_id || !s.is_active(at) {
                    return (None, false);
                }
                s.proven_at = Some(at);
                (Some(s), true)
            });
            // Liveness does not change, but the cache must never hold a
            // state older than the stored record.
            cache.invalidate([sid.as_str()]);
            Ok(done? == Some(true))
        })
        .await
    }

    async fn bind_session_key(
        &self,
        user_id: &UserId,
        sid: &str,
        jkt: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        let sid = sid.to_string();
        let jkt = jkt.to_string();
        let cache = self.sessions.clone();
        self.write(move |db| {
            let done = modify(db, SESSIONS, &sid, |mut s: SessionRecord| {
                if s.user_id != user_id || !s.is_active(now) {
                    return (None, false);
                }
                match &s.dpop_jkt {
                    Some(bound) => {
                        let same = *bound == jkt;
                        (None, same)
                    }
                    None => {
                        s.dpop_jkt = Some(jkt.clone());
                        (Some(s), true)
                    }
                }
            });
            cache.invalidate([sid.as_str()]);
            Ok(done? == Some(true))
        })
        .await
    }

    async fn revoke_sessions_of(
        &self,
        user_id: &UserId,
        keep: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let user_id = user_id.to_string();
        let keep = keep.map(str::to_string);
        let cache = self.sessions.clone();
        self.write(move |db| {
            let txn = super::commit::begin_write(db)?;
            let mut revoked = Vec::new();
            {
                let by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
                let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
                for sid in sids_of(&by_user, &user_id)? {
                    if keep.as_deref() == Some(sid.as_str()) {
                        continue;
                    }
                    let Some(mut s) = get_json::<SessionRecord>(&sessions, &sid)? else {
                        continue;
                    };
                    if s.is_active(now) {
                        s.revoked_at = Some(now);
                        sessions
                            .insert(sid.as_str(), encode(&s)?.as_slice())
                            .map_err(other)?;
                        revoked.push(sid);
                    }
                }
            }
            index_ended(&txn, &user_id, revoked.iter().map(String::as_str))?;
            let committed = txn.commit().map_err(other);
            cache.invalidate(revoked.iter().map(String::as_str));
            committed?;
            Ok(u64::try_from(revoked.len()).unwrap_or(u64::MAX))
        })
        .await
    }
}

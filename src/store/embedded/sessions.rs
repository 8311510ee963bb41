//! [`SessionStore`] on redb: `sessions` (sid → JSON [`SessionRecord`]) and
//! `sessions_by_user` (`<user id>/<sid>` → ()).

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{EmbeddedStore, decode, encode, get_json, modify, other};
use crate::store::{
    RotateOutcome, Rotation, SessionRecord, SessionStore, StoreError, StoreResult,
    classify_rotation,
};

/// Sid → JSON [`SessionRecord`].
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Key: `<user id>/<session id>`.
pub(super) const USER_SESSIONS: TableDefinition<&str, ()> =
    TableDefinition::new("sessions_by_user");

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

/// Deletes the sessions expired by `now` (and their index entries), in the
/// caller's transaction; returns how many.
pub(super) fn purge_expired(txn: &WriteTransaction, now: i64) -> StoreResult<u64> {
    let mut sessions = txn.open_table(SESSIONS).map_err(other)?;
    let mut by_user = txn.open_table(USER_SESSIONS).map_err(other)?;
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
        by_user
            .remove(user_session_key(&user_id, &sid).as_str())
            .map_err(other)?;
        n += 1;
    }
    Ok(n)
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let s = session.clone();
        self.run(move |db| {
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
            txn.commit().map_err(other)
        })
        .await
    }

    async fn session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        let sid = sid.to_string();
        self.run(move |db| {
            let txn = db.begin_read().map_err(other)?;
            get_json(&txn.open_table(SESSIONS).map_err(other)?, &sid)
        })
        .await
    }

    async fn rotate(&self, rotation: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let sid = rotation.sid.to_string();
        let presented = rotation.presented_jti.to_string();
        let new_jti = rotation.new_jti.to_string();
        let (now, new_expires_at, grace_secs) =
            (rotation.now, rotation.new_expires_at, rotation.grace_secs);
        self.run(move |db| {
            let r = Rotation {
                sid: &sid,
                presented_jti: &presented,
                new_jti: &new_jti,
                now,
                new_expires_at,
                grace_secs,
            };
            let outcome = modify(db, SESSIONS, &sid, |current: SessionRecord| {
                let outcome = classify_rotation(&current, &r);
                let write = match &outcome {
                    RotateOutcome::Rotated(next) | RotateOutcome::Reused(next) => {
                        Some(next.clone())
                    }
                    RotateOutcome::Grace(_) | RotateOutcome::Invalid => None,
                };
                (write, outcome)
            })?;
            Ok(outcome.unwrap_or(RotateOutcome::Invalid))
        })
        .await
    }

    async fn sessions_of(&self, user_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
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

    async fn revoke_session(&self, user_id: &str, sid: &str, now: i64) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        let sid = sid.to_string();
        self.run(move |db| {
            let revoked = modify(db, SESSIONS, &sid, |mut s: SessionRecord| {
                if s.user_id != user_id || !s.is_active(now) {
                    return (None, false);
                }
                s.revoked_at = Some(now);
                (Some(s), true)
            })?;
            Ok(revoked == Some(true))
        })
        .await
    }

    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let user_id = user_id.to_string();
        let keep = keep.map(str::to_string);
        self.run(move |db| {
            let txn = super::commit::begin_write(db)?;
            let mut n = 0;
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
                        n += 1;
                    }
                }
            }
            txn.commit().map_err(other)?;
            Ok(n)
        })
        .await
    }
}

//! At most `PORTCULLIS_MAX_SESSIONS` live sessions per user: a
//! sign-in that would pass the cap ends the oldest sessions, so a script
//! signing in in a loop cannot grow a user's session list (and its
//! `GET /v1/sessions` answer) without bound.

use crate::domain::UserId;

use super::{Core, Result};

impl Core {
    /// Ends the user's oldest active sessions beyond the cap; returns how many.
    pub(super) async fn enforce_session_cap(&self, user_id: &UserId) -> Result<usize> {
        let cap = self.settings.limits.max_sessions as usize;
        let now = self.clock.now();
        let mut sessions = self.store.sessions_of(user_id, now).await?;
        if sessions.len() <= cap {
            return Ok(0);
        }
        // Oldest first: by creation time, then id (UUIDv7, time-ordered).
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let excess = sessions.len() - cap;
        let mut ended = 0;
        for s in sessions.iter().take(excess) {
            if self.store.revoke_session(user_id, &s.id, now).await? {
                ended += 1;
            }
        }
        if ended > 0 {
            metrics::counter!("portcullis_sessions_evicted_total").increment(ended as u64);
            tracing::info!(
                user_id = %user_id,
                ended,
                event = "session.evicted",
                "oldest sessions ended: session cap reached"
            );
        }
        Ok(ended)
    }
}

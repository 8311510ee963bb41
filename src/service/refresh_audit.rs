//! What a refresh leaves in the audit log (`PORTCULLIS_AUDIT_REFRESH`).
//!
//! At thousands of refreshes a second, one stored `token.refreshed` per
//! refresh (kept 90 days) would grow the audit log by hundreds of millions
//! of rows a day. By default a session leaves one per clock hour: the
//! first refresh of that session in that hour (and always its first
//! refresh ever). Each stored event carries the session's `generation`, so
//! the refreshes between two stored events are their difference. Grace-
//! window refreshes and reuse detections are always stored. What is not
//! stored is not delivered to the webhook either: both follow one rule.
//!
//! The decision needs no state of its own and no extra write: the refresh
//! token the client presented was issued by the previous rotation (or the
//! sign-in), so its `iat` says in which hour the session was last
//! refreshed. Rotation is atomic in the store, so across replicas exactly
//! one rotation per session crosses each hour boundary.

use crate::audit::AuditEvent;
use crate::config::AuditRefresh;
use crate::service::{ClientInfo, Core};
use crate::store::SessionRecord;

const HOUR: i64 = 3600;

/// Whether the rotation to `generation` at `now`, of a refresh token issued
/// at `presented_iat`, leaves a stored `token.refreshed` event.
///
/// A token issued in the first second of an hour may come from a rotation
/// in the last second of the previous one (the rotation's time and the
/// new token's `iat` are read a moment apart): it counts as the previous
/// hour, so an hour is never left without its event (at worst it gets two).
pub(super) fn stores_refresh(
    mode: AuditRefresh,
    generation: u64,
    presented_iat: u64,
    now: i64,
) -> bool {
    match mode {
        AuditRefresh::All => true,
        AuditRefresh::Hourly => {
            let issued = i64::try_from(presented_iat).unwrap_or(i64::MAX);
            generation <= 1 || now.div_euclid(HOUR) != (issued - 1).div_euclid(HOUR)
        }
    }
}

impl Core {
    /// Records the `token.refreshed` event of a refresh of `session` (just
    /// rotated, or answered from the grace window), by the rule above.
    pub(super) fn audit_refresh(
        &self,
        session: &SessionRecord,
        presented_iat: u64,
        grace: bool,
        client: &ClientInfo,
    ) {
        let mode = self.settings.performance.audit_refresh;
        if !grace && !stores_refresh(mode, session.generation, presented_iat, self.clock.now()) {
            return;
        }
        let event = AuditEvent::TokenRefreshed {
            sid: session.id.clone(),
            grace,
            generation: session.generation,
        };
        self.audit(event, Some(&session.user_id), client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 1_800_000_000 - 1_800_000_000 % HOUR; // an hour boundary

    fn hourly(generation: u64, iat: i64, now: i64) -> bool {
        stores_refresh(AuditRefresh::Hourly, generation, iat as u64, now)
    }

    #[test]
    fn first_refresh_of_a_session_and_of_each_hour() {
        // The session's first refresh, even in the hour of its sign-in.
        assert!(hourly(1, H + 10, H + 20));
        // Later refreshes within the hour of the previous one: not stored.
        assert!(!hourly(2, H + 20, H + 30));
        assert!(!hourly(9, H + 1, H + HOUR - 1));
        // The first one in a later hour: stored.
        assert!(hourly(3, H + 30, H + HOUR));
        assert!(hourly(3, H + 30, H + 5 * HOUR + 7));
        // A token issued in an hour's first second may be the previous
        // hour's rotation: stored rather than risk an hour without one.
        assert!(hourly(4, H + HOUR, H + HOUR + 100));
        assert!(!hourly(4, H + HOUR + 1, H + HOUR + 100));
        // `all` stores every one.
        assert!(stores_refresh(
            AuditRefresh::All,
            7,
            (H + 20) as u64,
            H + 30
        ));
    }

    #[test]
    fn a_steady_refresher_leaves_one_event_an_hour() {
        // A client refreshing every 7 s for 10 hours: 10 events (+1 for
        // the first refresh in the sign-in's hour).
        let mut iat = H + 5;
        let mut stored = 0;
        for generation in 1..=(10 * HOUR / 7) as u64 {
            let now = iat + 7;
            if hourly(generation, iat, now) {
                stored += 1;
            }
            iat = now;
        }
        assert!((10..=11).contains(&stored), "{stored}");
    }
}

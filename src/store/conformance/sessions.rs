//! Checks of [`SessionStore`].

use super::uid;
use super::{credentials, session, user};
use crate::domain::UserId;
use crate::store::{DynStore, RotateOutcome, Rotation, StoreError};

const NOW: i64 = 1_900_000_000;

pub(crate) async fn create_and_read(store: DynStore) {
    let s = session("rot-user", NOW);
    store.create_session(&s).await.unwrap();
    assert!(matches!(
        store.create_session(&s).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.session(&s.id).await.unwrap().as_ref(), Some(&s));
    assert!(store.session("no-such-sid").await.unwrap().is_none());
}

pub(crate) async fn rotation_grace_then_reuse(store: DynStore) {
    let now = NOW;
    let s = session("rot-user", now);
    store.create_session(&s).await.unwrap();

    let gen0 = s.current_jti.clone();
    let rot = Rotation {
        sid: &s.id,
        presented_jti: &gen0,
        new_jti: "gen1",
        now: now + 10,
        new_expires_at: now + 5000,
        grace_secs: 10,
    };
    let RotateOutcome::Rotated(after) = store.rotate(&rot).await.unwrap() else {
        panic!("current token must rotate")
    };
    assert_eq!(after.current_jti, "gen1");
    assert_eq!(after.previous_jti.as_deref(), Some(gen0.as_str()));
    assert_eq!(after.generation, 1);
    assert_eq!(after.expires_at, now + 5000);
    assert_eq!(store.session(&s.id).await.unwrap().unwrap(), after);

    // The retired token within the grace window: current generation again, no change.
    let again = Rotation {
        new_jti: "other",
        now: now + 15,
        ..rot.clone()
    };
    let RotateOutcome::Grace(g) = store.rotate(&again).await.unwrap() else {
        panic!("grace expected")
    };
    assert_eq!(g.current_jti, "gen1");
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().current_jti,
        "gen1"
    );

    // Past the grace window: reuse, and the family is revoked.
    let late = Rotation {
        new_jti: "other",
        now: now + 30,
        ..rot.clone()
    };
    assert!(matches!(
        store.rotate(&late).await.unwrap(),
        RotateOutcome::Reused(_)
    ));
    let revoked = store.session(&s.id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    // Even the current token is dead now.
    let cur = Rotation {
        sid: &s.id,
        presented_jti: "gen1",
        new_jti: "gen2",
        now: now + 31,
        new_expires_at: now + 6000,
        grace_secs: 10,
    };
    assert_eq!(store.rotate(&cur).await.unwrap(), RotateOutcome::Invalid);
}

pub(crate) async fn rotation_without_grace(store: DynStore) {
    let now = NOW;
    let s = session("rot-user", now);
    store.create_session(&s).await.unwrap();
    let first = Rotation {
        sid: &s.id,
        presented_jti: &s.current_jti,
        new_jti: "b1",
        now: now + 1,
        new_expires_at: now + 5000,
        grace_secs: 0,
    };
    assert!(matches!(
        store.rotate(&first).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // Grace off: the retired token is reuse at once.
    assert!(matches!(
        store
            .rotate(&Rotation {
                new_jti: "b2",
                ..first.clone()
            })
            .await
            .unwrap(),
        RotateOutcome::Reused(_)
    ));
}

pub(crate) async fn rotation_of_unknown_or_expired(store: DynStore) {
    let now = NOW;
    let unknown = Rotation {
        sid: "nope",
        presented_jti: "x",
        new_jti: "y",
        now,
        new_expires_at: now,
        grace_secs: 10,
    };
    assert_eq!(
        store.rotate(&unknown).await.unwrap(),
        RotateOutcome::Invalid
    );
    let s = session("rot-user", now);
    store.create_session(&s).await.unwrap();
    let expired = Rotation {
        sid: &s.id,
        presented_jti: &s.current_jti,
        new_jti: "c1",
        now: now + 4000,
        new_expires_at: now + 9000,
        grace_secs: 10,
    };
    assert_eq!(
        store.rotate(&expired).await.unwrap(),
        RotateOutcome::Invalid
    );
}

pub(crate) async fn concurrent_rotation(store: DynStore) {
    let now = NOW;
    let s = session("race-user", now);
    store.create_session(&s).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let sid = s.id.clone();
        let jti = s.current_jti.clone();
        tasks.push(tokio::spawn(async move {
            let new = format!("new-{i}");
            let r = Rotation {
                sid: &sid,
                presented_jti: &jti,
                new_jti: &new,
                now: now + 1,
                new_expires_at: now + 5000,
                grace_secs: 10,
            };
            store.rotate(&r).await.unwrap()
        }));
    }
    let mut rotated = 0;
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            RotateOutcome::Rotated(next) => {
                rotated += 1;
                winners.push(next.current_jti);
            }
            RotateOutcome::Grace(cur) => winners.push(cur.current_jti),
            other => panic!("within grace every racer gets the chain: {other:?}"),
        }
    }
    assert_eq!(rotated, 1, "exactly one rotation wins the race");
    let stored = store.session(&s.id).await.unwrap().unwrap();
    assert!(
        winners.iter().all(|w| *w == stored.current_jti),
        "one chain only"
    );
    assert_eq!(stored.generation, 1);
}

pub(crate) async fn revoke_one(store: DynStore) {
    let now = NOW;
    let a = session("rev-user", now);
    let b = session("rev-user", now + 1);
    let c = session("rev-user", now + 2);
    let other = session("someone-else", now);
    for s in [&a, &b, &c, &other] {
        store.create_session(s).await.unwrap();
    }
    let listed = store.sessions_of(&uid("rev-user"), now + 5).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![c.id.as_str(), b.id.as_str(), a.id.as_str()],
        "newest first"
    );

    assert!(
        !store
            .revoke_session(&uid("rev-user"), &other.id, now + 5)
            .await
            .unwrap(),
        "not the caller's session"
    );
    assert!(
        store
            .session(&other.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert!(
        store
            .revoke_session(&uid("rev-user"), &a.id, now + 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_session(&uid("rev-user"), &a.id, now + 6)
            .await
            .unwrap(),
        "already revoked"
    );
    assert_eq!(
        store
            .sessions_of(&uid("rev-user"), now + 6)
            .await
            .unwrap()
            .len(),
        2
    );
}

pub(crate) async fn revoke_all_but_one(store: DynStore) {
    let now = NOW;
    let a = session("rev-user", now);
    let b = session("rev-user", now + 1);
    let c = session("rev-user", now + 2);
    let other = session("someone-else", now);
    for s in [&a, &b, &c, &other] {
        store.create_session(s).await.unwrap();
    }
    assert!(
        store
            .revoke_session(&uid("rev-user"), &a.id, now + 5)
            .await
            .unwrap()
    );
    // Only the active ones count.
    assert_eq!(
        store
            .revoke_sessions_of(&uid("rev-user"), Some(&c.id), now + 7)
            .await
            .unwrap(),
        1
    );
    let left = store.sessions_of(&uid("rev-user"), now + 8).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, c.id);
    assert_eq!(
        store
            .revoke_sessions_of(&uid("rev-user"), None, now + 9)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .sessions_of(&uid("rev-user"), now + 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .session(&other.id)
            .await
            .unwrap()
            .unwrap()
            .is_active(now + 10),
        "another user's session is untouched"
    );
}

pub(crate) async fn expired_not_listed(store: DynStore) {
    let s = session("someone-else", NOW);
    store.create_session(&s).await.unwrap();
    assert_eq!(
        store
            .sessions_of(&uid("someone-else"), NOW)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .sessions_of(&uid("someone-else"), NOW + 3601)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The bearer check ([`SessionStore::session_live`] and
/// `Store::live_session_user`) answers from the latest write, even right
/// after the same sessions were read (the embedded store answers from a
/// cache that every session write invalidates).
pub(crate) async fn live_check_follows_every_session_write(store: DynStore) {
    let u = user("live@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let live = |sid: String, uid: UserId, now: i64| {
        let store = store.clone();
        async move {
            let a = store.session_live(&sid, &uid, now).await.unwrap();
            let (b, account) = store.live_session_user(&sid, &uid, now).await.unwrap();
            assert_eq!(a, b, "both checks agree");
            assert_eq!(
                account.is_some(),
                b,
                "the account comes with a live session only"
            );
            // Twice: the second answer may come from a cache.
            assert_eq!(store.session_live(&sid, &uid, now).await.unwrap(), a);
            a
        }
    };
    let s = session(&u.id, NOW);
    assert!(
        !live(s.id.clone(), u.id.clone(), NOW).await,
        "not created yet"
    );
    store.create_session(&s).await.unwrap();
    assert!(live(s.id.clone(), u.id.clone(), NOW).await);
    assert!(!live(s.id.clone(), "someone-else".into(), NOW).await);
    assert!(
        !live(s.id.clone(), u.id.clone(), NOW + 3600).await,
        "expired"
    );

    // A rotation moves the expiry: the check sees the new one.
    let rot = Rotation {
        sid: &s.id,
        presented_jti: &s.current_jti,
        new_jti: "gen1",
        now: NOW + 10,
        new_expires_at: NOW + 9000,
        grace_secs: 0,
    };
    assert!(matches!(
        store.rotate(&rot).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(live(s.id.clone(), u.id.clone(), NOW + 5000).await);
    // Reuse of the retired token revokes the family.
    let reuse = Rotation {
        new_jti: "gen2",
        now: NOW + 20,
        ..rot.clone()
    };
    assert!(matches!(
        store.rotate(&reuse).await.unwrap(),
        RotateOutcome::Reused(_)
    ));
    assert!(!live(s.id.clone(), u.id.clone(), NOW + 20).await);

    // Revoke one.
    let one = session(&u.id, NOW);
    store.create_session(&one).await.unwrap();
    assert!(live(one.id.clone(), u.id.clone(), NOW).await);
    assert!(store.revoke_session(&u.id, &one.id, NOW).await.unwrap());
    assert!(!live(one.id.clone(), u.id.clone(), NOW).await);

    // Revoke all but one, then all.
    let (keep, other) = (session(&u.id, NOW), session(&u.id, NOW));
    store.create_session(&keep).await.unwrap();
    store.create_session(&other).await.unwrap();
    assert!(live(keep.id.clone(), u.id.clone(), NOW).await);
    assert!(live(other.id.clone(), u.id.clone(), NOW).await);
    store
        .revoke_sessions_of(&u.id, Some(&keep.id), NOW)
        .await
        .unwrap();
    assert!(live(keep.id.clone(), u.id.clone(), NOW).await);
    assert!(!live(other.id.clone(), u.id.clone(), NOW).await);
    store.revoke_sessions_of(&u.id, None, NOW).await.unwrap();
    assert!(!live(keep.id.clone(), u.id.clone(), NOW).await);

    // Purge: an expired session goes; the answer stays "not live".
    let short = session(&u.id, NOW - 3600);
    store.create_session(&short).await.unwrap();
    assert!(live(short.id.clone(), u.id.clone(), NOW - 10).await);
    store.purge_expired(NOW).await.unwrap();
    assert!(store.session(&short.id).await.unwrap().is_none());
    assert!(!live(short.id.clone(), u.id.clone(), NOW - 10).await);

    // Deleting the account ends its sessions.
    let last = session(&u.id, NOW);
    store.create_session(&last).await.unwrap();
    assert!(live(last.id.clone(), u.id.clone(), NOW).await);
    assert!(store.delete_user(&u.id).await.unwrap());
    assert!(!live(last.id.clone(), u.id.clone(), NOW).await);
}

/// The time of the last proof (step-up) belongs to the session: set only
/// on an active session of its user, kept by refresh rotation.
pub(crate) async fn proof_time_recorded_and_kept(store: DynStore) {
    let mut s = session("proof-user", NOW);
    s.proven_at = None;
    store.create_session(&s).await.unwrap();
    assert_eq!(store.session(&s.id).await.unwrap().unwrap().proven_at, None);
    assert!(
        !store
            .record_proof(&uid("someone-else"), &s.id, NOW + 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_proof(&uid("proof-user"), "no-such-sid", NOW + 5)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_proof(&uid("proof-user"), &s.id, NOW + 10)
            .await
            .unwrap()
    );
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().proven_at,
        Some(NOW + 10)
    );
    // A refresh keeps it (and does not move it).
    let rot = Rotation {
        sid: &s.id,
        presented_jti: &s.current_jti,
        new_jti: "proof-gen1",
        now: NOW + 20,
        new_expires_at: NOW + 9000,
        grace_secs: 0,
    };
    let RotateOutcome::Rotated(after) = store.rotate(&rot).await.unwrap() else {
        panic!("current token must rotate")
    };
    assert_eq!(after.proven_at, Some(NOW + 10));
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().proven_at,
        Some(NOW + 10)
    );
    // Not on a revoked session.
    assert!(
        store
            .revoke_session(&uid("proof-user"), &s.id, NOW + 30)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_proof(&uid("proof-user"), &s.id, NOW + 40)
            .await
            .unwrap()
    );
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().proven_at,
        Some(NOW + 10)
    );
}

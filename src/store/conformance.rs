//! The store conformance suite: the behaviour every backend must show.
//! Each backend's tests call [`run_all`] on a fresh, empty store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::{ProfileUpdate, RotateOutcome, Rotation, SessionRecord, Store, StoreError};

/// A user record for tests.
pub fn user(email: &str) -> super::UserRecord {
    super::UserRecord {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.to_string(),
        email_verified: false,
        display_name: Some("Test".into()),
        password_hash: "$2b$04$notarealhashnotarealhashnotarealhashnotarealhashnot".into(),
        roles: vec!["user".into()],
        disabled: false,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

/// A session record for tests.
pub fn session(user_id: &str, now: i64) -> SessionRecord {
    SessionRecord {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user_id.to_string(),
        current_jti: uuid::Uuid::new_v4().to_string(),
        previous_jti: None,
        rotated_at: now,
        generation: 0,
        amr: vec!["pwd".into()],
        created_at: now,
        last_used_at: now,
        expires_at: now + 3600,
        revoked_at: None,
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
    }
}

/// Runs every check in turn.
pub async fn run_all(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    users(&*store).await;
    concurrent_registrations(store.clone()).await;
    rotation(&*store).await;
    concurrent_rotation(store.clone()).await;
    revocation(&*store).await;
    purge(&*store).await;
    single_use(store.clone()).await;
    login_failures(&*store).await;
}

async fn login_failures(store: &dyn Store) {
    let now = 1_900_000_000;
    let w = 900;
    assert!(
        store
            .login_failures("a@example.com", now, w)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .record_login_failure("a@example.com", now - 1000, w)
        .await
        .unwrap();
    store
        .record_login_failure("a@example.com", now - 10, w)
        .await
        .unwrap();
    store
        .record_login_failure("a@example.com", now, w)
        .await
        .unwrap();
    store
        .record_login_failure("b@example.com", now, w)
        .await
        .unwrap();
    // The one outside the window does not count.
    assert_eq!(
        store.login_failures("a@example.com", now, w).await.unwrap(),
        vec![now - 10, now]
    );
    assert_eq!(
        store
            .login_failures("a@example.com", now + w - 5, w)
            .await
            .unwrap(),
        vec![now]
    );
    store.clear_login_failures("a@example.com").await.unwrap();
    assert!(
        store
            .login_failures("a@example.com", now, w)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .login_failures("b@example.com", now, w)
            .await
            .unwrap()
            .len(),
        1
    );
    // Kept short whatever the attacker does.
    for i in 0..150 {
        store
            .record_login_failure("c@example.com", now + i, w)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .login_failures("c@example.com", now + 150, w)
            .await
            .unwrap()
            .len(),
        100
    );
}

async fn single_use(store: Arc<dyn Store>) {
    let now = 1_900_000_000;
    assert!(
        store
            .claim_once("captcha:abc", now + 60, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_once("captcha:abc", now + 60, now + 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_once("captcha:other", now + 60, now)
            .await
            .unwrap()
    );
    // Once expired, the key may be used again (nothing remembers it forever).
    assert!(
        store
            .claim_once("captcha:abc", now + 200, now + 61)
            .await
            .unwrap()
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_once("captcha:race", now + 60, now)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one of 20 racing claims wins");
}

async fn users(store: &dyn Store) {
    let u = user("conf-users@example.com");
    store.create_user(&u).await.unwrap();
    assert_eq!(store.user_by_id(&u.id).await.unwrap().as_ref(), Some(&u));
    assert_eq!(
        store.user_by_email(&u.email).await.unwrap().as_ref(),
        Some(&u)
    );
    assert!(
        store
            .user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.user_by_id("no-such-id").await.unwrap().is_none());

    let mut dup = user("conf-users@example.com");
    dup.id = uuid::Uuid::now_v7().to_string();
    assert!(matches!(
        store.create_user(&dup).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        store.user_by_id(&dup.id).await.unwrap().is_none(),
        "rejected insert left a record"
    );

    let upd = ProfileUpdate {
        display_name: Some(Some("Renamed".into())),
    };
    let after = store
        .update_profile(&u.id, &upd, 1_800_000_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.display_name.as_deref(), Some("Renamed"));
    assert_eq!(after.updated_at, 1_800_000_000);
    let cleared = store
        .update_profile(
            &u.id,
            &ProfileUpdate {
                display_name: Some(None),
            },
            1_800_000_001,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.display_name, None);
    assert!(
        store
            .update_profile("missing", &upd, 0)
            .await
            .unwrap()
            .is_none()
    );

    assert!(
        store
            .set_password_hash(&u.id, "$2b$new", 1_800_000_002)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .user_by_id(&u.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$2b$new"
    );
    assert!(!store.set_password_hash("missing", "x", 0).await.unwrap());
}

async fn concurrent_registrations(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.create_user(&user("conf-race@example.com")).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one of 50 concurrent registrations wins");
}

async fn rotation(store: &dyn Store) {
    let now = 1_900_000_000;
    let s = session("rot-user", now);
    store.create_session(&s).await.unwrap();
    assert!(matches!(
        store.create_session(&s).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.session(&s.id).await.unwrap().as_ref(), Some(&s));

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

    // Grace off: the retired token is reuse at once.
    let s2 = session("rot-user", now);
    store.create_session(&s2).await.unwrap();
    let first = Rotation {
        sid: &s2.id,
        presented_jti: &s2.current_jti,
        new_jti: "b1",
        now: now + 1,
        new_expires_at: now + 5000,
        grace_secs: 0,
    };
    assert!(matches!(
        store.rotate(&first).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
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

    // Unknown family, expired family.
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
    let s3 = session("rot-user", now);
    store.create_session(&s3).await.unwrap();
    let expired = Rotation {
        sid: &s3.id,
        presented_jti: &s3.current_jti,
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

async fn concurrent_rotation(store: Arc<dyn Store>) {
    let now = 1_900_000_000;
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

async fn revocation(store: &dyn Store) {
    let now = 1_900_000_000;
    let a = session("rev-user", now);
    let b = session("rev-user", now + 1);
    let c = session("rev-user", now + 2);
    let other = session("someone-else", now);
    for s in [&a, &b, &c, &other] {
        store.create_session(s).await.unwrap();
    }
    let listed = store.sessions_of("rev-user", now + 5).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![c.id.as_str(), b.id.as_str(), a.id.as_str()]
    );

    assert!(
        !store
            .revoke_session("rev-user", &other.id, now + 5)
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
            .revoke_session("rev-user", &a.id, now + 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_session("rev-user", &a.id, now + 6)
            .await
            .unwrap(),
        "already revoked"
    );
    assert_eq!(
        store.sessions_of("rev-user", now + 6).await.unwrap().len(),
        2
    );

    assert_eq!(
        store
            .revoke_sessions_of("rev-user", Some(&c.id), now + 7)
            .await
            .unwrap(),
        1
    );
    let left = store.sessions_of("rev-user", now + 8).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, c.id);
    assert_eq!(
        store
            .revoke_sessions_of("rev-user", None, now + 9)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .sessions_of("rev-user", now + 10)
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
            .is_active(now + 10)
    );
    // Expired sessions are not listed.
    assert!(
        store
            .sessions_of("someone-else", now + 3601)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn purge(store: &dyn Store) {
    let now = 1_900_000_000;
    let old = session("purge-user", now - 10_000);
    let fresh = session("purge-user", now);
    store.create_session(&old).await.unwrap();
    store.create_session(&fresh).await.unwrap();
    assert!(store.purge_expired(now).await.unwrap() >= 1);
    assert!(store.session(&old.id).await.unwrap().is_none());
    assert!(store.session(&fresh.id).await.unwrap().is_some());
}

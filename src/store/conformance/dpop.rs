//! Checks of the store's part in DPoP: the key a session is bound to
//! ([`SessionStore::bind_session_key`](crate::store::SessionStore)) and
//! proofs claimed once ([`OnceKey::DpopProof`]).

use super::session;
use super::uid;
use crate::store::{DynStore, OnceKey, RotateOutcome, Rotation};

const NOW: i64 = 1_900_000_000;

/// A session created bound keeps its key through rotation; one created
/// unbound takes a key once, and never another.
pub(crate) async fn bound_key_kept_and_bound_once(store: DynStore) {
    let mut bound = session("dpop-user", NOW);
    bound.dpop_jkt = Some("key-a".into());
    store.create_session(&bound).await.unwrap();
    assert_eq!(
        store
            .session(&bound.id)
            .await
            .unwrap()
            .unwrap()
            .dpop_jkt
            .as_deref(),
        Some("key-a")
    );
    let rot = Rotation {
        sid: &bound.id,
        presented_jti: &bound.current_jti,
        new_jti: "dpop-gen1",
        now: NOW + 1,
        new_expires_at: NOW + 9000,
        grace_secs: 0,
    };
    let RotateOutcome::Rotated(after) = store.rotate(&rot).await.unwrap() else {
        panic!("current token must rotate")
    };
    assert_eq!(after.dpop_jkt.as_deref(), Some("key-a"));
    // Already bound: the same key is fine, another is not.
    assert!(
        store
            .bind_session_key(&uid("dpop-user"), &bound.id, "key-a", NOW + 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .bind_session_key(&uid("dpop-user"), &bound.id, "key-b", NOW + 2)
            .await
            .unwrap()
    );

    let plain = session("dpop-user", NOW);
    store.create_session(&plain).await.unwrap();
    assert_eq!(
        store.session(&plain.id).await.unwrap().unwrap().dpop_jkt,
        None
    );
    assert!(
        !store
            .bind_session_key(&uid("someone-else"), &plain.id, "key-c", NOW + 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .bind_session_key(&uid("dpop-user"), "no-such-sid", "key-c", NOW + 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .bind_session_key(&uid("dpop-user"), &plain.id, "key-c", NOW + 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .bind_session_key(&uid("dpop-user"), &plain.id, "key-d", NOW + 3)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .session(&plain.id)
            .await
            .unwrap()
            .unwrap()
            .dpop_jkt
            .as_deref(),
        Some("key-c")
    );
    // Not on a revoked session.
    let gone = session("dpop-user", NOW);
    store.create_session(&gone).await.unwrap();
    assert!(
        store
            .revoke_session(&uid("dpop-user"), &gone.id, NOW + 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .bind_session_key(&uid("dpop-user"), &gone.id, "key-e", NOW + 2)
            .await
            .unwrap()
    );
}

/// Racing binds of an unbound session to different keys: exactly one wins.
pub(crate) async fn racing_binds_one_key_wins(store: DynStore) {
    let s = session("dpop-race", NOW);
    store.create_session(&s).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        let sid = s.id.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("key-{i}");
            store
                .bind_session_key(&uid("dpop-race"), &sid, &key, NOW + 1)
                .await
                .unwrap()
                .then_some(key)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(k) = t.await.unwrap() {
            winners.push(k);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().dpop_jkt,
        winners.pop()
    );
}

/// A proof's `jti` is accepted once while remembered, by one of racing
/// requests (replicas), and forgotten once the proof is too old anyway.
pub(crate) async fn proof_claimed_once(store: DynStore) {
    let key = || OnceKey::DpopProof("abc123".into());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_once(&key(), NOW + 66, NOW).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert!(!store.claim_once(&key(), NOW + 66, NOW + 65).await.unwrap());
    assert!(
        store
            .claim_once(&OnceKey::DpopProof("other".into()), NOW + 66, NOW)
            .await
            .unwrap()
    );
    // Past the proof lifetime the claim is gone (the proof itself would be
    // refused as too old by then).
    assert!(store.claim_once(&key(), NOW + 200, NOW + 67).await.unwrap());
}

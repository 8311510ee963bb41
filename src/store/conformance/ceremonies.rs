//! Checks of [`CeremonyStore`] (passkey ceremonies).

use crate::store::{CeremonyKind, CeremonyRecord, DynStore, StoreError};

const NOW: i64 = 1_900_000_000;

fn ceremony(expires_at: i64) -> CeremonyRecord {
    CeremonyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        kind: CeremonyKind::Authenticate,
        user_id: Some("u1".into()),
        state: "{\"challenge\":\"abc\"}".into(),
        expires_at,
    }
}

pub(crate) async fn taken_once(store: DynStore) {
    let c = ceremony(NOW + 300);
    store.save_ceremony(&c).await.unwrap();
    assert!(matches!(
        store.save_ceremony(&c).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.take_ceremony(&c.id, NOW).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(store.take_ceremony(&c.id, NOW + 1).await.unwrap(), None);
    assert_eq!(store.take_ceremony("no-such-id", NOW).await.unwrap(), None);
}

pub(crate) async fn expired_is_not_taken(store: DynStore) {
    let c = ceremony(NOW + 300);
    store.save_ceremony(&c).await.unwrap();
    assert_eq!(store.take_ceremony(&c.id, NOW + 300).await.unwrap(), None);
    // Also after the purge (which may or may not have run on a server).
    let d = ceremony(NOW + 10);
    store.save_ceremony(&d).await.unwrap();
    store.purge_expired(NOW + 20).await.unwrap();
    assert_eq!(store.take_ceremony(&d.id, NOW + 5).await.unwrap(), None);
}

pub(crate) async fn concurrent_takes(store: DynStore) {
    let c = ceremony(NOW + 300);
    store.save_ceremony(&c).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            store.take_ceremony(&id, NOW).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(
        won, 1,
        "exactly one of 20 racing takers finishes the ceremony"
    );
}

//! Checks of the upkeep methods of [`Store`](crate::store::Store).

use super::session;
use super::uid;
use crate::store::{DynStore, OnceKey};

pub(crate) async fn ping(store: DynStore) {
    store.ping().await.unwrap();
    assert!(!store.describe().is_empty());
}

pub(crate) async fn purge_expired(store: DynStore) {
    let now = 1_900_000_000;
    let old = session("purge-user", now - 10_000);
    let fresh = session("purge-user", now);
    store.create_session(&old).await.unwrap();
    store.create_session(&fresh).await.unwrap();
    let key = OnceKey::Captcha("purged".into());
    assert!(store.claim_once(&key, now - 1, now - 100).await.unwrap());
    store
        .record_login_failure("purge@example.com", now - 5000, 900)
        .await
        .unwrap();

    assert_eq!(store.purge_expired(now).await.unwrap(), 1);
    assert!(store.session(&old.id).await.unwrap().is_none());
    assert!(store.session(&fresh.id).await.unwrap().is_some());
    assert!(
        store
            .sessions_of(&uid("purge-user"), now)
            .await
            .unwrap()
            .len()
            == 1
    );
    // Expired claims and failures are gone or ignored either way.
    assert!(store.claim_once(&key, now + 60, now).await.unwrap());
    assert!(
        store
            .login_failures("purge@example.com", now, 900)
            .await
            .unwrap()
            .is_empty()
    );
}

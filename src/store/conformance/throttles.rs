//! Checks of [`ThrottleStore`].

use crate::store::DynStore;

const NOW: i64 = 1_900_000_000;
const WINDOW: i64 = 900;

pub(crate) async fn failures_within_window(store: DynStore) {
    let (now, w) = (NOW, WINDOW);
    assert!(
        store
            .login_failures("a@example.com", now, w)
            .await
            .unwrap()
            .is_empty()
    );
    for t in [now - 1000, now - 10, now] {
        store
            .record_login_failure("a@example.com", t, w)
            .await
            .unwrap();
    }
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
}

pub(crate) async fn clear_failures(store: DynStore) {
    let (now, w) = (NOW, WINDOW);
    for account in ["a@example.com", "a@example.com", "b@example.com"] {
        store.record_login_failure(account, now, w).await.unwrap();
    }
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
        1,
        "another account's failures stay"
    );
}

pub(crate) async fn failures_capped(store: DynStore) {
    // Kept short whatever the attacker does.
    for i in 0..150 {
        store
            .record_login_failure("c@example.com", NOW + i, WINDOW)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .login_failures("c@example.com", NOW + 150, WINDOW)
            .await
            .unwrap()
            .len(),
        100
    );
}

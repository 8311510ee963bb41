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

pub(crate) async fn reserve_up_to_the_limit(store: DynStore) {
    let (now, w) = (NOW, WINDOW);
    // An earlier failure counts against the limit.
    store
        .record_login_failure("r@example.com", now - 5, w)
        .await
        .unwrap();
    let mut granted = Vec::new();
    for _ in 0..3 {
        let id = store
            .reserve_login_attempt("r@example.com", 3, now, w)
            .await
            .unwrap();
        granted.extend(id);
    }
    assert_eq!(granted.len(), 2, "1 failure + 2 reservations = the limit");
    // Reservations show as failures (for Retry-After).
    assert_eq!(
        store.login_failures("r@example.com", now, w).await.unwrap(),
        vec![now - 5, now, now]
    );
    // Another account has its own limit.
    assert!(
        store
            .reserve_login_attempt("s@example.com", 3, now, w)
            .await
            .unwrap()
            .is_some()
    );
    // A released reservation frees its place.
    store
        .release_login_attempt("r@example.com", &granted[0])
        .await
        .unwrap();
    assert_eq!(
        store
            .login_failures("r@example.com", now, w)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .reserve_login_attempt("r@example.com", 3, now, w)
            .await
            .unwrap()
            .is_some()
    );
    // Once the window has passed, reservations are free again.
    let later = now + w + 1;
    assert!(
        store
            .reserve_login_attempt("r@example.com", 3, later, w)
            .await
            .unwrap()
            .is_some()
    );
}

pub(crate) async fn clear_forgets_reservations(store: DynStore) {
    let (now, w) = (NOW, WINDOW);
    for _ in 0..2 {
        store
            .reserve_login_attempt("t@example.com", 2, now, w)
            .await
            .unwrap()
            .unwrap();
    }
    assert!(
        store
            .reserve_login_attempt("t@example.com", 2, now, w)
            .await
            .unwrap()
            .is_none()
    );
    store.clear_login_failures("t@example.com").await.unwrap();
    assert!(
        store
            .login_failures("t@example.com", now, w)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .reserve_login_attempt("t@example.com", 2, now, w)
            .await
            .unwrap()
            .is_some()
    );
}

pub(crate) async fn concurrent_reservations(store: DynStore) {
    // 20 attempts at once against a limit of 5: exactly 5 are granted.
    let attempts = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .reserve_login_attempt("race@example.com", 5, NOW, WINDOW)
                .await
                .unwrap()
        })
    });
    let mut granted = 0;
    for a in attempts.collect::<Vec<_>>() {
        granted += usize::from(a.await.unwrap().is_some());
    }
    assert_eq!(granted, 5);
    assert_eq!(
        store
            .login_failures("race@example.com", NOW, WINDOW)
            .await
            .unwrap()
            .len(),
        5
    );
}

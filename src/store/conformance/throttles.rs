//! Checks of [`ThrottleStore`].

use crate::store::DynStore;
use crate::store::rules::RESERVATION_TTL;

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
    // Places in flight are not failures.
    assert_eq!(
        store.login_failures("r@example.com", now, w).await.unwrap(),
        vec![now - 5]
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
    let again = store
        .reserve_login_attempt("r@example.com", 3, now, w)
        .await
        .unwrap()
        .unwrap();
    // A failed one becomes a failure, and keeps its place for the window.
    store
        .fail_login_attempt("r@example.com", &again, now + 1, w)
        .await
        .unwrap();
    assert_eq!(
        store
            .login_failures("r@example.com", now + 1, w)
            .await
            .unwrap(),
        vec![now - 5, now + 1]
    );
    assert!(
        store
            .reserve_login_attempt("r@example.com", 3, now + 1, w)
            .await
            .unwrap()
            .is_none()
    );
    // Once the window has passed, reservations are free again.
    let later = now + w + 2;
    assert!(
        store
            .reserve_login_attempt("r@example.com", 3, later, w)
            .await
            .unwrap()
            .is_some()
    );
}

pub(crate) async fn clear_keeps_places_in_flight(store: DynStore) {
    let (now, w) = (NOW, WINDOW);
    let first = store
        .reserve_login_attempt("t@example.com", 3, now, w)
        .await
        .unwrap()
        .unwrap();
    store
        .fail_login_attempt("t@example.com", &first, now, w)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            store
                .reserve_login_attempt("t@example.com", 3, now, w)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert!(
        store
            .reserve_login_attempt("t@example.com", 3, now, w)
            .await
            .unwrap()
            .is_none()
    );
    // A success clears the failures, not the places of other checks still
    // in flight: each settles its own.
    store.clear_login_failures("t@example.com").await.unwrap();
    assert!(
        store
            .login_failures("t@example.com", now, w)
            .await
            .unwrap()
            .is_empty()
    );
    let freed = store
        .reserve_login_attempt("t@example.com", 3, now, w)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .reserve_login_attempt("t@example.com", 3, now, w)
            .await
            .unwrap()
            .is_none(),
        "two places still in flight, one just taken"
    );
    store
        .fail_login_attempt("t@example.com", &held[0], now, w)
        .await
        .unwrap();
    for id in [&held[1], &freed] {
        store
            .release_login_attempt("t@example.com", id)
            .await
            .unwrap();
    }
    assert_eq!(
        store.login_failures("t@example.com", now, w).await.unwrap(),
        vec![now]
    );
}

pub(crate) async fn unsettled_places_free_themselves(store: DynStore) {
    // A replica that crashed mid-check never settles its place.
    let (now, w) = (NOW, WINDOW);
    assert!(
        store
            .reserve_login_attempt("u@example.com", 1, now, w)
            .await
            .unwrap()
            .is_some()
    );
    let soon = now + RESERVATION_TTL - 1;
    assert!(
        store
            .reserve_login_attempt("u@example.com", 1, soon, w)
            .await
            .unwrap()
            .is_none()
    );
    let later = now + RESERVATION_TTL + 1;
    let id = store
        .reserve_login_attempt("u@example.com", 1, later, w)
        .await
        .unwrap()
        .unwrap();
    // A failure settled after its place freed itself still counts.
    store
        .release_login_attempt("u@example.com", &id)
        .await
        .unwrap();
    store
        .fail_login_attempt("u@example.com", "gone", later, w)
        .await
        .unwrap();
    assert_eq!(
        store
            .login_failures("u@example.com", later, w)
            .await
            .unwrap(),
        vec![later]
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
    let mut granted = Vec::new();
    for a in attempts.collect::<Vec<_>>() {
        granted.extend(a.await.unwrap());
    }
    assert_eq!(granted.len(), 5);
    assert!(
        store
            .reserve_login_attempt("race@example.com", 5, NOW, WINDOW)
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn concurrent_checks_settle(store: DynStore) {
    // The whole life of a limited check, raced: 60 simultaneous wrong
    // guesses (reserve, then fail), then 60 more. A limit of 5 lets 5 be
    // checked in all, and exactly 5 failures are on record.
    const LIMIT: u32 = 5;
    let mut checked = 0;
    for round in 0..2 {
        let guesses = (0..60).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let now = NOW + round;
                let Some(id) = store
                    .reserve_login_attempt("settle@example.com", LIMIT, now, WINDOW)
                    .await
                    .unwrap()
                else {
                    return false;
                };
                tokio::task::yield_now().await;
                store
                    .fail_login_attempt("settle@example.com", &id, now, WINDOW)
                    .await
                    .unwrap();
                true
            })
        });
        for g in guesses.collect::<Vec<_>>() {
            checked += usize::from(g.await.unwrap());
        }
    }
    assert_eq!(checked, LIMIT as usize);
    assert_eq!(
        store
            .login_failures("settle@example.com", NOW + 1, WINDOW)
            .await
            .unwrap()
            .len(),
        LIMIT as usize
    );
}

pub(crate) async fn concurrent_successes_take_turns(store: DynStore) {
    // 40 simultaneous right answers against a limit of 5: each holds a
    // place only while in flight, so, retried, every one gets through,
    // and none of them counts as a failure.
    let checks = (0..40).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                if let Some(id) = store
                    .reserve_login_attempt("ok@example.com", 5, NOW, WINDOW)
                    .await
                    .unwrap()
                {
                    tokio::task::yield_now().await;
                    store.clear_login_failures("ok@example.com").await.unwrap();
                    store
                        .release_login_attempt("ok@example.com", &id)
                        .await
                        .unwrap();
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    });
    for c in checks.collect::<Vec<_>>() {
        c.await.unwrap();
    }
    assert!(
        store
            .login_failures("ok@example.com", NOW, WINDOW)
            .await
            .unwrap()
            .is_empty()
    );
    // Every place is free again.
    for _ in 0..5 {
        assert!(
            store
                .reserve_login_attempt("ok@example.com", 5, NOW, WINDOW)
                .await
                .unwrap()
                .is_some()
        );
    }
}

pub(crate) async fn concurrent_failures_all_count(store: DynStore) {
    // Finding H4: on FerretDB a read-modify-write of one document kept
    // about one of N racing failures.
    let failures = (0..50).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .record_login_failure("lost@example.com", NOW, WINDOW)
                .await
                .unwrap();
        })
    });
    for f in failures.collect::<Vec<_>>() {
        f.await.unwrap();
    }
    assert_eq!(
        store
            .login_failures("lost@example.com", NOW, WINDOW)
            .await
            .unwrap()
            .len(),
        50
    );
}

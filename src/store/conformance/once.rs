//! Checks of [`OnceStore`].

use crate::store::{DynStore, OnceKey};

const NOW: i64 = 1_900_000_000;

fn captcha(challenge: &str) -> OnceKey {
    OnceKey::Captcha(challenge.to_string())
}

pub(crate) async fn claim_once(store: DynStore) {
    let now = NOW;
    assert!(
        store
            .claim_once(&captcha("abc"), now + 60, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_once(&captcha("abc"), now + 60, now + 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_once(&captcha("other"), now + 60, now)
            .await
            .unwrap()
    );
}

pub(crate) async fn claim_again_after_expiry(store: DynStore) {
    let now = NOW;
    assert!(
        store
            .claim_once(&captcha("abc"), now + 60, now)
            .await
            .unwrap()
    );
    // Once expired, the key may be used again (nothing remembers it forever).
    assert!(
        store
            .claim_once(&captcha("abc"), now + 200, now + 61)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_once(&captcha("abc"), now + 300, now + 62)
            .await
            .unwrap()
    );
}

pub(crate) async fn concurrent_claims(store: DynStore) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_once(&captcha("race"), NOW + 60, NOW)
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

pub(crate) async fn concurrent_code_tries(store: DynStore) {
    // An email code's tries (`service::tickets`): each guess claims the
    // first free key of `CodeTry(ticket, 0..5)` before the code is
    // compared. 40 simultaneous guesses get 5 tries between them.
    const TRIES: u32 = 5;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..TRIES {
                let key = OnceKey::CodeTry("ticket-race".into(), n);
                if store.claim_once(&key, NOW + 600, NOW).await.unwrap() {
                    return true;
                }
            }
            false
        }));
    }
    let mut tried = 0;
    for t in tasks {
        tried += usize::from(t.await.unwrap());
    }
    assert_eq!(tried, TRIES as usize);
}

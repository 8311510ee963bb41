//! Tests of the embedded store: the conformance suite, durability across
//! reopen, and records written by the first release.

use crate::store::conformance::uid;
use std::future::Future;
use std::sync::Arc;

use redb::{Database, ReadableDatabase};

use super::EmbeddedStore;
use super::sessions::{SESSIONS, USER_SESSIONS};
use super::throttles::FAILURES;
use super::users::{EMAILS, StoredUser, USERS};
use crate::store::conformance::{self as suite, conformance_tests};
use crate::store::{DynStore, UserStore, fixtures};

/// Runs a conformance check on a fresh store in a temporary directory.
async fn with_store<F, Fut>(_what: &'static str, check: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    check(store).await;
}

conformance_tests!(with_store);

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let user = suite::user("reopen@example.com");
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .create_user(&user, &suite::credentials())
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        store.user_by_email("reopen@example.com").await.unwrap(),
        Some(user)
    );
}

#[tokio::test]
async fn bulk_insert_users_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let c = suite::credentials();
    let batch: Vec<_> = (0..20)
        .map(|i| (suite::user(&format!("bulk{i}@example.com")), c.clone()))
        .collect();
    store.bulk_insert_users(&batch).await.unwrap();
    assert_eq!(
        store.user_by_email("bulk19@example.com").await.unwrap(),
        Some(batch[19].0.clone())
    );
    let again = [
        (suite::user("bulk-new@example.com"), c.clone()),
        (suite::user("bulk0@example.com"), c),
    ];
    assert!(store.bulk_insert_users(&again).await.is_err());
    assert!(
        store
            .user_by_email("bulk-new@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

/// Writes the first release's records as raw bytes into the tables, the
/// way that release did, and reads them back through the traits.
#[tokio::test]
async fn reads_records_of_the_first_release() {
    let dir = tempfile::tempdir().unwrap();
    // Create the tables, then write with redb alone.
    drop(EmbeddedStore::open(dir.path()).unwrap());
    {
        let db = Database::create(dir.path().join("portcullis.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut users = txn.open_table(USERS).unwrap();
            users
                .insert(fixtures::USER_ID, fixtures::USER_JSON)
                .unwrap();
            let mut emails = txn.open_table(EMAILS).unwrap();
            emails
                .insert(fixtures::USER_EMAIL, fixtures::USER_ID)
                .unwrap();
            let mut sessions = txn.open_table(SESSIONS).unwrap();
            sessions
                .insert(fixtures::SESSION_ID, fixtures::SESSION_JSON)
                .unwrap();
            let mut by_user = txn.open_table(USER_SESSIONS).unwrap();
            by_user
                .insert(
                    format!("{}/{}", fixtures::USER_ID, fixtures::SESSION_ID).as_str(),
                    (),
                )
                .unwrap();
            let mut failures = txn.open_table(FAILURES).unwrap();
            failures
                .insert(fixtures::FAILURES_ACCOUNT, fixtures::FAILURES_JSON)
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    fixtures::read_back(store.clone()).await;

    // The value written back keeps the first release's fields.
    let db = store.db.clone();
    let txn = db.begin_read().unwrap();
    let users = txn.open_table(USERS).unwrap();
    let stored: serde_json::Value =
        serde_json::from_slice(users.get(fixtures::USER_ID).unwrap().unwrap().value()).unwrap();
    let mut expected = fixtures::json(fixtures::USER_JSON);
    expected["display_name"] = "New".into();
    expected["password_hash"] = "$2b$new".into();
    expected["updated_at"] = 1_800_000_001.into();
    assert_eq!(stored, expected);
}

/// Today's write of an account is the first release's layout (same fields,
/// same values; key order aside).
#[test]
fn stored_user_layout_is_the_first_releases() {
    let stored: StoredUser = serde_json::from_slice(fixtures::USER_JSON).unwrap();
    assert_eq!(
        serde_json::to_value(&stored).unwrap(),
        fixtures::json(fixtures::USER_JSON)
    );
}

/// Readers racing a revocation: while threads keep checking a
/// session (filling the session cache from redb as they go), the session is
/// revoked; from the moment the revocation returns, no check may find it
/// live, whatever the readers were in the middle of.
#[test]
fn a_revocation_racing_cached_reads_is_exact() {
    use crate::store::SessionStore;
    use std::sync::atomic::{AtomicBool, Ordering};
    const NOW: i64 = 1_900_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..50 {
        let s = suite::session("racer", NOW);
        rt.block_on(store.create_session(&s)).unwrap();
        let revoked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, sid) = (store.clone(), s.id.clone());
                let (revoked, stop) = (revoked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    while !stop.load(Ordering::SeqCst) {
                        // Read the flag first: if the revocation had
                        // returned by then, the check must say "not live".
                        let after = revoked.load(Ordering::SeqCst);
                        let live = rt
                            .block_on(store.session_live(&sid, &uid("racer"), NOW))
                            .unwrap();
                        assert!(!(after && live), "round {round}: stale live session");
                        // Drop the cached entry now and then, so reads keep
                        // going to redb and racing the write.
                        if !live || after {
                            continue;
                        }
                        store.sessions.invalidate([sid.as_str()]);
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(
            rt.block_on(store.revoke_session(&uid("racer"), &s.id, NOW))
                .unwrap()
        );
        revoked.store(true, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(2));
        stop.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        assert!(
            !rt.block_on(store.session_live(&s.id, &uid("racer"), NOW))
                .unwrap()
        );
    }
}

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

/// The sids under `user_id` in an index table.
fn indexed(
    store: &EmbeddedStore,
    table: redb::TableDefinition<&str, ()>,
    user_id: &str,
) -> Vec<String> {
    let txn = store.db.begin_read().unwrap();
    let mut sids = super::sessions::sids_of(&txn.open_table(table).unwrap(), user_id).unwrap();
    sids.sort();
    sids
}

/// A session ended before it expires (signed out, every other one revoked,
/// a reused refresh token) leaves the index `sessions_of` reads, so the
/// session cap's check on every sign-in reads the live sessions, not the
/// user's history; the purge at expiry and the account's deletion still
/// find every one of them.
#[tokio::test]
async fn ended_sessions_leave_the_live_index() {
    use super::sessions::ENDED_USER_SESSIONS;
    use crate::store::{RotateOutcome, Rotation, SessionStore, Store};
    const NOW: i64 = 1_900_000_000;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let user = suite::user("history@example.com");
    store
        .create_user(&user, &suite::credentials())
        .await
        .unwrap();
    let id = user.id.as_str();
    let [kept, signed_out, reused, other] = std::array::from_fn(|_| suite::session(id, NOW));
    for s in [&kept, &signed_out, &reused, &other] {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(indexed(&store, USER_SESSIONS, id).len(), 4);

    assert!(
        store
            .revoke_session(&user.id, &signed_out.id, NOW)
            .await
            .unwrap()
    );
    let outcome = store
        .rotate(&Rotation {
            sid: &reused.id,
            presented_jti: "not-the-current-one",
            new_jti: "next",
            now: NOW,
            new_expires_at: NOW + 3600,
            grace_secs: 0,
        })
        .await
        .unwrap();
    assert!(matches!(outcome, RotateOutcome::Reused(_)));
    // Ending one again moves nothing and says so.
    assert!(
        !store
            .revoke_session(&user.id, &signed_out.id, NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .revoke_sessions_of(&user.id, Some(&kept.id), NOW)
            .await
            .unwrap(),
        1
    );
    assert_eq!(indexed(&store, USER_SESSIONS, id), vec![kept.id.clone()]);
    let mut ended = vec![signed_out.id.clone(), reused.id.clone(), other.id.clone()];
    ended.sort();
    assert_eq!(indexed(&store, ENDED_USER_SESSIONS, id), ended);
    let live: Vec<_> = store
        .sessions_of(&user.id, NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![kept.id.clone()]);

    // The purge at expiry empties both indexes of expired sessions.
    let late = suite::session(id, NOW - 7200);
    store.create_session(&late).await.unwrap();
    assert!(
        store
            .revoke_session(&user.id, &late.id, NOW - 7200)
            .await
            .unwrap()
    );
    assert!(store.purge_expired(NOW).await.unwrap() >= 1);
    assert!(!indexed(&store, ENDED_USER_SESSIONS, id).contains(&late.id));
    assert!(store.session(&late.id).await.unwrap().is_none());

    // Deleting the account deletes the ended sessions too.
    assert!(store.delete_user(&user.id).await.unwrap());
    for s in [&kept, &signed_out, &reused, &other] {
        assert!(
            store.session(&s.id).await.unwrap().is_none(),
            "{} kept",
            s.id
        );
    }
    assert!(indexed(&store, USER_SESSIONS, id).is_empty());
    assert!(indexed(&store, ENDED_USER_SESSIONS, id).is_empty());
}

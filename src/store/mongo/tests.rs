//! Tests of the MongoDB store: the conformance suite and the records of the
//! first release on a fresh database each, rotation recovery, and outages
//! (closed port, lost server, hung server through a TCP proxy).
//!
//! They need a server: `PORTCULLIS_TEST_MONGODB_URI` (FerretDB from
//! `scripts/ferretdb.sh`, or MongoDB). Without it they print `SKIPPED` and
//! pass, except under `CI=true`, where they fail.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::ClientOptions;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::credentials::CREDENTIAL_FIELDS;
use super::sessions::RetiredToken;
use super::users::user_doc;
use super::*;
use crate::store::conformance::{self as suite, conformance_tests};
use crate::store::{
    CredentialRecord, DynStore, RotateOutcome, Rotation, SessionRecord, SessionStore, UserRecord,
    UserStore, classify_rotation, fixtures,
};

const URI_VAR: &str = "PORTCULLIS_TEST_MONGODB_URI";

/// The test server's URI; `None` (after saying so) when there is none.
/// In CI a missing server fails the test instead of skipping it.
fn test_uri(what: &str) -> Option<String> {
    match std::env::var(URI_VAR) {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{URI_VAR} must be set in CI ({what})"
            );
            println!("SKIPPED: {what} (no {URI_VAR})");
            None
        }
    }
}

fn test_db_name() -> String {
    format!("portcullis_test_{}", uuid::Uuid::new_v4().simple())
}

/// Runs `checks` against a store on a fresh database, and drops the
/// database afterwards even when a check fails. `None` when skipped.
async fn on_fresh_db<F, Fut>(what: &str, checks: F) -> Option<MongoStore>
where
    F: FnOnce(MongoStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let uri = test_uri(what)?;
    let store = MongoStore::connect(&uri, &test_db_name(), Duration::from_secs(5))
        .await
        .unwrap();
    let result = tokio::spawn(checks(store.clone())).await;
    store.drop_database().await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
    Some(store)
}

/// Runs a conformance check on a fresh database, and says which server.
async fn with_store<F, Fut>(what: &'static str, check: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(store) = on_fresh_db(what, |store| check(Arc::new(store))).await else {
        return;
    };
    println!(
        "{what} passed on: buildInfo version {}, ferretdbVersion {}, TTL indexes {}",
        store.server_version(),
        store.ferretdb_version().unwrap_or("(none: not FerretDB)"),
        if store.ttl_indexes() {
            "supported"
        } else {
            "not supported (read-time checks + purge)"
        }
    );
}

conformance_tests!(with_store);

#[test]
fn documents_round_trip() {
    let u = suite::user("doc@example.com");
    let d = to_doc(&u).unwrap();
    assert_eq!(d.keys().next().map(String::as_str), Some("_id"));
    assert!(!d.contains_key("id"));
    assert_eq!(from_doc::<UserRecord>(d).unwrap(), u);

    let s = suite::session("u", 1_900_000_000);
    let d = to_doc(&s).unwrap();
    assert_eq!(d.get_i64("expires_at").unwrap(), s.expires_at);
    assert_eq!(
        d.get_datetime(EXPIRES_AT_DATE).unwrap().timestamp_millis(),
        s.expires_at * 1000
    );
    assert_eq!(d.get("revoked_at"), Some(&Bson::Null));
    assert_eq!(from_doc::<SessionRecord>(d).unwrap(), s);
}

#[test]
fn credential_fields_are_the_records() {
    // Every field set, so that none is skipped as empty.
    let all = CredentialRecord {
        legacy_bcrypt: true,
        totp_secret: Some("v1:a".into()),
        totp_pending: Some("v1:b".into()),
        recovery_codes: vec!["c".into()],
        ..suite::credentials()
    };
    let mut all = all;
    let pk = suite::passkey("fields");
    all.passkeys.insert(pk.id.clone(), pk);
    let d = bson::to_document(&all).unwrap();
    assert_eq!(
        d.keys().map(String::as_str).collect::<Vec<_>>(),
        CREDENTIAL_FIELDS.to_vec()
    );
}

/// A fixture of the first release as the document it wrote: the record's
/// fields as BSON, `id` as `_id`, and the date copy of `expires_at`.
fn first_release_doc(json: &[u8]) -> Document {
    to_doc(&fixtures::json(json)).unwrap()
}

/// Today's user document is the first release's (same fields and values).
#[test]
fn user_document_is_the_first_releases() {
    let old = first_release_doc(fixtures::USER_JSON);
    let user: UserRecord = from_doc(old.clone()).unwrap();
    let credentials: CredentialRecord = from_doc(old.clone()).unwrap();
    assert_eq!(user_doc(&user, &credentials).unwrap(), old);
}

/// Profile reads leave the credential fields on the server.
#[tokio::test]
async fn profile_reads_project_credentials_away() {
    on_fresh_db("mongo profile projection test", |store| async move {
        let u = suite::user("projection@example.com");
        store.create_user(&u, &suite::credentials()).await.unwrap();
        let raw = store
            .run(store.users.find_one(doc! { "_id": &u.id }))
            .await
            .unwrap()
            .unwrap();
        assert!(
            raw.contains_key("password_hash"),
            "stored beside the profile"
        );
        let projected = store
            .profile_doc(doc! { "_id": &u.id })
            .await
            .unwrap()
            .unwrap();
        for field in CREDENTIAL_FIELDS {
            assert!(!projected.contains_key(*field), "{projected:?}");
        }
        assert_eq!(projected.get_str("email").unwrap(), u.email);
    })
    .await;
}

/// Inserts the first release's documents directly, then reads them back
/// through the traits.
#[tokio::test]
async fn reads_records_of_the_first_release() {
    on_fresh_db("mongo first-release records test", |store| async move {
        store
            .run(
                store
                    .users
                    .insert_one(first_release_doc(fixtures::USER_JSON)),
            )
            .await
            .unwrap();
        store
            .run(
                store
                    .sessions
                    .insert_one(first_release_doc(fixtures::SESSION_JSON)),
            )
            .await
            .unwrap();
        // The first release's failure document: `fail:<account>`, `times`,
        // `expires_at` and its date copy.
        let mut failures = first_release_doc(fixtures::FAILURES_JSON);
        failures.insert("_id", format!("fail:{}", fixtures::FAILURES_ACCOUNT));
        store
            .run(store.revocations.insert_one(failures))
            .await
            .unwrap();

        fixtures::read_back(Arc::new(store.clone())).await;

        // The document written back keeps the first release's fields.
        let stored = store
            .run(store.users.find_one(doc! { "_id": fixtures::USER_ID }))
            .await
            .unwrap()
            .unwrap();
        let mut expected = first_release_doc(fixtures::USER_JSON);
        expected.insert("display_name", "New");
        expected.insert("password_hash", "$2b$new");
        expected.insert("updated_at", 1_800_000_001_i64);
        assert_eq!(stored, expected);
    })
    .await;
}

#[tokio::test]
async fn bulk_insert_users() {
    on_fresh_db("mongo bulk insert test", |store| async move {
        let c = suite::credentials();
        store.bulk_insert_users(&[]).await.unwrap();
        let batch: Vec<_> = (0..50)
            .map(|i| (suite::user(&format!("bulk{i}@example.com")), c.clone()))
            .collect();
        store.bulk_insert_users(&batch).await.unwrap();
        assert_eq!(
            store.user_by_email("bulk49@example.com").await.unwrap(),
            Some(batch[49].0.clone())
        );
        // A taken email: Conflict; unordered, so the new one is in.
        let again = [
            (suite::user("bulk0@example.com"), c.clone()),
            (suite::user("bulk-new@example.com"), c),
        ];
        assert!(matches!(
            store.bulk_insert_users(&again).await,
            Err(StoreError::Conflict)
        ));
        assert!(
            store
                .user_by_email("bulk-new@example.com")
                .await
                .unwrap()
                .is_some()
        );
    })
    .await;
}

/// A rotation that inserted its retired-token record and died before
/// swapping the session: the next attempt with that token finishes the
/// swap and is answered like any late attempt.
#[tokio::test]
async fn rotation_finishes_a_retirement_left_halfway() {
    on_fresh_db("mongo half-done rotation test", |store| async move {
        let now = 1_900_000_000;
        let s = suite::session("halfway-user", now);
        store.create_session(&s).await.unwrap();
        let crashed = Rotation {
            sid: &s.id,
            presented_jti: &s.current_jti,
            new_jti: "lost-gen1",
            now: now + 5,
            new_expires_at: now + 5000,
            grace_secs: 10,
        };
        let RotateOutcome::Rotated(next) = classify_rotation(&s, &crashed) else {
            panic!("current token must classify as a rotation")
        };
        let t = RetiredToken::new(&crashed, &next);
        store
            .insert(&store.revocations, t.to_doc(&s.current_jti))
            .await
            .unwrap();
        assert_eq!(store.session(&s.id).await.unwrap().unwrap(), s);

        // The client retries with the same token within the grace
        // window: it gets the generation the dead attempt made.
        let retry = Rotation {
            new_jti: "retry-gen1",
            now: now + 8,
            ..crashed.clone()
        };
        let RotateOutcome::Grace(g) = store.rotate(&retry).await.unwrap() else {
            panic!("grace expected")
        };
        assert_eq!(g, next);
        assert_eq!(store.session(&s.id).await.unwrap().unwrap(), next);

        // Too late for grace: reuse, and the family is revoked.
        let late = Rotation {
            now: now + 60,
            ..retry.clone()
        };
        assert!(matches!(
            store.rotate(&late).await.unwrap(),
            RotateOutcome::Reused(_)
        ));
    })
    .await;
}

#[tokio::test]
async fn connect_to_closed_port_is_unavailable() {
    // Bind then close: nothing listens on this port now.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let uri = format!("mongodb://127.0.0.1:{port}/");
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        MongoStore::connect(&uri, "portcullis_unreachable", Duration::from_secs(1)),
    )
    .await
    .expect("connect must give up within its timeout, not hang");
    match result {
        Err(StoreError::Unavailable(why)) => {
            assert!(why.contains(&port.to_string()), "{why}");
        }
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("connect to a closed port succeeded"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn credentials_stay_out_of_errors() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let uri = format!("mongodb://app:hunter2secret@127.0.0.1:{port}/");
    let err = MongoStore::connect(&uri, "x", Duration::from_millis(500))
        .await
        .err()
        .unwrap();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    let err = MongoStore::connect(
        "mongodb://app:hunter2secret@h:notaport/",
        "x",
        Duration::from_millis(500),
    )
    .await
    .err()
    .unwrap();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

/// What the proxy does with its connections.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Forward,
    /// Close the listener and every connection.
    Close,
    /// Keep everything open but forward nothing (a hung server).
    Blackhole,
}

/// A TCP proxy to `upstream` on a free local port.
async fn proxy(upstream: std::net::SocketAddr) -> (u16, watch::Sender<Mode>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = watch::channel(Mode::Forward);
    let mut accept_rx = rx.clone();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { return };
                    let mut rx = rx.clone();
                    conns.spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = rx.wait_for(|m| *m != Mode::Forward) => {}
                        }
                        if *rx.borrow() == Mode::Blackhole {
                            // Hold both sockets open and silent.
                            std::future::pending::<()>().await;
                        }
                        let _ = client.shutdown().await;
                    });
                }
                _ = accept_rx.wait_for(|m| *m == Mode::Close) => {
                    // Dropping the set aborts every connection task.
                    drop(conns);
                    return;
                }
            }
        }
    });
    (port, tx)
}

/// Connects directly (to create and later drop the database) and
/// through a proxy; checks the proxied store works.
async fn proxied_store(uri: &str) -> (MongoStore, MongoStore, watch::Sender<Mode>) {
    let db = test_db_name();
    let direct = MongoStore::connect(uri, &db, Duration::from_secs(5))
        .await
        .unwrap();
    let opts = ClientOptions::parse(uri).await.unwrap();
    let upstream = tokio::net::lookup_host(opts.hosts[0].to_string())
        .await
        .unwrap()
        .next()
        .unwrap();
    let (port, mode) = proxy(upstream).await;
    let via = MongoStore::connect(
        &format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        &db,
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    via.ping().await.unwrap();
    assert!(via.user_by_id("nobody").await.unwrap().is_none());
    (direct, via, mode)
}

async fn assert_unavailable_soon(store: &MongoStore) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), store.user_by_id("nobody"))
        .await
        .expect("an operation on a lost server must not hang");
    match result {
        Err(StoreError::Unavailable(why)) => println!("unavailable as expected: {why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let elapsed = started.elapsed();
    println!("reported after {elapsed:?}");
    assert!(elapsed <= store.op_timeout + Duration::from_secs(1));
}

#[tokio::test]
async fn server_gone_is_unavailable() {
    let Some(uri) = test_uri("mongo server-gone test") else {
        return;
    };
    let (direct, via, mode) = proxied_store(&uri).await;
    mode.send_replace(Mode::Close);
    assert_unavailable_soon(&via).await;
    direct.drop_database().await.unwrap();
}

#[tokio::test]
async fn server_hung_is_unavailable() {
    let Some(uri) = test_uri("mongo server-hung test") else {
        return;
    };
    let (direct, via, mode) = proxied_store(&uri).await;
    mode.send_replace(Mode::Blackhole);
    assert_unavailable_soon(&via).await;
    direct.drop_database().await.unwrap();
}

/// Retired-token records do not pile up for the family's 30 days: the
/// purge drops them an hour after their rotation, and the family still
/// rotates and still detects reuse of the tokens they retired.
#[tokio::test]
async fn retired_token_records_are_purged_soon_after_their_rotation() {
    on_fresh_db("mongo retired-token purge test", |store| async move {
        let now = 1_900_000_000;
        let s = suite::session("retired-purge-user", now);
        store.create_session(&s).await.unwrap();
        let mut presented = s.current_jti.clone();
        let mut retired = Vec::new();
        for n in 0..3 {
            let new_jti = format!("purge-gen{n}");
            let r = Rotation {
                sid: &s.id,
                presented_jti: &presented,
                new_jti: &new_jti,
                now,
                new_expires_at: now + 30 * 86_400,
                grace_secs: 10,
            };
            assert!(matches!(
                store.rotate(&r).await.unwrap(),
                RotateOutcome::Rotated(_)
            ));
            retired.push(presented.clone());
            presented = new_jti;
        }
        let count = |store: &MongoStore| {
            let c = store.revocations.clone();
            let sid = s.id.clone();
            async move {
                c.count_documents(doc! { "kind": "refresh_rotated", "sid": sid })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(count(&store).await, 3);
        // Within the hour nothing goes; after it, every record goes.
        store.purge_expired(now + 60).await.unwrap();
        assert_eq!(count(&store).await, 3);
        let later = now + super::sessions::RETIRED_KEEP_SECS + 11;
        store.purge_expired(later).await.unwrap();
        assert_eq!(count(&store).await, 0);
        let live = store.session(&s.id).await.unwrap().unwrap();
        assert!(live.is_active(later), "the family lives on");
        let next = Rotation {
            sid: &s.id,
            presented_jti: &presented,
            new_jti: "purge-gen3",
            now: later,
            new_expires_at: later + 30 * 86_400,
            grace_secs: 10,
        };
        assert!(matches!(
            store.rotate(&next).await.unwrap(),
            RotateOutcome::Rotated(_)
        ));
        let reuse = Rotation {
            presented_jti: &retired[0],
            new_jti: "purge-thief",
            ..next.clone()
        };
        assert!(matches!(
            store.rotate(&reuse).await.unwrap(),
            RotateOutcome::Reused(_)
        ));
    })
    .await;
}

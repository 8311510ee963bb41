//! Checks of [`AuditStore`], [`WebhookStore`] and [`DeviceStore`].

use super::uid;
use std::collections::BTreeMap;

use crate::store::security::audit_id;
use crate::store::{AuditQuery, AuditRecord, DynStore, WebhookDelivery};

const NOW: i64 = 1_900_000_000;

fn event(kind: &str, user: Option<&str>, ip: &str, at: i64) -> AuditRecord {
    AuditRecord {
        id: audit_id(at),
        kind: kind.to_string(),
        user_id: user.map(str::to_string),
        ip: Some(ip.to_string()),
        user_agent: Some("test".into()),
        at,
        outcome: "success".into(),
        details: BTreeMap::from([("sid".to_string(), "s1".to_string())]),
        expires_at: at + 1000,
    }
}

fn query(limit: usize) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

fn ids(events: &[AuditRecord]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

pub(crate) async fn audit_pages_newest_first(store: DynStore) {
    let written: Vec<_> = (0..7)
        .map(|i| event("login.succeeded", Some("u1"), "10.0.0.1", NOW + i / 2))
        .collect();
    store.append_audit(&written).await.unwrap();
    let mut expected: Vec<_> = written.iter().rev().cloned().collect();
    let mut q = AuditQuery {
        user_id: Some("u1".into()),
        ..query(3)
    };
    let mut seen = Vec::new();
    loop {
        let page = store.audit_events(&q, NOW).await.unwrap();
        if page.is_empty() {
            break;
        }
        q.before = page.last().map(|e| e.id.clone());
        seen.extend(page);
    }
    assert_eq!(ids(&seen), ids(&expected));
    // Without the user filter too, and a record reads back whole.
    expected.truncate(3);
    let page = store.audit_events(&query(3), NOW).await.unwrap();
    assert_eq!(page, expected);
}

pub(crate) async fn audit_filters(store: DynStore) {
    let events = vec![
        event("login.failed", Some("u1"), "10.0.0.1", NOW),
        event("suspicious.burst", Some("u1"), "10.0.0.2", NOW + 10),
        event("suspicious.failed_logins", Some("u2"), "10.0.0.1", NOW + 20),
        event("login.succeeded", None, "10.0.0.3", NOW + 30),
    ];
    store.append_audit(&events).await.unwrap();
    let run = |q: AuditQuery| {
        let store = store.clone();
        async move {
            let got = store.audit_events(&q, NOW).await.unwrap();
            got.into_iter().map(|e| e.kind).collect::<Vec<_>>()
        }
    };
    let base = query(10);
    assert_eq!(
        run(AuditQuery {
            user_id: Some("u1".into()),
            ..base.clone()
        })
        .await,
        ["suspicious.burst", "login.failed"]
    );
    assert_eq!(
        run(AuditQuery {
            kind: Some("suspicious.*".into()),
            ..base.clone()
        })
        .await,
        ["suspicious.failed_logins", "suspicious.burst"]
    );
    assert_eq!(
        run(AuditQuery {
            kind: Some("login.failed".into()),
            ..base.clone()
        })
        .await,
        ["login.failed"]
    );
    assert_eq!(
        run(AuditQuery {
            ip: Some("10.0.0.1".into()),
            ..base.clone()
        })
        .await,
        ["suspicious.failed_logins", "login.failed"]
    );
    assert_eq!(
        run(AuditQuery {
            since: Some(NOW + 10),
            until: Some(NOW + 20),
            ..base.clone()
        })
        .await,
        ["suspicious.failed_logins", "suspicious.burst"]
    );
    assert_eq!(
        run(AuditQuery {
            user_id: Some("u1".into()),
            since: Some(NOW + 5),
            ..base.clone()
        })
        .await,
        ["suspicious.burst"]
    );
    assert_eq!(run(query(1)).await, ["login.succeeded"]);
}

pub(crate) async fn audit_append_is_idempotent(store: DynStore) {
    let a = event("logout", Some("u1"), "10.0.0.1", NOW);
    let b = event("logout", Some("u1"), "10.0.0.1", NOW);
    store.append_audit(std::slice::from_ref(&a)).await.unwrap();
    // A retried batch holding `a` again stores `b` and keeps one `a`.
    store.append_audit(&[a.clone(), b.clone()]).await.unwrap();
    let got = store.audit_events(&query(10), NOW).await.unwrap();
    assert_eq!(ids(&got), [b.id.as_str(), a.id.as_str()]);
}

pub(crate) async fn audit_retention(store: DynStore) {
    let old = event("logout", Some("u1"), "10.0.0.1", NOW);
    let new = event("logout", Some("u1"), "10.0.0.1", NOW + 500);
    store
        .append_audit(&[old.clone(), new.clone()])
        .await
        .unwrap();
    // Past `old`'s retention: reads skip it before any purge.
    let later = NOW + 1000;
    let q = AuditQuery {
        user_id: Some("u1".into()),
        ..query(10)
    };
    assert_eq!(
        ids(&store.audit_events(&q, later).await.unwrap()),
        [new.id.as_str()]
    );
    assert_eq!(store.purge_audit(later).await.unwrap(), 1);
    assert_eq!(
        ids(&store.audit_events(&q, NOW).await.unwrap()),
        [new.id.as_str()]
    );
}

fn aggregate(id: &str, count: u64) -> AuditRecord {
    let mut e = event("rate_limited", None, "10.0.0.1", NOW);
    e.id = id.to_string();
    e.details = BTreeMap::from([
        ("action".to_string(), "sign_in".to_string()),
        ("count".to_string(), count.to_string()),
    ]);
    e
}

pub(crate) async fn audit_counts_add_up_in_one_event(store: DynStore) {
    let id = format!(
        "{}{}",
        crate::store::security::time_prefix(NOW),
        "ab".repeat(16)
    );
    store.add_audit_counts(&[aggregate(&id, 3)]).await.unwrap();
    store.add_audit_counts(&[aggregate(&id, 4)]).await.unwrap();
    // Sixteen concurrent additions (replicas flushing the same minute).
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.add_audit_counts(&[aggregate(&id, 5)]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = store.audit_events(&query(10), NOW).await.unwrap();
    assert_eq!(ids(&got), [id.as_str()], "one stored event");
    assert_eq!(got[0].details["count"], (3 + 4 + 16 * 5).to_string());
    assert_eq!(got[0].details["action"], "sign_in");
    assert_eq!(got[0].kind, "rate_limited");
}

pub(crate) async fn audit_purge_covers_more_than_a_chunk(store: DynStore) {
    // 2,500 expired events and 10 retained ones, in id order mixed.
    let mut events: Vec<AuditRecord> = (0..2510)
        .map(|i| {
            let mut e = event("logout", Some("u1"), "10.0.0.1", NOW + i % 7);
            if i % 251 != 0 {
                e.expires_at = NOW + 10;
            } else {
                e.expires_at = NOW + 10_000;
            }
            e
        })
        .collect();
    events.sort_by(|a, b| a.id.cmp(&b.id));
    for chunk in events.chunks(500) {
        store.append_audit(chunk).await.unwrap();
    }
    assert_eq!(store.purge_audit(NOW + 100).await.unwrap(), 2500);
    let q = AuditQuery {
        user_id: Some("u1".into()),
        ..query(100)
    };
    assert_eq!(store.audit_events(&q, NOW).await.unwrap().len(), 10);
    assert_eq!(
        store.audit_events(&query(100), NOW).await.unwrap().len(),
        10
    );
}

fn delivery(at: i64) -> WebhookDelivery {
    WebhookDelivery {
        id: audit_id(at),
        body: "{\"id\":1}".into(),
        attempts: 0,
        next_at: at,
        created_at: at,
        expires_at: at + 100,
    }
}

pub(crate) async fn webhook_queue(store: DynStore) {
    let a = delivery(NOW);
    let b = delivery(NOW + 1);
    store
        .enqueue_webhooks(&[a.clone(), b.clone()])
        .await
        .unwrap();
    store
        .enqueue_webhooks(std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(store.due_webhooks(NOW, 10).await.unwrap(), vec![a.clone()]);
    let due = store.due_webhooks(NOW + 1, 10).await.unwrap();
    assert_eq!(due, [a.clone(), b.clone()]);
    store.webhook_retry(&a.id, 1, NOW + 5).await.unwrap();
    assert_eq!(
        store.due_webhooks(NOW + 1, 10).await.unwrap(),
        vec![b.clone()]
    );
    let later = store.due_webhooks(NOW + 5, 10).await.unwrap();
    assert_eq!(later.len(), 2);
    assert_eq!(later[0].attempts, 1);
    store.webhook_done(&b.id).await.unwrap();
    assert_eq!(
        ids_of(&store.due_webhooks(NOW + 5, 10).await.unwrap()),
        vec![a.id.clone()]
    );
    // Expired entries are not due, and the purge deletes them.
    assert!(store.due_webhooks(NOW + 100, 10).await.unwrap().is_empty());
    assert_eq!(store.purge_webhooks(NOW + 100).await.unwrap(), 1);
}

fn ids_of(d: &[WebhookDelivery]) -> Vec<String> {
    d.iter().map(|d| d.id.clone()).collect()
}

pub(crate) async fn devices_remembered_and_bounded(store: DynStore) {
    let before = store
        .note_device(&uid("u1"), "Firefox|10.0.0.0/24", "10.0.0.0/24", NOW, 2)
        .await
        .unwrap();
    assert!(before.devices.is_empty());
    let before = store
        .note_device(&uid("u1"), "Chrome|10.0.1.0/24", "10.0.1.0/24", NOW + 1, 2)
        .await
        .unwrap();
    assert!(before.knows("Firefox|10.0.0.0/24"));
    assert!(!before.knows("Chrome|10.0.1.0/24"));
    store
        .note_device(&uid("u1"), "Safari|10.0.2.0/24", "10.0.2.0/24", NOW + 2, 2)
        .await
        .unwrap();
    let now = store
        .note_device(&uid("u1"), "Safari|10.0.2.0/24", "10.0.2.0/24", NOW + 3, 2)
        .await
        .unwrap();
    assert_eq!(now.devices.len(), 2, "bounded");
    assert!(!now.knows("Firefox|10.0.0.0/24"), "least recent forgotten");
    let other = store
        .note_device(&uid("u2"), "Firefox|10.0.0.0/24", "10.0.0.0/24", NOW, 2)
        .await
        .unwrap();
    assert!(other.devices.is_empty(), "per user");
}

pub(crate) async fn forget_a_device(store: DynStore) {
    for (i, key) in ["a|n1", "b|n2"].into_iter().enumerate() {
        store
            .note_device(&uid("u1"), key, "n", NOW + i as i64, 5)
            .await
            .unwrap();
    }
    store.forget_device(&uid("u1"), "a|n1").await.unwrap();
    store.forget_device(&uid("u1"), "missing").await.unwrap();
    store.forget_device(&uid("nobody"), "a|n1").await.unwrap();
    let now = store
        .note_device(&uid("u1"), "b|n2", "n", NOW + 5, 5)
        .await
        .unwrap();
    assert!(!now.knows("a|n1") && now.knows("b|n2"));
}

//! Checks of [`TicketStore`] and [`MailQueueStore`].

use crate::store::{DynStore, EmailTicket, QueuedMail, TicketKind};

const NOW: i64 = 1_900_000_000;

fn ticket(kind: TicketKind, user: &str, jti: &str) -> EmailTicket {
    EmailTicket {
        kind,
        user_id: user.to_string(),
        jti: jti.to_string(),
        token_hash: format!("hash-{jti}"),
        code_hash: format!("code-{jti}"),
        email: "t@example.com".into(),
        credential_stamp: "stamp".into(),
        issued_at: NOW,
        expires_at: NOW + 600,
        owner: None,
    }
}

fn mail(id: &str, due: i64) -> QueuedMail {
    QueuedMail {
        id: id.to_string(),
        kind: crate::store::MailKind::PasswordReset,
        user_id: None,
        email: Some("m@example.com".into()),
        locale: None,
        detail: None,
        created_at: due,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        sent_at: None,
        expires_at: NOW + 86_400,
    }
}

pub(crate) async fn ticket_round_trip(store: DynStore) {
    let t = ticket(TicketKind::Reset, "u1", "j1");
    store.put_ticket(&t).await.unwrap();
    assert_eq!(
        store.ticket(TicketKind::Reset, "u1", NOW).await.unwrap(),
        Some(t)
    );
    assert_eq!(
        store.ticket(TicketKind::Verify, "u1", NOW).await.unwrap(),
        None,
        "kinds are apart"
    );
    assert_eq!(
        store.ticket(TicketKind::Reset, "u2", NOW).await.unwrap(),
        None
    );
}

pub(crate) async fn newer_ticket_replaces_older(store: DynStore) {
    store
        .put_ticket(&ticket(TicketKind::Reset, "u1", "old"))
        .await
        .unwrap();
    store
        .put_ticket(&ticket(TicketKind::Reset, "u1", "new"))
        .await
        .unwrap();
    let t = store.ticket(TicketKind::Reset, "u1", NOW).await.unwrap();
    assert_eq!(t.unwrap().jti, "new");
    assert!(
        !store
            .delete_ticket(TicketKind::Reset, "u1", Some("old"))
            .await
            .unwrap(),
        "an older id deletes nothing"
    );
    assert!(
        store
            .delete_ticket(TicketKind::Reset, "u1", Some("new"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.ticket(TicketKind::Reset, "u1", NOW).await.unwrap(),
        None
    );
}

pub(crate) async fn expired_ticket_is_not_returned(store: DynStore) {
    store
        .put_ticket(&ticket(TicketKind::Verify, "u1", "j"))
        .await
        .unwrap();
    assert!(
        store
            .ticket(TicketKind::Verify, "u1", NOW + 599)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .ticket(TicketKind::Verify, "u1", NOW + 600)
            .await
            .unwrap(),
        None
    );
    store.purge_email_records(NOW + 600).await.unwrap();
    store.purge_expired(NOW + 600).await.unwrap();
    assert!(
        !store
            .delete_ticket(TicketKind::Verify, "u1", None)
            .await
            .unwrap(),
        "purged"
    );
}

pub(crate) async fn enqueue_is_idempotent(store: DynStore) {
    assert!(store.enqueue_mail(&mail("m1", NOW)).await.unwrap());
    let mut again = mail("m1", NOW);
    again.email = Some("other@example.com".into());
    assert!(!store.enqueue_mail(&again).await.unwrap());
    let claimed = store.claim_mail(NOW, NOW + 60).await.unwrap().unwrap();
    assert_eq!(claimed.email.as_deref(), Some("m@example.com"));
    assert_eq!(claimed.attempts, 1);
    store.mail_sent("m1", 1, NOW, NOW + 3600).await.unwrap();
    assert!(
        !store.enqueue_mail(&mail("m1", NOW)).await.unwrap(),
        "a sent id refuses a duplicate"
    );
}

pub(crate) async fn only_due_mail_is_claimed(store: DynStore) {
    store.enqueue_mail(&mail("later", NOW + 100)).await.unwrap();
    assert_eq!(store.claim_mail(NOW, NOW + 60).await.unwrap(), None);
    let m = store
        .claim_mail(NOW + 100, NOW + 160)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.id, "later");
    assert_eq!(m.next_attempt_at, NOW + 160);
    // Leased: nobody else gets it before the lease ends.
    assert_eq!(store.claim_mail(NOW + 159, NOW + 200).await.unwrap(), None);
}

pub(crate) async fn sent_mail_is_never_claimed_again(store: DynStore) {
    store.enqueue_mail(&mail("m", NOW)).await.unwrap();
    let m = store.claim_mail(NOW, NOW + 60).await.unwrap().unwrap();
    store
        .mail_sent(&m.id, m.attempts, NOW, NOW + 3600)
        .await
        .unwrap();
    assert_eq!(
        store.claim_mail(NOW + 1000, NOW + 1060).await.unwrap(),
        None
    );
    assert_eq!(store.mail_queue_stats(NOW).await.unwrap().pending, 0);
}

pub(crate) async fn failed_mail_is_retried_when_due(store: DynStore) {
    store.enqueue_mail(&mail("m", NOW)).await.unwrap();
    let m = store.claim_mail(NOW, NOW + 60).await.unwrap().unwrap();
    store
        .mail_failed(&m.id, m.attempts, "connection refused", NOW + 5)
        .await
        .unwrap();
    assert_eq!(store.claim_mail(NOW + 4, NOW + 64).await.unwrap(), None);
    let again = store.claim_mail(NOW + 5, NOW + 65).await.unwrap().unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(again.last_error.as_deref(), Some("connection refused"));
    // The outcome of a stale attempt changes nothing.
    store.mail_sent("m", 1, NOW + 6, NOW + 3600).await.unwrap();
    assert_eq!(store.mail_queue_stats(NOW + 6).await.unwrap().pending, 1);
}

pub(crate) async fn expired_lease_is_claimed_again(store: DynStore) {
    store.enqueue_mail(&mail("m", NOW)).await.unwrap();
    let first = store.claim_mail(NOW, NOW + 60).await.unwrap().unwrap();
    assert_eq!(first.attempts, 1);
    // The claimer died mid-send: after the lease another one gets it.
    let second = store
        .claim_mail(NOW + 60, NOW + 120)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.attempts, 2);
}

pub(crate) async fn concurrent_claims_get_one_each(store: DynStore) {
    for i in 0..3 {
        store
            .enqueue_mail(&mail(&format!("m{i}"), NOW))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim_mail(NOW, NOW + 60).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        if let Some(m) = t.await.unwrap() {
            ids.push(m.id);
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        vec!["m0", "m1", "m2"],
        "each mail claimed exactly once"
    );
}

pub(crate) async fn queue_stats(store: DynStore) {
    assert_eq!(
        store.mail_queue_stats(NOW).await.unwrap().oldest_created_at,
        None
    );
    store.enqueue_mail(&mail("a", NOW - 30)).await.unwrap();
    store.enqueue_mail(&mail("b", NOW - 10)).await.unwrap();
    let s = store.mail_queue_stats(NOW).await.unwrap();
    assert_eq!(s.pending, 2);
    assert_eq!(s.oldest_created_at, Some(NOW - 30));
    assert_eq!(
        store.purge_email_records(NOW + 86_400).await.unwrap(),
        2,
        "expired records are purged"
    );
}

//! Checks of [`AnonymousStore`](crate::store::AnonymousStore) and of the
//! sign-in ticket kind.

use super::uid;
use super::{credentials, session, user};
use crate::store::{CredentialRecord, DynStore, EmailTicket, StoreError, TicketKind, UserRecord};

const T0: i64 = 1_800_000_000;

/// A guest as the service makes it, last used at `at`.
fn guest(at: i64) -> UserRecord {
    let id = crate::domain::UserId::mint();
    UserRecord {
        email: format!("{id}@anonymous.invalid"),
        id,
        roles: vec!["user".into()],
        created_at: at,
        updated_at: at,
        anonymous: true,
        last_active_at: Some(at),
        ..UserRecord::default()
    }
}

pub(crate) async fn guest_round_trip_and_touch(store: DynStore) {
    let g = guest(T0);
    store
        .create_user(&g, &CredentialRecord::default())
        .await
        .unwrap();
    assert_eq!(store.user_by_id(&g.id).await.unwrap(), Some(g.clone()));
    assert!(store.touch_anonymous(&g.id, T0 + 50).await.unwrap());
    let read = store.user_by_id(&g.id).await.unwrap().unwrap();
    assert_eq!(read.last_active_at, Some(T0 + 50));
    // Not for full accounts, nor unknown ids.
    let full = user("conf-anon-full@example.com");
    store.create_user(&full, &credentials()).await.unwrap();
    assert!(!store.touch_anonymous(&full.id, T0).await.unwrap());
    assert!(
        store
            .user_by_id(&full.id)
            .await
            .unwrap()
            .unwrap()
            .last_active_at
            .is_none()
    );
    assert!(!store.touch_anonymous(&uid("no-such-id"), T0).await.unwrap());
}

pub(crate) async fn stale_guests_listed_and_deleted(store: DynStore) {
    let old = guest(T0);
    let fresh = guest(T0 + 1000);
    let full = UserRecord {
        created_at: T0,
        ..user("conf-anon-old-full@example.com")
    };
    store
        .create_user(&old, &CredentialRecord::default())
        .await
        .unwrap();
    store
        .create_user(&fresh, &CredentialRecord::default())
        .await
        .unwrap();
    store.create_user(&full, &credentials()).await.unwrap();
    let s = session(&old.id, T0);
    store.create_session(&s).await.unwrap();
    let cutoff = T0 + 500;
    assert_eq!(
        store.stale_anonymous(cutoff, 10).await.unwrap(),
        vec![old.id.clone()]
    );
    assert!(store.stale_anonymous(cutoff, 0).await.unwrap().is_empty());
    // A fresh guest and a full account are never deleted.
    assert!(
        !store
            .delete_stale_anonymous(&fresh.id, cutoff)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_stale_anonymous(&full.id, cutoff)
            .await
            .unwrap()
    );
    // A guest used since the listing stays.
    assert!(store.touch_anonymous(&old.id, T0 + 600).await.unwrap());
    assert!(!store.delete_stale_anonymous(&old.id, cutoff).await.unwrap());
    assert!(store.user_by_id(&old.id).await.unwrap().is_some());
    // Past its time it goes, with its sessions; its stand-in address is free.
    assert!(
        store
            .delete_stale_anonymous(&old.id, T0 + 700)
            .await
            .unwrap()
    );
    assert!(store.user_by_id(&old.id).await.unwrap().is_none());
    assert!(store.user_by_email(&old.email).await.unwrap().is_none());
    assert!(!store.session_live(&s.id, &old.id, T0 + 700).await.unwrap());
    assert!(
        store
            .sessions_of(&old.id, T0 + 700)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .delete_stale_anonymous(&old.id, T0 + 700)
            .await
            .unwrap()
    );
    assert!(store.user_by_id(&fresh.id).await.unwrap().is_some());
    assert!(store.user_by_id(&full.id).await.unwrap().is_some());
}

pub(crate) async fn upgrade_in_place(store: DynStore) {
    let g = guest(T0);
    store
        .create_user(&g, &CredentialRecord::default())
        .await
        .unwrap();
    let s = session(&g.id, T0);
    store.create_session(&s).await.unwrap();
    let taken = user("conf-anon-taken@example.com");
    store.create_user(&taken, &credentials()).await.unwrap();
    // A taken address: nothing changes.
    assert!(matches!(
        store
            .upgrade_anonymous(&g.id, &taken.email, false, "hash-x", T0 + 1)
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.user_by_id(&g.id).await.unwrap(), Some(g.clone()));
    assert!(
        store
            .upgrade_anonymous(&g.id, "conf-anon-new@example.com", false, "hash-1", T0 + 2)
            .await
            .unwrap()
    );
    let u = store.user_by_id(&g.id).await.unwrap().unwrap();
    assert!(!u.anonymous && !u.email_verified);
    assert_eq!(u.email, "conf-anon-new@example.com");
    assert_eq!(u.updated_at, T0 + 2);
    assert_eq!(u.last_active_at, None);
    assert_eq!(
        store
            .user_by_email("conf-anon-new@example.com")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(g.id.clone())
    );
    assert!(store.user_by_email(&g.email).await.unwrap().is_none());
    assert_eq!(
        store
            .credentials(&g.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "hash-1"
    );
    // Sessions are kept.
    assert!(store.session_live(&s.id, &g.id, T0 + 3).await.unwrap());
    // Once only; a full account is never "upgraded", nor deleted as stale.
    assert!(
        !store
            .upgrade_anonymous(&g.id, "conf-anon-other@example.com", true, "h", T0 + 4)
            .await
            .unwrap()
    );
    assert!(
        !store
            .upgrade_anonymous(&taken.id, "conf-anon-other@example.com", true, "h", T0 + 4)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_stale_anonymous(&g.id, T0 + 1_000_000)
            .await
            .unwrap()
    );
    // A verified upgrade (an identity provider's address), no password.
    let g2 = guest(T0);
    store
        .create_user(&g2, &CredentialRecord::default())
        .await
        .unwrap();
    assert!(
        store
            .upgrade_anonymous(&g2.id, "conf-anon-fed@example.com", true, "", T0 + 5)
            .await
            .unwrap()
    );
    let u2 = store.user_by_id(&g2.id).await.unwrap().unwrap();
    assert!(u2.email_verified && !u2.anonymous);
    assert!(
        !store
            .credentials(&g2.id)
            .await
            .unwrap()
            .unwrap()
            .has_password()
    );
}

pub(crate) async fn racing_upgrades_to_one_address(store: DynStore) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let g = guest(T0);
        store
            .create_user(&g, &CredentialRecord::default())
            .await
            .unwrap();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .upgrade_anonymous(&g.id, "conf-anon-race@example.com", false, "h", T0 + 1)
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => won += 1,
            Ok(false) | Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1, "one guest gets the address");
}

pub(crate) async fn sign_in_tickets_are_their_own_kind(store: DynStore) {
    let t = EmailTicket {
        kind: TicketKind::SignIn,
        user_id: "holder-1".into(),
        jti: "j1".into(),
        token_hash: "th".into(),
        code_hash: "ch".into(),
        email: "who@example.com".into(),
        credential_stamp: String::new(),
        issued_at: T0,
        expires_at: T0 + 900,
        owner: None,
    };
    store.put_ticket(&t).await.unwrap();
    assert_eq!(
        store
            .ticket(TicketKind::SignIn, "holder-1", T0)
            .await
            .unwrap(),
        Some(t.clone())
    );
    assert!(
        store
            .ticket(TicketKind::Reset, "holder-1", T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .ticket(TicketKind::SignIn, "holder-1", T0 + 900)
            .await
            .unwrap()
            .is_none()
    );
    let newer = EmailTicket {
        jti: "j2".into(),
        owner: Some("u-1".into()),
        ..t.clone()
    };
    store.put_ticket(&newer).await.unwrap();
    assert_eq!(
        store
            .ticket(TicketKind::SignIn, "holder-1", T0)
            .await
            .unwrap(),
        Some(newer)
    );
    assert!(
        !store
            .delete_ticket(TicketKind::SignIn, "holder-1", Some("j1"))
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_ticket(TicketKind::SignIn, "holder-1", Some("j2"))
            .await
            .unwrap()
    );
}

//! Checks of [`IdentityStore`] (federated sign-in).

use super::{credentials, user};
use crate::domain::UserId;
use crate::store::{CredentialRecord, DynStore, IdentityRecord, IdentityRemoval, StoreError};

fn identity(user_id: &str, provider: &str, sub: &str, at: i64) -> IdentityRecord {
    IdentityRecord {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: user_id.into(),
        provider: provider.to_string(),
        iss: format!("https://{provider}.example"),
        sub: sub.to_string(),
        email: Some(format!("{sub}@example.com")),
        created_at: at,
        last_used_at: None,
    }
}

async fn account(store: &DynStore, email: &str, with_password: bool) -> UserId {
    let u = user(email);
    let c = if with_password {
        credentials()
    } else {
        CredentialRecord::default()
    };
    store.create_user(&u, &c).await.unwrap();
    u.id
}

pub(crate) async fn link_read_and_list(store: DynStore) {
    let uid = account(&store, "fed-a@example.com", true).await;
    let a = identity(&uid, "google", "111", 10);
    let b = identity(&uid, "acme", "111", 20);
    assert!(store.link_identity(&a).await.unwrap());
    assert!(store.link_identity(&b).await.unwrap());
    let found = store
        .identity_by_key("google", &a.iss, "111")
        .await
        .unwrap();
    assert_eq!(found, Some(a.clone()));
    // The same sub at another provider (or issuer) is another identity.
    assert_eq!(
        store
            .identity_by_key("google", "https://other.example", "111")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.identities_of(&uid).await.unwrap(), vec![a.clone(), b]);
    store
        .touch_identity(&a.id, Some("new@example.com"), 99)
        .await
        .unwrap();
    let touched = store.identities_of(&uid).await.unwrap().remove(0);
    assert_eq!(touched.last_used_at, Some(99));
    assert_eq!(touched.email.as_deref(), Some("new@example.com"));
    // No account: nothing linked.
    let stray = identity("no-such-user", "google", "222", 1);
    assert!(!store.link_identity(&stray).await.unwrap());
    assert_eq!(
        store
            .identity_by_key("google", &stray.iss, "222")
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn one_account_per_identity(store: DynStore) {
    let first = account(&store, "fed-b1@example.com", true).await;
    let second = account(&store, "fed-b2@example.com", true).await;
    assert!(
        store
            .link_identity(&identity(&first, "google", "333", 1))
            .await
            .unwrap()
    );
    let again = identity(&second, "google", "333", 2);
    assert!(matches!(
        store.link_identity(&again).await,
        Err(StoreError::Conflict)
    ));
    assert!(store.identities_of(&second).await.unwrap().is_empty());
}

pub(crate) async fn racing_links_of_one_identity(store: DynStore) {
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(account(&store, &format!("fed-race{i}@example.com"), true).await);
    }
    let mut tasks = Vec::new();
    for uid in users.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .link_identity(&identity(&uid, "google", "race", 1))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => won += 1,
            Err(StoreError::Conflict) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one account gets the identity");
}

pub(crate) async fn last_way_in_stays(store: DynStore) {
    // No password, no passkey: the last identity cannot go.
    let uid = account(&store, "fed-c@example.com", false).await;
    let a = identity(&uid, "google", "c1", 1);
    let b = identity(&uid, "apple", "c1", 2);
    store.link_identity(&a).await.unwrap();
    store.link_identity(&b).await.unwrap();
    assert_eq!(
        store.unlink_identity(&uid, &a.id).await.unwrap(),
        IdentityRemoval::Removed(a.clone())
    );
    assert_eq!(
        store.unlink_identity(&uid, &b.id).await.unwrap(),
        IdentityRemoval::LastCredential
    );
    assert_eq!(
        store.unlink_identity(&uid, &a.id).await.unwrap(),
        IdentityRemoval::NotFound
    );
    // Another user's identity is not found for this one.
    let other = account(&store, "fed-c2@example.com", true).await;
    assert_eq!(
        store.unlink_identity(&other, &b.id).await.unwrap(),
        IdentityRemoval::NotFound
    );
    // The unlinked one is free for another account.
    assert!(
        store
            .link_identity(&identity(&other, "google", "c1", 3))
            .await
            .unwrap()
    );
    // With a password, the only identity may go.
    let only = identity(&other, "apple", "c2", 4);
    store.link_identity(&only).await.unwrap();
    assert!(matches!(
        store.unlink_identity(&other, &only.id).await.unwrap(),
        IdentityRemoval::Removed(_)
    ));
}

pub(crate) async fn racing_unlinks_keep_one(store: DynStore) {
    let uid = account(&store, "fed-d@example.com", false).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let idn = identity(&uid, &format!("p{i}"), "d", i);
        store.link_identity(&idn).await.unwrap();
        ids.push(idn.id);
    }
    let mut tasks = Vec::new();
    for id in ids {
        let store = store.clone();
        let uid = uid.clone();
        tasks.push(tokio::spawn(async move {
            store.unlink_identity(&uid, &id).await
        }));
    }
    let mut removed = 0;
    for t in tasks {
        if matches!(t.await.unwrap().unwrap(), IdentityRemoval::Removed(_)) {
            removed += 1;
        }
    }
    assert_eq!(removed, 3, "one identity stays");
    assert_eq!(store.identities_of(&uid).await.unwrap().len(), 1);
}

pub(crate) async fn deleting_the_account_unlinks(store: DynStore) {
    let uid = account(&store, "fed-e@example.com", true).await;
    let a = identity(&uid, "google", "e1", 1);
    store.link_identity(&a).await.unwrap();
    assert!(store.delete_user(&uid).await.unwrap());
    assert!(store.identities_of(&uid).await.unwrap().is_empty());
    assert_eq!(
        store.identity_by_key("google", &a.iss, "e1").await.unwrap(),
        None
    );
    let again = account(&store, "fed-e2@example.com", true).await;
    assert!(
        store
            .link_identity(&identity(&again, "google", "e1", 2))
            .await
            .unwrap()
    );
    assert_eq!(store.delete_identities_of(&again).await.unwrap(), 1);
    assert!(store.identities_of(&again).await.unwrap().is_empty());
}

pub(crate) async fn an_identity_lets_the_last_passkey_go(store: DynStore) {
    let uid = account(&store, "fed-f@example.com", false).await;
    let pk = super::passkey("f");
    store.add_passkey(&uid, &pk, 20, 1).await.unwrap();
    assert_eq!(
        store.remove_passkey(&uid, &pk.id, 2).await.unwrap(),
        crate::store::PasskeyRemoval::LastCredential
    );
    store
        .link_identity(&identity(&uid, "google", "f1", 3))
        .await
        .unwrap();
    assert_eq!(
        store.remove_passkey(&uid, &pk.id, 4).await.unwrap(),
        crate::store::PasskeyRemoval::Removed
    );
}

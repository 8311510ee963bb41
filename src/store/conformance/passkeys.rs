//! Checks of the passkey methods of [`CredentialStore`] (issue 12).

use super::{credentials, passkey, user};
use crate::store::{CredentialRecord, DynStore, PasskeyRemoval, StoreError};

pub(crate) async fn add_and_count(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let (a, b) = (passkey("a"), passkey("b"));
    assert!(store.add_passkey(&u.id, &a, 1_800_000_001).await.unwrap());
    assert!(store.add_passkey(&u.id, &b, 1_800_000_002).await.unwrap());
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(creds.passkeys.len(), 2);
    assert_eq!(creds.passkeys.get(&a.id), Some(&a));
    assert_eq!(creds.password_hash, credentials().password_hash);
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(profile.passkey_count, 2);
    assert_eq!(profile.updated_at, 1_800_000_002);
    assert_eq!(profile.email, u.email);
}

pub(crate) async fn add_duplicate_id_conflicts(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let a = passkey("a");
    assert!(store.add_passkey(&u.id, &a, 1).await.unwrap());
    let mut again = passkey("other");
    again.id = a.id.clone();
    assert!(matches!(
        store.add_passkey(&u.id, &again, 2).await,
        Err(StoreError::Conflict)
    ));
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(creds.passkeys.get(&a.id), Some(&a), "the first one stays");
    assert_eq!(
        store
            .user_by_id(&u.id)
            .await
            .unwrap()
            .unwrap()
            .passkey_count,
        1
    );
    assert!(
        !store
            .add_passkey("no-such-user", &passkey("x"), 3)
            .await
            .unwrap()
    );
}

pub(crate) async fn update_after_use(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let mut a = passkey("a");
    store.add_passkey(&u.id, &a, 1).await.unwrap();
    a.counter = 7;
    a.backup_state = true;
    a.last_used_at = Some(1_800_000_100);
    a.passkey = "{\"updated\":true}".into();
    assert!(store.update_passkey(&u.id, &a).await.unwrap());
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(creds.passkeys.get(&a.id), Some(&a));
    // A passkey removed meanwhile is not brought back.
    assert!(!store.update_passkey(&u.id, &passkey("gone")).await.unwrap());
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(creds.passkeys.len(), 1);
    assert!(!store.update_passkey("no-such-user", &a).await.unwrap());
}

pub(crate) async fn remove_one(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let (a, b) = (passkey("a"), passkey("b"));
    store.add_passkey(&u.id, &a, 1).await.unwrap();
    store.add_passkey(&u.id, &b, 2).await.unwrap();
    assert_eq!(
        store
            .remove_passkey(&u.id, &a.id, 1_800_000_005)
            .await
            .unwrap(),
        PasskeyRemoval::Removed
    );
    assert_eq!(
        store
            .remove_passkey(&u.id, &a.id, 1_800_000_006)
            .await
            .unwrap(),
        PasskeyRemoval::NotFound
    );
    assert_eq!(
        store
            .remove_passkey("no-such-user", &b.id, 7)
            .await
            .unwrap(),
        PasskeyRemoval::NotFound
    );
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(creds.passkeys.keys().collect::<Vec<_>>(), vec![&b.id]);
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(profile.passkey_count, 1);
    assert_eq!(profile.updated_at, 1_800_000_005);
    // With a password, the last passkey may go too.
    assert_eq!(
        store.remove_passkey(&u.id, &b.id, 8).await.unwrap(),
        PasskeyRemoval::Removed
    );
    assert_eq!(
        store
            .user_by_id(&u.id)
            .await
            .unwrap()
            .unwrap()
            .passkey_count,
        0
    );
}

pub(crate) async fn last_passkey_of_passwordless_account_stays(store: DynStore) {
    let u = user("conf-pk@example.com");
    let no_password = CredentialRecord::default();
    assert!(!no_password.has_password());
    store.create_user(&u, &no_password).await.unwrap();
    let (a, b) = (passkey("a"), passkey("b"));
    store.add_passkey(&u.id, &a, 1).await.unwrap();
    store.add_passkey(&u.id, &b, 2).await.unwrap();
    assert_eq!(
        store.remove_passkey(&u.id, &a.id, 3).await.unwrap(),
        PasskeyRemoval::Removed
    );
    assert_eq!(
        store.remove_passkey(&u.id, &b.id, 4).await.unwrap(),
        PasskeyRemoval::LastCredential
    );
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(creds.passkeys.get(&b.id), Some(&b), "nothing changed");
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!((profile.passkey_count, profile.updated_at), (1, 3));
}

pub(crate) async fn profile_reads_carry_no_passkeys(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let a = passkey("a");
    store.add_passkey(&u.id, &a, 1).await.unwrap();
    for read in [
        store.user_by_id(&u.id).await.unwrap(),
        store.user_by_email(&u.email).await.unwrap(),
    ] {
        let json = serde_json::to_string(&read.unwrap()).unwrap();
        assert!(!json.contains(&a.credential_id), "{json}");
        assert!(!json.contains("\"passkeys\""), "{json}");
    }
}

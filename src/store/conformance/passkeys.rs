//! Checks of the passkey methods of [`CredentialStore`].

use super::uid;
use super::{credentials, passkey, user};
use crate::store::{CredentialRecord, DynStore, PasskeyAddition, PasskeyRemoval, StoreError};

/// A cap the checks below never reach (except the one about the cap).
const MAX: u32 = 20;

pub(crate) async fn add_and_count(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let (a, b) = (passkey("a"), passkey("b"));
    for (p, at) in [(&a, 1_800_000_001), (&b, 1_800_000_002)] {
        let added = store.add_passkey(&u.id, p, MAX, at).await.unwrap();
        assert_eq!(added, PasskeyAddition::Added);
    }
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
    let added = store.add_passkey(&u.id, &a, MAX, 1).await.unwrap();
    assert_eq!(added, PasskeyAddition::Added);
    let mut again = passkey("other");
    again.id = a.id.clone();
    assert!(matches!(
        store.add_passkey(&u.id, &again, MAX, 2).await,
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
    assert_eq!(
        store
            .add_passkey(&uid("no-such-user"), &passkey("x"), MAX, 3)
            .await
            .unwrap(),
        PasskeyAddition::NoUser
    );
}

pub(crate) async fn update_after_use(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let mut a = passkey("a");
    store.add_passkey(&u.id, &a, MAX, 1).await.unwrap();
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
    assert!(
        !store
            .update_passkey(&uid("no-such-user"), &a)
            .await
            .unwrap()
    );
}

pub(crate) async fn remove_one(store: DynStore) {
    let u = user("conf-pk@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let (a, b) = (passkey("a"), passkey("b"));
    store.add_passkey(&u.id, &a, MAX, 1).await.unwrap();
    store.add_passkey(&u.id, &b, MAX, 2).await.unwrap();
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
            .remove_passkey(&uid("no-such-user"), &b.id, 7)
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
    store.add_passkey(&u.id, &a, MAX, 1).await.unwrap();
    store.add_passkey(&u.id, &b, MAX, 2).await.unwrap();
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
    store.add_passkey(&u.id, &a, MAX, 1).await.unwrap();
    for read in [
        store.user_by_id(&u.id).await.unwrap(),
        store.user_by_email(&u.email).await.unwrap(),
    ] {
        let json = serde_json::to_string(&read.unwrap()).unwrap();
        assert!(!json.contains(&a.credential_id), "{json}");
        assert!(!json.contains("\"passkeys\""), "{json}");
    }
}

/// `max` is a hard cap: racing adds past it are refused, whatever the
/// interleaving (FerretDB included, see `mongo::credentials`), and what
/// was refused left nothing behind.
pub(crate) async fn add_is_capped(store: DynStore) {
    let u = user("conf-pk-cap@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let first = passkey("first");
    let added = store.add_passkey(&u.id, &first, 3, 1).await.unwrap();
    assert_eq!(added, PasskeyAddition::Added);
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let id = u.id.clone();
            tokio::spawn(async move {
                store
                    .add_passkey(&id, &passkey(&format!("r{i}")), 3, 2)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut added = 0;
    for r in racers {
        match r.await.unwrap() {
            PasskeyAddition::Added => added += 1,
            PasskeyAddition::Full => {}
            other => panic!("{other:?}"),
        }
    }
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    let count = store
        .user_by_id(&u.id)
        .await
        .unwrap()
        .unwrap()
        .passkey_count;
    assert_eq!(added, 2, "two more fit under the cap");
    assert_eq!(
        creds.passkeys.len(),
        3,
        "and every add that said so is stored"
    );
    assert_eq!(count, 3);
    // Full now: refused, nothing written.
    let refused = store
        .add_passkey(&u.id, &passkey("late"), 3, 3)
        .await
        .unwrap();
    assert_eq!(refused, PasskeyAddition::Full);
    let after = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(after.passkeys.len(), creds.passkeys.len());
    // Removing one makes room again.
    let removed = store.remove_passkey(&u.id, &first.id, 4).await.unwrap();
    assert_eq!(removed, PasskeyRemoval::Removed);
    let again = store
        .add_passkey(&u.id, &passkey("again"), 3, 5)
        .await
        .unwrap();
    assert_eq!(again, PasskeyAddition::Added);
}

/// Claiming an unverified account forgets every credential but the new
/// password, in one write, and keeps the profile.
pub(crate) async fn claim_forgets_every_other_credential(store: DynStore) {
    let mut u = user("conf-claim@example.com");
    u.display_name = Some("Squatter".into());
    store.create_user(&u, &credentials()).await.unwrap();
    store
        .add_passkey(&u.id, &passkey("a"), MAX, 1)
        .await
        .unwrap();
    store
        .add_passkey(&u.id, &passkey("b"), MAX, 2)
        .await
        .unwrap();
    assert!(store.set_pending_totp(&u.id, "sealed").await.unwrap());
    let codes = vec!["h1".to_string(), "h2".to_string()];
    assert!(
        store
            .activate_totp(&u.id, "sealed", &codes, 3)
            .await
            .unwrap()
    );
    assert!(store.set_pending_totp(&u.id, "sealed-2").await.unwrap());

    assert!(store.claim_account(&u.id, "$2b$claimed", 10).await.unwrap());
    let creds = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(
        creds,
        CredentialRecord {
            password_hash: "$2b$claimed".into(),
            ..CredentialRecord::default()
        }
    );
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(profile.passkey_count, 0);
    assert!(!profile.mfa_enabled);
    assert!(profile.email_verified);
    assert_eq!(profile.updated_at, 10);
    assert_eq!(profile.display_name.as_deref(), Some("Squatter"));
    assert_eq!(profile.email, u.email);
    // The account works as any other afterwards.
    let again = store
        .add_passkey(&u.id, &passkey("c"), MAX, 11)
        .await
        .unwrap();
    assert_eq!(again, PasskeyAddition::Added);
    assert!(
        !store
            .claim_account(&uid("no-such-user"), "$2b$x", 12)
            .await
            .unwrap()
    );
}

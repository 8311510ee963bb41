//! Checks of [`CredentialStore`], and that credentials and profile share
//! one stored value without leaking into each other.

use super::uid;
use super::{credentials, user};
use crate::store::{CredentialRecord, DynStore, ProfileUpdate};

pub(crate) async fn round_trip(store: DynStore) {
    let u = user("conf-cred@example.com");
    let c = CredentialRecord {
        password_hash: "$2b$04$roundtriproundtriproundtriproundtriproundtriproundt".into(),
        legacy_bcrypt: true,
        ..CredentialRecord::default()
    };
    store.create_user(&u, &c).await.unwrap();
    assert_eq!(store.credentials(&u.id).await.unwrap(), Some(c));
    assert!(
        store
            .credentials(&uid("no-such-id"))
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn set_password_hash(store: DynStore) {
    let u = user("conf-cred@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    assert!(
        store
            .set_password_hash(&u.id, "$2b$new", 1_800_000_002)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .credentials(&u.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$2b$new"
    );
    assert!(
        !store
            .set_password_hash(&uid("missing"), "x", 0)
            .await
            .unwrap()
    );
    assert!(store.credentials(&uid("missing")).await.unwrap().is_none());
}

pub(crate) async fn profile_update_keeps_credentials(store: DynStore) {
    let u = user("conf-cred@example.com");
    let c = credentials();
    store.create_user(&u, &c).await.unwrap();
    let upd = ProfileUpdate {
        display_name: Some(Some("Renamed".into())),
        ..ProfileUpdate::default()
    };
    store
        .update_profile(&u.id, &upd, 1_800_000_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.credentials(&u.id).await.unwrap(), Some(c));
}

pub(crate) async fn set_password_hash_keeps_profile(store: DynStore) {
    let mut u = user("conf-cred@example.com");
    u.email_verified = true;
    u.roles = vec!["user".into(), "admin".into()];
    store.create_user(&u, &credentials()).await.unwrap();
    assert!(
        store
            .set_password_hash(&u.id, "$2b$new", 1_800_000_003)
            .await
            .unwrap()
    );
    let mut expected = u.clone();
    expected.updated_at = 1_800_000_003;
    assert_eq!(
        store.user_by_id(&u.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.user_by_email(&u.email).await.unwrap(), Some(expected));
}

pub(crate) async fn user_reads_carry_no_secrets(store: DynStore) {
    let u = user("conf-cred@example.com");
    let c = credentials();
    store.create_user(&u, &c).await.unwrap();
    let reads = [
        store.user_by_id(&u.id).await.unwrap(),
        store.user_by_email(&u.email).await.unwrap(),
        store
            .update_profile(&u.id, &ProfileUpdate::default(), 1_800_000_000)
            .await
            .unwrap(),
    ];
    for read in reads {
        let json = serde_json::to_string(&read.unwrap()).unwrap();
        assert!(!json.contains(&c.password_hash), "{json}");
        assert!(!json.contains("password_hash"), "{json}");
    }
}

pub(crate) async fn set_password_hash_clears_legacy(store: DynStore) {
    let u = user("conf-legacy@example.com");
    let legacy = CredentialRecord {
        password_hash: "$2b$12$legacylegacylegacylegacylegacylegacylegacylegacyleg".into(),
        legacy_bcrypt: true,
        ..CredentialRecord::default()
    };
    store.create_user(&u, &legacy).await.unwrap();
    assert_eq!(store.credentials(&u.id).await.unwrap(), Some(legacy));
    assert!(
        store
            .set_password_hash(&u.id, "$2b$04$peppered", 9)
            .await
            .unwrap()
    );
    let after = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(after.password_hash, "$2b$04$peppered");
    assert!(!after.legacy_bcrypt);
}

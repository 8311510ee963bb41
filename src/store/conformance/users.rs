//! Checks of [`UserStore`].

use super::{credentials, user};
use crate::store::{DynStore, ProfileUpdate, StoreError};

pub(crate) async fn create_and_read(store: DynStore) {
    let u = user("conf-users@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    assert_eq!(store.user_by_id(&u.id).await.unwrap().as_ref(), Some(&u));
    assert_eq!(
        store.user_by_email(&u.email).await.unwrap().as_ref(),
        Some(&u)
    );
    assert!(
        store
            .user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.user_by_id("no-such-id").await.unwrap().is_none());
}

pub(crate) async fn duplicate_email_conflicts(store: DynStore) {
    let u = user("conf-users@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let dup = user("conf-users@example.com");
    assert!(matches!(
        store.create_user(&dup, &credentials()).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        store.user_by_id(&dup.id).await.unwrap().is_none(),
        "rejected insert left a record"
    );
    assert!(store.credentials(&dup.id).await.unwrap().is_none());
    assert_eq!(store.user_by_email(&u.email).await.unwrap(), Some(u));
}

pub(crate) async fn concurrent_registrations(store: DynStore) {
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_user(&user("conf-race@example.com"), &credentials())
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one of 50 concurrent registrations wins");
}

pub(crate) async fn update_profile(store: DynStore) {
    let u = user("conf-profile@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let upd = ProfileUpdate {
        display_name: Some(Some("Renamed".into())),
        ..Default::default()
    };
    let after = store
        .update_profile(&u.id, &upd, 1_800_000_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.display_name.as_deref(), Some("Renamed"));
    assert_eq!(after.updated_at, 1_800_000_000);
    assert_eq!(store.user_by_id(&u.id).await.unwrap(), Some(after));

    let unchanged = store
        .update_profile(&u.id, &ProfileUpdate::default(), 1_800_000_001)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.display_name.as_deref(), Some("Renamed"));
    assert_eq!(unchanged.updated_at, 1_800_000_001);

    let cleared = store
        .update_profile(
            &u.id,
            &ProfileUpdate {
                display_name: Some(None),
                ..Default::default()
            },
            1_800_000_002,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.display_name, None);
    assert!(
        store
            .update_profile("missing", &upd, 0)
            .await
            .unwrap()
            .is_none()
    );
}

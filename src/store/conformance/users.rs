//! Checks of [`UserStore`].

use super::uid;
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
    assert!(
        store
            .user_by_id(&uid("no-such-id"))
            .await
            .unwrap()
            .is_none()
    );
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
        ..ProfileUpdate::default()
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
                ..ProfileUpdate::default()
            },
            1_800_000_002,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.display_name, None);
    assert!(
        store
            .update_profile(&uid("missing"), &upd, 0)
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn profile_fields_set_and_clear(store: DynStore) {
    let u = user("conf-fields@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let set = ProfileUpdate {
        locale: Some(Some("pt-BR".into())),
        timezone: Some(Some("Europe/Paris".into())),
        metadata: Some(Some(r#"{"theme":"dark","n":18446744073709551615}"#.into())),
        ..ProfileUpdate::default()
    };
    let after = store.update_profile(&u.id, &set, 1).await.unwrap().unwrap();
    assert_eq!(after.locale.as_deref(), Some("pt-BR"));
    assert_eq!(after.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(
        after.metadata.as_deref(),
        Some(r#"{"theme":"dark","n":18446744073709551615}"#),
        "metadata is kept byte for byte"
    );
    assert_eq!(after.display_name.as_deref(), Some("Test"), "untouched");
    assert_eq!(store.user_by_id(&u.id).await.unwrap(), Some(after));
    let clear = ProfileUpdate {
        locale: Some(None),
        metadata: Some(None),
        ..ProfileUpdate::default()
    };
    let after = store
        .update_profile(&u.id, &clear, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.locale, None);
    assert_eq!(after.metadata, None);
    assert_eq!(after.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(store.user_by_id(&u.id).await.unwrap(), Some(after));
}

pub(crate) async fn list_by_prefix_and_cursor(store: DynStore) {
    for name in ["bob", "alice", "alfred", "al.x", "carol"] {
        store
            .create_user(&user(&format!("{name}@example.com")), &credentials())
            .await
            .unwrap();
    }
    let emails = |users: Vec<crate::store::UserRecord>| {
        users.into_iter().map(|u| u.email).collect::<Vec<_>>()
    };
    assert_eq!(
        emails(store.list_users("", None, 10).await.unwrap()),
        [
            "al.x@example.com",
            "alfred@example.com",
            "alice@example.com",
            "bob@example.com",
            "carol@example.com"
        ]
    );
    assert_eq!(
        emails(store.list_users("al", None, 2).await.unwrap()),
        ["al.x@example.com", "alfred@example.com"]
    );
    assert_eq!(
        emails(
            store
                .list_users("al", Some("alfred@example.com"), 2)
                .await
                .unwrap()
        ),
        ["alice@example.com"]
    );
    // `.` is literal, not a pattern.
    assert_eq!(
        emails(store.list_users("al.", None, 10).await.unwrap()),
        ["al.x@example.com"]
    );
    assert!(store.list_users("zed", None, 10).await.unwrap().is_empty());
    assert!(
        store
            .list_users("", Some("carol@example.com"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let listed = store.list_users("bob", None, 1).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0],
        store
            .user_by_email("bob@example.com")
            .await
            .unwrap()
            .unwrap()
    );
}

pub(crate) async fn admin_update(store: DynStore) {
    let u = user("conf-admin@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    let upd = crate::store::AdminUpdate {
        disabled: Some(true),
        roles: Some(vec!["admin".into(), "user".into()]),
        email_verified: Some(true),
    };
    let after = store.admin_update(&u.id, &upd, 5).await.unwrap().unwrap();
    assert!(after.disabled && after.email_verified);
    assert_eq!(after.roles, ["admin", "user"]);
    assert_eq!(after.updated_at, 5);
    assert_eq!(after.display_name, u.display_name);
    assert_eq!(store.user_by_id(&u.id).await.unwrap(), Some(after));
    assert_eq!(store.credentials(&u.id).await.unwrap(), Some(credentials()));
    assert!(
        store
            .admin_update(&uid("missing"), &upd, 5)
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn delete_erases_everything(store: DynStore) {
    let u = user("conf-delete@example.com");
    let other = user("conf-keep@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    store.create_user(&other, &credentials()).await.unwrap();
    let now = 1_800_000_000;
    store
        .create_session(&super::session(&u.id, now))
        .await
        .unwrap();
    let kept = super::session(&other.id, now);
    store.create_session(&kept).await.unwrap();
    assert!(
        store
            .put_avatar(&super::avatars::avatar(&u.id))
            .await
            .unwrap()
    );
    assert!(store.delete_user(&u.id).await.unwrap());
    assert!(store.user_by_id(&u.id).await.unwrap().is_none());
    assert!(store.user_by_email(&u.email).await.unwrap().is_none());
    assert!(store.credentials(&u.id).await.unwrap().is_none());
    assert!(store.sessions_of(&u.id, now).await.unwrap().is_empty());
    assert!(store.avatar(&u.id).await.unwrap().is_none());
    assert!(!store.delete_user(&u.id).await.unwrap(), "gone already");
    // The email is free again; the other user is untouched.
    store
        .create_user(&user("conf-delete@example.com"), &credentials())
        .await
        .unwrap();
    assert_eq!(store.sessions_of(&other.id, now).await.unwrap(), vec![kept]);
}

pub(crate) async fn create_users_skips_taken(store: DynStore) {
    let existing = user("conf-import-a@example.com");
    store.create_user(&existing, &credentials()).await.unwrap();
    let batch = vec![
        (user("conf-import-a@example.com"), credentials()),
        (user("conf-import-b@example.com"), credentials()),
        (user("conf-import-b@example.com"), credentials()),
        (user("conf-import-c@example.com"), credentials()),
    ];
    assert_eq!(
        store.create_users(&batch).await.unwrap(),
        [false, true, false, true]
    );
    assert_eq!(
        store.user_by_email(&existing.email).await.unwrap(),
        Some(existing)
    );
    assert_eq!(
        store.create_users(&batch).await.unwrap(),
        [false, false, false, false],
        "a re-run creates nothing"
    );
    assert_eq!(
        store
            .list_users("conf-import", None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}

pub(crate) async fn change_email_moves_the_unique_key(store: DynStore) {
    let a = user("conf-move-a@example.com");
    let b = user("conf-move-b@example.com");
    store.create_user(&a, &credentials()).await.unwrap();
    store.create_user(&b, &credentials()).await.unwrap();
    // Taken by another account: refused, nothing changed.
    assert!(matches!(
        store
            .change_email(&a.id, "conf-move-b@example.com", 1_800_000_000)
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.user_by_id(&a.id).await.unwrap().unwrap().email,
        "conf-move-a@example.com"
    );
    // Free: moved, verified; the old address is free, the new one found.
    assert!(
        store
            .change_email(&a.id, "conf-move-new@example.com", 1_800_000_001)
            .await
            .unwrap()
    );
    let moved = store
        .user_by_email("conf-move-new@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.id, a.id);
    assert!(moved.email_verified);
    assert_eq!(moved.updated_at, 1_800_000_001);
    assert!(
        store
            .user_by_email("conf-move-a@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // The credentials stay with the account.
    assert!(store.credentials(&a.id).await.unwrap().is_some());
    let again = user("conf-move-a@example.com");
    store.create_user(&again, &credentials()).await.unwrap();
    assert!(
        !store
            .change_email(&uid("no-such-id"), "x@example.com", 1)
            .await
            .unwrap()
    );
}

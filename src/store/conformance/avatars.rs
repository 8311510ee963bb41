//! Checks of [`AvatarStore`](crate::store::AvatarStore).

use super::uid;
use super::{credentials, user};
use crate::store::{AvatarRecord, DynStore};

/// An avatar record for tests.
pub(crate) fn avatar(user_id: &str) -> AvatarRecord {
    AvatarRecord {
        user_id: user_id.into(),
        content_type: "image/png".into(),
        etag: "0123456789abcdef0123456789abcdef".into(),
        bytes: (0..=255u8).cycle().take(70_000).collect(),
        updated_at: 1_800_000_000,
    }
}

pub(crate) async fn put_read_replace_delete(store: DynStore) {
    let u = user("conf-avatar@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    assert!(store.avatar(&u.id).await.unwrap().is_none());
    let a = avatar(&u.id);
    assert!(store.put_avatar(&a).await.unwrap());
    assert_eq!(store.avatar(&u.id).await.unwrap(), Some(a.clone()));
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(profile.avatar_etag.as_deref(), Some(a.etag.as_str()));
    assert_eq!(store.credentials(&u.id).await.unwrap(), Some(credentials()));

    let b = AvatarRecord {
        etag: "fedcba9876543210fedcba9876543210".into(),
        bytes: vec![1, 2, 3],
        ..a
    };
    assert!(store.put_avatar(&b).await.unwrap());
    assert_eq!(store.avatar(&u.id).await.unwrap(), Some(b.clone()));
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(profile.avatar_etag.as_deref(), Some(b.etag.as_str()));

    assert!(store.delete_avatar(&u.id).await.unwrap());
    assert!(store.avatar(&u.id).await.unwrap().is_none());
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert_eq!(profile.avatar_etag, None);
    assert_eq!(profile.display_name, u.display_name);
    assert!(!store.delete_avatar(&u.id).await.unwrap());
}

pub(crate) async fn no_avatar_without_account(store: DynStore) {
    assert!(!store.put_avatar(&avatar("no-such-user")).await.unwrap());
    assert!(store.avatar(&uid("no-such-user")).await.unwrap().is_none());
}

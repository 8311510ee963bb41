//! Checks of [`OAuthStore`](crate::store::OAuthStore): registered clients
//! and consents.

use super::uid;
use crate::store::{ClientRecord, ConsentRecord, DynStore, StoreError};

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        id: id.to_string(),
        name: format!("App {id}"),
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec![],
        client_type: "confidential".into(),
        first_party: false,
        scopes: vec!["openid".into(), "email".into()],
        audience: None,
        id_token_signed_response_alg: None,
        secret_hash: Some("ab".repeat(32)),
        created_at: 1_900_000_000,
        updated_at: 1_900_000_000,
    }
}

pub(crate) async fn clients_round_trip(store: DynStore) {
    let a = client("c-a");
    let mut b = client("c-b");
    b.audience = Some("https://api.example".into());
    b.id_token_signed_response_alg = Some("ES256".into());
    store.create_client(&b).await.unwrap();
    store.create_client(&a).await.unwrap();
    assert_eq!(store.client("c-a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.client("c-b").await.unwrap(), Some(b.clone()));
    assert_eq!(store.client("nope").await.unwrap(), None);
    let mut ids: Vec<String> = store
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["c-a", "c-b"]);
    let mut changed = a.clone();
    changed.name = "Renamed".into();
    changed.redirect_uris.push("http://127.0.0.1/cb".into());
    assert!(store.replace_client(&changed).await.unwrap());
    assert_eq!(store.client("c-a").await.unwrap(), Some(changed));
    assert!(!store.replace_client(&client("ghost")).await.unwrap());
    assert_eq!(store.client("ghost").await.unwrap(), None);
    assert!(store.delete_client("c-a").await.unwrap());
    assert!(!store.delete_client("c-a").await.unwrap());
    assert_eq!(store.client("c-a").await.unwrap(), None);
}

pub(crate) async fn client_id_conflicts(store: DynStore) {
    let a = client("same");
    store.create_client(&a).await.unwrap();
    let mut other = client("same");
    other.name = "Impostor".into();
    assert!(matches!(
        store.create_client(&other).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.client("same").await.unwrap(), Some(a));
}

pub(crate) async fn consents_per_user_and_client(store: DynStore) {
    let grant = |user: &str, client: &str, scopes: &[&str], at: i64| ConsentRecord {
        user_id: user.into(),
        client_id: client.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        created_at: at,
        updated_at: at,
    };
    store
        .put_consent(&grant("u1", "c2", &["openid"], 1))
        .await
        .unwrap();
    store
        .put_consent(&grant("u1", "c1", &["openid"], 1))
        .await
        .unwrap();
    store
        .put_consent(&grant("u10", "c1", &["openid"], 1))
        .await
        .unwrap();
    // A new grant replaces the old one.
    let wider = grant("u1", "c1", &["email", "openid"], 5);
    store.put_consent(&wider).await.unwrap();
    assert_eq!(
        store.consent(&uid("u1"), "c1").await.unwrap(),
        Some(wider.clone())
    );
    assert_eq!(store.consent(&uid("u2"), "c1").await.unwrap(), None);
    let of_u1 = store.consents_of(&uid("u1")).await.unwrap();
    assert_eq!(
        of_u1
            .iter()
            .map(|c| c.client_id.as_str())
            .collect::<Vec<_>>(),
        ["c1", "c2"],
        "only u1's consents (not u10's), by client"
    );
    assert!(store.delete_consent(&uid("u1"), "c1").await.unwrap());
    assert!(!store.delete_consent(&uid("u1"), "c1").await.unwrap());
    assert_eq!(store.consent(&uid("u1"), "c1").await.unwrap(), None);
    assert_eq!(store.consents_of(&uid("u10")).await.unwrap().len(), 1);
}

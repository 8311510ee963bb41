//! Checks of the two-factor part of [`CredentialStore`]: pending and active
//! TOTP secrets, recovery codes (used once, even when raced), and the claims
//! of TOTP steps and `mfa+jwt` tokens in [`OnceStore`].

use super::uid;
use super::{credentials, user};
use crate::domain::UserId;
use crate::store::{DynStore, OnceKey};

const NOW: i64 = 1_900_000_000;

fn codes(prefix: &str) -> Vec<String> {
    (0..10).map(|i| format!("{prefix}{i:02}")).collect()
}

/// A user with two-factor sign-in on and the recovery codes `codes("rc")`.
async fn user_with_mfa(store: &DynStore, email: &str) -> UserId {
    let u = user(email);
    store.create_user(&u, &credentials()).await.unwrap();
    assert!(store.set_pending_totp(&u.id, "v1:sealed").await.unwrap());
    assert!(
        store
            .activate_totp(&u.id, "v1:sealed", &codes("rc"), NOW)
            .await
            .unwrap()
    );
    u.id
}

pub(crate) async fn pending_then_active(store: DynStore) {
    let u = user("conf-mfa@example.com");
    store.create_user(&u, &credentials()).await.unwrap();
    assert!(store.set_pending_totp(&u.id, "v1:first").await.unwrap());
    assert!(store.set_pending_totp(&u.id, "v1:second").await.unwrap());
    let c = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(c.totp_pending.as_deref(), Some("v1:second"));
    assert_eq!(c.totp_secret, None);
    assert!(!store.user_by_id(&u.id).await.unwrap().unwrap().mfa_enabled);
    // Only the secret pending now can be activated.
    assert!(
        !store
            .activate_totp(&u.id, "v1:first", &codes("a"), NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .activate_totp(&u.id, "v1:second", &codes("a"), NOW)
            .await
            .unwrap()
    );
    let c = store.credentials(&u.id).await.unwrap().unwrap();
    assert_eq!(c.totp_secret.as_deref(), Some("v1:second"));
    assert_eq!(c.totp_pending, None);
    assert_eq!(c.recovery_codes, codes("a"));
    assert_eq!(c.password_hash, credentials().password_hash);
    let profile = store.user_by_id(&u.id).await.unwrap().unwrap();
    assert!(profile.mfa_enabled);
    assert_eq!(profile.updated_at, NOW);
    assert_eq!(profile.email, u.email);
    assert!(
        !store
            .set_pending_totp(&uid("no-such-user"), "x")
            .await
            .unwrap()
    );
    assert!(
        !store
            .activate_totp(&uid("no-such-user"), "x", &[], NOW)
            .await
            .unwrap()
    );
}

pub(crate) async fn disable_forgets_secrets_and_codes(store: DynStore) {
    let id = user_with_mfa(&store, "conf-mfa@example.com").await;
    assert!(store.set_pending_totp(&id, "v1:next").await.unwrap());
    assert!(store.disable_totp(&id, NOW + 5).await.unwrap());
    let c = store.credentials(&id).await.unwrap().unwrap();
    assert_eq!(c.totp_secret, None);
    assert_eq!(c.totp_pending, None);
    assert!(c.recovery_codes.is_empty());
    assert_eq!(c.password_hash, credentials().password_hash);
    let profile = store.user_by_id(&id).await.unwrap().unwrap();
    assert!(!profile.mfa_enabled);
    assert_eq!(profile.updated_at, NOW + 5);
    assert!(!store.consume_recovery_code(&id, "rc00", NOW).await.unwrap());
    assert!(!store.disable_totp(&uid("no-such-user"), NOW).await.unwrap());
}

pub(crate) async fn replaced_codes_kill_the_old_set(store: DynStore) {
    let id = user_with_mfa(&store, "conf-mfa@example.com").await;
    assert!(
        store
            .replace_recovery_codes(&id, &codes("new"), NOW + 1)
            .await
            .unwrap()
    );
    assert!(!store.consume_recovery_code(&id, "rc00", NOW).await.unwrap());
    assert!(
        store
            .consume_recovery_code(&id, "new00", NOW)
            .await
            .unwrap()
    );
    // Not while two-factor sign-in is off.
    let off = user("conf-mfa-off@example.com");
    store.create_user(&off, &credentials()).await.unwrap();
    assert!(
        !store
            .replace_recovery_codes(&off.id, &codes("x"), NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .credentials(&off.id)
            .await
            .unwrap()
            .unwrap()
            .recovery_codes
            .is_empty()
    );
}

pub(crate) async fn recovery_code_works_once(store: DynStore) {
    let id = user_with_mfa(&store, "conf-mfa@example.com").await;
    assert!(store.consume_recovery_code(&id, "rc03", NOW).await.unwrap());
    assert!(!store.consume_recovery_code(&id, "rc03", NOW).await.unwrap());
    assert!(
        !store
            .consume_recovery_code(&id, "rc03", NOW + 7200)
            .await
            .unwrap()
    );
    let left = store
        .credentials(&id)
        .await
        .unwrap()
        .unwrap()
        .recovery_codes;
    assert_eq!(left.len(), 9);
    assert!(!left.contains(&"rc03".to_string()));
    // Unknown codes and other users' codes are not used up.
    assert!(!store.consume_recovery_code(&id, "nope", NOW).await.unwrap());
    let other = user_with_mfa(&store, "conf-mfa-2@example.com").await;
    assert!(
        store
            .consume_recovery_code(&other, "rc03", NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .consume_recovery_code(&uid("no-such-user"), "rc00", NOW)
            .await
            .unwrap()
    );
}

pub(crate) async fn racing_uses_of_one_recovery_code(store: DynStore) {
    let id = user_with_mfa(&store, "conf-mfa@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            store.consume_recovery_code(&id, "rc07", NOW).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one of 20 racing uses wins");
    let left = store
        .credentials(&id)
        .await
        .unwrap()
        .unwrap()
        .recovery_codes;
    assert_eq!(left.len(), 9);
}

pub(crate) async fn secrets_stay_out_of_profile_reads(store: DynStore) {
    let id = user_with_mfa(&store, "conf-mfa@example.com").await;
    let reads = [
        store.user_by_id(&id).await.unwrap(),
        store.user_by_email("conf-mfa@example.com").await.unwrap(),
    ];
    for read in reads {
        let json = serde_json::to_string(&read.unwrap()).unwrap();
        for secret in ["v1:sealed", "rc00", "totp_secret", "recovery_codes"] {
            assert!(!json.contains(secret), "{json}");
        }
    }
}

pub(crate) async fn totp_steps_and_mfa_tokens_claim_once(store: DynStore) {
    let step = |user: &str, n: u64| OnceKey::TotpStep(user.to_string(), n);
    assert!(
        store
            .claim_once(&step("a", 7), NOW + 90, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_once(&step("a", 7), NOW + 90, NOW)
            .await
            .unwrap()
    );
    // Another step, another user: separate claims.
    assert!(
        store
            .claim_once(&step("a", 8), NOW + 90, NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_once(&step("b", 7), NOW + 90, NOW)
            .await
            .unwrap()
    );
    let jti = OnceKey::MfaToken("jti-1".into());
    assert!(store.claim_once(&jti, NOW + 300, NOW).await.unwrap());
    assert!(!store.claim_once(&jti, NOW + 300, NOW + 1).await.unwrap());
}

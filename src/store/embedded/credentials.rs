//! [`CredentialStore`] on redb: the credential fields of the account's
//! value in `users` (see [`super::users::StoredUser`]).

use async_trait::async_trait;
use redb::ReadableDatabase;

use super::users::{StoredUser, USERS};
use super::{EmbeddedStore, get_json, modify, other};
use crate::domain::UserId;
use crate::store::{
    CredentialRecord, CredentialStore, PasskeyAddition, PasskeyRecord, PasskeyRemoval, StoreError,
    StoreResult,
};

#[async_trait]
impl CredentialStore for EmbeddedStore {
    async fn credentials(&self, user_id: &UserId) -> StoreResult<Option<CredentialRecord>> {
        let id = user_id.to_string();
        self.read_now(move |db| {
            let txn = db.begin_read().map_err(other)?;
            get_json(&txn.open_table(USERS).map_err(other)?, &id)
        })
    }

    async fn set_password_hash(&self, user_id: &UserId, hash: &str, now: i64) -> StoreResult<bool> {
        let id = user_id.to_string();
        let hash = hash.to_string();
        self.write(move |db| {
            // The whole stored value, so the profile is written back.
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                stored.credentials.password_hash = hash;
                stored.credentials.legacy_bcrypt = false;
                stored.user.updated_at = now;
                (Some(stored), ())
            })?;
            Ok(done.is_some())
        })
        .await
    }

    async fn claim_account(&self, user_id: &UserId, hash: &str, now: i64) -> StoreResult<bool> {
        let hash = hash.to_string();
        self.update_user(user_id, move |stored| {
            stored.credentials = CredentialRecord {
                password_hash: hash,
                ..CredentialRecord::default()
            };
            stored.user.mfa_enabled = false;
            stored.user.email_verified = true;
            sync_passkey_count(stored, now);
            true
        })
        .await
    }

    async fn set_pending_totp(&self, user_id: &UserId, sealed: &str) -> StoreResult<bool> {
        let sealed = sealed.to_string();
        self.update_user(user_id, move |stored| {
            stored.credentials.totp_pending = Some(sealed);
            true
        })
        .await
    }

    async fn activate_totp(
        &self,
        user_id: &UserId,
        sealed: &str,
        recovery_codes: &[String],
        now: i64,
    ) -> StoreResult<bool> {
        let sealed = sealed.to_string();
        let codes = recovery_codes.to_vec();
        self.update_user(user_id, move |stored| {
            if stored.credentials.totp_pending.as_deref() != Some(sealed.as_str()) {
                return false;
            }
            stored.credentials.totp_pending = None;
            stored.credentials.totp_secret = Some(sealed);
            stored.credentials.recovery_codes = codes;
            stored.user.mfa_enabled = true;
            stored.user.updated_at = now;
            true
        })
        .await
    }

    async fn disable_totp(&self, user_id: &UserId, now: i64) -> StoreResult<bool> {
        self.update_user(user_id, move |stored| {
            stored.credentials.totp_secret = None;
            stored.credentials.totp_pending = None;
            stored.credentials.recovery_codes.clear();
            stored.user.mfa_enabled = false;
            stored.user.updated_at = now;
            true
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &UserId,
        recovery_codes: &[String],
        now: i64,
    ) -> StoreResult<bool> {
        let codes = recovery_codes.to_vec();
        self.update_user(user_id, move |stored| {
            if stored.credentials.totp_secret.is_none() {
                return false;
            }
            stored.credentials.recovery_codes = codes;
            stored.user.updated_at = now;
            true
        })
        .await
    }

    async fn consume_recovery_code(
        &self,
        user_id: &UserId,
        hash: &str,
        _now: i64,
    ) -> StoreResult<bool> {
        // Check and remove in one write transaction: redb admits one writer
        // at a time, so of two racing uses only the first finds the code.
        let hash = hash.to_string();
        self.update_user(user_id, move |stored| {
            let before = stored.credentials.recovery_codes.len();
            stored.credentials.recovery_codes.retain(|h| *h != hash);
            stored.credentials.recovery_codes.len() < before
        })
        .await
    }

    // Passkeys.
    async fn add_passkey(
        &self,
        user_id: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
        now: i64,
    ) -> StoreResult<PasskeyAddition> {
        let id = user_id.to_string();
        let passkey = passkey.clone();
        self.write(move |db| {
            // Count and insert in one write transaction: racing adds are
            // serialized by redb's single writer, so the cap holds.
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                if stored.credentials.passkeys.contains_key(&passkey.id) {
                    return (None, Err(StoreError::Conflict));
                }
                if stored.credentials.passkeys.len() >= max as usize {
                    return (None, Ok(PasskeyAddition::Full));
                }
                stored
                    .credentials
                    .passkeys
                    .insert(passkey.id.clone(), passkey);
                sync_passkey_count(&mut stored, now);
                (Some(stored), Ok(PasskeyAddition::Added))
            })?;
            done.unwrap_or(Ok(PasskeyAddition::NoUser))
        })
        .await
    }

    async fn update_passkey(&self, user_id: &UserId, passkey: &PasskeyRecord) -> StoreResult<bool> {
        let id = user_id.to_string();
        let passkey = passkey.clone();
        self.write(move |db| {
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                match stored.credentials.passkeys.get_mut(&passkey.id) {
                    Some(slot) => {
                        *slot = passkey;
                        (Some(stored), true)
                    }
                    None => (None, false),
                }
            })?;
            Ok(done.unwrap_or(false))
        })
        .await
    }

    async fn remove_passkey(
        &self,
        user_id: &UserId,
        passkey_id: &str,
        now: i64,
    ) -> StoreResult<PasskeyRemoval> {
        let id = user_id.to_string();
        let passkey_id = passkey_id.to_string();
        self.write(move |db| {
            // A linked identity is a way in too (federated sign-in). Read
            // on the writer thread, so no write comes between it and the
            // removal below.
            let has_identity = super::identities::has_identities(db, &id)?;
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                let creds = &stored.credentials;
                if !creds.passkeys.contains_key(&passkey_id) {
                    return (None, PasskeyRemoval::NotFound);
                }
                if !creds.has_password() && !has_identity && creds.passkeys.len() <= 1 {
                    return (None, PasskeyRemoval::LastCredential);
                }
                stored.credentials.passkeys.remove(&passkey_id);
                sync_passkey_count(&mut stored, now);
                (Some(stored), PasskeyRemoval::Removed)
            })?;
            Ok(done.unwrap_or(PasskeyRemoval::NotFound))
        })
        .await
    }
}

impl EmbeddedStore {
    /// Read-modify-write of an account's stored value in one write
    /// transaction; `f` changes it and says whether to write it back (and
    /// the answer). False when there is no such user.
    async fn update_user(
        &self,
        user_id: &UserId,
        f: impl FnOnce(&mut StoredUser) -> bool + Send + 'static,
    ) -> StoreResult<bool> {
        let id = user_id.to_string();
        self.write(move |db| {
            let done = modify(db, USERS, &id, |mut stored: StoredUser| {
                if f(&mut stored) {
                    (Some(stored), true)
                } else {
                    (None, false)
                }
            })?;
            Ok(done.unwrap_or(false))
        })
        .await
    }
}

/// The profile's count follows the credentials (one value, one write).
fn sync_passkey_count(stored: &mut StoredUser, now: i64) {
    stored.user.passkey_count =
        u32::try_from(stored.credentials.passkeys.len()).unwrap_or(u32::MAX);
    stored.user.updated_at = now;
}

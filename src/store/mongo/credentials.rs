//! [`CredentialStore`] on MongoDB: the credential fields of the account's
//! document in `users` (see `users.rs`).
//!
//! Using up a recovery code must not race, and FerretDB v1 runs a
//! conditional update (`$pull` with the code in the filter) as a query and
//! then a replace, so two racers could both see the code. The race is
//! decided like refresh rotation: by inserting `rc:<user>:<hash>` into
//! `revocations` under its unique `_id`, atomic on both servers. The winner
//! then pulls the code from the set. Should it crash in between, the code
//! stays in the set, unusable until the claim expires an hour later.
//!
//! Adding a passkey must respect `PORTCULLIS_MAX_PASSKEYS` under racing adds
//!, and the filtered update alone does not on FerretDB v1 (racers
//! pass the filter together, and one replace can even overwrite another's
//! passkey). So an add holds a short lock first: the unique `_id`
//! `pkadd:<user>` in `revocations` (inserted, atomic on both servers;
//! deleted when done; one left by a crash expires after
//! [`ADD_LOCK_SECS`]). Holding it, the add counts and writes; the filter
//! stays, for real MongoDB and for writers that do not take the lock.

use async_trait::async_trait;
use mongodb::bson::{self, Bson, Document, doc};

use super::{EXPIRES_AT_DATE, MongoStore, RevocationId, date_of, from_doc};
use crate::domain::UserId;
use crate::store::{
    CredentialRecord, CredentialStore, PasskeyAddition, PasskeyRecord, PasskeyRemoval, StoreError,
    StoreResult,
};

/// How long the claim of a recovery code being used up is kept.
const RECOVERY_CLAIM_SECS: i64 = 3600;
/// How long a passkey add's lock lives if its holder dies.
const ADD_LOCK_SECS: i64 = 30;
/// How long an add waits for another add of the same account.
const ADD_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The fields of [`CredentialRecord`] in a user document: left out of
/// profile reads, the only ones credential reads fetch. A test checks the
/// list against the record.
pub(super) const CREDENTIAL_FIELDS: &[&str] = &[
    "password_hash",
    "legacy_bcrypt",
    "totp_secret",
    "totp_pending",
    "recovery_codes",
    // Passkeys.
    "passkeys",
];

/// The dotted path of one passkey in the `passkeys` map; `None` for an id
/// that could step out of it (passkey ids are UUIDs: no `.` or `$`).
fn passkey_path(passkey_id: &str) -> Option<String> {
    let safe = !passkey_id.is_empty()
        && passkey_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    safe.then(|| format!("passkeys.{passkey_id}"))
}

/// Projection of a credential read: the credential fields only.
fn credential_projection() -> Document {
    CREDENTIAL_FIELDS
        .iter()
        .map(|f| (f.to_string(), 1.into()))
        .collect()
}

#[async_trait]
impl CredentialStore for MongoStore {
    async fn credentials(&self, user_id: &UserId) -> StoreResult<Option<CredentialRecord>> {
        self.run(
            self.users
                .find_one(doc! { "_id": user_id })
                .projection(credential_projection()),
        )
        .await?
        .map(from_doc)
        .transpose()
    }

    async fn set_password_hash(&self, user_id: &UserId, hash: &str, now: i64) -> StoreResult<bool> {
        // `$set`/`$unset` of these fields only: the profile stays. A
        // peppered hash is never legacy.
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id },
                doc! {
                    "$set": { "password_hash": hash, "updated_at": now },
                    "$unset": { "legacy_bcrypt": "" },
                },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn claim_account(&self, user_id: &UserId, hash: &str, now: i64) -> StoreResult<bool> {
        // One `update_one`: the credentials go in the same write as the
        // new password, so no moment exists where the new owner's password
        // works next to the squatter's passkey or second factor.
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id },
                doc! {
                    "$set": {
                        "password_hash": hash,
                        "email_verified": true,
                        "mfa_enabled": false,
                        "passkey_count": 0,
                        "updated_at": now,
                    },
                    "$unset": {
                        "legacy_bcrypt": "",
                        "totp_secret": "",
                        "totp_pending": "",
                        "recovery_codes": "",
                        "passkeys": "",
                    },
                },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn set_pending_totp(&self, user_id: &UserId, sealed: &str) -> StoreResult<bool> {
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id },
                doc! { "$set": { "totp_pending": sealed } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn activate_totp(
        &self,
        user_id: &UserId,
        sealed: &str,
        recovery_codes: &[String],
        now: i64,
    ) -> StoreResult<bool> {
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id, "totp_pending": sealed },
                doc! { "$set": {
                    "totp_secret": sealed,
                    "totp_pending": Bson::Null,
                    "recovery_codes": recovery_codes,
                    "mfa_enabled": true,
                    "updated_at": now,
                } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn disable_totp(&self, user_id: &UserId, now: i64) -> StoreResult<bool> {
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id },
                doc! { "$set": {
                    "totp_secret": Bson::Null,
                    "totp_pending": Bson::Null,
                    "recovery_codes": Bson::Array(Vec::new()),
                    "mfa_enabled": false,
                    "updated_at": now,
                } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &UserId,
        recovery_codes: &[String],
        now: i64,
    ) -> StoreResult<bool> {
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id, "mfa_enabled": true },
                doc! { "$set": { "recovery_codes": recovery_codes, "updated_at": now } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn consume_recovery_code(
        &self,
        user_id: &UserId,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        // Unknown codes end here, without leaving a claim behind.
        let unused = doc! { "_id": user_id, "recovery_codes": hash };
        if self
            .run(
                self.users
                    .find_one(unused.clone())
                    .projection(doc! { "_id": 1 }),
            )
            .await?
            .is_none()
        {
            return Ok(false);
        }
        let expires_at = now.saturating_add(RECOVERY_CLAIM_SECS);
        let claim = doc! {
            "_id": RevocationId::RecoveryCode(user_id, hash).id(),
            "expires_at": expires_at,
            EXPIRES_AT_DATE: date_of(expires_at),
        };
        match self.insert(&self.revocations, claim).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(false),
            Err(e) => return Err(e),
        }
        let r = self
            .run(
                self.users
                    .update_one(unused, doc! { "$pull": { "recovery_codes": hash } }),
            )
            .await?;
        // Zero when the set was replaced meanwhile: the code died with it.
        Ok(r.matched_count > 0)
    }
    // Passkeys. Each write is one `update_one` on the account's
    // document, guarded by its filter; `passkey_count` moves with it.
    async fn add_passkey(
        &self,
        user_id: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
        now: i64,
    ) -> StoreResult<PasskeyAddition> {
        let lock = self.lock_passkey_adds(user_id, now).await?;
        let added = self.add_passkey_locked(user_id, passkey, max, now).await;
        // Best effort: a lock not deleted expires.
        if let Err(e) = self
            .run(
                self.revocations.delete_one(
                    doc! { "_id": RevocationId::PasskeyAdd(user_id).id(), "nonce": &lock },
                ),
            )
            .await
        {
            tracing::warn!(error = %e, "could not release a passkey-add lock");
        }
        added
    }

    async fn update_passkey(&self, user_id: &UserId, passkey: &PasskeyRecord) -> StoreResult<bool> {
        let Some(path) = passkey_path(&passkey.id) else {
            return Ok(false);
        };
        let record = bson::to_bson(passkey)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding a passkey")))?;
        let r = self
            .run(self.users.update_one(
                doc! { "_id": user_id, &path: { "$exists": true } },
                doc! { "$set": { &path: record } },
            ))
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn remove_passkey(
        &self,
        user_id: &UserId,
        passkey_id: &str,
        now: i64,
    ) -> StoreResult<PasskeyRemoval> {
        let Some(path) = passkey_path(passkey_id) else {
            return Ok(PasskeyRemoval::NotFound);
        };
        // Removable when the account keeps a way in: a password (a
        // non-empty string), another passkey, or a linked identity.
        let has_identity = self
            .run(
                self.identities
                    .count_documents(doc! { "user_id": user_id })
                    .limit(1),
            )
            .await?
            > 0;
        let mut filter = doc! { "_id": user_id, &path: { "$exists": true } };
        if !has_identity {
            filter.insert(
                "$or",
                vec![
                    doc! { "password_hash": { "$gt": "" } },
                    doc! { "passkey_count": { "$gt": 1 } },
                ],
            );
        }
        let r = self
            .run(self.users.update_one(
                filter,
                doc! {
                    "$unset": { &path: "" },
                    "$inc": { "passkey_count": -1 },
                    "$set": { "updated_at": now },
                },
            ))
            .await?;
        if r.matched_count > 0 {
            return Ok(PasskeyRemoval::Removed);
        }
        let held = self
            .credentials(user_id)
            .await?
            .is_some_and(|c| c.passkeys.contains_key(passkey_id));
        Ok(if held {
            PasskeyRemoval::LastCredential
        } else {
            PasskeyRemoval::NotFound
        })
    }
}

impl MongoStore {
    /// Takes the passkey-add lock of `user_id` (see the module docs);
    /// returns its nonce. Waits for another add of the same account, at
    /// most [`ADD_LOCK_WAIT`].
    async fn lock_passkey_adds(&self, user_id: &UserId, now: i64) -> StoreResult<String> {
        let id = RevocationId::PasskeyAdd(user_id).id();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now.saturating_add(ADD_LOCK_SECS);
        let started = std::time::Instant::now();
        loop {
            // A lock left by a holder that died.
            self.run(
                self.revocations
                    .delete_one(doc! { "_id": &id, "expires_at": { "$lte": now } }),
            )
            .await?;
            let lock = doc! {
                "_id": &id,
                "kind": "passkey_add",
                "nonce": &nonce,
                "expires_at": expires_at,
                EXPIRES_AT_DATE: date_of(expires_at),
            };
            match self.insert(&self.revocations, lock).await {
                Ok(()) => return Ok(nonce),
                Err(StoreError::Conflict) if started.elapsed() < ADD_LOCK_WAIT => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(StoreError::Conflict) => {
                    return Err(StoreError::Unavailable(
                        "another passkey is being added to this account".into(),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The add itself, under the lock.
    async fn add_passkey_locked(
        &self,
        user_id: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
        now: i64,
    ) -> StoreResult<PasskeyAddition> {
        let Some(path) = passkey_path(&passkey.id) else {
            return Err(StoreError::Other(anyhow::anyhow!("invalid passkey id")));
        };
        let record = bson::to_bson(passkey)
            .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("encoding a passkey")))?;
        // The cap is part of the filter (a record without a count has none).
        let room = doc! { "$or": [
            { "passkey_count": { "$lt": i64::from(max) } },
            { "passkey_count": { "$exists": false } },
        ] };
        let mut filter = doc! { "_id": user_id, &path: { "$exists": false } };
        filter.extend(room);
        let r = self
            .run(self.users.update_one(
                filter,
                doc! {
                    "$set": { &path: record, "updated_at": now },
                    "$inc": { "passkey_count": 1 },
                },
            ))
            .await?;
        if r.matched_count > 0 {
            return Ok(PasskeyAddition::Added);
        }
        // No match: no such user, the id is taken, or the account is full.
        let found = self
            .run(
                self.users
                    .find_one(doc! { "_id": user_id })
                    .projection(doc! { "passkey_count": 1, &path: 1 }),
            )
            .await?;
        let Some(found) = found else {
            return Ok(PasskeyAddition::NoUser);
        };
        if found
            .get_document("passkeys")
            .is_ok_and(|p| p.contains_key(&passkey.id))
        {
            return Err(StoreError::Conflict);
        }
        Ok(PasskeyAddition::Full)
    }
}

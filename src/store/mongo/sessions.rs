//! [`SessionStore`] on MongoDB: the `sessions` collection (`_id` the sid),
//! and the retired-token records in `revocations` that decide rotation
//! races (see the module docs of `mongo`).

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;

use super::{EXPIRES_AT_DATE, MongoStore, RevocationId, date_of, from_doc, to_doc};
use crate::store::{
    RotateOutcome, Rotation, SessionRecord, SessionStore, StoreError, StoreResult,
    classify_rotation,
};

/// The active-session condition of [`SessionRecord::is_active`] as a filter.
fn active(now: i64) -> Document {
    doc! { "revoked_at": Bson::Null, "expires_at": { "$gt": now } }
}

/// A retired refresh token, in `revocations` under [`RevocationId::RetiredToken`]: the
/// record of the one rotation that retired it, and what that rotation
/// changes in the family. Inserting it is the rotation's compare-and-swap
/// (see [`SessionStore::rotate`] below).
///
/// It is kept [`RETIRED_KEEP_SECS`] (plus the grace window) after the
/// rotation, not for the family's life (one record per refresh for 30 days
/// grew `revocations` without bound under a refresh load): once the swap
/// is applied, the family itself says the token is retired (it is neither
/// current nor, after the grace window, previous: a reuse), and a record
/// whose swap never happened (a crash) merely lets the token rotate afresh
/// once it is purged.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RetiredToken {
    sid: String,
    next_jti: String,
    /// The family's generation after the rotation.
    generation: i64,
    rotated_at: i64,
    /// The family's expiry after the rotation.
    expires_at: i64,
    /// When the record may be purged.
    keep_until: i64,
}

/// How long a retired-token record outlives its rotation (beyond the grace
/// window): far longer than any racing attempt takes.
pub(super) const RETIRED_KEEP_SECS: i64 = 3600;

impl RetiredToken {
    pub(super) fn new(r: &Rotation<'_>, next: &SessionRecord) -> Self {
        Self {
            sid: r.sid.to_string(),
            next_jti: next.current_jti.clone(),
            generation: i64::try_from(next.generation).unwrap_or(i64::MAX),
            rotated_at: next.rotated_at,
            expires_at: next.expires_at,
            keep_until: next
                .expires_at
                .min(next.rotated_at + RETIRED_KEEP_SECS + r.grace_secs.max(0)),
        }
    }

    pub(super) fn to_doc(&self, jti: &str) -> Document {
        doc! {
            "_id": RevocationId::RetiredToken(jti).id(),
            "kind": "refresh_rotated",
            "sid": &self.sid,
            "next_jti": &self.next_jti,
            "generation": self.generation,
            "rotated_at": self.rotated_at,
            // `expires_at` is what the purge (and the TTL index) go by.
            "expires_at": self.keep_until,
            EXPIRES_AT_DATE: date_of(self.keep_until),
            "family_expires_at": self.expires_at,
        }
    }

    fn from_doc(d: Document) -> Option<Self> {
        Some(Self {
            sid: d.get_str("sid").ok()?.to_string(),
            next_jti: d.get_str("next_jti").ok()?.to_string(),
            generation: d.get_i64("generation").ok()?,
            rotated_at: d.get_i64("rotated_at").ok()?,
            // Records of earlier releases kept the family's expiry here.
            expires_at: d
                .get_i64("family_expires_at")
                .or_else(|_| d.get_i64("expires_at"))
                .ok()?,
            keep_until: d.get_i64("expires_at").ok()?,
        })
    }
}

impl MongoStore {
    pub(super) async fn find_session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        self.find_record(&self.sessions, doc! { "_id": sid }).await
    }

    /// Applies a retirement to the family: the conditional swap of the
    /// current token. Idempotent: it matches only while `presented` is still
    /// current at the generation before the retirement's.
    async fn apply_retirement(
        &self,
        presented: &str,
        t: &RetiredToken,
        now: i64,
    ) -> StoreResult<Option<SessionRecord>> {
        let mut filter = doc! {
            "_id": &t.sid,
            "current_jti": presented,
            "generation": t.generation - 1,
        };
        filter.extend(active(now));
        let update = doc! {
            "$set": {
                "previous_jti": presented,
                "current_jti": &t.next_jti,
                "rotated_at": t.rotated_at,
                "generation": t.generation,
                "last_used_at": t.rotated_at,
                "expires_at": t.expires_at,
                EXPIRES_AT_DATE: date_of(t.expires_at),
            },
        };
        self.run(
            self.sessions
                .find_one_and_update(filter, update)
                .return_document(ReturnDocument::After),
        )
        .await?
        .map(from_doc)
        .transpose()
    }

    /// A rotation whose token another attempt retired a moment ago.
    async fn rotate_retired(&self, r: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let mut current = self.find_session(r.sid).await?;
        if current
            .as_ref()
            .is_some_and(|s| s.current_jti == r.presented_jti)
        {
            // The retiring attempt has not swapped the token yet (or never
            // will: it may have died). Its swap is idempotent; finish it.
            let Some(t) = self
                .run(
                    self.revocations
                        .find_one(doc! { "_id": RevocationId::RetiredToken(r.presented_jti).id() }),
                )
                .await?
                .and_then(RetiredToken::from_doc)
            else {
                return Ok(RotateOutcome::Invalid);
            };
            if t.sid != r.sid {
                return Ok(RotateOutcome::Invalid);
            }
            self.apply_retirement(r.presented_jti, &t, r.now).await?;
            current = self.find_session(r.sid).await?;
        }
        let Some(current) = current else {
            return Ok(RotateOutcome::Invalid);
        };
        match classify_rotation(&current, r) {
            RotateOutcome::Reused(_) => self.revoke_reused(r).await,
            // Still current although retired: the swap could not apply
            // (family no longer active is `Invalid`, not this).
            RotateOutcome::Rotated(_) => Err(StoreError::Other(anyhow::anyhow!(
                "refresh rotation of a session did not converge"
            ))),
            outcome @ (RotateOutcome::Grace(_) | RotateOutcome::Invalid) => Ok(outcome),
        }
    }

    /// Revokes a family whose retired token came back. If another request
    /// revoked it first, the family was already dead: `Invalid`.
    async fn revoke_reused(&self, r: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let revoked = self
            .run(
                self.sessions
                    .find_one_and_update(
                        doc! { "_id": r.sid, "revoked_at": Bson::Null },
                        doc! { "$set": { "revoked_at": r.now } },
                    )
                    .return_document(ReturnDocument::After),
            )
            .await?;
        match revoked {
            Some(d) => Ok(RotateOutcome::Reused(from_doc(d)?)),
            None => Ok(RotateOutcome::Invalid),
        }
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.insert(&self.sessions, to_doc(session)?).await
    }

    async fn session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        self.find_session(sid).await
    }

    async fn rotate(&self, r: &Rotation<'_>) -> StoreResult<RotateOutcome> {
        let Some(current) = self.find_session(r.sid).await? else {
            return Ok(RotateOutcome::Invalid);
        };
        match classify_rotation(&current, r) {
            RotateOutcome::Rotated(next) => {
                let mine = RetiredToken::new(r, &next);
                match self
                    .insert(&self.revocations, mine.to_doc(r.presented_jti))
                    .await
                {
                    // This attempt retired the token: it alone rotates.
                    Ok(()) => {
                        if let Some(after) =
                            self.apply_retirement(r.presented_jti, &mine, r.now).await?
                        {
                            return Ok(RotateOutcome::Rotated(after));
                        }
                        // Nothing matched: another attempt applied our
                        // retirement for us (FerretDB), or the family died.
                        Ok(match self.find_session(r.sid).await? {
                            Some(s) if s.current_jti == mine.next_jti && s.is_active(r.now) => {
                                RotateOutcome::Rotated(s)
                            }
                            _ => RotateOutcome::Invalid,
                        })
                    }
                    // Another attempt retired it first: this one is late.
                    Err(StoreError::Conflict) => self.rotate_retired(r).await,
                    Err(e) => Err(e),
                }
            }
            RotateOutcome::Reused(_) => self.revoke_reused(r).await,
            outcome @ (RotateOutcome::Grace(_) | RotateOutcome::Invalid) => Ok(outcome),
        }
    }

    async fn sessions_of(&self, user_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
        let mut filter = doc! { "user_id": user_id };
        filter.extend(active(now));
        self.all_of(
            self.sessions
                .find(filter)
                .sort(doc! { "created_at": -1, "_id": -1 }),
        )
        .await
    }

    async fn revoke_session(&self, user_id: &str, sid: &str, now: i64) -> StoreResult<bool> {
        let mut filter = doc! { "_id": sid, "user_id": user_id };
        filter.extend(active(now));
        let r = self
            .run(
                self.sessions
                    .update_one(filter, doc! { "$set": { "revoked_at": now } }),
            )
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn record_proof(&self, user_id: &str, sid: &str, at: i64) -> StoreResult<bool> {
        let mut filter = doc! { "_id": sid, "user_id": user_id };
        filter.extend(active(at));
        let r = self
            .run(
                self.sessions
                    .update_one(filter, doc! { "$set": { "proven_at": at } }),
            )
            .await?;
        Ok(r.matched_count > 0)
    }

    async fn bind_session_key(
        &self,
        user_id: &str,
        sid: &str,
        jkt: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let Some(current) = self.find_session(sid).await? else {
            return Ok(false);
        };
        if current.user_id != user_id || !current.is_active(now) {
            return Ok(false);
        }
        if let Some(bound) = &current.dpop_jkt {
            return Ok(bound == jkt);
        }
        // The compare-and-swap is the insert of a record keyed by the sid
        // (a conditional update alone is not atomic on FerretDB): of racing
        // binds one inserts; the others read its key.
        let claim = doc! {
            "_id": RevocationId::DpopBind(sid).id(),
            "kind": "dpop_bind",
            "jkt": jkt,
            "expires_at": current.expires_at,
            EXPIRES_AT_DATE: date_of(current.expires_at),
        };
        let winner = match self.insert(&self.revocations, claim).await {
            Ok(()) => jkt.to_string(),
            Err(StoreError::Conflict) => {
                let Some(d) = self
                    .run(
                        self.revocations
                            .find_one(doc! { "_id": RevocationId::DpopBind(sid).id() }),
                    )
                    .await?
                else {
                    return Ok(false);
                };
                d.get_str("jkt").unwrap_or_default().to_string()
            }
            Err(e) => return Err(e),
        };
        // Idempotent: whoever reads the winner writes the same value.
        let mut filter = doc! { "_id": sid, "user_id": user_id };
        filter.extend(active(now));
        self.run(
            self.sessions
                .update_one(filter, doc! { "$set": { "dpop_jkt": &winner } }),
        )
        .await?;
        Ok(winner == jkt)
    }

    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
    ) -> StoreResult<u64> {
        let mut filter = doc! { "user_id": user_id };
        filter.extend(active(now));
        if let Some(keep) = keep {
            filter.insert("_id", doc! { "$ne": keep });
        }
        let r = self
            .run(
                self.sessions
                    .update_many(filter, doc! { "$set": { "revoked_at": now } }),
            )
            .await?;
        Ok(r.modified_count)
    }
}

//! Rules shared by the backends, so they cannot disagree: what a refresh
//! attempt means, how failed sign-ins are counted, and the names of
//! single-use keys.

use serde::{Deserialize, Serialize};

use crate::domain::UserId;

use super::records::SessionRecord;

/// What a refresh attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum RotateOutcome {
    /// The presented token was current: the family moved to `new_jti`.
    Rotated(SessionRecord),
    /// The presented token was retired moments ago (within the grace
    /// window): no change; the caller re-issues the current generation.
    Grace(SessionRecord),
    /// The presented token was retired earlier: the family is now revoked.
    Reused(SessionRecord),
    /// Unknown, expired or already revoked family.
    Invalid,
}

/// Parameters of a rotation.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    /// The session (family) id.
    pub sid: &'a str,
    /// `jti` of the refresh token the client presented.
    pub presented_jti: &'a str,
    /// `jti` of the token to issue if the presented one is current.
    pub new_jti: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// The family's expiry after a rotation (sliding).
    pub new_expires_at: i64,
    /// Seconds a retired token is still answered with the current generation.
    pub grace_secs: i64,
}

/// Decides what a refresh attempt means, given the family as stored.
pub fn classify_rotation(session: &SessionRecord, r: &Rotation<'_>) -> RotateOutcome {
    if !session.is_active(r.now) {
        return RotateOutcome::Invalid;
    }
    if session.current_jti == r.presented_jti {
        let mut next = session.clone();
        next.previous_jti = Some(session.current_jti.clone());
        next.current_jti = r.new_jti.to_string();
        next.rotated_at = r.now;
        next.generation += 1;
        next.last_used_at = r.now;
        next.expires_at = r.new_expires_at;
        return RotateOutcome::Rotated(next);
    }
    if session.previous_jti.as_deref() == Some(r.presented_jti)
        && r.grace_secs > 0
        && r.now - session.rotated_at <= r.grace_secs
    {
        return RotateOutcome::Grace(session.clone());
    }
    let mut revoked = session.clone();
    revoked.revoked_at = Some(r.now);
    RotateOutcome::Reused(revoked)
}

/// How long a reserved place of a check in flight holds when nobody
/// settles or releases it (a crashed replica, a dropped request): far
/// longer than any check takes, far shorter than the failure window.
pub const RESERVATION_TTL: i64 = 60;

/// Failed sign-ins of one account, as stored (a record like those of
/// [`records`](super::records): new fields need `#[serde(default)]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoginFailures {
    /// Unix seconds of each failure, oldest first (at most
    /// [`LoginFailures::MAX_KEPT`]).
    pub times: Vec<i64>,
    /// When the record may be deleted.
    pub expires_at: i64,
    /// Places reserved by checks still in flight (not failures: a check
    /// that succeeds gives its place back, one that fails turns it into a
    /// failure). Left out when empty, so records without any are stored as
    /// before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingAttempt>,
}

/// A place reserved by a check in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAttempt {
    /// The reservation's id.
    pub id: String,
    /// When the place frees by itself ([`RESERVATION_TTL`] after it was taken).
    pub until: i64,
}

impl LoginFailures {
    /// Only the count near the limit matters; older entries are dropped.
    pub const MAX_KEPT: usize = 100;

    /// Failures within `(now - window, now]`, oldest first.
    pub fn within(&self, now: i64, window: i64) -> Vec<i64> {
        self.times
            .iter()
            .copied()
            .filter(|t| *t > now - window && *t <= now)
            .collect()
    }

    /// Adds a failure at `now`, forgets those out of the window, keeps at
    /// most [`Self::MAX_KEPT`], and moves the expiry to `now + window`.
    pub fn push(&mut self, now: i64, window: i64) {
        self.times.retain(|t| *t > now - window);
        self.times.push(now);
        let excess = self.times.len().saturating_sub(Self::MAX_KEPT);
        self.times.drain(..excess);
        self.expires_at = self.expires_at.max(now + window);
    }

    /// Places in flight at `now`.
    pub fn in_flight(&self, now: i64) -> usize {
        self.pending.iter().filter(|p| p.until > now).count()
    }

    /// Reserves a place when failures and places in flight leave room under
    /// `limit`; the reservation's id, or `None`.
    pub fn reserve(&mut self, limit: u32, now: i64, window: i64) -> Option<String> {
        self.pending.retain(|p| p.until > now);
        let taken = self.within(now, window).len() + self.pending.len();
        if taken >= limit as usize {
            return None;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let until = now + RESERVATION_TTL.min(window);
        self.pending.push(PendingAttempt {
            id: id.clone(),
            until,
        });
        self.expires_at = self.expires_at.max(until);
        Some(id)
    }

    /// Takes a reservation out; whether it was there.
    pub fn unreserve(&mut self, id: &str) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.id != id);
        self.pending.len() != before
    }

    /// Whether nothing is left to keep.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty() && self.pending.is_empty()
    }
}

/// A single-use key for [`OnceStore::claim_once`](super::OnceStore::claim_once):
/// the one place that names every kind. Each kind has its own namespace in
/// the stored key, so two kinds can never claim each other's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnceKey {
    /// A solved CAPTCHA challenge (its hex), so a solution works once.
    Captcha(String),
    /// The `jti` of a "not me" link of a new-sign-in notice.
    NotMe(String),
    /// A TOTP time step of a user (user id, step number): a code is
    /// accepted once (RFC 6238 §5.2), on every replica.
    TotpStep(String, u64),
    /// The `jti` of an `mfa+jwt` token, so the second-factor step of a
    /// sign-in completes once.
    MfaToken(String),
    /// A spent password-reset ticket (its id): the link and the code of
    /// one mail are one credential.
    Reset(String),
    /// A spent email-verification ticket (its id).
    Verify(String),
    /// One of the few tries at a ticket's email code (ticket id, try
    /// number): a code dies when its tries are used up.
    CodeTry(String, u32),
    /// One send attempt of a queued mail (mail id, attempt number): the
    /// lease that keeps two replicas from sending it at once.
    MailLease(String, u32),
    /// A WebAuthn ceremony (its `challenge_id`), so it is finished once.
    Ceremony(String),
    /// An upstream ID token (its SHA-256 hex), so it is accepted once.
    IdToken(String),
    /// A DPoP proof (SHA-256 hex of its key's thumbprint and its `jti`):
    /// a proof is accepted once, on every replica, for its lifetime.
    DpopProof(String),
}

impl OnceKey {
    /// The key as stored (`captcha:<challenge hex>`). Fixed: claims stored
    /// by earlier releases must keep matching.
    pub fn stored_key(&self) -> String {
        match self {
            Self::Captcha(challenge) => format!("captcha:{challenge}"),
            Self::NotMe(jti) => format!("notme:{jti}"),
            Self::TotpStep(user_id, step) => format!("totp:{user_id}:{step}"),
            Self::MfaToken(jti) => format!("mfa:{jti}"),
            Self::Reset(jti) => format!("reset:{jti}"),
            Self::Verify(jti) => format!("verify:{jti}"),
            Self::CodeTry(jti, n) => format!("code:{jti}:{n}"),
            Self::MailLease(id, n) => format!("mail:{id}:{n}"),
            Self::Ceremony(id) => format!("ceremony:{id}"),
            Self::IdToken(hash) => format!("idtoken:{hash}"),
            Self::DpopProof(id) => format!("dpop:{id}"),
        }
    }
}

/// The [`ThrottleStore`](super::ThrottleStore) account key under which
/// wrong second-factor codes of a user are counted.
///
/// Sign-in failures are counted under the normalized email, or, for input
/// that is no email, under the input trimmed and lower-cased: an attacker
/// chooses that string. The `MFA:` prefix is upper case, which neither a
/// normalized email nor a lower-cased string can contain, so no sign-in
/// attempt can add to (or clear) the second-factor count of a user.
pub fn mfa_throttle_key(user_id: &UserId) -> String {
    format!("MFA:{user_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_keys_are_stored_as_before() {
        assert_eq!(OnceKey::Captcha("00ff".into()).stored_key(), "captcha:00ff");
        assert_eq!(OnceKey::NotMe("j1".into()).stored_key(), "notme:j1");
        assert_eq!(
            OnceKey::TotpStep("u1".into(), 42).stored_key(),
            "totp:u1:42"
        );
        assert_eq!(OnceKey::MfaToken("j".into()).stored_key(), "mfa:j");
        assert_eq!(OnceKey::Reset("j".into()).stored_key(), "reset:j");
        assert_eq!(OnceKey::Verify("j".into()).stored_key(), "verify:j");
        assert_eq!(OnceKey::CodeTry("j".into(), 3).stored_key(), "code:j:3");
        assert_eq!(OnceKey::MailLease("m".into(), 1).stored_key(), "mail:m:1");
        assert_eq!(OnceKey::Ceremony("c1".into()).stored_key(), "ceremony:c1");
        assert_eq!(OnceKey::IdToken("ab".into()).stored_key(), "idtoken:ab");
    }

    #[test]
    fn no_sign_in_input_reaches_the_mfa_throttle_key() {
        let key = mfa_throttle_key(&"0190-abc".into());
        // What `login` counts failures under for any input: lower case.
        for input in [key.as_str(), "mfa:0190-abc", " MFA:0190-abc "] {
            assert_ne!(input.trim().to_lowercase(), key);
        }
    }
}

//! Sender-constrained tokens (DPoP, RFC 9449): the request's proof, the
//! binding of a session to the proof's key, and the check that a bound
//! access token comes with a proof by that key.
//!
//! The HTTP layer (`api::dpop`) checks the `DPoP` header of every request
//! that has one, and of every token-issuing request in `required` mode,
//! through [`Core::check_dpop_request`] *before* the handler runs: a sign-in
//! whose proof lacks the server nonce is refused before its password, code
//! or passkey is spent, so the client's retry with the nonce still works.
//! What it found is then in scope for the rest of the request (a task-local
//! [`RequestDpop`], like the problem base URL of `api::problem`), where:
//!
//! - [`Core::request_dpop_jkt`] is the one binding seam of every
//!   token-issuing use case: `start_session` (sign-in with a password, a
//!   second factor, a passkey, and whatever later starts a session) stores
//!   its answer on the new session, and `issue_pair` puts the session's key
//!   into the access token (`cnf.jkt`) and the refresh token. A use case that
//!   issues tokens some other way calls it and passes the thumbprint on.
//! - [`Core::check_sender`] runs on every bearer check
//!   ([`Core::verify_bearer`]), after the verified-token cache: the cache
//!   remembers signatures, never a binding, so the binding is checked on
//!   every request.
//!
//! Refresh of a bound session: the refresh token carries the key (`cnf`),
//! and a request without a proof by it is refused *before* the rotation.
//! So a thief holding only the refresh token gets 401 and the family goes
//! on: refusing it does not count as reuse, since the token is useless
//! without the key. (Reuse detection still ends the family when a retired
//! token comes back *with* a proof by the key: someone has the key and an
//! old token, which is what it is for.)

use std::future::Future;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Core, Error, Result};
use crate::auth::AccessClaims;
use crate::auth::dpop::{Expected, ProofError, check_nonce, check_proof, normalize_htu};
use crate::config::DpopMode;
use crate::domain::UserId;
use crate::store::OnceKey;

tokio::task_local! {
    static REQUEST: Arc<RequestDpop>;
}

/// What the HTTP layer found about DPoP on the current request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestDpop {
    /// Thumbprint of the key of the request's proof, which passed every
    /// check (its `jti` is spent).
    pub jkt: Option<String>,
    /// The access token came as `Authorization: DPoP <token>`.
    pub dpop_scheme: bool,
}

/// Runs `f` (the rest of a request) with `found` in scope.
pub async fn with_request_dpop<F: Future>(found: RequestDpop, f: F) -> F::Output {
    REQUEST.scope(Arc::new(found), f).await
}

fn current() -> Option<Arc<RequestDpop>> {
    REQUEST.try_with(Arc::clone).ok()
}

/// The DPoP parts of a request, as the HTTP layer read them.
#[derive(Debug, Clone, Copy)]
pub struct DpopInput<'a> {
    /// The `DPoP` header values (RFC 9449 §4.3: exactly one is allowed).
    pub proofs: &'a [&'a str],
    /// The request's method.
    pub method: &'a str,
    /// The request's path (no query): the expected `htu` is the public URL
    /// followed by it, never anything from `Host`.
    pub path: &'a str,
    /// The access token, when it came with the `DPoP` scheme (`ath`).
    pub access_token: Option<&'a str>,
    /// The request issues tokens (sign-in, refresh, `/oauth/token`).
    pub issues_tokens: bool,
}

impl Core {
    /// `PORTCULLIS_DPOP=required`.
    pub fn dpop_required(&self) -> bool {
        self.settings.dpop.mode == DpopMode::Required
    }

    /// The current server nonce, when `PORTCULLIS_DPOP_NONCE=true`.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.settings
            .dpop
            .nonce
            .then(|| self.dpop_nonces.issue(self.clock.now_u64()))
    }

    /// Checks the request's DPoP proof (RFC 9449 §4.3, see `auth::dpop`),
    /// the server nonce in nonce mode, and spends its `jti` in the store
    /// shared by every replica; returns the key's thumbprint, or `None`
    /// when there is no proof and none is needed.
    pub async fn check_dpop_request(&self, input: &DpopInput<'_>) -> Result<Option<String>> {
        let proof = match input.proofs {
            [] if input.access_token.is_some() => {
                return Err(Error::DpopProofInvalid(
                    "a DPoP-scheme request needs a DPoP proof header",
                ));
            }
            [] if input.issues_tokens && self.dpop_required() => return Err(Error::DpopRequired),
            [] => return Ok(None),
            [one] => *one,
            _ => return Err(Error::DpopProofInvalid("more than one DPoP header")),
        };
        let public = self.settings.http.public_url.trim_end_matches('/');
        let htu = normalize_htu(&format!("{public}{}", input.path))
            .ok_or(Error::DpopProofInvalid("the request URL cannot be built"))?;
        let now = self.clock.now_u64();
        let max_age = self.settings.dpop.max_age.as_secs();
        let want = Expected {
            htm: input.method,
            htu: &htu,
            access_token: input.access_token,
            now,
            max_age,
        };
        let (checked, nonce) = check_proof(proof, &want).map_err(|e| self.proof_error(e))?;
        if self.settings.dpop.nonce {
            check_nonce(&self.dpop_nonces, nonce.as_deref(), now)
                .map_err(|e| self.proof_error(e))?;
        }
        let id = Sha256::digest(format!("{}:{}", checked.jkt, checked.jti).as_bytes());
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let until = i64::try_from(checked.replay_until(max_age)).unwrap_or(i64::MAX);
        let fresh = self
            .store
            .claim_once(&OnceKey::DpopProof(id), until, self.clock.now())
            .await?;
        if !fresh {
            metrics::counter!("portcullis_dpop_replays_total").increment(1);
            return Err(Error::DpopProofInvalid("the proof was already used"));
        }
        Ok(Some(checked.jkt))
    }

    fn proof_error(&self, e: ProofError) -> Error {
        match e {
            ProofError::Invalid(why) => Error::DpopProofInvalid(why),
            ProofError::NonceRequired => {
                Error::DpopNonceRequired(self.dpop_nonces.issue(self.clock.now_u64()))
            }
        }
    }

    /// The binding seam: the DPoP key (thumbprint) the tokens issued by the
    /// current request are to be bound to, i.e. that of its verified proof;
    /// `None` for bearer tokens. In `required` mode a request without a
    /// proof gets [`Error::DpopRequired`] (the HTTP layer refuses such
    /// requests already; this holds for any route it might not know).
    /// Every use case that issues tokens goes through it (see the module
    /// docs); call it before spending anything.
    pub fn request_dpop_jkt(&self) -> Result<Option<String>> {
        let jkt = current().and_then(|r| r.jkt.clone());
        if jkt.is_none() && self.dpop_required() {
            return Err(Error::DpopRequired);
        }
        Ok(jkt)
    }

    /// The sender check of a bearer route, on every request (after the
    /// verified-token cache): a bound token needs the `DPoP` scheme and a
    /// proof by its key; a bearer token is refused under the `DPoP` scheme.
    pub fn check_sender(&self, claims: &AccessClaims) -> Result<()> {
        let found = current();
        let scheme = found.as_ref().is_some_and(|r| r.dpop_scheme);
        match &claims.cnf {
            Some(cnf) => {
                if !scheme {
                    return Err(Error::DpopBinding(
                        "a DPoP-bound token must be sent as Authorization: DPoP with a proof",
                    ));
                }
                if found.as_ref().and_then(|r| r.jkt.as_deref()) != Some(cnf.jkt.as_str()) {
                    return Err(Error::DpopBinding("the proof is not by the token's key"));
                }
                Ok(())
            }
            None if scheme => Err(Error::DpopBinding(
                "a bearer token must be sent as Authorization: Bearer",
            )),
            None => Ok(()),
        }
    }

    /// Before a refresh: the proof must be by the key the refresh token is
    /// bound to (`cnf`); an unbound session refreshed with a proof becomes
    /// bound to its key from now on. Nothing is rotated or revoked here.
    pub(super) async fn check_refresh_sender(
        &self,
        user_id: &UserId,
        sid: &str,
        bound: Option<&str>,
        proof: Option<&str>,
    ) -> Result<()> {
        match (bound, proof) {
            (Some(b), Some(p)) if b == p => Ok(()),
            (Some(_), Some(_)) => Err(Error::DpopBinding(
                "the proof is not by the key this session is bound to",
            )),
            (Some(_), None) => Err(Error::DpopBinding(
                "this session is DPoP-bound: refresh it with a DPoP proof by its key",
            )),
            (None, Some(p)) => {
                // False when another key won a racing bind or the session
                // is gone: the rotation and the check after it decide.
                self.store
                    .bind_session_key(user_id, sid, p, self.clock.now())
                    .await?;
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;

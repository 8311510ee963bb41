//! A bounded cache of verified access tokens.
//!
//! Verifying an access token's signature is most of the CPU of a bearer
//! route. A client presents the same access token for its whole lifetime,
//! so the claims of a token that verified are kept, keyed by the SHA-256 of
//! the exact token (never a weak hash: a collision would hand one caller
//! another's claims), and a later request with the same token skips the
//! signature check. Everything else a full verification decides is decided
//! again on every hit:
//!
//! - the signing key (`kid`, with its algorithm) must still be in the key
//!   ring the caller verifies with: a token signed by a key that has since
//!   left the ring is verified in full again, and refused. (Today the ring
//!   is loaded at start-up, so retiring a key means a restart, which empties
//!   this cache; the check keeps the cache sound if rings are ever swapped in
//!   process, and a test holds it to that.) The `kid` is the RFC 7638
//!   thumbprint of the public key, so the same `kid` is the same key;
//! - `iss` and `aud` must be those of the verifying [`TokenService`];
//! - `exp` and `nbf` are checked against the caller's `now` (the service
//!   clock) with the same leeway as a full verification. An expired entry is
//!   dropped when met.
//!
//! Only tokens that passed [`TokenService::verify_access`] (which checks the
//! JOSE `typ`, forbidden headers, algorithm, required and numeric claims)
//! enter the cache; refused tokens are never cached. The cache says nothing
//! about the session: revocation is checked on every request by the caller.
//!
//! Bounded: at most [`TokenCache::capacity`] entries. When full, expired
//! entries go first, then arbitrary ones (a `HashMap`'s randomized order)
//! until an eighth of the room is free, so the sweep's cost is spread over
//! many inserts. A small map behind a mutex rather than a cache crate
//! (`moka` is in the dependency tree): its critical sections are a hash
//! look-up, the service runs on few cores, and expiry must follow the
//! service clock (tests use `Clock::manual`), which `moka`'s own timers do
//! not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jsonwebtoken::Algorithm;
use sha2::{Digest, Sha256};

use super::tokens::{AccessClaims, LEEWAY_SECS, TokenError, TokenService};

/// Default bound on cached tokens: a few tens of thousands of live access
/// tokens (an entry is a few hundred bytes).
pub const DEFAULT_CAPACITY: usize = 32_768;

/// One verified token.
struct Entry {
    claims: Arc<AccessClaims>,
    /// The key that verified the signature, and its algorithm.
    kid: Box<str>,
    alg: Algorithm,
}

/// Verified access tokens by SHA-256 of the token (see the module docs).
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    capacity: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

/// Whether `claims` are within their lifetime at `now` (the rule of
/// [`TokenService::verify`]).
fn in_lifetime(claims: &AccessClaims, now: u64) -> Result<(), TokenError> {
    if claims.exp.saturating_add(LEEWAY_SECS) < now {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

impl TokenCache {
    /// An empty cache holding at most `capacity` tokens (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The bound on entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many tokens are cached now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // A panic while holding the lock cannot leave a half-written entry
        // (inserts and removals are single map operations): keep going.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Verifies an access token at `now` with `tokens`, from the cache when
    /// it verified before (see the module docs for what is checked again).
    pub fn verify_access(
        &self,
        tokens: &TokenService,
        token: &str,
        now: u64,
    ) -> Result<Arc<AccessClaims>, TokenError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let hit = {
            let mut entries = self.lock();
            match entries.get(&key) {
                Some(e) if in_lifetime(&e.claims, now).is_err() => {
                    // Expired (or not yet valid: never cached so, but the
                    // full check decides): forget it and check in full.
                    entries.remove(&key);
                    None
                }
                Some(e) => Some((e.claims.clone(), e.kid.clone(), e.alg)),
                None => None,
            }
        };
        if let Some((claims, kid, alg)) = hit {
            let key_still_ours = tokens.ring().by_kid(&kid).is_some_and(|k| k.alg == alg);
            if key_still_ours && claims.iss == tokens.issuer() && claims.aud == tokens.audience() {
                return Ok(claims);
            }
            // Another ring or issuer than the one that filled the entry:
            // the full verification decides (and refuses a retired key).
            self.lock().remove(&key);
        }
        let claims = Arc::new(tokens.verify_access(token, now)?);
        // The header was just checked by the full verification.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        self.insert(
            key,
            Entry {
                claims: claims.clone(),
                kid: kid.into_boxed_str(),
                alg: header.alg,
            },
            now,
        );
        Ok(claims)
    }

    fn insert(&self, key: [u8; 32], entry: Entry, now: u64) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| in_lifetime(&e.claims, now).is_ok());
            let target = self.capacity - self.capacity / 8;
            if entries.len() >= target {
                let excess = entries.len() + 1 - target.max(1);
                let victims: Vec<[u8; 32]> = entries.keys().take(excess).copied().collect();
                for k in victims {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::KeyRing;
    use crate::auth::keys::generate_key_file;
    use crate::config::SigningAlg;

    const NOW: u64 = 1_900_000_000;

    fn service(ring: KeyRing) -> TokenService {
        TokenService::new(
            Arc::new(ring),
            "https://issuer.test".into(),
            "portcullis".into(),
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        )
    }

    /// A token service on a fresh EdDSA key ring (the folder lives as long
    /// as the returned guard) and an empty cache of `capacity`.
    fn setup(capacity: usize) -> (tempfile::TempDir, TokenService, TokenCache) {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = KeyRing::load_or_generate(dir.path(), SigningAlg::EdDsa).unwrap();
        (dir, service(ring), TokenCache::new(capacity))
    }

    fn token(svc: &TokenService, sub: &str, now: u64) -> String {
        svc.issue_access(sub, "sid-1", &["pwd".into()], &[], now, now)
            .unwrap()
    }

    #[test]
    fn a_hit_returns_the_claims_of_the_full_check() {
        let (_dir, svc, cache) = setup(16);
        let t = token(&svc, "u1", NOW);
        let first = cache.verify_access(&svc, &t, NOW).unwrap();
        assert_eq!(cache.len(), 1);
        let second = cache.verify_access(&svc, &t, NOW + 1).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "served from the cache");
        assert_eq!(*second, svc.verify_access(&t, NOW).unwrap());
    }

    #[test]
    fn refused_tokens_are_never_cached_and_a_tampered_token_misses() {
        let (_dir, svc, cache) = setup(16);
        let t = token(&svc, "u1", NOW);
        cache.verify_access(&svc, &t, NOW).unwrap();
        let mut flipped = t.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert!(cache.verify_access(&svc, &flipped, NOW).is_err());
        let refresh = svc
            .issue_refresh("u1", "sid-1", "j", NOW, NOW + 60)
            .unwrap();
        assert_eq!(
            cache.verify_access(&svc, &refresh, NOW).unwrap_err(),
            TokenError::WrongType
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn an_expired_token_is_refused_from_the_cache() {
        let (_dir, svc, cache) = setup(16);
        let t = token(&svc, "u1", NOW);
        cache.verify_access(&svc, &t, NOW).unwrap();
        // Within the leeway after exp: still good, as in a full check.
        cache
            .verify_access(&svc, &t, NOW + 900 + LEEWAY_SECS)
            .unwrap();
        assert_eq!(
            cache
                .verify_access(&svc, &t, NOW + 900 + LEEWAY_SECS + 1)
                .unwrap_err(),
            TokenError::Expired
        );
        assert!(cache.is_empty(), "the expired entry was dropped");
    }

    #[test]
    fn a_token_of_a_retired_key_is_refused_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = KeyRing::load_or_generate(dir.path(), SigningAlg::EdDsa).unwrap();
        let old_path = first.signer().path.clone();
        // Rotation: a newer key signs, the old one still verifies.
        let newer = generate_key_file(dir.path(), SigningAlg::EdDsa).unwrap();
        std::fs::rename(&newer, dir.path().join("signing-9999999999-0.pem")).unwrap();
        let old_svc = service(first);
        let rotated = service(KeyRing::load(dir.path(), SigningAlg::EdDsa).unwrap());
        let cache = TokenCache::new(16);
        let t = token(&old_svc, "u1", NOW);
        cache.verify_access(&rotated, &t, NOW).unwrap();
        cache.verify_access(&rotated, &t, NOW).unwrap();
        // The old key leaves the ring: the cached token must not pass.
        std::fs::remove_file(old_path).unwrap();
        let retired = service(KeyRing::load(dir.path(), SigningAlg::EdDsa).unwrap());
        assert_eq!(
            cache.verify_access(&retired, &t, NOW).unwrap_err(),
            TokenError::UnknownKey
        );
        assert!(cache.is_empty());
        // A token of the key still in the ring keeps working.
        let fresh = token(&retired, "u1", NOW);
        cache.verify_access(&retired, &fresh, NOW).unwrap();
    }

    #[test]
    fn issuer_and_audience_are_checked_on_a_hit() {
        let (dir, svc, cache) = setup(16);
        let t = token(&svc, "u1", NOW);
        cache.verify_access(&svc, &t, NOW).unwrap();
        let other_aud = TokenService::new(
            Arc::new(KeyRing::load(dir.path(), SigningAlg::EdDsa).unwrap()),
            "https://issuer.test".into(),
            "other".into(),
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        );
        assert_eq!(
            cache.verify_access(&other_aud, &t, NOW).unwrap_err(),
            TokenError::WrongAudience
        );
        let other_iss = TokenService::new(
            Arc::new(KeyRing::load(dir.path(), SigningAlg::EdDsa).unwrap()),
            "https://evil.test".into(),
            "portcullis".into(),
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        );
        cache.verify_access(&svc, &t, NOW).unwrap();
        assert_eq!(
            cache.verify_access(&other_iss, &t, NOW).unwrap_err(),
            TokenError::WrongIssuer
        );
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let (_dir, svc, cache) = setup(8);
        for i in 0..40 {
            let t = token(&svc, &format!("u{i}"), NOW);
            cache.verify_access(&svc, &t, NOW).unwrap();
            assert!(cache.len() <= 8);
        }
        // Expired entries make room first.
        let later = NOW + 10_000;
        let t = token(&svc, "late", later);
        cache.verify_access(&svc, &t, later).unwrap();
        assert_eq!(cache.len(), 1);
    }
}

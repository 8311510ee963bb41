//! Proof-of-work CAPTCHA in the classic ALTCHA v1 format.
//!
//! A challenge is `{algorithm: "SHA-256", challenge, maxnumber, salt,
//! signature}` with `challenge = hex(sha256(salt + decimal(number)))` for a
//! secret random `number ≤ maxnumber`, and `signature =
//! hex(hmac_sha256(key, challenge))`. The salt carries its expiry
//! (`<random>?expires=<unix>`), so the server keeps no state per challenge.
//! The client finds `number` by brute force and sends base64 of the JSON
//! `{algorithm, challenge, number, salt, signature}`. Each solution works
//! once: the caller claims the challenge in the store (shared by all
//! replicas) until it expires; see `Portcullis::check_captcha`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::Rng;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::secrets::hmac_sha256;

/// A challenge as served by `GET /v1/captcha`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    /// Always `SHA-256`.
    pub algorithm: String,
    /// `hex(sha256(salt + number))`.
    pub challenge: String,
    /// Largest possible `number`.
    pub maxnumber: u64,
    /// Random salt carrying the expiry (`<hex>?expires=<unix>`).
    pub salt: String,
    /// HMAC of `challenge` under the server's key.
    pub signature: String,
}

/// A client's solution (decoded from the base64 `captcha` field).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Solution {
    /// Always `SHA-256`.
    pub algorithm: String,
    /// The challenge solved.
    pub challenge: String,
    /// The number found.
    pub number: u64,
    /// The challenge's salt.
    pub salt: String,
    /// The challenge's signature.
    pub signature: String,
}

/// Why a solution was refused (client-safe text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CaptchaError {
    /// Not base64 of the solution JSON.
    #[error("the CAPTCHA solution is not valid base64 JSON")]
    Malformed,
    /// Not signed by us, or not solved.
    #[error("the CAPTCHA solution is wrong")]
    Wrong,
    /// Past its expiry.
    #[error("the CAPTCHA challenge has expired")]
    Expired,
}

/// A correct solution: what must now be claimed as used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solved {
    /// The challenge (unique per issued challenge).
    pub challenge: String,
    /// Unix seconds after which the solution is refused anyway.
    pub expires: u64,
}

/// Issues and checks challenges.
pub struct Captcha {
    key: SecretBox<[u8; 32]>,
    max_number: u64,
    ttl_secs: u64,
}

impl std::fmt::Debug for Captcha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captcha")
            .field("max_number", &self.max_number)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(data: &str) -> String {
    hex_encode(&Sha256::digest(data.as_bytes()))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Captcha {
    /// `max_number` sets the work (ALTCHA's default is 1e6; 1e5 takes a
    /// browser a fraction of a second); challenges live `ttl_secs`.
    pub fn new(key: SecretBox<[u8; 32]>, max_number: u64, ttl_secs: u64) -> Self {
        Self {
            key,
            max_number,
            ttl_secs,
        }
    }

    fn sign(&self, challenge: &str) -> String {
        hex_encode(&hmac_sha256(self.key.expose_secret(), challenge.as_bytes()))
    }

    /// A fresh challenge expiring `ttl_secs` after `now`.
    pub fn challenge(&self, now: u64) -> Challenge {
        let mut rng = rand::rng();
        let nonce: [u8; 12] = rng.random();
        let salt = format!("{}?expires={}", hex_encode(&nonce), now + self.ttl_secs);
        let number = rng.random_range(0..=self.max_number);
        let challenge = sha256_hex(&format!("{salt}{number}"));
        Challenge {
            algorithm: "SHA-256".into(),
            signature: self.sign(&challenge),
            challenge,
            maxnumber: self.max_number,
            salt,
        }
    }

    /// Checks a base64 solution: well-formed, signed by us, solved, not
    /// expired. Single use is the caller's to enforce (see [`Solved`]).
    pub fn verify(&self, payload: &str, now: u64) -> Result<Solved, CaptchaError> {
        let bytes = B64
            .decode(payload.trim())
            .map_err(|_| CaptchaError::Malformed)?;
        let s: Solution = serde_json::from_slice(&bytes).map_err(|_| CaptchaError::Malformed)?;
        if s.algorithm != "SHA-256" || s.number > self.max_number {
            return Err(CaptchaError::Wrong);
        }
        let expires = s
            .salt
            .split_once("?expires=")
            .and_then(|(_, v)| v.split('&').next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(CaptchaError::Wrong)?;
        let expected = self.sign(&s.challenge);
        if !bool::from(expected.as_bytes().ct_eq(s.signature.as_bytes())) {
            return Err(CaptchaError::Wrong);
        }
        if sha256_hex(&format!("{}{}", s.salt, s.number)) != s.challenge {
            return Err(CaptchaError::Wrong);
        }
        if expires < now {
            return Err(CaptchaError::Expired);
        }
        Ok(Solved {
            challenge: s.challenge,
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Solves a challenge by brute force, as a client would.
    fn solve(c: &Challenge) -> Option<String> {
        (0..=c.maxnumber)
            .find(|n| sha256_hex(&format!("{}{n}", c.salt)) == c.challenge)
            .map(|number| {
                let s = Solution {
                    algorithm: c.algorithm.clone(),
                    challenge: c.challenge.clone(),
                    number,
                    salt: c.salt.clone(),
                    signature: c.signature.clone(),
                };
                B64.encode(serde_json::to_vec(&s).unwrap_or_default())
            })
    }

    fn captcha() -> Captcha {
        Captcha::new(SecretBox::new(Box::new([3u8; 32])), 2000, 300)
    }

    #[test]
    fn solve_and_verify() {
        let c = captcha();
        let ch = c.challenge(1000);
        assert!(ch.salt.contains("?expires=1300"));
        let sol = solve(&ch).unwrap();
        let solved = c.verify(&sol, 1001).unwrap();
        assert_eq!(solved.challenge, ch.challenge);
        assert_eq!(solved.expires, 1300);
    }

    #[test]
    fn expired_forged_and_garbage_are_refused() {
        let c = captcha();
        let ch = c.challenge(1000);
        let sol = solve(&ch).unwrap();
        assert_eq!(c.verify(&sol, 2000), Err(CaptchaError::Expired));
        // Signed by another key.
        let other = Captcha::new(SecretBox::new(Box::new([4u8; 32])), 2000, 300);
        let forged = solve(&other.challenge(1000)).unwrap();
        assert_eq!(c.verify(&forged, 1001), Err(CaptchaError::Wrong));
        // Extending the expiry breaks the challenge hash.
        let mut s: Solution = serde_json::from_slice(&B64.decode(&sol).unwrap()).unwrap();
        s.salt = s.salt.replace("1300", "9999");
        let tampered = B64.encode(serde_json::to_vec(&s).unwrap());
        assert_eq!(c.verify(&tampered, 1001), Err(CaptchaError::Wrong));
        assert_eq!(c.verify("not base64!", 1001), Err(CaptchaError::Malformed));
        assert_eq!(
            c.verify(&B64.encode("{}"), 1001),
            Err(CaptchaError::Malformed)
        );
    }

    #[test]
    fn matches_the_altcha_v1_formula() {
        // challenge = hex(sha256(salt + number)), signature = hex(hmac(key, challenge))
        let c = captcha();
        let ch = c.challenge(0);
        let n = (0..=ch.maxnumber).find(|n| sha256_hex(&format!("{}{n}", ch.salt)) == ch.challenge);
        assert!(n.is_some());
        assert_eq!(ch.signature, c.sign(&ch.challenge));
        assert_eq!(ch.signature.len(), 64);
    }
}

//! DPoP proofs (RFC 9449): checking one, the JWK thumbprint that binds a
//! token to its key, `ath`, `htu` normalisation and stateless server nonces.
//!
//! What a proof must be (§4.3), checked here in this order, each refusal
//! with its own reason: one compact JWS of at most 8 KiB; a protected
//! header with `typ: dpop+jwt`, `alg` ES256 or EdDSA (nothing symmetric,
//! never `none`), no `crit`, and a `jwk` that is a public key of that
//! algorithm's curve (P-256 / Ed25519) with no private member (`d`, or any
//! RSA/symmetric one); a signature by that very key; claims `jti` (≤ 256
//! characters), `htm` equal to the request's method, `htu` equal to the
//! request's URL once both are normalised (scheme and host lower case, the
//! default port dropped, no query, no fragment; the expected URL is built
//! from `PORTCULLIS_PUBLIC_URL`, never from `Host`), `iat` no older than the
//! configured maximum age and at most [`LEEWAY_SECS`] in the future, and
//! `ath` (base64url SHA-256 of the access token) when an access token comes
//! with the proof. The `jti` is claimed once in the store by the caller
//! (`service::dpop`), because that needs the store shared by every replica.
//!
//! The thumbprint is jsonwebtoken's RFC 7638 implementation (`Jwk::thumbprint`
//! with SHA-256), over the key as the client sent it.
//!
//! Server nonces are stateless: `<slot>.<mac>` where `slot` is the current
//! time divided by [`NONCE_PERIOD_SECS`] and `mac` the first 16 bytes of
//! HMAC-SHA-256 of the slot under a secret under `keys/`
//! (`dpop-nonce-hmac.key`). Every replica sharing the keys folder issues
//! and accepts the same nonces without talking to the others; a nonce is
//! accepted during its own slot and the next one (5 to 10 minutes).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::secrets::hmac_sha256;
use super::tokens::LEEWAY_SECS;

/// JOSE `typ` of a DPoP proof.
pub const DPOP_TYP: &str = "dpop+jwt";
/// Algorithms accepted for proofs (and listed in discovery).
pub const DPOP_ALGS: &[&str] = &["ES256", "EdDSA"];
/// Longest accepted proof.
const MAX_PROOF_LEN: usize = 8192;
/// Longest accepted `jti`.
const MAX_JTI_LEN: usize = 256;
/// How long one server-nonce slot lasts.
pub const NONCE_PERIOD_SECS: u64 = 300;

/// Why a proof was refused. The text is safe to show to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// The proof is refused for this reason (`invalid_dpop_proof`).
    Invalid(&'static str),
    /// The proof lacks a current server nonce (`use_dpop_nonce`).
    NonceRequired,
}

impl ProofError {
    /// Short, client-safe reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid(why) => why,
            Self::NonceRequired => "a current server nonce is required",
        }
    }
}

/// What the request says a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method.
    pub htm: &'a str,
    /// The request's URL, normalised ([`normalize_htu`]).
    pub htu: &'a str,
    /// The access token sent with the proof, if any (then `ath` must match).
    pub access_token: Option<&'a str>,
    /// The service clock, Unix seconds.
    pub now: u64,
    /// `PORTCULLIS_DPOP_MAX_AGE` in seconds.
    pub max_age: u64,
}

/// A proof that passed every check but the `jti` replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// RFC 7638 thumbprint (SHA-256, base64url) of the proof's key.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: u64,
}

impl CheckedProof {
    /// Until when the `jti` must be remembered: past that, `iat` is too old.
    pub fn replay_until(&self, max_age: u64) -> u64 {
        self.iat
            .saturating_add(max_age)
            .saturating_add(LEEWAY_SECS)
            .saturating_add(1)
    }
}

#[derive(Debug, Deserialize)]
struct ProofClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<serde_json::Number>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Members a public JWK never has (EC/OKP `d`, RSA's private parts, `oct`'s `k`).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// `ath`: base64url (no padding) of the SHA-256 of the access token.
pub fn ath_of(access_token: &str) -> String {
    B64URL.encode(Sha256::digest(access_token.as_bytes()))
}

/// Normalises an `htu` (or the expected URL) for comparison: scheme and host
/// lower case, the default port dropped, dot segments resolved, no query
/// and no fragment. `None` for anything but an absolute http(s) URL.
pub fn normalize_htu(raw: &str) -> Option<String> {
    let mut u = url::Url::parse(raw).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return None;
    }
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// The public key of a proof header's `jwk`, checked to be public and of
/// the curve `alg` names; returns the key and its thumbprint.
fn public_key(
    alg: Algorithm,
    jwk: &serde_json::Value,
) -> Result<(DecodingKey, String), ProofError> {
    let obj = jwk
        .as_object()
        .ok_or(ProofError::Invalid("the jwk header is not a JSON object"))?;
    if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
        return Err(ProofError::Invalid("the jwk header holds a private key"));
    }
    let member = |name: &str| obj.get(name).and_then(|v| v.as_str());
    let public = match (alg, member("kty"), member("crv")) {
        (Algorithm::ES256, Some("EC"), Some("P-256")) => serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": member("x").ok_or(ProofError::Invalid("the jwk has no x"))?,
            "y": member("y").ok_or(ProofError::Invalid("the jwk has no y"))?,
        }),
        (Algorithm::EdDSA, Some("OKP"), Some("Ed25519")) => serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": member("x").ok_or(ProofError::Invalid("the jwk has no x"))?,
        }),
        _ => {
            return Err(ProofError::Invalid(
                "the jwk is not a P-256 (ES256) or Ed25519 (EdDSA) public key",
            ));
        }
    };
    let jwk: Jwk = serde_json::from_value(public)
        .map_err(|_| ProofError::Invalid("the jwk header is not a valid key"))?;
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| ProofError::Invalid("the jwk is not a valid key"))?;
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| ProofError::Invalid("the jwk is not a valid key"))?;
    Ok((key, jkt))
}

/// Checks a proof against the request (everything but `jti` replay and the
/// server nonce, which [`check_nonce`] does with the claims returned).
pub fn check_proof(
    proof: &str,
    want: &Expected<'_>,
) -> Result<(CheckedProof, Option<String>), ProofError> {
    use ProofError::Invalid;
    if proof.len() > MAX_PROOF_LEN || proof.split('.').count() != 3 {
        return Err(Invalid("the proof is not a compact JWS"));
    }
    let header_b64 = proof.split('.').next().unwrap_or("");
    let header: serde_json::Value = B64URL
        .decode(header_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(Invalid("the proof header is not base64url JSON"))?;
    let typ = header.get("typ").and_then(|v| v.as_str()).unwrap_or("");
    if !typ.eq_ignore_ascii_case(DPOP_TYP) {
        return Err(Invalid("the proof's typ is not dpop+jwt"));
    }
    if header.get("crit").is_some() {
        return Err(Invalid("the proof has a crit header"));
    }
    let alg = match header.get("alg").and_then(|v| v.as_str()) {
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => return Err(Invalid("the proof's alg is not ES256 or EdDSA")),
    };
    let jwk = header
        .get("jwk")
        .ok_or(Invalid("the proof has no jwk header"))?;
    let (key, jkt) = public_key(alg, jwk)?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                Invalid("the proof's signature does not verify with its jwk")
            }
            _ => Invalid("the proof is malformed"),
        })?
        .claims;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or(Invalid("the proof has no jti"))?;
    if jti.len() > MAX_JTI_LEN {
        return Err(Invalid("the proof's jti is too long"));
    }
    if claims.htm.as_deref() != Some(want.htm) {
        return Err(Invalid("the proof's htm is not the request's method"));
    }
    let htu = claims
        .htu
        .as_deref()
        .and_then(normalize_htu)
        .ok_or(Invalid("the proof's htu is not an http(s) URL"))?;
    if htu != want.htu {
        return Err(Invalid("the proof's htu is not the request's URL"));
    }
    let iat = claims
        .iat
        .as_ref()
        .and_then(|n| {
            n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
        })
        .ok_or(Invalid("the proof has no numeric iat"))?;
    if iat > want.now.saturating_add(LEEWAY_SECS) {
        return Err(Invalid("the proof's iat is in the future"));
    }
    if iat.saturating_add(want.max_age).saturating_add(LEEWAY_SECS) < want.now {
        return Err(Invalid("the proof is too old"));
    }
    match (want.access_token, claims.ath.as_deref()) {
        (Some(token), Some(ath)) if ath == ath_of(token) => {}
        (Some(_), Some(_)) => {
            return Err(Invalid("the proof's ath does not match the access token"));
        }
        (Some(_), None) => return Err(Invalid("the proof has no ath for the access token")),
        (None, _) => {}
    }
    Ok((CheckedProof { jkt, jti, iat }, claims.nonce))
}

/// Stateless server nonces; see the module docs.
pub struct NonceKeys {
    key: SecretBox<[u8; 32]>,
}

impl NonceKeys {
    /// Nonces under `key` (a server secret shared by the replicas).
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self { key }
    }

    fn mac(&self, slot: u64) -> String {
        let mut data = b"portcullis dpop nonce ".to_vec();
        data.extend_from_slice(&slot.to_be_bytes());
        let mac = hmac_sha256(self.key.expose_secret(), &data);
        B64URL.encode(&mac[..16])
    }

    /// The current nonce at `now`.
    pub fn issue(&self, now: u64) -> String {
        let slot = now / NONCE_PERIOD_SECS;
        format!("{slot}.{}", self.mac(slot))
    }

    /// Whether `nonce` is the nonce of the current or the previous slot.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let current = now / NONCE_PERIOD_SECS;
        let Some((slot, mac)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(slot) = slot.parse::<u64>() else {
            return false;
        };
        if slot != current && slot.saturating_add(1) != current {
            return false;
        }
        use subtle::ConstantTimeEq;
        bool::from(self.mac(slot).as_bytes().ct_eq(mac.as_bytes()))
    }
}

/// With nonces on, the proof's `nonce` must be one [`NonceKeys`] accepts.
pub fn check_nonce(keys: &NonceKeys, nonce: Option<&str>, now: u64) -> Result<(), ProofError> {
    match nonce {
        Some(n) if keys.accepts(n, now) => Ok(()),
        _ => Err(ProofError::NonceRequired),
    }
}

/// A client's DPoP key that signs proofs: what the TS client does in the
/// browser, for tests and the benchmark (`portcullis bench dpop-proofs`).
#[doc(hidden)]
pub struct ProofSigner {
    key: SignerKey,
    /// The public JWK (what goes into the `jwk` header).
    pub jwk: serde_json::Value,
}

enum SignerKey {
    Es256(aws_lc_rs::signature::EcdsaKeyPair),
    EdDsa(aws_lc_rs::signature::Ed25519KeyPair),
}

impl ProofSigner {
    /// A fresh P-256 key (ES256).
    pub fn es256() -> anyhow::Result<Self> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("key generation failed"))?;
        let point = pair.public_key().as_ref().to_vec();
        anyhow::ensure!(
            point.len() == 65 && point[0] == 4,
            "unexpected point encoding"
        );
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64URL.encode(&point[1..33]),
            "y": B64URL.encode(&point[33..65]),
        });
        Ok(Self {
            key: SignerKey::Es256(pair),
            jwk,
        })
    }

    /// A new P-256 key as PKCS#8 (to keep in a file: `portcullis bench
    /// dpop-proofs --key`).
    pub fn es256_pkcs8() -> anyhow::Result<Vec<u8>> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let doc = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map_err(|_| anyhow::anyhow!("key generation failed"))?;
        Ok(doc.as_ref().to_vec())
    }

    /// The P-256 key of a PKCS#8 document.
    pub fn es256_from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<Self> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| anyhow::anyhow!("not a P-256 PKCS#8 key"))?;
        let point = pair.public_key().as_ref().to_vec();
        anyhow::ensure!(
            point.len() == 65 && point[0] == 4,
            "unexpected point encoding"
        );
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64URL.encode(&point[1..33]),
            "y": B64URL.encode(&point[33..65]),
        });
        Ok(Self {
            key: SignerKey::Es256(pair),
            jwk,
        })
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn eddsa() -> anyhow::Result<Self> {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair =
            Ed25519KeyPair::generate().map_err(|_| anyhow::anyhow!("key generation failed"))?;
        let jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64URL.encode(pair.public_key().as_ref()),
        });
        Ok(Self {
            key: SignerKey::EdDsa(pair),
            jwk,
        })
    }

    /// The JOSE `alg` of this key.
    pub fn alg(&self) -> &'static str {
        match self.key {
            SignerKey::Es256(_) => "ES256",
            SignerKey::EdDsa(_) => "EdDSA",
        }
    }

    /// RFC 7638 thumbprint of the key.
    pub fn jkt(&self) -> String {
        serde_json::from_value::<Jwk>(self.jwk.clone())
            .ok()
            .and_then(|j| j.thumbprint(ThumbprintHash::SHA256).ok())
            .unwrap_or_default()
    }

    /// Signs any header and claims as given (tests of malformed proofs).
    pub fn sign_raw(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = match &self.key {
            SignerKey::Es256(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            SignerKey::EdDsa(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", B64URL.encode(sig))
    }

    /// The usual header: `typ: dpop+jwt`, this key's `alg` and public `jwk`.
    pub fn header(&self) -> serde_json::Value {
        serde_json::json!({ "typ": DPOP_TYP, "alg": self.alg(), "jwk": self.jwk })
    }

    /// A proof for `htm` `htu` at `iat`, with `ath` of `access_token` and
    /// `nonce` when given, and a fresh `jti`.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        iat: u64,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut claims = serde_json::json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": htm,
            "htu": htu,
            "iat": iat,
        });
        if let Some(t) = access_token {
            claims["ath"] = ath_of(t).into();
        }
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        self.sign_raw(&self.header(), &claims)
    }
}

#[cfg(test)]
mod tests;

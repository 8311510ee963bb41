//! Private keys parsed once, not on every signature.
//!
//! jsonwebtoken's aws-lc provider builds a fresh signer for each token:
//! `Ed25519KeyPair::from_pkcs8` (which derives the public key from the seed:
//! a scalar multiplication as costly as the signature itself),
//! `EcdsaKeyPair::from_pkcs8`, `RsaKeyPair::from_der` (a 2048-bit key's
//! checks cost more than its signature). The provider installed here keeps
//! the parsed key pairs of the keys it has signed with and signs with
//! aws-lc-rs as jsonwebtoken does (same algorithms, same encodings); JWT
//! assembly, every other algorithm and all verification stay jsonwebtoken's.

use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, aws_lc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::signature::{Error as SigError, Signer};
use jsonwebtoken::{Algorithm, EncodingKey};

/// How many parsed keys are kept: a ring holds a handful (the active key,
/// the previous ones until they retire, an ID-token key); past this the
/// oldest is dropped and parsed again when next used.
const KEEP: usize = 16;

/// A parsed private key.
enum Parsed {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// Parsed keys by their PKCS#8/DER bytes, most recently added last.
type Cache = Vec<(Algorithm, Vec<u8>, Arc<Parsed>)>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

fn parse(alg: Algorithm, der: &[u8]) -> Result<Parsed, ErrorKind> {
    match alg {
        Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(der)
            .map(Parsed::Ed25519)
            .map_err(|_| ErrorKind::InvalidEddsaKey),
        Algorithm::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map(Parsed::P256)
            .map_err(|_| ErrorKind::InvalidEcdsaKey),
        _ => RsaKeyPair::from_der(der)
            .map(Parsed::Rsa)
            .map_err(|_| ErrorKind::InvalidRsaKey(String::from("not an RSA private key"))),
    }
}

fn parsed(alg: Algorithm, key: &EncodingKey) -> Result<Arc<Parsed>, ErrorKind> {
    let der = key.as_bytes();
    let lock = || {
        cache()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some((_, _, p)) = lock().iter().find(|(a, d, _)| *a == alg && d == der) {
        return Ok(p.clone());
    }
    // Parsed outside the lock: a slow RSA parse does not hold up others.
    let p = Arc::new(parse(alg, der)?);
    let mut cache = lock();
    if cache.len() >= KEEP {
        cache.remove(0);
    }
    cache.push((alg, der.to_vec(), p.clone()));
    Ok(p)
}

struct CachedSigner {
    alg: Algorithm,
    key: Arc<Parsed>,
}

#[cfg(test)]
thread_local! {
    /// Signatures made by [`CachedSigner`] on this thread (tests: the cache
    /// is shared with tests signing in parallel, a thread's count is not).
    static SIGNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Signer<Vec<u8>> for CachedSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, SigError> {
        #[cfg(test)]
        SIGNED.with(|n| n.set(n.get() + 1));
        match &*self.key {
            Parsed::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Parsed::P256(k) => k
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(SigError::from_source),
            Parsed::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                    .map_err(SigError::from_source)?;
                Ok(sig)
            }
        }
    }
}

impl JwtSigner for CachedSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn signer_factory(
    alg: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    // The algorithms of the ring's keys; every other one (HS256 of the
    // refresh key, cheap to set up) as jsonwebtoken builds it.
    let ours = matches!(alg, Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256);
    let family_matches = key.family() == alg.family();
    if !ours || !family_matches {
        return (aws_lc::DEFAULT_PROVIDER.signer_factory)(alg, key);
    }
    Ok(Box::new(CachedSigner {
        alg: *alg,
        key: parsed(*alg, key)?,
    }))
}

/// Installs the provider for the process (once; later calls change
/// nothing). jsonwebtoken fixes its provider at its first use of one (a
/// key's JWK, a signature, a verification), so this must come before any:
/// the key ring's loading calls it before it derives the first JWK, which
/// is the service's first use. Returns whether this provider is the
/// process's (false: something used jsonwebtoken before, or installed
/// another provider; signing then parses keys per signature, as before,
/// and stays correct; [`crate::startup::build_core`] logs
/// [`NOT_INSTALLED`] then).
pub fn install() -> bool {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    // The first call's outcome: `install_default`'s error carries the
    // provider offered, not the one in place, so a later call cannot tell.
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        PROVIDER
            .get_or_init(|| CryptoProvider {
                signer_factory,
                ..aws_lc::DEFAULT_PROVIDER.clone()
            })
            .install_default()
            .is_ok()
    })
}

/// The warning of a process whose jsonwebtoken provider is not this one.
pub const NOT_INSTALLED: &str =
    "jsonwebtoken was used before its provider was set: private keys are parsed on every signature";

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Header, Validation, decode, encode};
    use serde_json::{Value, json};

    use super::*;

    /// A token signed by this module's signer (jsonwebtoken's steps, with
    /// the signer of `signer_factory`): the process-wide provider is fixed
    /// by whichever test first touches jsonwebtoken.
    fn sign_through_ours(alg: Algorithm, claims: &Value, key: &EncodingKey) -> String {
        use base64::Engine as _;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let header = serde_json::to_vec(&Header::new(alg)).unwrap();
        let msg = format!(
            "{}.{}",
            b64(&header),
            b64(&serde_json::to_vec(claims).unwrap())
        );
        let before = SIGNED.with(std::cell::Cell::get);
        let signer = signer_factory(&alg, key).unwrap();
        assert_eq!(signer.algorithm(), alg);
        let sig = signer.try_sign(msg.as_bytes()).unwrap();
        assert!(
            SIGNED.with(std::cell::Cell::get) == before + 1,
            "not the cached signer"
        );
        format!("{msg}.{}", b64(&sig))
    }

    /// A new key as `keys generate` writes it (PKCS#8 v1).
    fn pkcs8_of(alg: Algorithm) -> Vec<u8> {
        match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .unwrap()
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .unwrap()
                .as_ref()
                .to_vec(),
            _ => {
                use aws_lc_rs::encoding::AsDer as _;
                let kp =
                    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = kp.as_der().unwrap();
                der.as_ref().to_vec()
            }
        }
    }

    /// Tokens signed through the cached provider verify with the key's
    /// public half, for each algorithm of the ring, again and again; and
    /// they are what jsonwebtoken's own provider would make (EdDSA is
    /// deterministic: the very same bytes).
    #[test]
    fn cached_signers_sign_as_jsonwebtoken_does() {
        let claims = json!({"sub": "u", "exp": 4_000_000_000u64, "aud": "a"});
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            // As the ring loads its keys: a PKCS#8 PEM file.
            let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8_of(alg)));
            let enc = match alg {
                Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
                Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
                _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
            }
            .unwrap();
            let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, alg).unwrap();
            let dec = DecodingKey::from_jwk(&jwk).unwrap();
            let mut v = Validation::new(alg);
            v.set_audience(&["a"]);
            for _ in 0..3 {
                let t = sign_through_ours(alg, &claims, &enc);
                let back = decode::<Value>(&t, &dec, &v).unwrap();
                assert_eq!(back.claims, claims, "{alg:?}");
            }
            // jsonwebtoken's own encode verifies too, whichever provider
            // this test process ended up with.
            let t = encode(&Header::new(alg), &claims, &enc).unwrap();
            assert_eq!(decode::<Value>(&t, &dec, &v).unwrap().claims, claims);
            if alg == Algorithm::EdDSA {
                let ours = sign_through_ours(alg, &claims, &enc);
                let signer = (aws_lc::DEFAULT_PROVIDER.signer_factory)(&alg, &enc).unwrap();
                let (msg, _) = ours.rsplit_once('.').unwrap();
                let theirs = signer.try_sign(msg.as_bytes()).unwrap();
                let ours_sig = ours.rsplit_once('.').unwrap().1;
                use base64::Engine as _;
                assert_eq!(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(theirs),
                    ours_sig
                );
            }
        }
    }

    fn ed_key() -> EncodingKey {
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8_of(Algorithm::EdDSA)));
        EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()
    }

    /// A key of one family offered for another algorithm is refused, as
    /// jsonwebtoken refuses it; a broken key is an error, not a panic.
    #[test]
    fn mismatched_or_broken_keys_are_errors() {
        let ed = ed_key();
        assert!(signer_factory(&Algorithm::RS256, &ed).is_err());
        assert!(encode(&Header::new(Algorithm::RS256), &json!({}), &ed).is_err());
        let broken = EncodingKey::from_ed_der(b"not a key");
        assert!(signer_factory(&Algorithm::EdDSA, &broken).is_err());
        let broken = EncodingKey::from_rsa_der(b"not a key");
        assert!(signer_factory(&Algorithm::RS256, &broken).is_err());
    }

    /// Past KEEP keys the oldest goes; signing with any still works.
    #[test]
    fn the_cache_is_bounded() {
        let keys: Vec<_> = (0..KEEP + 4).map(|_| ed_key()).collect();
        for k in keys.iter().chain(keys.iter()) {
            sign_through_ours(Algorithm::EdDSA, &json!({"n": 1}), k);
        }
        assert!(cache().lock().unwrap().len() <= KEEP);
    }
}

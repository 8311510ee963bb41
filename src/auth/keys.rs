//! The key ring: PEM private keys under `PORTCULLIS_KEYS_DIR`, their public
//! JWKs (published at `/.well-known/jwks.json`) and the active signer.
//!
//! Files are `signing-<unix seconds>-<n>.pem` (PKCS#8). The algorithm is read
//! from the key itself (Ed25519 → EdDSA, P-256 → ES256, RSA → RS256). The
//! newest key of the configured algorithm signs; every key in the folder
//! verifies, so `keys rotate` adds a signer without breaking live tokens.
//! Removing a file retires its key. `kid` is the RFC 7638 thumbprint.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::config::SigningAlg;

/// One key pair of the ring.
pub struct KeyEntry {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The key's JOSE algorithm.
    pub alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    /// The public key as a JWK.
    pub jwk: Jwk,
    /// The PEM file it was loaded from.
    pub path: PathBuf,
    created: u64,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// All keys that verify, and the one that signs.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<KeyEntry>,
    active: usize,
}

/// The jsonwebtoken algorithm of a configured signing algorithm.
pub fn algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::EdDsa => Algorithm::EdDSA,
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::Rs256 => Algorithm::RS256,
    }
}

impl KeyRing {
    /// Loads the keys folder; generates a signing key of `alg` when none
    /// exists (first start). Returns the ring and the path of a generated key.
    pub fn load_or_generate(
        dir: &Path,
        alg: SigningAlg,
    ) -> anyhow::Result<(Self, Option<PathBuf>)> {
        let mut keys = load_dir(dir)?;
        let wanted = algorithm(alg);
        let mut generated = None;
        if !keys.iter().any(|k| k.alg == wanted) {
            let path = generate_key_file(dir, alg)?;
            generated = Some(path);
            keys = load_dir(dir)?;
        }
        Ok((Self::from_keys(keys, wanted)?, generated))
    }

    /// [`KeyRing::load_or_generate`], and also an RS256 key beside the
    /// signing key when there is none (ID tokens for OAuth clients are RS256
    /// by default). Returns the ring and the paths of generated keys.
    pub fn load_or_generate_with_rs256(
        dir: &Path,
        alg: SigningAlg,
    ) -> anyhow::Result<(Self, Vec<PathBuf>)> {
        let (ring, generated) = Self::load_or_generate(dir, alg)?;
        let mut made: Vec<PathBuf> = generated.into_iter().collect();
        if ring.newest(Algorithm::RS256).is_some() {
            return Ok((ring, made));
        }
        made.push(generate_key_file(dir, SigningAlg::Rs256)?);
        Ok((Self::load(dir, alg)?, made))
    }

    /// Loads the keys folder without creating anything.
    pub fn load(dir: &Path, alg: SigningAlg) -> anyhow::Result<Self> {
        Self::from_keys(load_dir(dir)?, algorithm(alg))
    }

    fn from_keys(keys: Vec<KeyEntry>, wanted: Algorithm) -> anyhow::Result<Self> {
        let active = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.alg == wanted)
            .max_by_key(|(_, k)| (k.created, k.path.clone()))
            .map(|(i, _)| i)
            .with_context(|| format!("no {wanted:?} signing key in the keys folder"))?;
        Ok(Self { keys, active })
    }

    /// The key new tokens are signed with.
    pub fn signer(&self) -> &KeyEntry {
        &self.keys[self.active]
    }

    /// The newest key of `alg`, if the ring holds one.
    pub fn newest(&self, alg: Algorithm) -> Option<&KeyEntry> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg)
            .max_by_key(|k| (k.created, k.path.clone()))
    }

    /// The key with this `kid`, if it is ours.
    pub fn by_kid(&self, kid: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The public keys, for `/.well-known/jwks.json`. Signer first.
    pub fn jwks(&self) -> JwkSet {
        let mut keys = vec![self.signer().jwk.clone()];
        keys.extend(
            self.keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.active)
                .map(|(_, k)| k.jwk.clone()),
        );
        JwkSet { keys }
    }

    /// How many keys are published.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Creates `dir` (mode 0700) if needed.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to a new file with mode 0600; never overwrites.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Generates a new PKCS#8 private key of `alg` in `dir`; returns its path.
pub fn generate_key_file(dir: &Path, alg: SigningAlg) -> anyhow::Result<PathBuf> {
    ensure_private_dir(dir)?;
    let der: Vec<u8> = match alg {
        // The short PKCS#8 v1 form: jsonwebtoken's JWK export rejects v2.
        SigningAlg::EdDsa => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?
            .as_ref()
            .to_vec(),
        SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?
            .as_ref()
            .to_vec(),
        SigningAlg::Rs256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = kp
                .as_der()
                .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
            der.as_ref().to_vec()
        }
    };
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // A counter keeps names unique when two keys are made within a second.
    for n in 0..1000 {
        let path = dir.join(format!("signing-{now}-{n}.pem"));
        if !path.exists() {
            write_private_file(&path, pem.as_bytes())?;
            return Ok(path);
        }
    }
    bail!("could not find a free key file name in {}", dir.display())
}

fn load_dir(dir: &Path) -> anyhow::Result<Vec<KeyEntry>> {
    // Before the first JWK is derived: jsonwebtoken fixes its provider then.
    let _ = super::signers::install();
    let mut keys = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let key = load_key(&path, &bytes).with_context(|| format!("loading {}", path.display()))?;
        keys.push(key);
    }
    Ok(keys)
}

fn load_key(path: &Path, pem_bytes: &[u8]) -> anyhow::Result<KeyEntry> {
    let (encoding, alg) = if let Ok(k) = EncodingKey::from_ed_pem(pem_bytes) {
        (k, Algorithm::EdDSA)
    } else if let Ok(k) = EncodingKey::from_ec_pem(pem_bytes) {
        (k, Algorithm::ES256)
    } else if let Ok(k) = EncodingKey::from_rsa_pem(pem_bytes) {
        (k, Algorithm::RS256)
    } else {
        bail!("not a PKCS#8 Ed25519, P-256 or RSA private key");
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, alg)
        .map_err(|e| anyhow::anyhow!("cannot derive the public key: {e}"))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| anyhow::anyhow!("cannot compute the thumbprint: {e}"))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let decoding =
        DecodingKey::from_jwk(&jwk).map_err(|e| anyhow::anyhow!("cannot build verifier: {e}"))?;
    let created = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("signing-"))
        .and_then(|s| s.split('-').next())
        .and_then(|s| s.parse().ok())
        .or_else(|| {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        })
        .unwrap_or(0);
    Ok(KeyEntry {
        kid,
        alg,
        encoding,
        decoding,
        jwk,
        path: path.to_path_buf(),
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_each_algorithm_and_publishes_thumbprint_kids() {
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
            let dir = tempfile::tempdir().unwrap();
            let (ring, generated) = KeyRing::load_or_generate(dir.path(), alg).unwrap();
            let path = generated.expect("a key is generated on first start");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600);
            }
            let signer = ring.signer();
            assert_eq!(signer.alg, algorithm(alg));
            assert_eq!(
                signer.jwk.common.key_id.as_deref(),
                Some(signer.kid.as_str())
            );
            assert_eq!(signer.kid.len(), 43, "base64url SHA-256 thumbprint");
            // Loading again generates nothing and yields the same kid.
            let (again, generated) = KeyRing::load_or_generate(dir.path(), alg).unwrap();
            assert!(generated.is_none());
            assert_eq!(again.signer().kid, signer.kid);
        }
    }

    #[test]
    fn rfc7638_thumbprint_of_a_known_key() {
        // RFC 8037 appendix A.3: the thumbprint of the A.2 Ed25519 public key.
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rotation_keeps_old_keys_for_verification() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = KeyRing::load_or_generate(dir.path(), SigningAlg::EdDsa).unwrap();
        let old_kid = first.signer().kid.clone();
        // Simulate a later rotation: a newer timestamp in the name.
        let path = generate_key_file(dir.path(), SigningAlg::EdDsa).unwrap();
        let newer = dir.path().join("signing-9999999999-0.pem");
        fs::rename(path, &newer).unwrap();
        let ring = KeyRing::load(dir.path(), SigningAlg::EdDsa).unwrap();
        assert_eq!(ring.len(), 2);
        assert_ne!(ring.signer().kid, old_kid);
        assert!(ring.by_kid(&old_kid).is_some());
        assert_eq!(ring.jwks().keys.len(), 2);
    }

    #[test]
    fn garbage_key_files_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("bad.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(KeyRing::load_or_generate(dir.path(), SigningAlg::EdDsa).is_err());
    }
}

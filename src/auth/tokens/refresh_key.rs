//! The secret HMAC key of refresh tokens (`keys/refresh-hmac.key`).
//!
//! Only Portcullis ever verifies a refresh token, so it need not carry a
//! public-key signature: HS256 under a 32-byte secret of its own costs a
//! few microseconds where an Ed25519 verify and sign cost about 140. The
//! key is never published (it is not in the key ring, so never in the
//! JWKS) and verifies refresh tokens only: every other kind of token is
//! checked against the ring alone. Its `kid` is derived from the key by a
//! one-way function, so naming it reveals nothing.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::ExposeSecret;

use crate::auth::secrets::{hmac_sha256, load_or_create_secret};

/// The file of the refresh-token key under the keys folder.
pub const REFRESH_KEY_FILE: &str = "refresh-hmac.key";

/// The HMAC key that signs and verifies refresh tokens.
pub struct RefreshKey {
    /// Its `kid` (`hs256-` and 22 base64url characters).
    pub kid: String,
    /// Always HS256.
    pub alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
}

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl RefreshKey {
    /// The key over 32 secret bytes.
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        let id = hmac_sha256(secret, b"portcullis refresh-token key id");
        Self {
            kid: format!("hs256-{}", B64URL.encode(&id[..16])),
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Reads `keys_dir/refresh-hmac.key`, creating it (mode 0600) if absent,
    /// like the other server secrets. Returns the key and whether it was
    /// created.
    pub fn load_or_create(keys_dir: &Path) -> anyhow::Result<(Self, bool)> {
        match load_or_create_secret(keys_dir, REFRESH_KEY_FILE) {
            Ok((secret, created)) => Ok((Self::from_bytes(secret.expose_secret()), created)),
            // Two replicas on one empty shared folder: the other one wrote it first.
            Err(_) if keys_dir.join(REFRESH_KEY_FILE).exists() => {
                let (secret, _) = load_or_create_secret(keys_dir, REFRESH_KEY_FILE)?;
                Ok((Self::from_bytes(secret.expose_secret()), false))
            }
            Err(e) => Err(e).with_context(|| {
                format!(
                    "{} is missing and cannot be created: copy it into the keys folder \
                     (`portcullis keys generate` makes it) or set \
                     PORTCULLIS_REFRESH_SIGNING=signing-key",
                    keys_dir.join(REFRESH_KEY_FILE).display()
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_a_stable_kid_that_reveals_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = RefreshKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (b, created) = RefreshKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(a.kid, b.kid);
        assert!(
            a.kid.starts_with("hs256-") && a.kid.len() == 6 + 22,
            "{}",
            a.kid
        );
        let text = std::fs::read_to_string(dir.path().join(REFRESH_KEY_FILE)).unwrap();
        assert!(!a.kid.contains(text.trim()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(REFRESH_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

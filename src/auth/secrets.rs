//! Server secrets under the keys folder, and the one HMAC helper.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::SecretBox;

/// HMAC-SHA-256 of `data` under `key` (aws-lc; any key length works).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Reads a 32-byte base64 secret from `keys_dir/name`, creating it (mode
/// 0600) if absent. Returns whether it was created.
pub fn load_or_create_secret(
    keys_dir: &Path,
    name: &str,
) -> anyhow::Result<(SecretBox<[u8; 32]>, bool)> {
    let path = keys_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = B64
                .decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .with_context(|| format!("{} is not 32 base64 bytes", path.display()))?;
            Ok((SecretBox::new(Box::new(bytes)), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            super::keys::ensure_private_dir(keys_dir)?;
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
            super::keys::write_private_file(&path, format!("{}\n", B64.encode(bytes)).as_bytes())?;
            Ok((SecretBox::new(Box::new(bytes)), true))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_are_created_once_and_read_back() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create_secret(dir.path(), "x.key").unwrap();
        assert!(created);
        let (b, created) = load_or_create_secret(dir.path(), "x.key").unwrap();
        assert!(!created);
        assert_eq!(a.expose_secret(), b.expose_secret());
    }
}

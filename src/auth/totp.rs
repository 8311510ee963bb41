//! Second factors: TOTP (RFC 6238) and recovery codes, and the sealing of
//! TOTP secrets at rest.
//!
//! - TOTP comes from `totp-rs` (no HOTP/TOTP arithmetic here): SHA-1,
//!   6 digits, 30 s steps, the RFC 6238 defaults every authenticator app
//!   speaks, and at most one step of drift either way. [`check`] returns the
//!   matched step so the caller can claim it in the store: a code is
//!   accepted once (RFC 6238 §5.2), across every replica.
//! - The QR code of the `otpauth://` URI is drawn by the `qrcode` crate's
//!   SVG renderer.
//! - TOTP secrets are stored sealed with AES-256-GCM (aws-lc, the one crypto
//!   library of the build) under `<keys dir>/totp-encryption.key`, with the
//!   user id as associated data, so a sealed secret copied onto another
//!   account does not open.
//! - Recovery codes are 50 random bits each (10 base32 characters, shown as
//!   `xxxxx-xxxxx`), stored as HMAC-SHA-256 under
//!   `<keys dir>/recovery-codes.key`: enough entropy that a keyed fast hash
//!   is as strong as bcrypt would be, and a lookup costs one hash, not ten.

use anyhow::Context;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use totp_rs::{Algorithm, Builder, Totp};

use super::secrets::hmac_sha256;

/// Digits of a code (RFC 6238 default, what every app shows).
pub const DIGITS: u8 = 6;
/// Seconds per step (RFC 6238 default).
pub const STEP_SECS: u64 = 30;
/// Steps of drift accepted either way (one: a code from the previous or the
/// next step still works, nothing older).
pub const SKEW_STEPS: u16 = 1;
/// Bytes of a new TOTP secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_BYTES: usize = 20;
/// How many recovery codes a set holds.
pub const RECOVERY_CODES: usize = 10;
/// Label shown in authenticator apps above the account name.
pub const ISSUER_LABEL: &str = "Portcullis";

/// File of the AES-256-GCM key that seals TOTP secrets.
pub const ENCRYPTION_KEY_FILE: &str = "totp-encryption.key";
/// File of the HMAC key recovery codes are hashed under.
pub const RECOVERY_KEY_FILE: &str = "recovery-codes.key";

/// Prefix of a sealed secret (the format version).
const SEALED_PREFIX: &str = "v1:";
/// Alphabet of recovery codes: lower-case RFC 4648 base32 (no 0, 1, 8, 9).
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters of a recovery code (50 bits).
const RECOVERY_CHARS: usize = 10;

/// A TOTP generator/checker for `secret` with the RFC 6238 defaults.
fn totp(secret: &[u8], account: &str) -> anyhow::Result<Totp> {
    // `:` separates issuer and account in the otpauth label.
    let account = account.replace(':', "_");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECS)
        .with_skew(SKEW_STEPS)
        .with_secret(secret.to_vec())
        .with_account_name(account)
        .with_issuer(Some(ISSUER_LABEL))
        .build()
        .map_err(|e| anyhow::anyhow!("building a TOTP: {e}"))
}

/// A fresh random TOTP secret.
pub fn new_secret() -> anyhow::Result<SecretBox<[u8]>> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(SecretBox::new(bytes.into_boxed_slice()))
}

/// What an app needs to enrol a secret.
pub struct Enrolment {
    /// The secret in base32 (RFC 4648, no padding), for typing by hand.
    pub secret: SecretString,
    /// The `otpauth://totp/...` key URI.
    pub otpauth_uri: SecretString,
    /// The key URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// Base32 text, `otpauth://` URI and QR code (SVG) of `secret` for `account`.
pub fn enrolment(secret: &[u8], account: &str) -> anyhow::Result<Enrolment> {
    let totp = totp(secret, account)?;
    let uri = totp
        .to_url()
        .map_err(|e| anyhow::anyhow!("building the otpauth URI: {e}"))?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).context("drawing the QR code")?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrolment {
        secret: SecretString::from(totp.secret().to_base32().trim_end_matches('=').to_string()),
        otpauth_uri: SecretString::from(uri),
        qr_svg,
    })
}

/// The step whose code `code` is, if it is the code of the step of `now` or
/// of one step either side of it; `None` otherwise (also for anything that
/// is not [`DIGITS`] digits).
pub fn check(secret: &[u8], code: &str, now: u64) -> anyhow::Result<Option<u64>> {
    Ok(totp(secret, "check")?.check(code, now))
}

/// Seals TOTP secrets for storage and opens them again.
pub struct SecretSealer {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSealer(..)")
    }
}

impl SecretSealer {
    /// A sealer under a 256-bit key.
    pub fn new(key: &SecretBox<[u8; 32]>) -> anyhow::Result<Self> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, key.expose_secret())
            .map_err(|_| anyhow::anyhow!("invalid AES-256-GCM key"))?;
        Ok(Self { key })
    }

    /// `v1:` + base64(nonce ‖ ciphertext ‖ tag), bound to `user_id`.
    pub fn seal(&self, user_id: &str, secret: &[u8]) -> anyhow::Result<String> {
        let mut data = secret.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(user_id.as_bytes()), &mut data)
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    /// Opens what [`SecretSealer::seal`] wrote for `user_id`; fails for
    /// another user, another key or a damaged value.
    pub fn open(&self, user_id: &str, sealed: &str) -> anyhow::Result<SecretBox<[u8]>> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .context("sealed TOTP secret is not in the v1 format")?;
        if raw.len() < NONCE_LEN {
            anyhow::bail!("sealed TOTP secret too short");
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("bad nonce in sealed TOTP secret"))?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(user_id.as_bytes()), &mut data)
            .map_err(|_| anyhow::anyhow!("sealed TOTP secret does not open (wrong key or user)"))?;
        Ok(SecretBox::new(plain.to_vec().into_boxed_slice()))
    }
}

/// Makes and hashes recovery codes.
pub struct RecoveryCodes {
    key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCodes(..)")
    }
}

impl RecoveryCodes {
    /// Hashing under `key`.
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self { key }
    }

    /// A new set of [`RECOVERY_CODES`] codes, shown as `xxxxx-xxxxx`, and
    /// their hashes (what is stored), in the same order.
    pub fn generate(&self) -> anyhow::Result<(Vec<SecretString>, Vec<String>)> {
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        while codes.len() < RECOVERY_CODES {
            let mut random = [0u8; RECOVERY_CHARS];
            aws_lc_rs::rand::fill(&mut random).map_err(|_| anyhow::anyhow!("no randomness"))?;
            // 256 is a multiple of 32: `% 32` keeps every character equally likely.
            let chars: String = random
                .iter()
                .map(|b| char::from(RECOVERY_ALPHABET[usize::from(*b) % 32]))
                .collect();
            let hash = self.hash(&chars);
            if hashes.contains(&hash) {
                continue;
            }
            let (a, b) = chars.split_at(RECOVERY_CHARS / 2);
            codes.push(SecretString::from(format!("{a}-{b}")));
            hashes.push(hash);
        }
        Ok((codes, hashes))
    }

    /// The stored hash of a code as a user typed it (case, spaces and
    /// dashes do not matter); `None` when it cannot be a recovery code.
    pub fn hash_input(&self, input: &str) -> Option<String> {
        let normalized: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let valid = normalized.len() == RECOVERY_CHARS
            && normalized.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
        valid.then(|| self.hash(&normalized))
    }

    fn hash(&self, normalized: &str) -> String {
        hmac_sha256(self.key.expose_secret(), normalized.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The server keys of second factors, loaded once at start-up.
#[derive(Debug)]
pub struct SecondFactorKeys {
    /// Seals and opens TOTP secrets.
    pub sealer: SecretSealer,
    /// Makes and hashes recovery codes.
    pub recovery: RecoveryCodes,
}

impl SecondFactorKeys {
    /// Reads [`ENCRYPTION_KEY_FILE`] and [`RECOVERY_KEY_FILE`] from
    /// `keys_dir`, creating them on first start. Losing the encryption key
    /// turns every active TOTP secret unreadable (users then sign in with a
    /// recovery code and enrol again).
    pub fn load(keys_dir: &std::path::Path) -> anyhow::Result<Self> {
        let (enc, created) = super::secrets::load_or_create_secret(keys_dir, ENCRYPTION_KEY_FILE)?;
        if created {
            tracing::warn!(dir = %keys_dir.display(), file = ENCRYPTION_KEY_FILE, "generated the TOTP encryption key: back it up with the signing keys");
        }
        let (rc, _) = super::secrets::load_or_create_secret(keys_dir, RECOVERY_KEY_FILE)?;
        Ok(Self {
            sealer: SecretSealer::new(&enc)?,
            recovery: RecoveryCodes::new(rc),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed and its 8-digit codes.
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    fn rfc_totp(digits: u8) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(digits)
            .with_skew(0)
            .with_secret(RFC_SEED.to_vec())
            .build()
            .unwrap()
    }

    #[test]
    fn rfc_6238_test_vectors_sha1_8_digits() {
        let t = rfc_totp(8);
        for (time, code) in RFC_VECTORS {
            assert_eq!(t.generate(*time).to_string(), *code, "T = {time}");
        }
    }

    #[test]
    fn six_digit_codes_are_the_last_six_of_the_rfc_vectors() {
        // Truncation takes the value modulo 10^digits, so a 6-digit code is
        // the 8-digit one without its first two digits.
        for (time, code) in RFC_VECTORS {
            let six = &code[2..];
            assert_eq!(check(RFC_SEED, six, *time).unwrap(), Some(time / 30));
        }
    }

    #[test]
    fn one_step_of_drift_and_no_more() {
        let t = rfc_totp(6);
        let now = 1_111_111_111;
        let step = now / 30;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (step as i64 + offset) as u64 * 30;
            let code = t.generate(at).to_string();
            let got = check(RFC_SEED, &code, now).unwrap();
            assert_eq!(got.is_some(), accepted, "offset {offset}");
            if accepted {
                assert_eq!(got, Some((step as i64 + offset) as u64));
            }
        }
    }

    #[test]
    fn malformed_codes_are_refused_without_panic() {
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "１２３４５６",
            "-12345",
            "      ",
        ] {
            assert_eq!(check(RFC_SEED, bad, 59).unwrap(), None, "{bad:?}");
        }
    }

    #[test]
    fn enrolment_gives_a_uri_and_an_svg_for_the_same_secret() {
        let secret = new_secret().unwrap();
        let e = enrolment(secret.expose_secret(), "user@example.com").unwrap();
        let uri = e.otpauth_uri.expose_secret();
        assert!(
            uri.starts_with("otpauth://totp/Portcullis:user%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={}", e.secret.expose_secret())));
        assert!(e.qr_svg.contains("<svg"));
        let back = totp_rs::Secret::try_from_base32(e.secret.expose_secret()).unwrap();
        assert_eq!(back.as_bytes(), secret.expose_secret());
    }

    fn key(byte: u8) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new([byte; 32]))
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let sealer = SecretSealer::new(&key(7)).unwrap();
        let sealed = sealer.seal("user-a", b"twenty bytes secret!").unwrap();
        assert!(!sealed.contains("twenty"));
        assert_eq!(
            sealer.open("user-a", &sealed).unwrap().expose_secret(),
            b"twenty bytes secret!"
        );
        assert!(sealer.open("user-b", &sealed).is_err());
        assert!(
            SecretSealer::new(&key(8))
                .unwrap()
                .open("user-a", &sealed)
                .is_err()
        );
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            sealer.seal("user-a", b"twenty bytes secret!").unwrap()
        );
        for junk in ["", "v1:", "v1:AAAA", "v2:xyz", "v1:!!!"] {
            assert!(sealer.open("user-a", junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn recovery_codes_hash_as_typed() {
        let rc = RecoveryCodes::new(key(1));
        let (codes, hashes) = rc.generate().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let first = codes[0].expose_secret();
        assert_eq!(first.len(), 11);
        assert_eq!(rc.hash_input(first).as_deref(), Some(hashes[0].as_str()));
        let sloppy = format!(" {} ", first.replace('-', " ").to_uppercase());
        assert_eq!(rc.hash_input(&sloppy).as_deref(), Some(hashes[0].as_str()));
        assert!(rc.hash_input("abcde-fghi").is_none());
        assert!(rc.hash_input("abcde-fghi1").is_none());
        // Another key, another hash.
        assert_ne!(
            RecoveryCodes::new(key(2)).hash_input(first),
            Some(hashes[0].clone())
        );
    }
}

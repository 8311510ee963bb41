//! Tickets: the credential behind a reset or verification mail. One mail
//! carries a link token and an 8-digit code; both are one ticket, so using
//! either spends both.
//!
//! - The token is `base64url(user id (16 bytes) || secret (32 random
//!   bytes))`: 256 bits of randomness; the store keeps only SHA-256 of the
//!   secret. The user id in it finds the ticket without an index.
//! - The code is 8 uniform random digits; the store keeps only
//!   HMAC-SHA-256 (a server key under `keys/`) of the ticket id and the
//!   code, so a copy of the store does not give the codes away.
//! - A user has at most one live ticket of each kind: issuing one replaces
//!   the older (superseded). Spending one claims a single-use key
//!   (`OnceKey::Reset`/`Verify` of its id): of racing uses one wins.
//! - A reset ticket records a fingerprint of the password hash: once the
//!   password changes, it is dead.
//! - A code has [`CODE_TRIES`] tries, each claimed as a single-use key
//!   (`OnceKey::CodeTry(id, n)`), so parallel guesses cannot get more.
//! - A ticket proves the address it was mailed to and no other: a reset or
//!   verification ticket works only while the account still has that
//!   address, and an email-change code goes with the new address (found
//!   through an index entry under that address, see [`address_key`]).
//! - A code with an address that has no account, or no live ticket, does
//!   the same work as a wrong code (the same store reads, a claimed try on
//!   a stand-in ticket id, one HMAC), so its timing does not tell which
//!   addresses have accounts.

//!
//! Issuing (`issue.rs`) and checking and spending (`check.rs`), one
//! `impl Core` each.

mod check;
mod issue;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Result;

/// Wrong tries before a code dies.
pub const CODE_TRIES: u32 = 5;
/// Digits of an email code.
const CODE_DIGITS: u32 = 8;

/// A freshly issued ticket's secrets, for the mail only.
pub(super) struct IssuedTicket {
    pub token: String,
    pub code: String,
}

/// How a client proves a ticket.
#[derive(Debug, Clone)]
pub enum TicketProof {
    /// The token of the link.
    Token(String),
    /// The address and the code of the mail.
    Code {
        /// The account's email address.
        email: String,
        /// The 8-digit code.
        code: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(b)
}

/// 8 uniform digits (rejection sampling: no modulo bias).
fn random_code() -> Result<String> {
    let modulus = 10_u32.pow(CODE_DIGITS);
    let limit = u32::MAX - (u32::MAX % modulus);
    loop {
        let n = u32::from_le_bytes(random_bytes::<4>()?);
        if n < limit {
            return Ok(format!(
                "{:0width$}",
                n % modulus,
                width = CODE_DIGITS as usize
            ));
        }
    }
}

/// The secrets of a new ticket held under `holder`: the link secret, the
/// token (`holder || secret`), the code and the ticket id.
fn fresh_secrets(holder: &uuid::Uuid) -> Result<([u8; 32], String, String, String)> {
    let secret = random_bytes::<32>()?;
    let mut raw = holder.as_bytes().to_vec();
    raw.extend_from_slice(&secret);
    let token = B64URL.encode(raw);
    let code = random_code()?;
    let jti = uuid::Uuid::new_v4().simple().to_string();
    Ok((secret, token, code, jti))
}

/// A fingerprint of a password hash (dies with it).
pub(super) fn credential_stamp(password_hash: &str) -> String {
    hex(&Sha256::digest(password_hash.as_bytes())[..16])
}

/// The user id and secret in a token; `None` for anything malformed.
fn parse_token(token: &str) -> Option<(String, [u8; 32])> {
    let bytes = B64URL.decode(token.trim()).ok()?;
    if bytes.len() != 48 {
        return None;
    }
    let user = uuid::Uuid::from_slice(&bytes[..16]).ok()?;
    let secret = <[u8; 32]>::try_from(&bytes[16..]).ok()?;
    Some((user.hyphenated().to_string(), secret))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The user id the look-ups of an address without an account (or an
/// email change without an index entry) read: never a real id, so the
/// read finds nothing but costs what a real one does.
const NO_ACCOUNT: &str = "no-account";

/// How long the tries of a stand-in ticket (see
/// [`Core::check_ticket`](super::Core::check_ticket)) are remembered: as
/// long as a reset link lives by default.
const STAND_IN_SECS: i64 = 30 * 60;

/// The store key of an email-change ticket's index entry: a copy of the
/// ticket under its new address, with `owner` naming the account, so a
/// code typed with the new address (the one the mail went to) finds it. A
/// space cannot be in a user id: no clash with a real one.
fn address_key(email: &str) -> String {
    format!("to {email}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_digits() {
        for _ in 0..200 {
            let c = random_code().unwrap();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn tokens_parse_only_when_whole() {
        let user = uuid::Uuid::now_v7();
        let mut raw = user.as_bytes().to_vec();
        raw.extend_from_slice(&[7u8; 32]);
        let token = B64URL.encode(&raw);
        assert_eq!(
            parse_token(&token),
            Some((user.hyphenated().to_string(), [7u8; 32]))
        );
        assert_eq!(parse_token(&token[..token.len() - 2]), None);
        assert_eq!(parse_token("not base64 !"), None);
        assert_eq!(parse_token(""), None);
    }
}

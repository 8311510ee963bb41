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

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Core, Error, Result};
use crate::auth::secrets::hmac_sha256;
use crate::domain::{Email, UserId};
use crate::store::{EmailTicket, OnceKey, TicketKind, UserRecord};

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

/// How long the tries of a stand-in ticket (see [`Core::check_ticket`])
/// are remembered: as long as a reset link lives by default.
const STAND_IN_SECS: i64 = 30 * 60;

/// The store key of an email-change ticket's index entry: a copy of the
/// ticket under its new address, with `owner` naming the account, so a
/// code typed with the new address (the one the mail went to) finds it. A
/// space cannot be in a user id: no clash with a real one.
fn address_key(email: &str) -> String {
    format!("to {email}")
}

// size-check: impl Core over 300 lines: issuing and checking email tickets; next to split (issue, check).
impl Core {
    fn code_hash(&self, jti: &str, code: &str) -> String {
        hex(&hmac_sha256(
            self.mail.code_key(),
            format!("{jti}:{code}").as_bytes(),
        ))
    }

    /// Issues the user's ticket of `kind`, valid `ttl` seconds, replacing
    /// any older one.
    pub(super) async fn issue_ticket(
        &self,
        kind: TicketKind,
        user: &UserRecord,
        ttl: i64,
    ) -> Result<IssuedTicket> {
        self.issue_ticket_to(kind, user, &user.email, ttl).await
    }

    /// [`Core::issue_ticket`] for a mail to `email` (the new address of an
    /// email change; the account's own address otherwise).
    pub(super) async fn issue_ticket_to(
        &self,
        kind: TicketKind,
        user: &UserRecord,
        email: &str,
        ttl: i64,
    ) -> Result<IssuedTicket> {
        let user_uuid = uuid::Uuid::parse_str(&user.id)
            .map_err(|_| anyhow::anyhow!("user id is not a UUID"))?;
        let (secret, token, code, jti) = fresh_secrets(&user_uuid)?;
        let credential_stamp = match kind {
            TicketKind::Reset => self
                .store
                .credentials(&user.id)
                .await?
                .map(|c| credential_stamp(&c.password_hash))
                .unwrap_or_default(),
            TicketKind::Verify | TicketKind::EmailChange | TicketKind::SignIn => String::new(),
        };
        let now = self.clock.now();
        let ticket = EmailTicket {
            kind,
            user_id: user.id.to_string(),
            code_hash: self.code_hash(&jti, &code),
            jti,
            token_hash: hex(&Sha256::digest(secret)),
            email: email.to_string(),
            credential_stamp,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            owner: None,
        };
        self.store.put_ticket(&ticket).await?;
        if kind == TicketKind::EmailChange {
            // The index entry under the new address (see `address_key`).
            // It only points: the account's own ticket must still have its
            // id when the code is used, so a newer change kills it too.
            let index = EmailTicket {
                user_id: address_key(email),
                owner: Some(user.id.to_string()),
                ..ticket
            };
            self.store.put_ticket(&index).await?;
        }
        Ok(IssuedTicket { token, code })
    }

    /// Finds and checks the ticket a proof names, without spending it. A
    /// wrong code uses up one of the code's tries. Every failure is
    /// [`Error::TicketInvalid`].
    pub(super) async fn check_ticket(
        &self,
        kind: TicketKind,
        proof: &TicketProof,
    ) -> Result<(UserRecord, EmailTicket)> {
        let now = self.clock.now();
        if kind == TicketKind::SignIn {
            // Sign-in tickets may have no account yet: see
            // `check_sign_in_ticket`.
            return Err(Error::TicketInvalid);
        }
        let (user, ticket) = match proof {
            TicketProof::Token(token) => {
                let (user_id, secret) = parse_token(token).ok_or(Error::TicketInvalid)?;
                let user_id = UserId::from(user_id);
                let ticket = self
                    .store
                    .ticket(kind, &user_id, now)
                    .await?
                    .ok_or(Error::TicketInvalid)?;
                if !ct_eq(&hex(&Sha256::digest(secret)), &ticket.token_hash) {
                    return Err(Error::TicketInvalid);
                }
                let user = self
                    .store
                    .user_by_id(&user_id)
                    .await?
                    .ok_or(Error::TicketInvalid)?;
                (user, ticket)
            }
            TicketProof::Code { email, code } => {
                let email = Email::parse(email).map_err(|_| Error::TicketInvalid)?;
                let found = self.ticket_by_address(kind, email.as_str(), now).await?;
                let right = self
                    .try_code(kind, email.as_str(), found.as_ref().map(|(_, t)| t), code)
                    .await?;
                match found {
                    Some(found) if right => found,
                    found => {
                        let user_id = found.as_ref().map_or("", |(u, _)| u.id.as_str());
                        tracing::info!(user_id, kind = kind.as_str(), "wrong email code");
                        return Err(Error::TicketInvalid);
                    }
                }
            }
        };
        // A reset or verification ticket proves the address it was mailed
        // to: once the account has moved to another one, it is dead.
        if kind != TicketKind::EmailChange && ticket.email != user.email {
            return Err(Error::TicketInvalid);
        }
        if user.disabled {
            return Err(Error::TicketInvalid);
        }
        if kind == TicketKind::Reset {
            let stamp = self
                .store
                .credentials(&user.id)
                .await?
                .map(|c| credential_stamp(&c.password_hash))
                .unwrap_or_default();
            if !ct_eq(&stamp, &ticket.credential_stamp) {
                return Err(Error::TicketInvalid);
            }
        }
        Ok((user, ticket))
    }

    /// Claims one try of the code of `found` (with none: of the address's
    /// stand-in ticket, so that an address without an account or a live
    /// ticket costs the same work and runs out of tries the same way; no
    /// timing oracle, issue 20 M3) and compares `code`. True only for a
    /// well-formed right code of a real ticket.
    async fn try_code(
        &self,
        kind: TicketKind,
        address: &str,
        found: Option<&EmailTicket>,
        code: &str,
    ) -> Result<bool> {
        let now = self.clock.now();
        let (jti, expires_at, expected) = match found {
            Some(t) => (t.jti.clone(), t.expires_at, t.code_hash.clone()),
            None => (
                self.stand_in_jti(kind, address),
                now.saturating_add(STAND_IN_SECS),
                String::new(),
            ),
        };
        self.take_code_try(&jti, expires_at).await?;
        let code = code.trim();
        let well_formed =
            code.len() == CODE_DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit());
        let right = ct_eq(&self.code_hash(&jti, code), &expected);
        Ok(found.is_some() && well_formed && right)
    }

    /// The id a sign-in ticket of `address` is kept under: a keyed hash of
    /// the address shaped as a UUID, so that an address without an
    /// account (sign-up by email) has a ticket too, and the token (which
    /// starts with this id) finds it. Nobody without the code key can aim
    /// at it.
    fn sign_in_holder(&self, address: &str) -> uuid::Uuid {
        let mac = hmac_sha256(
            self.mail.code_key(),
            format!("sign-in-holder:{address}").as_bytes(),
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&mac[..16]);
        uuid::Uuid::from_bytes(id)
    }

    /// Issues the sign-in ticket of `address` (normalized), valid `ttl`
    /// seconds, replacing any older one: `owner` is the account that holds
    /// the address now, `None` for a sign-up by email.
    pub(super) async fn issue_sign_in_ticket(
        &self,
        address: &str,
        owner: Option<&str>,
        ttl: i64,
    ) -> Result<IssuedTicket> {
        let holder = self.sign_in_holder(address);
        let (secret, token, code, jti) = fresh_secrets(&holder)?;
        let now = self.clock.now();
        let ticket = EmailTicket {
            kind: TicketKind::SignIn,
            user_id: holder.hyphenated().to_string(),
            code_hash: self.code_hash(&jti, &code),
            jti,
            token_hash: hex(&Sha256::digest(secret)),
            email: address.to_string(),
            credential_stamp: String::new(),
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            owner: owner.map(str::to_string),
        };
        self.store.put_ticket(&ticket).await?;
        Ok(IssuedTicket { token, code })
    }

    /// Finds and checks a sign-in ticket without spending it: the account
    /// that holds its address (`None`: a sign-up by email) and the ticket.
    /// The ticket is dead once the address belongs to another account than
    /// when it was mailed (or, for a sign-up, to any account). A wrong code
    /// uses up one of its tries. Every failure is [`Error::TicketInvalid`].
    pub(super) async fn check_sign_in_ticket(
        &self,
        proof: &TicketProof,
    ) -> Result<(Option<UserRecord>, EmailTicket)> {
        let kind = TicketKind::SignIn;
        let now = self.clock.now();
        let ticket = match proof {
            TicketProof::Token(token) => {
                let (holder, secret) = parse_token(token).ok_or(Error::TicketInvalid)?;
                let ticket = self
                    .store
                    .ticket(kind, &holder, now)
                    .await?
                    .ok_or(Error::TicketInvalid)?;
                if !ct_eq(&hex(&Sha256::digest(secret)), &ticket.token_hash) {
                    return Err(Error::TicketInvalid);
                }
                ticket
            }
            TicketProof::Code { email, code } => {
                let email = Email::parse(email).map_err(|_| Error::TicketInvalid)?;
                let holder = self.sign_in_holder(email.as_str()).hyphenated().to_string();
                let found = self
                    .store
                    .ticket(kind, &holder, now)
                    .await?
                    .filter(|t| t.email == email.as_str());
                if !self
                    .try_code(kind, email.as_str(), found.as_ref(), code)
                    .await?
                {
                    tracing::info!(kind = kind.as_str(), "wrong email code");
                    return Err(Error::TicketInvalid);
                }
                found.ok_or(Error::TicketInvalid)?
            }
        };
        let user = self.store.user_by_email(&ticket.email).await?;
        if user.as_ref().map(|u| u.id.as_str()) != ticket.owner.as_deref()
            || user.as_ref().is_some_and(|u| u.disabled)
        {
            return Err(Error::TicketInvalid);
        }
        Ok((user, ticket))
    }

    /// The live ticket of `kind` whose mail went to `address`, with its
    /// account; `None` when there is none. The same store reads whether or
    /// not the address has an account.
    async fn ticket_by_address(
        &self,
        kind: TicketKind,
        address: &str,
        now: i64,
    ) -> Result<Option<(UserRecord, EmailTicket)>> {
        Ok(match kind {
            TicketKind::EmailChange => {
                // The new address has no account (yet): its index entry
                // names the account, whose own ticket must be the same one.
                let index = self.store.ticket(kind, &address_key(address), now).await?;
                let owner = index.as_ref().and_then(|i| i.owner.clone());
                let user = self
                    .store
                    .user_by_id(&UserId::from(owner.as_deref().unwrap_or(NO_ACCOUNT)))
                    .await?;
                let id = user.as_ref().map_or(NO_ACCOUNT, |u| u.id.as_str());
                let ticket = self.store.ticket(kind, id, now).await?;
                match (index, user, ticket) {
                    (Some(i), Some(u), Some(t)) if t.jti == i.jti && t.email == address => {
                        Some((u, t))
                    }
                    _ => None,
                }
            }
            TicketKind::SignIn => None,
            TicketKind::Reset | TicketKind::Verify => {
                let user = self.store.user_by_email(address).await?;
                let id = user.as_ref().map_or(NO_ACCOUNT, |u| u.id.as_str());
                let ticket = self.store.ticket(kind, id, now).await?;
                match (user, ticket) {
                    (Some(u), Some(t)) if t.email == address => Some((u, t)),
                    _ => None,
                }
            }
        })
    }

    /// The ticket id whose tries a code for an address without a ticket
    /// claims: fixed per address and kind (keyed, so nobody can aim at a
    /// real ticket's tries), so repeated guesses run out of tries as they
    /// do on a real ticket.
    fn stand_in_jti(&self, kind: TicketKind, address: &str) -> String {
        let mac = hmac_sha256(
            self.mail.code_key(),
            format!("stand-in:{}:{address}", kind.as_str()).as_bytes(),
        );
        format!("stand-in-{}", hex(&mac[..16]))
    }

    /// Claims one of the tries of the code of ticket `jti`; none left
    /// means the code is dead.
    async fn take_code_try(&self, jti: &str, expires_at: i64) -> Result<()> {
        let now = self.clock.now();
        for n in 0..CODE_TRIES {
            let key = OnceKey::CodeTry(jti.to_string(), n);
            if self.store.claim_once(&key, expires_at, now).await? {
                return Ok(());
            }
        }
        Err(Error::TicketInvalid)
    }

    /// Spends a checked ticket: exactly one of racing spenders succeeds.
    pub(super) async fn spend_ticket(&self, ticket: &EmailTicket) -> Result<()> {
        let key = match ticket.kind {
            TicketKind::Reset => OnceKey::Reset(ticket.jti.clone()),
            // Ticket ids are random: one single-use key space serves all.
            TicketKind::Verify | TicketKind::EmailChange | TicketKind::SignIn => {
                OnceKey::Verify(ticket.jti.clone())
            }
        };
        if !self
            .store
            .claim_once(&key, ticket.expires_at, self.clock.now())
            .await?
        {
            return Err(Error::TicketInvalid);
        }
        self.store
            .delete_ticket(ticket.kind, &ticket.user_id, Some(&ticket.jti))
            .await?;
        Ok(())
    }
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

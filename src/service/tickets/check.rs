//! Checking tickets by link token or code (with the code's tries and the
//! stand-in ticket of an address without one) and spending them.

use sha2::{Digest, Sha256};

use super::{
    CODE_DIGITS, CODE_TRIES, NO_ACCOUNT, STAND_IN_SECS, TicketProof, address_key, credential_stamp,
    ct_eq, hex, parse_token,
};
use crate::auth::secrets::hmac_sha256;
use crate::domain::{Email, UserId};
use crate::service::{Core, Error, Result};
use crate::store::{EmailTicket, OnceKey, TicketKind, UserRecord};

impl Core {
    /// Finds and checks the ticket a proof names, without spending it. A
    /// wrong code uses up one of the code's tries. Every failure is
    /// [`Error::TicketInvalid`].
    pub(in crate::service) async fn check_ticket(
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
    /// timing oracle: the security probe's M3) and compares `code`. True only for a
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

    /// Finds and checks a sign-in ticket without spending it: the account
    /// that holds its address (`None`: a sign-up by email) and the ticket.
    /// The ticket is dead once the address belongs to another account than
    /// when it was mailed (or, for a sign-up, to any account). A wrong code
    /// uses up one of its tries. Every failure is [`Error::TicketInvalid`].
    pub(in crate::service) async fn check_sign_in_ticket(
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
    pub(in crate::service) async fn spend_ticket(&self, ticket: &EmailTicket) -> Result<()> {
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

//! Issuing tickets: reset, verification and email-change tickets held by
//! the account, sign-in tickets held under a keyed hash of the address.

use sha2::{Digest, Sha256};

use super::{IssuedTicket, address_key, credential_stamp, fresh_secrets, hex};
use crate::auth::secrets::hmac_sha256;
use crate::service::{Core, Result};
use crate::store::{EmailTicket, TicketKind, UserRecord};

impl Core {
    pub(super) fn code_hash(&self, jti: &str, code: &str) -> String {
        hex(&hmac_sha256(
            self.mail.code_key(),
            format!("{jti}:{code}").as_bytes(),
        ))
    }

    /// Issues the user's ticket of `kind`, valid `ttl` seconds, replacing
    /// any older one.
    pub(in crate::service) async fn issue_ticket(
        &self,
        kind: TicketKind,
        user: &UserRecord,
        ttl: i64,
    ) -> Result<IssuedTicket> {
        self.issue_ticket_to(kind, user, &user.email, ttl).await
    }

    /// [`Core::issue_ticket`] for a mail to `email` (the new address of an
    /// email change; the account's own address otherwise).
    pub(in crate::service) async fn issue_ticket_to(
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

    /// The id a sign-in ticket of `address` is kept under: a keyed hash of
    /// the address shaped as a UUID, so that an address without an
    /// account (sign-up by email) has a ticket too, and the token (which
    /// starts with this id) finds it. Nobody without the code key can aim
    /// at it.
    pub(super) fn sign_in_holder(&self, address: &str) -> uuid::Uuid {
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
    pub(in crate::service) async fn issue_sign_in_ticket(
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
}

//! The admin API's use cases: list, read, change and delete accounts, and
//! end their sessions. Callers are already checked to hold the `admin` role
//! (`api::AdminAuth`). Every change records an `admin.*` security event
//! (stored and webhook-delivered): its `user_id` is the acting admin, the
//! account acted on is `target_user_id` in its details. Reads (list, view)
//! are logged only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Account, ClientInfo, Core, Error, FieldError, Principal, Result};
use crate::audit::AuditEvent;
use crate::domain::UserId;
use crate::store::AdminUpdate;

/// Page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;
/// Largest page.
pub const MAX_PAGE: usize = 100;

/// An operator's change to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AdminPatch {
    /// Disable (signs the user out everywhere at once) or re-enable.
    pub disabled: Option<bool>,
    /// Replace the roles.
    pub roles: Option<Vec<String>>,
    /// Mark the email verified or not.
    pub email_verified: Option<bool>,
}

/// One page of accounts.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The accounts, in email order.
    pub users: Vec<Account>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A role: 1 to 32 of `a-z`, `0-9`, `_`, `-`.
fn valid_role(r: &str) -> bool {
    (1..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn bad_cursor() -> Error {
    Error::Validation(vec![FieldError::new(
        "cursor",
        "invalid",
        "The cursor is not one this service handed out.",
    )])
}

impl Core {
    /// Accounts whose email starts with `email_prefix` (matched on the
    /// normalized, lower-case form), a page at a time.
    pub async fn admin_list_users(
        &self,
        admin: &Principal,
        email_prefix: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<UserPage> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(n @ 1..=100) => n as usize,
            Some(_) => {
                return Err(Error::Validation(vec![FieldError::new(
                    "limit",
                    "out_of_range",
                    format!("limit is 1 to {MAX_PAGE}"),
                )]));
            }
        };
        let prefix = email_prefix.unwrap_or("").trim().to_lowercase();
        let after = cursor
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(bad_cursor)
            })
            .transpose()?;
        // One more than asked tells whether there is a next page.
        let mut users = self
            .store
            .list_users(&prefix, after.as_deref(), limit + 1)
            .await?;
        let more = users.len() > limit;
        users.truncate(limit);
        let next_cursor = more
            .then(|| {
                users
                    .last()
                    .map(|u| URL_SAFE_NO_PAD.encode(u.email.as_bytes()))
            })
            .flatten();
        tracing::info!(admin_id = %admin.user_id, event = "admin.users_listed", count = users.len(), "admin listed users");
        Ok(UserPage {
            users: users.into_iter().map(|u| self.to_account(u)).collect(),
            next_cursor,
        })
    }

    /// One account.
    pub async fn admin_get_user(&self, admin: &Principal, user_id: &UserId) -> Result<Account> {
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("User"))?;
        tracing::info!(admin_id = %admin.user_id, target_user_id = %user_id, event = "admin.user_viewed", "admin viewed a user");
        Ok(self.to_account(user))
    }

    /// Changes an account. Disabling it also ends every session of the
    /// user, so its live access tokens are refused at once (the bearer
    /// check reads the session, one store read per request) and its
    /// refresh tokens stop working.
    pub async fn admin_update_user(
        &self,
        admin: &Principal,
        user_id: &UserId,
        patch: AdminPatch,
        client: &ClientInfo,
    ) -> Result<Account> {
        if let Some(roles) = &patch.roles {
            let bad: Vec<FieldError> = roles
                .iter()
                .filter(|r| !valid_role(r))
                .map(|r| {
                    let shown: String = r.chars().take(40).collect();
                    FieldError::new(
                        "roles",
                        "invalid",
                        format!("{shown:?} is not a role (1 to 32 of a-z, 0-9, _ and -)"),
                    )
                })
                .collect();
            if !bad.is_empty() || roles.len() > 16 {
                return Err(Error::Validation(if bad.is_empty() {
                    vec![FieldError::new("roles", "too_many", "At most 16 roles.")]
                } else {
                    bad
                }));
            }
        }
        let mut roles = patch.roles.clone();
        if let Some(r) = roles.as_mut() {
            r.sort();
            r.dedup();
        }
        let update = AdminUpdate {
            disabled: patch.disabled,
            roles,
            email_verified: patch.email_verified,
        };
        let now = self.clock.now();
        let user = self
            .store
            .admin_update(user_id, &update, now)
            .await?
            .ok_or(Error::NotFound("User"))?;
        let mut facts = Vec::new();
        if let Some(d) = patch.disabled {
            facts.push(("disabled", d.to_string()));
        }
        if let Some(r) = &update.roles {
            facts.push(("roles", r.join(",")));
        }
        if let Some(v) = patch.email_verified {
            facts.push(("email_verified", v.to_string()));
        }
        if patch.disabled == Some(true) {
            let revoked = self.store.revoke_sessions_of(user_id, None, now).await?;
            facts.push(("revoked", revoked.to_string()));
            tracing::info!(admin_id = %admin.user_id, target_user_id = %user_id, revoked, event = "admin.user_disabled", "admin disabled a user; sessions revoked");
        }
        self.audit(
            AuditEvent::Admin {
                action: "user_updated",
                target: Some(user_id.to_string()),
                facts,
            },
            Some(&admin.user_id),
            client,
        );
        tracing::info!(
            admin_id = %admin.user_id,
            target_user_id = %user_id,
            disabled = ?patch.disabled,
            roles = ?patch.roles,
            email_verified = ?patch.email_verified,
            event = "admin.user_updated",
            "admin updated a user"
        );
        Ok(self.to_account(user))
    }

    /// Ends every session of an account.
    pub async fn admin_end_sessions(
        &self,
        admin: &Principal,
        user_id: &UserId,
        client: &ClientInfo,
    ) -> Result<u64> {
        if self.store.user_by_id(user_id).await?.is_none() {
            return Err(Error::NotFound("User"));
        }
        let revoked = self
            .store
            .revoke_sessions_of(user_id, None, self.clock.now())
            .await?;
        tracing::info!(admin_id = %admin.user_id, target_user_id = %user_id, revoked, event = "admin.sessions_revoked", "admin ended a user's sessions");
        self.audit(
            AuditEvent::Admin {
                action: "sessions_revoked",
                target: Some(user_id.to_string()),
                facts: vec![("revoked", revoked.to_string())],
            },
            Some(&admin.user_id),
            client,
        );
        Ok(revoked)
    }

    /// Deletes an account (as `DELETE /v1/me` does, without the password).
    pub async fn admin_delete_user(
        &self,
        admin: &Principal,
        user_id: &UserId,
        client: &ClientInfo,
    ) -> Result<()> {
        if !self.store.delete_user(user_id).await? {
            return Err(Error::NotFound("User"));
        }
        tracing::info!(admin_id = %admin.user_id, target_user_id = %user_id, event = "admin.user_deleted", "admin deleted a user");
        self.audit(
            AuditEvent::Admin {
                action: "user_deleted",
                target: Some(user_id.to_string()),
                facts: Vec::new(),
            },
            Some(&admin.user_id),
            client,
        );
        Ok(())
    }
}

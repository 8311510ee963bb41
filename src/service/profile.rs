//! The caller's own profile: editing it, and deleting the account.

use serde_json::Value;

use super::{Account, ClientInfo, Core, Error, FieldError, Principal, Proof, Result};
use crate::audit::AuditEvent;
use crate::domain::{DisplayName, Locale, Metadata, TimeZoneName};
use crate::store::ProfileUpdate;

/// A profile change as received. For each field `None` leaves it as it is,
/// `Some(None)` clears it (JSON `null`).
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// New display name.
    pub display_name: Option<Option<String>>,
    /// New BCP 47 language tag.
    pub locale: Option<Option<String>>,
    /// New IANA time zone.
    pub timezone: Option<Option<String>>,
    /// New metadata object (replaces the old one whole).
    pub metadata: Option<Option<Value>>,
    /// Names of admin-only fields the body carried (any value): refused.
    pub admin_fields: Vec<&'static str>,
}

/// Parses an optional-nullable field with `parse`, collecting failures.
fn field<T>(
    errors: &mut Vec<FieldError>,
    name: &str,
    what: &str,
    value: Option<Option<T>>,
    parse: impl FnOnce(T) -> std::result::Result<String, String>,
) -> Option<Option<String>> {
    match value {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => match parse(raw) {
            Ok(v) => Some(Some(v)),
            Err(why) => {
                errors.push(FieldError::invalid(name, what, &why));
                None
            }
        },
    }
}

impl Core {
    /// Validates every field first (all failures reported at once, nothing
    /// changed when any fails), then applies the change in one store write.
    pub async fn update_profile(&self, who: &Principal, patch: ProfilePatch) -> Result<Account> {
        let mut errors: Vec<FieldError> = patch
            .admin_fields
            .iter()
            .map(|f| {
                FieldError::new(
                    f,
                    "admin_only",
                    format!("`{f}` can only be changed by an administrator"),
                )
            })
            .collect();
        let update = ProfileUpdate {
            display_name: field(
                &mut errors,
                "display_name",
                "Display name",
                patch.display_name,
                |raw: String| {
                    DisplayName::parse(&raw)
                        .map(DisplayName::into_inner)
                        .map_err(str::to_string)
                },
            ),
            locale: field(
                &mut errors,
                "locale",
                "Locale",
                patch.locale,
                |raw: String| {
                    Locale::parse(&raw)
                        .map(Locale::into_inner)
                        .map_err(str::to_string)
                },
            ),
            timezone: field(
                &mut errors,
                "timezone",
                "Time zone",
                patch.timezone,
                |raw: String| {
                    TimeZoneName::parse(&raw)
                        .map(TimeZoneName::into_inner)
                        .map_err(str::to_string)
                },
            ),
            metadata: field(
                &mut errors,
                "metadata",
                "Metadata",
                patch.metadata,
                |raw: Value| Metadata::parse(&raw).map(Metadata::into_inner),
            ),
            email_verified: None,
        };
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let account = self
            .store
            .update_profile(&who.user_id, &update, self.clock.now())
            .await?
            .map(|u| self.to_account(u))
            .ok_or(Error::TokenInvalid("unknown subject"))?;
        tracing::info!(user_id = %who.user_id, event = "profile.updated", "profile updated");
        Ok(account)
    }

    /// Deletes the caller's account after a proof (see
    /// [`Core::require_recent_proof`]): the one in `proof`, or, when it is
    /// `None`, one given on this session within the re-authentication
    /// window. Profile, credentials, sessions and avatar are erased, and
    /// the email can be registered again. Security events keep the user id
    /// only.
    ///
    /// Every kind of proof goes through the same per-user throttle as the
    /// password check of a password or email change
    /// ([`Core::throttled_proof`]): wrong proofs of any kind count, and past
    /// `PORTCULLIS_LOGIN_MAX_FAILURES` in 15 minutes the answer is 429. A
    /// malformed code is a 422 and does not count.
    pub async fn delete_account(
        &self,
        who: &Principal,
        proof: Option<Proof>,
        client: &ClientInfo,
    ) -> Result<()> {
        let Some(user) = self.store.user_by_id(&who.user_id).await? else {
            return Err(Error::TokenInvalid("unknown subject"));
        };
        let method = match &proof {
            Some(Proof::Password(_)) => "password",
            Some(Proof::Code(_)) => "totp",
            Some(Proof::Passkey { .. }) => "passkey",
            None => "recent",
        };
        // A guest has no credential to prove (`passwordless::anonymous`):
        // its bearer token is all it has, and its account all it loses.
        if !user.anonymous {
            self.require_recent_proof(who, proof, client).await?;
        }
        self.store.delete_user(&who.user_id).await?;
        tracing::info!(user_id = %who.user_id, method, event = "account.deleted", "account deleted");
        self.audit(AuditEvent::AccountDeleted, Some(&who.user_id), client);
        Ok(())
    }
}

//! Bringing accounts in: `portcullis users import` (JSON lines from another
//! system) and `portcullis admin create`. Not on any HTTP route.

use secrecy::SecretString;
use serde::Deserialize;

use super::sessions::ADMIN_ROLE;
use super::{Account, Core, Error, FieldError, Result};
use crate::auth::PasswordHasher;
use crate::domain::{DisplayName, Email, UserId};
use crate::store::{AdminUpdate, CredentialRecord, StoreError, UserRecord};

/// One line of an import file.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportLine {
    /// Email address (normalized like a registration's).
    pub email: String,
    /// A bcrypt hash of the raw password (`$2a$`/`$2b$`/`$2y$`); without
    /// it the account has no password until one is reset.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Name shown to others.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether the other system had verified the address.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// When the account was created: RFC 3339 text or Unix seconds.
    #[serde(default)]
    pub created_at: Option<serde_json::Value>,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new account.
    Imported,
    /// An account with this email exists already (re-runs skip it).
    Skipped,
    /// The line breaks a rule; the reason never quotes a hash.
    Refused(String),
}

/// A validated line, ready to store.
fn prepare(
    line: ImportLine,
    now: i64,
    costs: &std::ops::RangeInclusive<u32>,
) -> std::result::Result<(UserRecord, CredentialRecord), String> {
    let email = Email::parse(&line.email).map_err(|why| format!("email {why}"))?;
    let display_name = line
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|why| format!("display_name {why}"))?;
    let password_hash = match line.password_hash {
        Some(h) if PasswordHasher::is_importable_bcrypt(&h) => h,
        Some(_) => {
            return Err(
                "password_hash is not a bcrypt hash ($2a$, $2b$ or $2y$ with a cost of 4 to 31)"
                    .into(),
            );
        }
        None => String::new(),
    };
    // Issue 20 L10: a cost far from the configured one tells the account
    // apart by timing (and a high one stalls a bcrypt thread).
    if let Some(cost) = PasswordHasher::bcrypt_cost(&password_hash)
        && !costs.contains(&cost)
    {
        return Err(format!(
            "password_hash has bcrypt cost {cost}; this service imports costs {} to {} \
             (PORTCULLIS_BCRYPT_COST ± 2): re-hash it, or import the line without it",
            costs.start(),
            costs.end()
        ));
    }
    let created_at = match line.created_at {
        None | Some(serde_json::Value::Null) => now,
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .filter(|s| *s >= 0)
            .ok_or("created_at is not a Unix time in seconds")?,
        Some(serde_json::Value::String(s)) => parse_time(&s)?,
        Some(_) => return Err("created_at is neither RFC 3339 text nor Unix seconds".into()),
    };
    let user = UserRecord {
        id: UserId::mint(),
        email: email.as_str().to_string(),
        email_verified: line.email_verified.unwrap_or(false),
        display_name: display_name.map(DisplayName::into_inner),
        roles: vec!["user".to_string()],
        disabled: false,
        created_at,
        updated_at: now,
        ..UserRecord::default()
    };
    let legacy_bcrypt = !password_hash.is_empty();
    Ok((
        user,
        CredentialRecord {
            password_hash,
            legacy_bcrypt,
            ..CredentialRecord::default()
        },
    ))
}

/// RFC 3339, or the `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) SQLite and
/// SQLAlchemy write.
fn parse_time(s: &str) -> std::result::Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, PrimitiveDateTime, macros::format_description};
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let sql = format_description!(
        version = 2,
        "[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(s, &sql)
        .map(|t| t.assume_utc().unix_timestamp())
        .map_err(|_| "created_at is not an RFC 3339 time".to_string())
}

impl Core {
    /// Imports a batch of lines: each valid line whose email is free
    /// becomes an account (in one store write per batch where the backend
    /// allows); an existing email is skipped, so a re-run imports nothing
    /// twice.
    pub async fn import_users(&self, lines: Vec<ImportLine>) -> Result<Vec<ImportOutcome>> {
        let now = self.clock.now();
        let costs = self.hasher.importable_costs();
        let mut outcomes = Vec::with_capacity(lines.len());
        let mut batch = Vec::new();
        let mut slots = Vec::new();
        for line in lines {
            match prepare(line, now, &costs) {
                Ok(records) => {
                    slots.push(outcomes.len());
                    outcomes.push(ImportOutcome::Imported);
                    batch.push(records);
                }
                Err(why) => outcomes.push(ImportOutcome::Refused(why)),
            }
        }
        let created = self.store.create_users(&batch).await?;
        for (slot, created) in slots.into_iter().zip(created) {
            if !created && let Some(o) = outcomes.get_mut(slot) {
                *o = ImportOutcome::Skipped;
            }
        }
        Ok(outcomes)
    }

    /// Creates an administrator, or gives an existing account the `admin`
    /// role. A new account needs a password that passes the usual rules;
    /// its email counts as verified (the operator typed it).
    /// Returns the account and whether it was created.
    pub async fn admin_create(
        &self,
        email: &str,
        password: impl FnOnce() -> anyhow::Result<SecretString>,
    ) -> Result<(Account, bool)> {
        let email = Email::parse(email).map_err(|why| {
            Error::Validation(vec![FieldError::invalid("email", "Email address", why)])
        })?;
        let now = self.clock.now();
        if let Some(existing) = self.store.user_by_email(email.as_str()).await? {
            let mut roles = existing.roles.clone();
            if !roles.iter().any(|r| r == ADMIN_ROLE) {
                roles.push(ADMIN_ROLE.to_string());
            }
            let update = AdminUpdate {
                roles: Some(roles),
                ..AdminUpdate::default()
            };
            let user = self
                .store
                .admin_update(&existing.id, &update, now)
                .await?
                .ok_or(Error::NotFound("User"))?;
            tracing::info!(user_id = %user.id, event = "admin.promoted", "account given the admin role");
            self.cli_admin_event("promoted", &user.id).await;
            return Ok((self.to_account(user), false));
        }
        let password = password()?;
        let context = super::guards::password_context(Some(email.as_str()), None);
        let password = self
            .new_password("password", password, &context)
            .map_err(|e| Error::Validation(vec![e]))?;
        let credentials = CredentialRecord {
            password_hash: self.hasher.hash(&password).await?,
            ..CredentialRecord::default()
        };
        let user = UserRecord {
            id: UserId::mint(),
            email: email.as_str().to_string(),
            email_verified: true,
            roles: vec!["user".to_string(), ADMIN_ROLE.to_string()],
            created_at: now,
            updated_at: now,
            ..UserRecord::default()
        };
        match self.store.create_user(&user, &credentials).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, event = "admin.created", "administrator created");
                self.cli_admin_event("created", &user.id).await;
                Ok((self.to_account(user), true))
            }
            Err(StoreError::Conflict) => Err(Error::Conflict(
                "An account with this email address was created meanwhile; run the command again to promote it.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Records `admin.<action>` for an account made an administrator at
    /// the command line (no acting user: `via` is `cli`). Stored at once:
    /// the CLI runs no flusher. A failure is logged (the account change
    /// is done).
    async fn cli_admin_event(&self, action: &'static str, user_id: &UserId) {
        let event = crate::audit::AuditEvent::Admin {
            action,
            target: Some(user_id.to_string()),
            facts: vec![("via", "cli".to_string())],
        };
        if let Err(e) = self
            .audit_now(event, None, &super::ClientInfo::default())
            .await
        {
            tracing::warn!(error = %e, user_id = %user_id, "admin event not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str) -> ImportLine {
        serde_json::from_str(json).unwrap()
    }

    const COSTS: std::ops::RangeInclusive<u32> = 4..=6;

    /// L10: costs outside the configured cost ± 2 are refused; 31 never passes.
    #[test]
    fn imported_costs_are_capped() {
        let at = |cost: u32| {
            let hash = bcrypt::hash("pw", 4)
                .unwrap()
                .replacen("$04$", &format!("${cost:02}$"), 1);
            prepare(
                line(&format!(
                    r#"{{"email":"c{cost}@example.com","password_hash":"{hash}"}}"#
                )),
                0,
                &(10..=14),
            )
        };
        assert!(at(10).is_ok() && at(12).is_ok() && at(14).is_ok());
        for cost in [4, 9, 15, 31] {
            let why = at(cost).unwrap_err();
            assert!(why.contains(&format!("cost {cost}")), "{why}");
        }
    }

    #[test]
    fn lines_are_checked() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let ok = prepare(
            line(&format!(
                r#"{{"email":"A@Example.com","password_hash":"{hash}","created_at":"2024-01-02 03:04:05.123456"}}"#
            )),
            100,
            &COSTS,
        )
        .unwrap();
        assert_eq!(ok.0.email, "a@example.com");
        assert!(ok.1.legacy_bcrypt);
        assert_eq!(ok.0.created_at, 1_704_164_645);
        let none = prepare(line(r#"{"email":"b@example.com"}"#), 100, &COSTS).unwrap();
        assert_eq!(none.1.password_hash, "");
        assert!(!none.1.legacy_bcrypt);
        assert_eq!(none.0.created_at, 100);
        let refused = prepare(
            line(r#"{"email":"c@example.com","password_hash":"$1$secretmd5hash"}"#),
            0,
            &COSTS,
        )
        .unwrap_err();
        assert!(!refused.contains("secretmd5"), "{refused}");
        assert!(prepare(line(r#"{"email":"not an email"}"#), 0, &COSTS).is_err());
        assert!(
            prepare(
                line(r#"{"email":"d@example.com","created_at":"yesterday"}"#),
                0,
                &COSTS
            )
            .is_err()
        );
        assert_eq!(
            prepare(
                line(r#"{"email":"e@example.com","created_at":"2024-01-02T03:04:05Z"}"#),
                0,
                &COSTS
            )
            .unwrap()
            .0
            .created_at,
            1_704_164_645
        );
    }
}

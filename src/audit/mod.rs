//! Typed security events (the audit log) and the buffer that takes them off
//! the request path.
//!
//! A use case records an event with one call, `core.audit(event, user_id,
//! &client)` (see `service::security`). That call logs one line and puts
//! the [`AuditRecord`] into a bounded in-memory channel ([`AuditSink`]); it
//! never waits for the store. The flusher task (`jobs.rs`) drains the
//! channel in batches: each batch is one store write (and one webhook
//! enqueue). A clean shutdown flushes the channel before the process ends.
//!
//! **What a crash can lose**: the events accepted since the flusher's last
//! completed write, that is those emitted while one batch was being written
//! (a batch takes whatever queued up during the previous write: under load
//! the batches grow, idle they hold one event). The channel holds at most
//! [`CHANNEL_CAPACITY`] events; when it is full (a store outage) further
//! events are logged but not stored, and counted in
//! `portcullis_audit_writes_total{result="dropped"}`. The largest batch
//! written is visible as the `portcullis_audit_batch_size` histogram, which
//! is the measured bound of a crash's loss.
//!
//! **Refusals are aggregated**: at most one stored event per client
//! network, action and minute, carrying a count. A 429, a CAPTCHA
//! failure or a throttled sign-in ([`AuditEvent::is_refusal`]) does not go
//! through the channel: [`AuditSink::push_refusal`] adds one to an
//! in-memory tally keyed by (client network — IPv4 /24, IPv6 /64 —, event
//! type and `action`, minute). The flusher stores the tallies as one event
//! per key whose id is derived from the key, so later counts of the same
//! minute (a read flushes the open ones; another replica's) add to that one
//! event ([`AuditStore::add_audit_counts`](crate::store::AuditStore::add_audit_counts)).
//! When the minute is over (plus [`REFUSAL_CLOSE_GRACE_SECS`]) or at a clean
//! shutdown, the tally closes and its one webhook is queued with the count
//! this process saw. At most [`MAX_TALLIES`] keys are open; past that, new
//! networks share one tally (`network` `other`). A flood from one client
//! therefore costs one stored event and one webhook per minute, and a
//! crash loses at most the counts of the open minute (each refusal is also
//! logged by its caller). With several replicas, the stored event holds
//! their sum; the webhook carries the count of the replica whose delivery
//! was queued first (the others have the same `webhook-id`).
//!
//! Events never carry a secret: the variants below hold only static
//! reasons, counts and ids, and the record adds the user id, client IP and
//! user agent.

use std::collections::BTreeMap;

use crate::store::AuditRecord;
use crate::store::security::audit_id;

mod sink;

pub use sink::{
    AuditSink, MAX_TALLIES, OTHER_NETWORKS, REFUSAL_CLOSE_GRACE_SECS, REFUSAL_WINDOW_SECS,
    RefusalTake, SinkMessage, register_metrics,
};

/// Events the channel holds before new ones are dropped (and counted).
pub const CHANNEL_CAPACITY: usize = 10_000;
/// Largest batch written at once.
pub const MAX_BATCH: usize = 500;

/// Which budget ran out in a `rate_limited` event (its `action` detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitedAction {
    /// The per-IP sign-in budget, or the per-account failed sign-ins.
    SignIn,
    /// The per-IP sign-up budget.
    Register,
    /// The per-IP refresh budget.
    Refresh,
    /// The per-IP budget of password and email flows.
    Email,
    /// The per-IP budget of passkey ceremony options.
    PasskeyOptions,
    /// Guest accounts (`POST /v1/sessions/anonymous`) per network.
    Anonymous,
    /// Sign-in mails (`POST /v1/sessions/email`) per address.
    EmailSignIn,
}

impl RateLimitedAction {
    /// The stored text of the `action` detail.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::Register => "register",
            Self::Refresh => "refresh",
            Self::Email => "email",
            Self::PasskeyOptions => "passkey_options",
            Self::Anonymous => "anonymous",
            Self::EmailSignIn => "email_sign_in",
        }
    }
}

impl From<crate::auth::limits::Action> for RateLimitedAction {
    fn from(action: crate::auth::limits::Action) -> Self {
        use crate::auth::limits::Action;
        match action {
            Action::SignIn => Self::SignIn,
            Action::Register => Self::Register,
            Action::Refresh => Self::Refresh,
            Action::Email => Self::Email,
            Action::PasskeyOptions => Self::PasskeyOptions,
        }
    }
}

/// A security event, as the use cases name it. The type names
/// ([`AuditEvent::kind`]: `login.succeeded`, ...) are part of the API:
/// clients filter `/v1/admin/audit` and webhooks by them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// `user.registered`.
    UserRegistered,
    /// `login.succeeded`: `sid` of the new session; `new_device` when the
    /// user had not signed in from this device before.
    LoginSucceeded {
        /// The new session.
        sid: String,
        /// First sign-in from this user-agent family and network.
        new_device: bool,
    },
    /// `login.succeeded` with `step_up: true`: the user proved who they are
    /// again on an existing session (`POST /v1/me/reauthenticate`); no new
    /// session. (A failed proof is `login.failed`, reason
    /// `reauthentication_failed`.)
    Reauthenticated {
        /// The session that proved itself.
        sid: String,
        /// `password`, `totp` or `passkey`.
        method: &'static str,
    },
    /// `login.failed` (`reason`: `invalid_credentials`, `account_disabled`, ...).
    LoginFailed {
        /// Why, as a fixed word.
        reason: &'static str,
    },
    /// `logout` (`scope`: `local`, `others`, `global`, `session`).
    Logout {
        /// Which sessions ended.
        scope: &'static str,
        /// How many sessions were revoked.
        revoked: u64,
    },
    /// `token.refreshed` (`grace`: the retired token was answered within
    /// the grace window).
    TokenRefreshed {
        /// The session.
        sid: String,
        /// Answered from the grace window.
        grace: bool,
        /// The session's refresh generation (refreshes so far): between
        /// two stored events of a session, their difference is how many
        /// refreshes it made (`PORTCULLIS_AUDIT_REFRESH=hourly` stores one
        /// an hour).
        generation: u64,
    },
    /// `token.reuse_detected`: a retired refresh token came back; the
    /// family is revoked.
    TokenReuseDetected {
        /// The revoked session.
        sid: String,
    },
    /// `password.changed`.
    PasswordChanged {
        /// Other sessions revoked.
        revoked: u64,
    },
    /// `password.reset_requested`.
    PasswordResetRequested,
    /// `password.reset`.
    PasswordReset {
        /// Sessions revoked.
        revoked: u64,
    },
    /// `email.verified`.
    EmailVerified,
    /// `email.changed`.
    EmailChanged,
    /// `mfa.enabled`.
    MfaEnabled,
    /// `mfa.disabled`.
    MfaDisabled,
    /// `mfa.failed`.
    MfaFailed,
    /// `passkey.added`.
    PasskeyAdded,
    /// `passkey.removed`.
    PasskeyRemoved,
    /// `captcha.failed`: a CAPTCHA was required and missing, wrong or used.
    CaptchaFailed,
    /// `rate_limited` (`action`: the per-IP budget that ran out).
    RateLimited {
        /// The budget (stored as its text: `sign_in`, `register`, ...).
        action: RateLimitedAction,
    },
    /// `account.deleted`.
    AccountDeleted,
    /// `admin.<action>`, e.g. `admin.user_updated`: the event's `user_id`
    /// is the acting admin, the user acted on is `target_user_id` in the
    /// details (so the target's own feed never shows who the admin was).
    Admin {
        /// The action, a fixed word.
        action: &'static str,
        /// The user acted on.
        target: Option<String>,
        /// What changed (fixed words, counts, role names; never a secret).
        facts: Vec<(&'static str, String)>,
    },
    /// `token.revoked`: a session ended through `POST /oauth/revoke`.
    TokenRevoked {
        /// The session.
        sid: String,
    },
    /// `mfa.recovery_code_used`: a recovery code was spent (sign-in or
    /// password reset).
    MfaRecoveryCodeUsed,
    /// `mfa.recovery_codes_regenerated`: a new set replaced the old one.
    MfaRecoveryCodesRegenerated {
        /// Other sessions revoked.
        revoked: u64,
    },
    /// `identity.linked` (federated sign-in: nothing emits it yet).
    IdentityLinked {
        /// The identity provider.
        provider: String,
    },
    /// `identity.unlinked` (federated sign-in: nothing emits it yet).
    IdentityUnlinked {
        /// The identity provider.
        provider: String,
    },
    /// `consent.granted` (OpenID provider consents: nothing emits it yet).
    ConsentGranted {
        /// The client the user consented to.
        client_id: String,
    },
    /// `consent.revoked` (OpenID provider consents: nothing emits it yet).
    ConsentRevoked {
        /// The client whose consent was withdrawn.
        client_id: String,
    },
    /// `suspicious.<rule>`: a detection rule fired (or the user reported it).
    Suspicious(Suspicion),
}

/// What a detection rule saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspicion {
    /// `suspicious.failed_logins`: failed sign-ins of one account reached
    /// `PORTCULLIS_DETECT_ACCOUNT_FAILURES` within 15 minutes.
    FailedLogins {
        /// Failures in the window.
        count: u32,
    },
    /// `suspicious.credential_stuffing`: one IP failed on
    /// `PORTCULLIS_DETECT_STUFFING_ACCOUNTS` distinct accounts in the window.
    CredentialStuffing {
        /// Distinct accounts.
        accounts: u32,
    },
    /// `suspicious.token_reuse`: a retired refresh token was presented.
    TokenReuse {
        /// The revoked session.
        sid: String,
    },
    /// `suspicious.burst`: one account signed in from
    /// `PORTCULLIS_DETECT_BURST_NETWORKS` distinct networks within the window.
    Burst {
        /// Distinct networks.
        networks: u32,
    },
    /// `suspicious.reported`: the user answered a new-sign-in notice with
    /// "not me".
    Reported {
        /// The session the notice was about.
        sid: String,
        /// Sessions revoked.
        revoked: u64,
    },
}

impl Suspicion {
    /// The rule name (the part after `suspicious.`, and the metric label).
    pub fn rule(&self) -> &'static str {
        match self {
            Self::FailedLogins { .. } => "failed_logins",
            Self::CredentialStuffing { .. } => "credential_stuffing",
            Self::TokenReuse { .. } => "token_reuse",
            Self::Burst { .. } => "burst",
            Self::Reported { .. } => "reported",
        }
    }

    /// Every rule, for metrics that exist at 0 from start-up.
    pub const RULES: [&'static str; 5] = [
        "failed_logins",
        "credential_stuffing",
        "token_reuse",
        "burst",
        "reported",
    ];
}

impl AuditEvent {
    /// The event type (`login.succeeded`, `suspicious.burst`, ...).
    pub fn kind(&self) -> String {
        let fixed = match self {
            Self::UserRegistered => "user.registered",
            Self::LoginSucceeded { .. } | Self::Reauthenticated { .. } => "login.succeeded",
            Self::LoginFailed { .. } => "login.failed",
            Self::Logout { .. } => "logout",
            Self::TokenRefreshed { .. } => "token.refreshed",
            Self::TokenReuseDetected { .. } => "token.reuse_detected",
            Self::PasswordChanged { .. } => "password.changed",
            Self::PasswordResetRequested => "password.reset_requested",
            Self::PasswordReset { .. } => "password.reset",
            Self::EmailVerified => "email.verified",
            Self::EmailChanged => "email.changed",
            Self::MfaEnabled => "mfa.enabled",
            Self::MfaDisabled => "mfa.disabled",
            Self::MfaFailed => "mfa.failed",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRemoved => "passkey.removed",
            Self::CaptchaFailed => "captcha.failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::AccountDeleted => "account.deleted",
            Self::TokenRevoked { .. } => "token.revoked",
            Self::MfaRecoveryCodeUsed => "mfa.recovery_code_used",
            Self::MfaRecoveryCodesRegenerated { .. } => "mfa.recovery_codes_regenerated",
            Self::IdentityLinked { .. } => "identity.linked",
            Self::IdentityUnlinked { .. } => "identity.unlinked",
            Self::ConsentGranted { .. } => "consent.granted",
            Self::ConsentRevoked { .. } => "consent.revoked",
            Self::Admin { action, .. } => return format!("admin.{action}"),
            Self::Suspicious(s) => return format!("suspicious.{}", s.rule()),
        };
        fixed.to_string()
    }

    /// A refusal that costs an attacker nothing (a 429, a CAPTCHA failure,
    /// a throttled sign-in): stored aggregated, never one per request
    /// ([`AuditSink::push_refusal`]).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::CaptchaFailed)
    }

    /// `success`, `failure` or `detected`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::LoginFailed { .. }
            | Self::MfaFailed
            | Self::CaptchaFailed
            | Self::RateLimited { .. }
            | Self::TokenReuseDetected { .. } => "failure",
            Self::Suspicious(_) => "detected",
            _ => "success",
        }
    }

    /// Event-specific facts (ids, counts, fixed words; never a secret).
    pub fn details(&self) -> BTreeMap<String, String> {
        let mut d = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            d.insert(k.to_string(), v);
        };
        match self {
            Self::LoginSucceeded { sid, new_device } => {
                put("sid", sid.clone());
                put("new_device", new_device.to_string());
            }
            Self::Reauthenticated { sid, method } => {
                put("sid", sid.clone());
                put("step_up", "true".into());
                put("method", (*method).to_string());
            }
            Self::LoginFailed { reason } => put("reason", (*reason).to_string()),
            Self::Logout { scope, revoked } => {
                put("scope", (*scope).to_string());
                put("revoked", revoked.to_string());
            }
            Self::TokenRefreshed {
                sid,
                grace,
                generation,
            } => {
                put("sid", sid.clone());
                if *grace {
                    put("grace", "true".into());
                }
                put("generation", generation.to_string());
            }
            Self::TokenReuseDetected { sid } => put("sid", sid.clone()),
            Self::PasswordChanged { revoked } | Self::PasswordReset { revoked } => {
                put("revoked", revoked.to_string());
            }
            Self::RateLimited { action } => put("action", action.as_str().to_string()),
            Self::Admin { target, facts, .. } => {
                if let Some(t) = target {
                    put("target_user_id", t.clone());
                }
                for (k, v) in facts {
                    put(k, v.clone());
                }
            }
            Self::TokenRevoked { sid } => put("sid", sid.clone()),
            Self::MfaRecoveryCodesRegenerated { revoked } => put("revoked", revoked.to_string()),
            Self::IdentityLinked { provider } | Self::IdentityUnlinked { provider } => {
                put("provider", provider.clone());
            }
            Self::ConsentGranted { client_id } | Self::ConsentRevoked { client_id } => {
                put("client_id", client_id.clone());
            }
            Self::Suspicious(s) => match s {
                Suspicion::FailedLogins { count } => put("count", count.to_string()),
                Suspicion::CredentialStuffing { accounts } => {
                    put("accounts", accounts.to_string());
                }
                Suspicion::TokenReuse { sid } => put("sid", sid.clone()),
                Suspicion::Burst { networks } => put("networks", networks.to_string()),
                Suspicion::Reported { sid, revoked } => {
                    put("sid", sid.clone());
                    put("revoked", revoked.to_string());
                }
            },
            _ => {}
        }
        d
    }

    /// The record to store for this event.
    pub fn record(
        &self,
        user_id: Option<&str>,
        ip: Option<String>,
        user_agent: Option<&str>,
        at: i64,
        retention_secs: i64,
    ) -> AuditRecord {
        AuditRecord {
            id: audit_id(at),
            kind: self.kind(),
            user_id: user_id.map(str::to_string),
            ip,
            user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
            at,
            outcome: self.outcome().to_string(),
            details: self.details(),
            expires_at: at.saturating_add(retention_secs),
        }
    }
}

/// Writes the log line of an event (target `portcullis::audit`) and counts
/// suspicious ones.
pub fn log(record: &AuditRecord) {
    let details = serde_json::to_string(&record.details).unwrap_or_default();
    if let Some(rule) = record.kind.strip_prefix("suspicious.") {
        metrics::counter!("portcullis_suspicious_events_total", "rule" => rule.to_string())
            .increment(1);
        tracing::warn!(
            target: "portcullis::audit",
            event = %record.kind,
            event_id = %record.id,
            user_id = record.user_id.as_deref(),
            ip = record.ip.as_deref(),
            outcome = %record.outcome,
            details = %details,
            "security event"
        );
    } else {
        tracing::info!(
            target: "portcullis::audit",
            event = %record.kind,
            event_id = %record.id,
            user_id = record.user_id.as_deref(),
            ip = record.ip.as_deref(),
            outcome = %record.outcome,
            details = %details,
            "security event"
        );
    }
}

#[cfg(test)]
mod tests;

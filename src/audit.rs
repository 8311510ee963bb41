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
//! Events never carry a secret: the variants below hold only static
//! reasons, counts and ids, and the record adds the user id, client IP and
//! user agent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::AuditRecord;
use crate::store::security::audit_id;

/// Events the channel holds before new ones are dropped (and counted).
pub const CHANNEL_CAPACITY: usize = 10_000;
/// Largest batch written at once.
pub const MAX_BATCH: usize = 500;

/// A security event, as the use cases name it. The type names are the
/// contract (DESIGN.md, "Security events").
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
    PasswordReset,
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
        /// `sign_in`, `register`, `refresh`, `email`.
        action: &'static str,
    },
    /// `account.deleted`.
    AccountDeleted,
    /// `admin.<action>`, e.g. `admin.user_disabled`; `target` is the user
    /// acted on (the event's `user_id` is the admin).
    Admin {
        /// The action, a fixed word.
        action: &'static str,
        /// The user acted on.
        target: Option<String>,
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
            Self::PasswordReset => "password.reset",
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
            Self::Admin { action, .. } => return format!("admin.{action}"),
            Self::Suspicious(s) => return format!("suspicious.{}", s.rule()),
        };
        fixed.to_string()
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
            Self::TokenRefreshed { sid, grace } => {
                put("sid", sid.clone());
                if *grace {
                    put("grace", "true".into());
                }
            }
            Self::TokenReuseDetected { sid } => put("sid", sid.clone()),
            Self::PasswordChanged { revoked } => put("revoked", revoked.to_string()),
            Self::RateLimited { action } => put("action", (*action).to_string()),
            Self::Admin {
                target: Some(t), ..
            } => put("target_user_id", t.clone()),
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

/// What the channel carries to the flusher.
#[derive(Debug)]
pub enum SinkMessage {
    /// An event to store.
    Event(AuditRecord),
    /// Answer once everything queued before this is stored.
    Flush(oneshot::Sender<()>),
}

/// The sending side of the audit buffer (cheap to clone), and the
/// receiving side until the flusher takes it.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<SinkMessage>,
    rx: Arc<Mutex<Option<mpsc::Receiver<SinkMessage>>>>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").finish_non_exhaustive()
    }
}

impl Default for AuditSink {
    fn default() -> Self {
        Self::new(CHANNEL_CAPACITY)
    }
}

impl AuditSink {
    /// A buffer of `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// Queues a record for the flusher without waiting; a full buffer
    /// drops it (counted, and already logged by the caller).
    pub fn push(&self, record: AuditRecord) {
        if self.tx.try_send(SinkMessage::Event(record)).is_err() {
            metrics::counter!("portcullis_audit_writes_total", "result" => "dropped").increment(1);
            tracing::warn!("audit buffer full: event logged but not stored");
        }
    }

    /// Waits (at most `limit`) until everything queued so far is stored;
    /// false when the flusher did not answer in time (or is not running).
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        let sent = tokio::time::timeout(limit, self.tx.send(SinkMessage::Flush(done))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return false;
        }
        matches!(tokio::time::timeout(limit, wait).await, Ok(Ok(())))
    }

    /// The receiving side, once (for the flusher task).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<SinkMessage>> {
        self.rx.lock().ok().and_then(|mut r| r.take())
    }
}

/// Registers the audit, webhook and detection counters at 0, so they exist
/// from start-up.
pub fn register_metrics() {
    for result in ["stored", "failed", "dropped"] {
        metrics::counter!("portcullis_audit_writes_total", "result" => result).increment(0);
    }
    for result in ["delivered", "failed", "abandoned"] {
        metrics::counter!("portcullis_webhook_deliveries_total", "result" => result).increment(0);
    }
    for rule in Suspicion::RULES {
        metrics::counter!("portcullis_suspicious_events_total", "rule" => rule).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_contracts_names() {
        assert_eq!(AuditEvent::UserRegistered.kind(), "user.registered");
        assert_eq!(
            AuditEvent::RateLimited { action: "sign_in" }.kind(),
            "rate_limited"
        );
        assert_eq!(
            AuditEvent::Admin {
                action: "user_disabled",
                target: None
            }
            .kind(),
            "admin.user_disabled"
        );
        assert_eq!(
            AuditEvent::Suspicious(Suspicion::Burst { networks: 3 }).kind(),
            "suspicious.burst"
        );
        assert_eq!(
            AuditEvent::LoginFailed {
                reason: "invalid_credentials"
            }
            .outcome(),
            "failure"
        );
    }

    #[test]
    fn record_truncates_the_user_agent_and_sets_retention() {
        let r =
            AuditEvent::UserRegistered.record(Some("u1"), None, Some(&"x".repeat(900)), 100, 50);
        assert_eq!(r.user_agent.unwrap().len(), 256);
        assert_eq!(r.expires_at, 150);
        assert_eq!(r.outcome, "success");
    }

    #[tokio::test]
    async fn a_full_buffer_drops_instead_of_blocking() {
        let sink = AuditSink::new(2);
        for _ in 0..5 {
            sink.push(AuditEvent::UserRegistered.record(None, None, None, 1, 1));
        }
        let mut rx = sink.take_receiver().unwrap();
        assert!(sink.take_receiver().is_none());
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 2);
    }
}

//! Security activity: the one call that records an event
//! ([`Core::audit`]), the user's feed and the admin's audit log, new-device
//! detection with its "not me" answer, and the detection rules.
//!
//! # For other use cases
//!
//! - Record an event: `self.audit(AuditEvent::EmailVerified, Some(&user_id), client)`.
//!   It never waits for the store and never fails the request.
//! - After any successful sign-in (password, MFA, passkey), call
//!   `self.signed_in(&account, &sid, client).await`: it records
//!   `login.succeeded`, checks the device and runs the burst rule.
//!
//! # Mail seam
//!
//! The new-sign-in notice and the reset mail after "not me" go through
//! [`Core::deliver_notice`]. Until the mailer lands it hands notices to an
//! in-process capture when one is switched on (tests), and otherwise logs
//! that a notice was not sent (never its token). With the mailer, that one
//! function enqueues the mail instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{Account, ClientInfo, Core, Error, FieldError, Principal, Result};
use crate::audit::{AuditEvent, AuditSink, Suspicion};
use crate::auth::tokens::TimeClaims;
use crate::clock::{UnixTime, secs};
use crate::store::{AuditQuery, AuditRecord, OnceKey};

/// JOSE `typ` of the "not me" token of a new-sign-in notice.
pub use crate::auth::tokens::NOT_ME_TYP;
/// Default and largest page of `/v1/me/activity` and `/v1/admin/audit`.
pub const PAGE_DEFAULT: u32 = 50;
/// Largest page.
pub const PAGE_MAX: u32 = 100;
/// How long a read of the feed waits for this replica's buffer to be stored.
const READ_FLUSH_WAIT: Duration = Duration::from_secs(2);
/// IPs remembered by the credential-stuffing rule (per replica). With the
/// default threshold that is at most about 50,000 × 20 × 40 bytes (40 MB).
const STUFFING_MAX_IPS: usize = 50_000;

/// SHA-256 of an account name as typed.
type AccountDigest = [u8; 32];

/// State of the security features shared by every request.
#[derive(Debug, Default)]
pub struct SecurityState {
    /// The audit buffer.
    pub(crate) sink: AuditSink,
    /// Failed accounts per IP (credential-stuffing rule): SHA-256 of the
    /// account as typed (fixed size, whatever was typed), and when.
    stuffing: Mutex<HashMap<IpAddr, Vec<(AccountDigest, UnixTime)>>>,
    /// Notices handed over while no mailer exists (tests only).
    capture: Mutex<Option<NoticeOutbox>>,
}

/// A notice for a user (sent by email once the mailer lands).
#[derive(Debug, Clone)]
pub enum Notice {
    /// A sign-in from a device the user had not used before.
    NewSignIn {
        /// The account.
        user_id: String,
        /// Where to send it.
        email: String,
        /// When (Unix seconds).
        at: UnixTime,
        /// Approximate device: user-agent family (`Firefox on Linux`).
        device: String,
        /// Client address.
        ip: Option<String>,
        /// Single-use token for `POST /v1/security/not-me` (a secret: the
        /// mail carries it in a link, nothing logs it).
        not_me_token: SecretString,
    },
    /// After "not me": every session ended; the user should reset the
    /// password (the mailer sends a reset link).
    ResetAfterNotMe {
        /// The account.
        user_id: String,
        /// Where to send it.
        email: String,
    },
}

/// Notices captured in process (a test seam until the mailer lands).
#[derive(Debug, Clone, Default)]
pub struct NoticeOutbox(Arc<Mutex<Vec<Notice>>>);

impl NoticeOutbox {
    /// Takes every captured notice.
    pub fn take(&self) -> Vec<Notice> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// One security event as clients see it (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// Event id (also the webhook id).
    pub id: String,
    /// Event type.
    pub kind: String,
    /// The account concerned.
    pub user_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Unix seconds.
    pub at: UnixTime,
    /// `success`, `failure` or `detected`.
    pub outcome: String,
    /// Event-specific facts.
    pub details: std::collections::BTreeMap<String, String>,
}

impl From<AuditRecord> for SecurityEvent {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            user_id: r.user_id,
            ip: r.ip,
            user_agent: r.user_agent,
            at: r.at,
            outcome: r.outcome,
            details: r.details,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The events.
    pub events: Vec<SecurityEvent>,
    /// Pass as `cursor` for the next (older) page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Filters of the admin audit log, as received.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// `user_id=`.
    pub user_id: Option<String>,
    /// `type=` (a trailing `*` matches a prefix).
    pub kind: Option<String>,
    /// `ip=`.
    pub ip: Option<String>,
    /// `since=`: Unix seconds or RFC 3339.
    pub since: Option<String>,
    /// `until=`: Unix seconds or RFC 3339.
    pub until: Option<String>,
    /// `cursor=`.
    pub cursor: Option<String>,
    /// `limit=`.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NotMeClaims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    /// The device the notice is about (not secret: the token is signed).
    dev: String,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl TimeClaims for NotMeClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn nbf(&self) -> u64 {
        self.nbf
    }
}

/// The coarse user-agent family a device is known by: browser (or first
/// product token) and OS. Coarse on purpose: browser updates must not make
/// a device new.
pub fn ua_family(ua: Option<&str>) -> String {
    let Some(ua) = ua.map(str::trim).filter(|u| !u.is_empty()) else {
        return "unknown".to_string();
    };
    let has = |s: &str| ua.contains(s);
    let browser = if has("Edg/") || has("Edge/") {
        "Edge".to_string()
    } else if has("OPR/") || has("Opera") {
        "Opera".to_string()
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox".to_string()
    } else if has("Chrome/") || has("CriOS/") || has("Chromium/") {
        "Chrome".to_string()
    } else if has("Safari/") {
        "Safari".to_string()
    } else {
        ua.split(['/', ' ', ';'])
            .next()
            .unwrap_or("unknown")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(32)
            .collect()
    };
    let os = if has("Windows") {
        Some("Windows")
    } else if has("iPhone") || has("iPad") || has("iOS") {
        Some("iOS")
    } else if has("Android") {
        Some("Android")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Linux") {
        Some("Linux")
    } else {
        None
    };
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser,
    }
}

/// The network of an address: IPv4 /24, IPv6 /48 (IPv4-mapped IPv6 counts
/// as IPv4).
pub fn network_of(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => ipnet::Ipv4Net::new(v4, 24)
            .map(|n| n.trunc().to_string())
            .unwrap_or_default(),
        Some(IpAddr::V6(v6)) => ipnet::Ipv6Net::new(v6, 48)
            .map(|n| n.trunc().to_string())
            .unwrap_or_default(),
        None => "unknown".to_string(),
    }
}

fn parse_time(field: &str, raw: &str) -> Result<UnixTime> {
    let raw = raw.trim();
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            Error::Validation(vec![FieldError::invalid(
                field,
                "Time",
                "must be Unix seconds or an RFC 3339 timestamp",
            )])
        })
}

fn parse_cursor(cursor: Option<String>) -> Result<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(c) if !c.is_empty() && c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_hexdigit()) => {
            Ok(Some(c))
        }
        Some(_) => Err(Error::Validation(vec![FieldError::invalid(
            "cursor",
            "Cursor",
            "is not one this service returned",
        )])),
    }
}

fn parse_limit(limit: Option<u32>) -> Result<usize> {
    match limit.unwrap_or(PAGE_DEFAULT) {
        n @ 1..=PAGE_MAX => Ok(n as usize),
        _ => Err(Error::Validation(vec![FieldError::invalid(
            "limit",
            "Limit",
            "must be between 1 and 100",
        )])),
    }
}

impl Core {
    /// Records a security event: one log line now, stored off the request
    /// path (see `crate::audit`). Never fails and never waits. A refusal
    /// (429, CAPTCHA, throttled sign-in) is only counted: it is stored
    /// aggregated, one event per client network, action and minute.
    pub fn audit(&self, event: AuditEvent, user_id: Option<&str>, client: &ClientInfo) {
        let record = event.record(
            user_id,
            client.ip.map(|ip| ip.to_string()),
            client.user_agent.as_deref(),
            self.clock.now(),
            secs(self.settings.security.audit_retention),
        );
        if event.is_refusal() {
            // Aggregated: one stored event per network, action and minute
            // (the refusal itself is logged by its caller).
            let network = super::throttle::network_of(client.ip);
            self.security.sink.push_refusal(record, network);
            return;
        }
        crate::audit::log(&record);
        self.security.sink.push(record);
    }

    /// Records an event at once, without the buffer: for processes that run
    /// no flusher (the CLI). Stores it (and queues its webhook when one is
    /// configured) before returning.
    pub async fn audit_now(
        &self,
        event: AuditEvent,
        user_id: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = self.clock.now();
        let record = event.record(
            user_id,
            client.ip.map(|ip| ip.to_string()),
            client.user_agent.as_deref(),
            now,
            secs(self.settings.security.audit_retention),
        );
        crate::audit::log(&record);
        let s = &self.settings.security;
        if s.webhook_url.is_some() && s.webhook_secret.is_some() {
            let delivery = crate::webhooks::delivery_of(&record, now);
            self.store.enqueue_webhooks(&[delivery]).await?;
        }
        self.store.append_audit(&[record]).await?;
        Ok(())
    }

    /// Waits until the events recorded so far are stored (bounded); false
    /// when that did not happen in time.
    pub async fn flush_audit(&self, limit: Duration) -> bool {
        self.security.sink.flush(limit).await
    }

    /// [`Core::flush_audit`], closing every refusal window (their webhooks
    /// are queued): for a clean shutdown.
    pub async fn close_audit(&self, limit: Duration) -> bool {
        self.security.sink.close(limit).await
    }

    /// Starts capturing notices in process instead of dropping them (a test
    /// seam until the mailer lands); returns the outbox.
    #[doc(hidden)]
    pub fn capture_notices(&self) -> NoticeOutbox {
        let outbox = NoticeOutbox::default();
        if let Ok(mut c) = self.security.capture.lock() {
            *c = Some(outbox.clone());
        }
        outbox
    }

    /// The in-process view of notices (tests, via
    /// `Application::capture_notices`). The mails themselves are queued by
    /// the callers (`new_sign_in`, and a password-reset mail after "not me").
    pub(super) async fn deliver_notice(&self, notice: Notice) {
        let capture = self.security.capture.lock().ok().and_then(|c| c.clone());
        if let Some(outbox) = capture
            && let Ok(mut v) = outbox.0.lock()
        {
            v.push(notice);
        }
    }

    /// The caller's own security events, newest first.
    pub async fn activity(
        &self,
        who: &Principal,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<EventPage> {
        let query = AuditQuery {
            user_id: Some(who.user_id.clone()),
            before: parse_cursor(cursor)?,
            limit: parse_limit(limit)?,
            ..AuditQuery::default()
        };
        self.read_events(query).await
    }

    /// The audit log for an admin, filtered.
    pub async fn audit_log(&self, _admin: &Principal, f: AuditFilter) -> Result<EventPage> {
        let mut errors = Vec::new();
        let since = f
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()
            .map_err(|e| collect(&mut errors, e))
            .ok()
            .flatten();
        let until = f
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()
            .map_err(|e| collect(&mut errors, e))
            .ok()
            .flatten();
        let ip = match f.ip.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => match raw.parse::<IpAddr>() {
                Ok(ip) => Some(ip.to_string()),
                Err(_) => {
                    errors.push(FieldError::invalid(
                        "ip",
                        "IP address",
                        "is not an IP address",
                    ));
                    None
                }
            },
        };
        let kind = f.kind.filter(|k| !k.is_empty());
        if kind.as_ref().is_some_and(|k| {
            k.len() > 64
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || matches!(c, '.' | '_' | '*'))
        }) {
            errors.push(FieldError::invalid("type", "Type", "is not an event type"));
        }
        let before = parse_cursor(f.cursor)
            .map_err(|e| collect(&mut errors, e))
            .ok()
            .flatten();
        let limit = parse_limit(f.limit)
            .map_err(|e| collect(&mut errors, e))
            .ok();
        let (Some(limit), true) = (limit, errors.is_empty()) else {
            return Err(Error::Validation(errors));
        };
        let query = AuditQuery {
            user_id: f.user_id.filter(|u| !u.is_empty()),
            kind,
            ip,
            since,
            until,
            before,
            limit,
        };
        self.read_events(query).await
    }

    /// One page: `limit + 1` are read to know whether another page exists.
    /// This replica's buffer is flushed first, so a caller sees their own
    /// latest actions.
    async fn read_events(&self, mut query: AuditQuery) -> Result<EventPage> {
        if !self.flush_audit(READ_FLUSH_WAIT).await {
            tracing::warn!(
                "audit buffer not flushed before a read; the page may miss recent events"
            );
        }
        let limit = query.limit;
        query.limit = limit + 1;
        let mut events = self.store.audit_events(&query, self.clock.now()).await?;
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(EventPage {
            events: events.into_iter().map(SecurityEvent::from).collect(),
            next_cursor,
        })
    }

    /// After a successful sign-in: records `login.succeeded`, remembers the
    /// device, sends a new-sign-in notice for a new one (not for the first
    /// sign-in of an account) and runs the burst rule. Returns whether the
    /// device was new. A store failure here is logged, never fails the
    /// sign-in.
    pub(super) async fn signed_in(
        &self,
        account: &Account,
        sid: &str,
        client: &ClientInfo,
    ) -> bool {
        let now = self.clock.now();
        let s = &self.settings.security;
        let family = ua_family(client.user_agent.as_deref());
        let network = network_of(client.ip);
        let key = format!("{family}|{network}");
        let before = match self
            .store
            .note_device(&account.id, &key, &network, now, s.known_devices)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "known devices unavailable: no new-device check");
                self.audit(
                    AuditEvent::LoginSucceeded {
                        sid: sid.to_string(),
                        new_device: false,
                    },
                    Some(&account.id),
                    client,
                );
                return false;
            }
        };
        let first = before.devices.is_empty();
        let new_device = !first && !before.knows(&key);
        self.audit(
            AuditEvent::LoginSucceeded {
                sid: sid.to_string(),
                new_device,
            },
            Some(&account.id),
            client,
        );
        // Burst: distinct networks within the window, fired once at the crossing.
        let since = now - secs(s.detect_burst_window);
        let mut after = before.clone();
        after.sight(&key, &network, now, usize::MAX);
        let threshold = s.detect_burst_networks as usize;
        let (was, is) = (before.networks_since(since), after.networks_since(since));
        if was < threshold && is >= threshold {
            self.audit(
                AuditEvent::Suspicious(Suspicion::Burst {
                    networks: u32::try_from(is).unwrap_or(u32::MAX),
                }),
                Some(&account.id),
                client,
            );
        }
        if new_device {
            // The mail: queued with its non-secret details; its "not me"
            // token is signed when it is sent.
            let detail = super::mail::NewSignInDetail {
                sid: sid.to_string(),
                dev: key.clone(),
                device: family.clone(),
                ip: client.ip.map(|ip| ip.to_string()),
                at: now,
            };
            let id = format!("new_sign_in:{}:{sid}", account.id);
            let queued = match serde_json::to_string(&detail) {
                Ok(detail) => {
                    self.enqueue_detailed(
                        id,
                        super::mail::KIND_NEW_SIGN_IN,
                        Some(&account.id),
                        None,
                        Some(detail),
                    )
                    .await
                }
                Err(e) => Err(Error::Unexpected(e.into())),
            };
            if let Err(e) = queued {
                tracing::warn!(error = %e, user_id = %account.id, "could not queue a new-sign-in notice");
            }
            // The in-process view (tests) gets a token of its own; without
            // a capture nothing is signed here (the mail signs at send time).
            let capturing = self
                .security
                .capture
                .lock()
                .map(|c| c.is_some())
                .unwrap_or(false);
            match capturing.then(|| self.not_me_token(&account.id, sid, &key)) {
                None => {}
                Some(Ok(token)) => {
                    self.deliver_notice(Notice::NewSignIn {
                        user_id: account.id.clone(),
                        email: account.email.clone(),
                        at: now,
                        device: family,
                        ip: client.ip.map(|ip| ip.to_string()),
                        not_me_token: token,
                    })
                    .await;
                }
                Some(Err(e)) => tracing::error!(error = ?e, "could not sign a not-me token"),
            }
        }
        new_device
    }

    /// A signed, single-use "not me" token for the sign-in `sid` from device `dev`.
    pub(super) fn not_me_token(
        &self,
        user_id: &str,
        sid: &str,
        dev: &str,
    ) -> anyhow::Result<SecretString> {
        let now = self.clock.now_u64();
        let ttl = self.settings.security.not_me_ttl.as_secs();
        let claims = NotMeClaims {
            iss: self.tokens.issuer().to_string(),
            aud: self.tokens.audience_for(NOT_ME_TYP),
            sub: user_id.to_string(),
            sid: sid.to_string(),
            dev: dev.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
        };
        Ok(SecretString::from(self.tokens.sign(NOT_ME_TYP, &claims)?))
    }

    /// `POST /v1/security/not-me`: the user says a notified sign-in was not
    /// them. Every session of the user ends, the reported device is
    /// forgotten (a new sign-in from it alerts again), a reset mail goes
    /// out, and `suspicious.reported` is recorded. The token works once.
    pub async fn not_me(&self, token: &SecretString, client: &ClientInfo) -> Result<()> {
        let invalid = || Error::LinkInvalid("the link is invalid, expired or already used");
        let now = self.clock.now();
        let claims: NotMeClaims = self
            .tokens
            .verify(token.expose_secret(), NOT_ME_TYP, self.clock.now_u64())
            .map_err(|_| invalid())?;
        let expires = i64::try_from(claims.exp).unwrap_or(i64::MAX);
        if !self
            .store
            .claim_once(&OnceKey::NotMe(claims.jti.clone()), expires, now)
            .await?
        {
            return Err(invalid());
        }
        let Some(user) = self.store.user_by_id(&claims.sub).await? else {
            return Err(invalid());
        };
        let revoked = self.store.revoke_sessions_of(&user.id, None, now).await?;
        // The reported device is no longer "known": another sign-in from it
        // alerts again.
        self.store.forget_device(&user.id, &claims.dev).await?;
        self.audit(
            AuditEvent::Suspicious(Suspicion::Reported {
                sid: claims.sid,
                revoked,
            }),
            Some(&user.id),
            client,
        );
        // The reset mail (its link and code are made when it is sent).
        let id = format!("not_me_reset:{}:{}", user.id, claims.jti);
        if let Err(e) = self
            .enqueue(id, super::mail::KIND_RESET, Some(&user.id), None)
            .await
        {
            tracing::warn!(error = %e, user_id = %user.id, "could not queue the reset mail after not-me");
        }
        self.deliver_notice(Notice::ResetAfterNotMe {
            user_id: user.id,
            email: user.email,
        })
        .await;
        Ok(())
    }

    /// After a failed sign-in of `account` (the normalized email as typed):
    /// records `login.failed` (with the user id when the account exists)
    /// and runs the per-account and per-IP rules. `failures` counts this
    /// one.
    pub(super) async fn sign_in_failed(
        &self,
        account: &str,
        reason: &'static str,
        failures: Option<usize>,
        client: &ClientInfo,
    ) {
        let user_id = match self.store.user_by_email(account).await {
            Ok(u) => u.map(|u| u.id),
            Err(_) => None,
        };
        self.audit(
            AuditEvent::LoginFailed { reason },
            user_id.as_deref(),
            client,
        );
        let s = &self.settings.security;
        if let Some(count) = failures
            && count == s.detect_account_failures as usize
        {
            self.audit(
                AuditEvent::Suspicious(Suspicion::FailedLogins {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                }),
                user_id.as_deref(),
                client,
            );
        }
        if let Some(ip) = client.ip
            && let Some(accounts) = self.stuffing_crossed(ip, account)
        {
            self.audit(
                AuditEvent::Suspicious(Suspicion::CredentialStuffing { accounts }),
                None,
                client,
            );
        }
    }

    /// Notes a failure of `account` from `ip`; `Some(count)` exactly when
    /// the distinct accounts of the IP within the window reach the
    /// threshold (once per crossing).
    fn stuffing_crossed(&self, ip: IpAddr, account: &str) -> Option<u32> {
        let s = &self.settings.security;
        let now = self.clock.now();
        let since = now - secs(s.detect_stuffing_window);
        let threshold = s.detect_stuffing_accounts as usize;
        let mut map = self.security.stuffing.lock().ok()?;
        if map.len() >= STUFFING_MAX_IPS {
            map.retain(|_, seen| seen.iter().any(|(_, t)| *t > since));
            if map.len() >= STUFFING_MAX_IPS {
                map.clear();
            }
        }
        let account: AccountDigest = sha2::Sha256::digest(account.as_bytes()).into();
        let seen = map.entry(ip).or_default();
        seen.retain(|(_, t)| *t > since);
        if let Some(entry) = seen.iter_mut().find(|(a, _)| *a == account) {
            entry.1 = now;
            return None;
        }
        seen.push((account, now));
        // Keep the list short: only the count near the threshold matters.
        if seen.len() > threshold.saturating_mul(2) {
            seen.remove(0);
        }
        (seen.len() == threshold).then(|| u32::try_from(threshold).unwrap_or(u32::MAX))
    }

    /// Deletes audit events past retention and abandoned webhook deliveries.
    pub async fn purge_security_records(&self) -> Result<(u64, u64)> {
        let now = self.clock.now();
        let events = self.store.purge_audit(now).await?;
        let hooks = self.store.purge_webhooks(now).await?;
        Ok((events, hooks))
    }
}

fn collect(errors: &mut Vec<FieldError>, e: Error) {
    if let Error::Validation(mut v) = e {
        errors.append(&mut v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ua_families_are_coarse() {
        let ff = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let ff2 = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";
        assert_eq!(ua_family(Some(ff)), "Firefox on Linux");
        assert_eq!(ua_family(Some(ff)), ua_family(Some(ff2)));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(ua_family(Some(iphone)), "Safari on iOS");
        let android = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36";
        assert_eq!(ua_family(Some(android)), "Chrome on Android");
        assert_eq!(ua_family(Some("curl/8.5.0")), "curl");
        assert_eq!(ua_family(None), "unknown");
    }

    #[test]
    fn networks_are_24_and_48() {
        assert_eq!(network_of("203.0.113.77".parse().ok()), "203.0.113.0/24");
        assert_eq!(
            network_of("2001:db8:1234:5678::1".parse().ok()),
            "2001:db8:1234::/48"
        );
        assert_eq!(network_of("::ffff:10.1.2.3".parse().ok()), "10.1.2.0/24");
        assert_eq!(network_of(None), "unknown");
    }
}

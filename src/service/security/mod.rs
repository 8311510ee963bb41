//! Security activity: the one call that records an event
//! ([`Core::audit`](crate::service::Core::audit)), the user's feed and the admin's audit log, new-device
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
//! # Mail
//!
//! The new-sign-in notice and the reset mail after "not me" are queued
//! mails (`service::mail`): the notice with its non-secret details, its
//! "not me" token signed when it is sent.
//!
//! The `impl Core` of this capability is spread over sub-modules:
//! `events` (recording, reading and purging events), `devices` (the
//! successful sign-in, known devices and "not me") and `detection` (the
//! failed sign-in and its rules). The shared types live here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::AuditSink;
use crate::auth::tokens::RegisteredClaims;
use crate::clock::UnixTime;
use crate::store::AuditRecord;

mod detection;
mod devices;
mod events;

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
    /// `sub` is the user the notice went to; `jti` is claimed once used.
    #[serde(flatten)]
    registered: RegisteredClaims,
    sid: String,
    /// The device the notice is about (not secret: the token is signed).
    dev: String,
}

crate::auth::tokens::registered!(NotMeClaims);

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

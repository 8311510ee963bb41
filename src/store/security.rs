//! Records of security activity: audit events, the webhook
//! delivery queue and the devices each user has signed in from, plus the
//! rules both backends share for them (id order, filters, device upkeep).
//!
//! Like every stored record (see [`records`](super::records)), a field added
//! later carries `#[serde(default)]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One security event as stored. Holds no secret: no password, token, code
/// or hash ever reaches `details` (the typed events of `crate::audit` decide
/// what goes in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Sortable id (see [`audit_id`]): string order is time order, so it is
    /// the cursor of newest-first pages. Also the webhook event id.
    pub id: String,
    /// The event type (`login.succeeded`, `suspicious.burst`, ...).
    pub kind: String,
    /// The account concerned, when known.
    pub user_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// Unix seconds.
    pub at: i64,
    /// `success`, `failure` or `detected`.
    pub outcome: String,
    /// Event-specific facts (never a secret).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// When retention ends (`at + PORTCULLIS_AUDIT_RETENTION`); reads ignore
    /// the event after it, the purge deletes it.
    pub expires_at: i64,
}

impl AuditRecord {
    /// The `count` of an aggregated event (1 for any other).
    pub fn count(&self) -> u64 {
        self.details
            .get("count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1)
    }

    /// `self` with `extra` added to its count.
    pub fn counted(mut self, extra: u64) -> Self {
        let total = self.count().saturating_add(extra);
        self.details.insert("count".into(), total.to_string());
        self
    }
}

/// Width of the time prefix of an [`audit_id`] (Unix seconds, zero padded).
const TIME_DIGITS: usize = 12;

/// An audit id for an event at `at`: the zero-padded time, then a UUIDv7
/// (monotonic within a process). Sorting ids sorts events by time, ties by
/// creation order.
pub fn audit_id(at: i64) -> String {
    format!("{}{}", time_prefix(at), uuid::Uuid::now_v7().simple())
}

/// The id prefix of second `at`: every id of an event at `at` or later
/// sorts at or after it.
pub fn time_prefix(at: i64) -> String {
    format!("{:0width$}", at.max(0), width = TIME_DIGITS)
}

/// Which audit events to read: all filters are optional and combine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events of this user.
    pub user_id: Option<String>,
    /// Only events of this type; a trailing `*` matches a prefix
    /// (`suspicious.*`).
    pub kind: Option<String>,
    /// Only events from this client address.
    pub ip: Option<String>,
    /// Only events at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Only events at or before this time (Unix seconds).
    pub until: Option<i64>,
    /// Only events older than this id (the cursor of the previous page).
    pub before: Option<String>,
    /// At most this many events.
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `e` passes every filter (the id range aside) and is still
    /// retained at `now`. Both backends apply this one rule.
    pub fn matches(&self, e: &AuditRecord, now: i64) -> bool {
        e.expires_at > now
            && self
                .user_id
                .as_ref()
                .is_none_or(|u| e.user_id.as_ref() == Some(u))
            && self.ip.as_ref().is_none_or(|ip| e.ip.as_ref() == Some(ip))
            && self
                .kind
                .as_ref()
                .is_none_or(|k| match k.strip_suffix('*') {
                    Some(prefix) => e.kind.starts_with(prefix),
                    None => &e.kind == k,
                })
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at <= u)
            && self.before.as_ref().is_none_or(|b| e.id < *b)
    }

    /// The smallest id an event may have (from `since`).
    pub fn lower_id(&self) -> Option<String> {
        self.since.map(time_prefix)
    }

    /// Ids must sort below this (the cursor, or the second after `until`).
    pub fn upper_id(&self) -> Option<String> {
        let until = self.until.map(|u| time_prefix(u.saturating_add(1)));
        match (until, self.before.clone()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One pending webhook delivery: the signed body of one security event,
/// kept until the receiver answers 2xx (at least once) or it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// The event id (the `webhook-id` header; receivers de-duplicate on it).
    pub id: String,
    /// The JSON body, exactly as it is signed and sent.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_at: i64,
    /// Unix seconds the event was queued.
    pub created_at: i64,
    /// Given up after this time.
    pub expires_at: i64,
}

/// One device a user signed in from: user-agent family and network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    /// `<user-agent family>|<network>`.
    pub key: String,
    /// The network (IPv4 /24 or IPv6 /48) in CIDR notation.
    pub network: String,
    /// Unix seconds of the first sign-in from it.
    pub first_seen: i64,
    /// Unix seconds of the latest sign-in from it.
    pub last_seen: i64,
}

/// The devices of one user, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevices {
    /// Most recently seen last.
    #[serde(default)]
    pub devices: Vec<KnownDevice>,
}

impl KnownDevices {
    /// Notes a sign-in from `key` on `network` at `now`, keeping at most
    /// `max` devices (the least recently seen go first).
    pub fn sight(&mut self, key: &str, network: &str, now: i64, max: usize) {
        match self.devices.iter().position(|d| d.key == key) {
            Some(i) => {
                let mut d = self.devices.remove(i);
                d.last_seen = now;
                self.devices.push(d);
            }
            None => self.devices.push(KnownDevice {
                key: key.to_string(),
                network: network.to_string(),
                first_seen: now,
                last_seen: now,
            }),
        }
        self.devices.sort_by_key(|d| d.last_seen);
        let excess = self.devices.len().saturating_sub(max.max(1));
        self.devices.drain(..excess);
    }

    /// Removes the device `key`, if present.
    pub fn forget(&mut self, key: &str) {
        self.devices.retain(|d| d.key != key);
    }

    /// Whether `key` is among the devices.
    pub fn knows(&self, key: &str) -> bool {
        self.devices.iter().any(|d| d.key == key)
    }

    /// Distinct networks seen at or after `since`.
    pub fn networks_since(&self, since: i64) -> usize {
        let mut nets: Vec<&str> = self
            .devices
            .iter()
            .filter(|d| d.last_seen >= since)
            .map(|d| d.network.as_str())
            .collect();
        nets.sort_unstable();
        nets.dedup();
        nets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_then_creation() {
        let a = audit_id(5);
        let b = audit_id(5);
        let c = audit_id(1_900_000_000);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(time_prefix(5) <= a && a < time_prefix(6));
    }

    #[test]
    fn devices_are_bounded_and_least_recent_goes() {
        let mut d = KnownDevices::default();
        for i in 0..5 {
            d.sight(&format!("k{i}"), "10.0.0.0/24", i, 3);
        }
        assert_eq!(d.devices.len(), 3);
        assert!(!d.knows("k0") && !d.knows("k1") && d.knows("k4"));
        d.sight("k2", "10.0.0.0/24", 10, 3);
        d.sight("k5", "10.0.1.0/24", 11, 3);
        assert!(d.knows("k2") && !d.knows("k3"));
        assert_eq!(d.networks_since(10), 2);
    }
}

//! Security-activity settings: audit retention, detection
//! thresholds, webhooks and shutdown, parsed from the same flat keys.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use super::parse_duration;

/// Security activity: the audit log, detection rules, webhooks
/// and shutdown. Every threshold has a documented default (the book's
/// configuration reference, generated from these comments).
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// `PORTCULLIS_AUDIT_RETENTION`: how long audit events are kept (default `90d`).
    pub audit_retention: Duration,
    /// `PORTCULLIS_WEBHOOK_URL`: where security events are POSTed (unset: no webhooks).
    pub webhook_url: Option<String>,
    /// `PORTCULLIS_WEBHOOK_SECRET`: HMAC-SHA-256 key of webhook signatures
    /// (`whsec_<base64>` as Standard Webhooks writes it, or any other text,
    /// used as bytes). Required with `PORTCULLIS_WEBHOOK_URL`.
    pub webhook_secret: Option<SecretString>,
    /// `PORTCULLIS_DETECT_ACCOUNT_FAILURES`: failed sign-ins of one account
    /// within 15 minutes that raise `suspicious.failed_logins` (default 5).
    pub detect_account_failures: u32,
    /// `PORTCULLIS_DETECT_STUFFING_ACCOUNTS`: distinct accounts failing from
    /// one IP within the stuffing window that raise
    /// `suspicious.credential_stuffing` (default 10).
    pub detect_stuffing_accounts: u32,
    /// `PORTCULLIS_DETECT_STUFFING_WINDOW`: the window of the stuffing rule
    /// (default `10m`).
    pub detect_stuffing_window: Duration,
    /// `PORTCULLIS_DETECT_BURST_NETWORKS`: distinct networks (/24, /48) one
    /// account signs in from within the burst window that raise
    /// `suspicious.burst` (default 3).
    pub detect_burst_networks: u32,
    /// `PORTCULLIS_DETECT_BURST_WINDOW`: the window of the burst rule
    /// (default `10m`).
    pub detect_burst_window: Duration,
    /// `PORTCULLIS_KNOWN_DEVICES`: devices remembered per user for new-device
    /// alerts; the least recently seen is forgotten first (default 20).
    pub known_devices: usize,
    /// `PORTCULLIS_NOT_ME_TTL`: how long the "not me" link of a new-sign-in
    /// notice works (default `7d`).
    pub not_me_ttl: Duration,
    /// `PORTCULLIS_SHUTDOWN_TIMEOUT`: how long in-flight requests may finish
    /// after SIGTERM/SIGINT (default `10s`).
    pub shutdown_timeout: Duration,
}

impl SecuritySettings {
    pub(super) fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let duration = |key: &str, default: &str| {
            parse_duration(get(key).unwrap_or(default)).with_context(|| key.to_string())
        };
        let number = |key: &str, default: u32| -> anyhow::Result<u32> {
            match get(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .with_context(|| format!("{key} must be a whole number of at least 1")),
            }
        };
        let webhook_url = get("PORTCULLIS_WEBHOOK_URL").map(str::to_string);
        let webhook_secret =
            get("PORTCULLIS_WEBHOOK_SECRET").map(|s| SecretString::from(s.to_string()));
        if let Some(url) = &webhook_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("PORTCULLIS_WEBHOOK_URL must be an http(s) URL");
            }
            let Some(secret) = &webhook_secret else {
                bail!("PORTCULLIS_WEBHOOK_URL needs PORTCULLIS_WEBHOOK_SECRET (events are signed)");
            };
            crate::webhooks::check_secret(secret.expose_secret()).map_err(anyhow::Error::msg)?;
            crate::webhooks::check_url(url).map_err(anyhow::Error::msg)?;
        }
        let audit_retention = duration("PORTCULLIS_AUDIT_RETENTION", "90d")?;
        if audit_retention.is_zero() {
            bail!("PORTCULLIS_AUDIT_RETENTION must be longer than zero");
        }
        Ok(Self {
            audit_retention,
            webhook_url,
            webhook_secret,
            detect_account_failures: number("PORTCULLIS_DETECT_ACCOUNT_FAILURES", 5)?,
            detect_stuffing_accounts: number("PORTCULLIS_DETECT_STUFFING_ACCOUNTS", 10)?,
            detect_stuffing_window: duration("PORTCULLIS_DETECT_STUFFING_WINDOW", "10m")?,
            detect_burst_networks: number("PORTCULLIS_DETECT_BURST_NETWORKS", 3)?,
            detect_burst_window: duration("PORTCULLIS_DETECT_BURST_WINDOW", "10m")?,
            known_devices: number("PORTCULLIS_KNOWN_DEVICES", 20)? as usize,
            not_me_ttl: duration("PORTCULLIS_NOT_ME_TTL", "7d")?,
            shutdown_timeout: duration("PORTCULLIS_SHUTDOWN_TIMEOUT", "10s")?,
        })
    }
}

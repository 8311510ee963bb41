//! Settings that trade bookkeeping for throughput: how refresh tokens are
//! signed, how many `token.refreshed` events a session leaves in the audit
//! log, and how much memory the embedded store may cache.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

/// How refresh tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSigning {
    /// HS256 with the secret `refresh-hmac.key` (the default): only
    /// Portcullis ever verifies a refresh token, so no public-key work.
    Hmac,
    /// The signing key of access tokens (releases before the HMAC key did
    /// this): for the window of a rolling upgrade in which replicas of an
    /// older release, which cannot verify HMAC refresh tokens, still serve.
    SigningKey,
}

/// Which refreshes leave a stored `token.refreshed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRefresh {
    /// The first refresh of a session in each clock hour (the default);
    /// grace-window refreshes and reuse detections always.
    Hourly,
    /// Every refresh.
    All,
}

/// Throughput and memory trade-offs. `PORTCULLIS_REFRESH_SIGNING`,
/// `PORTCULLIS_AUDIT_REFRESH`, `PORTCULLIS_REDB_CACHE_SIZE`.
#[derive(Debug, Clone)]
pub struct PerformanceSettings {
    /// `PORTCULLIS_REFRESH_SIGNING`: `hmac` (refresh tokens signed HS256 with
    /// the secret `keys/refresh-hmac.key`, never published) or `signing-key`
    /// (signed like access tokens, as releases before it did: set it while a
    /// rolling upgrade still has replicas of such a release). Either way,
    /// refresh tokens of both kinds are accepted (default `hmac`).
    pub refresh_signing: RefreshSigning,
    /// `PORTCULLIS_AUDIT_REFRESH`: `hourly` (one stored `token.refreshed`
    /// event per session and clock hour: the first refresh in that hour;
    /// grace-window refreshes and reuse detections always) or `all` (every
    /// refresh); webhooks follow the same rule (default `hourly`).
    pub audit_refresh: AuditRefresh,
    /// `PORTCULLIS_REDB_CACHE_SIZE`: bytes of page cache of the embedded
    /// store (suffixes `k`, `m`, `g`: powers of 1024); bounds the memory the
    /// store keeps under load (default `64m`; redb's own default is 1 GiB).
    pub redb_cache_size: usize,
}

impl Default for PerformanceSettings {
    fn default() -> Self {
        Self {
            refresh_signing: RefreshSigning::Hmac,
            audit_refresh: AuditRefresh::Hourly,
            redb_cache_size: 64 << 20,
        }
    }
}

/// A byte count: digits with an optional `k`, `m` or `g` suffix (×1024).
fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: usize = digits.trim().parse().ok()?;
    n.checked_mul(1usize.checked_shl(shift)?)
}

impl PerformanceSettings {
    /// From the flat `PORTCULLIS_*` map.
    pub fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get_or = |key: &str, default: &'static str| {
            map.get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        let refresh_signing = match get_or("PORTCULLIS_REFRESH_SIGNING", "hmac").as_str() {
            "hmac" => RefreshSigning::Hmac,
            "signing-key" => RefreshSigning::SigningKey,
            other => {
                bail!("PORTCULLIS_REFRESH_SIGNING must be hmac or signing-key, not {other:?}")
            }
        };
        let audit_refresh = match get_or("PORTCULLIS_AUDIT_REFRESH", "hourly").as_str() {
            "hourly" => AuditRefresh::Hourly,
            "all" => AuditRefresh::All,
            other => bail!("PORTCULLIS_AUDIT_REFRESH must be hourly or all, not {other:?}"),
        };
        let cache = get_or("PORTCULLIS_REDB_CACHE_SIZE", "64m");
        let redb_cache_size = parse_bytes(&cache)
            .filter(|n| *n >= 1 << 20)
            .with_context(|| {
                format!("PORTCULLIS_REDB_CACHE_SIZE must be a size of at least 1m (e.g. 64m), not {cache:?}")
            })?;
        Ok(Self {
            refresh_signing,
            audit_refresh,
            redb_cache_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_map as map;

    #[test]
    fn defaults_and_choices() {
        let d = PerformanceSettings::from_map(&map(&[])).unwrap();
        assert_eq!(d.refresh_signing, RefreshSigning::Hmac);
        assert_eq!(d.audit_refresh, AuditRefresh::Hourly);
        assert_eq!(d.redb_cache_size, 64 << 20);
        let s = PerformanceSettings::from_map(&map(&[
            ("PORTCULLIS_REFRESH_SIGNING", "signing-key"),
            ("PORTCULLIS_AUDIT_REFRESH", "all"),
            ("PORTCULLIS_REDB_CACHE_SIZE", "16M"),
        ]))
        .unwrap();
        assert_eq!(s.refresh_signing, RefreshSigning::SigningKey);
        assert_eq!(s.audit_refresh, AuditRefresh::All);
        assert_eq!(s.redb_cache_size, 16 << 20);
        assert_eq!(parse_bytes("2097152"), Some(2 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("PORTCULLIS_REFRESH_SIGNING", "HS256"),
            ("PORTCULLIS_AUDIT_REFRESH", "never"),
            ("PORTCULLIS_REDB_CACHE_SIZE", "lots"),
            ("PORTCULLIS_REDB_CACHE_SIZE", "4k"),
            ("PORTCULLIS_REDB_CACHE_SIZE", "99999999999999999999g"),
        ] {
            assert!(
                PerformanceSettings::from_map(&map(&[(k, v)])).is_err(),
                "{k}={v}"
            );
        }
    }
}

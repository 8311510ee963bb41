//! DPoP settings (RFC 9449): whether clients may or must bind their tokens
//! to a key, how old a proof may be, and whether server nonces are asked for.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};

use super::parse_duration;

/// Whether bearer tokens are still issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    /// A client may bind its session with a `DPoP` proof; without one it
    /// gets bearer tokens (the default).
    Optional,
    /// Every token-issuing request needs a proof: no bearer token is issued.
    Required,
}

/// `PORTCULLIS_DPOP*`.
#[derive(Debug, Clone)]
pub struct DpopSettings {
    /// `PORTCULLIS_DPOP`: `optional` (default) or `required`.
    pub mode: DpopMode,
    /// `PORTCULLIS_DPOP_MAX_AGE`: how old (by its `iat`) a proof may be
    /// (default `60s`); also how long its `jti` is remembered.
    pub max_age: Duration,
    /// `PORTCULLIS_DPOP_NONCE`: every proof must carry a server nonce from
    /// a `DPoP-Nonce` header (default `false`).
    pub nonce: bool,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            mode: DpopMode::Optional,
            max_age: Duration::from_secs(60),
            nonce: false,
        }
    }
}

impl DpopSettings {
    /// From the flat `PORTCULLIS_*` map.
    pub fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mode = match get("PORTCULLIS_DPOP").unwrap_or("optional") {
            "optional" => DpopMode::Optional,
            "required" => DpopMode::Required,
            other => bail!("PORTCULLIS_DPOP must be optional or required, not {other:?}"),
        };
        let max_age = parse_duration(get("PORTCULLIS_DPOP_MAX_AGE").unwrap_or("60s"))
            .context("PORTCULLIS_DPOP_MAX_AGE")?;
        if max_age.is_zero() || max_age > Duration::from_secs(3600) {
            bail!("PORTCULLIS_DPOP_MAX_AGE must be between 1s and 1h");
        }
        let nonce = match get("PORTCULLIS_DPOP_NONCE").unwrap_or("false") {
            "true" | "on" | "1" => true,
            "false" | "off" | "0" => false,
            other => bail!("PORTCULLIS_DPOP_NONCE must be true or false, not {other:?}"),
        };
        Ok(Self {
            mode,
            max_age,
            nonce,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_map as map;

    #[test]
    fn defaults_and_values() {
        let d = DpopSettings::from_map(&map(&[])).unwrap();
        assert_eq!(d.mode, DpopMode::Optional);
        assert_eq!(d.max_age, Duration::from_secs(60));
        assert!(!d.nonce);
        let s = DpopSettings::from_map(&map(&[
            ("PORTCULLIS_DPOP", "required"),
            ("PORTCULLIS_DPOP_MAX_AGE", "30s"),
            ("PORTCULLIS_DPOP_NONCE", "true"),
        ]))
        .unwrap();
        assert_eq!(s.mode, DpopMode::Required);
        assert_eq!(s.max_age, Duration::from_secs(30));
        assert!(s.nonce);
        assert!(DpopSettings::from_map(&map(&[("PORTCULLIS_DPOP", "always")])).is_err());
        assert!(DpopSettings::from_map(&map(&[("PORTCULLIS_DPOP_MAX_AGE", "0s")])).is_err());
        assert!(DpopSettings::from_map(&map(&[("PORTCULLIS_DPOP_NONCE", "maybe")])).is_err());
    }
}

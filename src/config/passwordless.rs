//! Passwordless email sign-in and anonymous users: whether an unknown
//! address gets an account at its first sign-in link, whether guests may
//! be created, and how long an unused guest is kept.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};

use super::parse_duration;

/// Email sign-in and anonymous users.
#[derive(Debug, Clone)]
pub struct PasswordlessSettings {
    /// `PORTCULLIS_EMAIL_SIGNUP`: an address without an account gets one
    /// (email verified, no password) when its first sign-in link or code
    /// is used (default `false`: such a link or code never works).
    pub email_signup: bool,
    /// `PORTCULLIS_ANONYMOUS`: `POST /v1/sessions/anonymous` creates guest
    /// users (default `false`: 403 `anonymous-disabled`).
    pub anonymous: bool,
    /// `PORTCULLIS_ANONYMOUS_TTL`: an anonymous user that neither signed
    /// in nor refreshed for this long is deleted (default `30d`).
    pub anonymous_ttl: Duration,
}

impl Default for PasswordlessSettings {
    fn default() -> Self {
        Self {
            email_signup: false,
            anonymous: false,
            anonymous_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

fn flag(map: &BTreeMap<String, String>, key: &str) -> anyhow::Result<bool> {
    match map.get(key).map(|v| v.trim()).unwrap_or("") {
        "" | "false" | "off" | "0" => Ok(false),
        "true" | "on" | "1" => Ok(true),
        other => bail!("{key} must be true or false, not {other:?}"),
    }
}

impl PasswordlessSettings {
    /// Reads the keys from the flat `PORTCULLIS_*` map.
    pub fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let ttl = match map
            .get("PORTCULLIS_ANONYMOUS_TTL")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            Some(v) => parse_duration(v).context("PORTCULLIS_ANONYMOUS_TTL")?,
            None => Self::default().anonymous_ttl,
        };
        if ttl.is_zero() {
            bail!("PORTCULLIS_ANONYMOUS_TTL must be longer than zero");
        }
        Ok(Self {
            email_signup: flag(map, "PORTCULLIS_EMAIL_SIGNUP")?,
            anonymous: flag(map, "PORTCULLIS_ANONYMOUS")?,
            anonymous_ttl: ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_map as map;

    #[test]
    fn defaults_and_values() {
        let d = PasswordlessSettings::from_map(&map(&[])).unwrap();
        assert!(!d.email_signup && !d.anonymous);
        assert_eq!(d.anonymous_ttl, Duration::from_secs(30 * 86_400));
        let s = PasswordlessSettings::from_map(&map(&[
            ("PORTCULLIS_EMAIL_SIGNUP", "true"),
            ("PORTCULLIS_ANONYMOUS", "on"),
            ("PORTCULLIS_ANONYMOUS_TTL", "2d"),
        ]))
        .unwrap();
        assert!(s.email_signup && s.anonymous);
        assert_eq!(s.anonymous_ttl, Duration::from_secs(2 * 86_400));
        assert!(
            PasswordlessSettings::from_map(&map(&[("PORTCULLIS_ANONYMOUS", "maybe")])).is_err()
        );
        assert!(
            PasswordlessSettings::from_map(&map(&[("PORTCULLIS_ANONYMOUS_TTL", "0s")])).is_err()
        );
    }
}

//! Passkey (WebAuthn) settings and the native apps of the association
//! files, with the parsing of `PORTCULLIS_ANDROID_APPS` entries.

use anyhow::{Context, bail};

/// Passkeys (WebAuthn) and the native-app association files.
#[derive(Debug, Clone, Default)]
pub struct PasskeySettings {
    /// `PORTCULLIS_WEBAUTHN_RP_ID`: the relying party id (default: the
    /// public URL's host).
    pub rp_id: Option<String>,
    /// `PORTCULLIS_WEBAUTHN_ORIGINS`: origins allowed besides the public
    /// URL's (comma-separated, e.g. an SPA's `https://app.example.com`).
    pub origins: Vec<String>,
    /// `PORTCULLIS_APPLE_APP_IDS`: `TEAMID.bundle.id` of the iOS apps served
    /// in `/.well-known/apple-app-site-association` (unset: 404).
    pub apple_app_ids: Vec<String>,
    /// `PORTCULLIS_ANDROID_APPS`: `package:SHA256-FINGERPRINT` pairs served in
    /// `/.well-known/assetlinks.json` (unset: 404).
    pub android_apps: Vec<AndroidApp>,
}

/// One Android app of `PORTCULLIS_ANDROID_APPS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidApp {
    /// The package name, e.g. `com.example.app`.
    pub package: String,
    /// SHA-256 fingerprint of the signing certificate, `AA:BB:...` (upper case).
    pub sha256_fingerprint: String,
}

impl AndroidApp {
    /// Parses `package:AA:BB:...` (32 colon-separated hex bytes).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (package, fingerprint) = s.split_once(':').with_context(|| {
            format!("PORTCULLIS_ANDROID_APPS: {s:?} is not package:SHA256-FINGERPRINT")
        })?;
        let package = package.trim();
        let fingerprint = fingerprint.trim().to_ascii_uppercase();
        let bytes: Vec<&str> = fingerprint.split(':').collect();
        let valid_package = !package.is_empty()
            && package
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        let valid_fingerprint = bytes.len() == 32
            && bytes
                .iter()
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid_package || !valid_fingerprint {
            bail!(
                "PORTCULLIS_ANDROID_APPS: {s:?} is not package:SHA256-FINGERPRINT (32 hex bytes separated by colons)"
            );
        }
        Ok(Self {
            package: package.to_string(),
            sha256_fingerprint: fingerprint,
        })
    }
}

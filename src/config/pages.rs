//! Settings of the hosted sign-in pages (Portcullis as an OpenID
//! provider): their theme.

use std::collections::BTreeMap;

use anyhow::Context;

/// The hosted pages' theme.
#[derive(Debug, Clone, Default)]
pub struct PagesSettings {
    /// `PORTCULLIS_PAGES_CSS`: a CSS file added after the built-in style
    /// (read at start-up; allowed by its hash in the pages' CSP).
    pub stylesheet: Option<String>,
    /// `PORTCULLIS_PAGES_LOGO_URL`: an image shown above each page's title
    /// (an `https:` URL, or a path on this server).
    pub logo_url: Option<String>,
}

impl PagesSettings {
    pub(super) fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let stylesheet = match get("PORTCULLIS_PAGES_CSS") {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("PORTCULLIS_PAGES_CSS: reading {path}"))?,
            ),
        };
        let logo_url = get("PORTCULLIS_PAGES_LOGO_URL").map(str::to_string);
        let bad = |u: &str| {
            !(u.starts_with("https://") || u.starts_with('/')) || u.contains(['"', '<', '>', ' '])
        };
        if logo_url.as_deref().is_some_and(bad) {
            anyhow::bail!(
                "PORTCULLIS_PAGES_LOGO_URL must be an https: URL or a path starting with /"
            );
        }
        Ok(Self {
            stylesheet,
            logo_url,
        })
    }
}

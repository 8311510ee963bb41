//! Federated sign-in settings: the upstream identity providers
//! (`PORTCULLIS_PROVIDERS` and `PORTCULLIS_PROVIDER_<ID>_*`), where a flow
//! may return to (`PORTCULLIS_REDIRECT_URLS`) and whether a first federated
//! sign-in may create an account (`PORTCULLIS_FEDERATION_SIGNUP`).
//!
//! The per-provider keys are dynamic: their names hold the provider id.
//! [`provider_keys`] lists the ones a configuration makes known, so the
//! unknown-key check still catches a typo in them (`..._CLIENT_ID` for a
//! provider that is not listed, `..._CLIENTID`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use secrecy::SecretString;

use super::parse::split_list;

/// The fields of `PORTCULLIS_PROVIDER_<ID>_<FIELD>`.
pub const PROVIDER_FIELDS: &[&str] = &[
    "KIND",
    "ISSUER",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "NATIVE_CLIENT_IDS",
    "SCOPES",
    "NAME",
    "TRUST_EMAIL",
    "TEAM_ID",
    "KEY_ID",
    "PRIVATE_KEY_FILE",
    "API_URL",
    "AUTHORIZE_URL",
    "TOKEN_URL",
];

/// What kind of upstream a provider is: the built-in kinds know their real
/// issuer and quirks; `oidc` is any OpenID Connect provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Google (`https://accounts.google.com`).
    Google,
    /// Sign in with Apple (`https://appleid.apple.com`): `form_post`, the
    /// name only at the first authorization, a client secret minted from a
    /// `.p8` key.
    Apple,
    /// Microsoft identity platform (multi-tenant `common` by default).
    Microsoft,
    /// GitHub: plain OAuth 2, the identity from its REST API.
    Github,
    /// Any OpenID Connect provider (`ISSUER` required).
    Oidc,
}

impl ProviderKind {
    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "google" => Some(Self::Google),
            "apple" => Some(Self::Apple),
            "microsoft" => Some(Self::Microsoft),
            "github" => Some(Self::Github),
            "oidc" => Some(Self::Oidc),
            _ => None,
        }
    }

    /// The kind's name (`google`, ... `oidc`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Apple => "apple",
            Self::Microsoft => "microsoft",
            Self::Github => "github",
            Self::Oidc => "oidc",
        }
    }

    /// The real issuer of a built-in kind (GitHub has none: its "issuer"
    /// is the identity of the OAuth server, used as `iss` of identities).
    fn default_issuer(self) -> Option<&'static str> {
        match self {
            Self::Google => Some("https://accounts.google.com"),
            Self::Apple => Some("https://appleid.apple.com"),
            Self::Microsoft => Some("https://login.microsoftonline.com/common/v2.0"),
            Self::Github => Some("https://github.com"),
            Self::Oidc => None,
        }
    }

    fn default_name(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Apple => "Apple",
            Self::Microsoft => "Microsoft",
            Self::Github => "GitHub",
            Self::Oidc => "OpenID Connect",
        }
    }
}

/// One upstream identity provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The id (lower case), as in `PORTCULLIS_PROVIDERS` and the routes.
    pub id: String,
    /// `_KIND`: default the id when it names a kind, else `oidc`.
    pub kind: ProviderKind,
    /// `_ISSUER`: required for `oidc`; the built-in kinds default to their
    /// real issuer. Discovery is read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// `_CLIENT_ID`: the web client id (an accepted `aud`).
    pub client_id: String,
    /// `_CLIENT_SECRET` (not for apple, whose secret is minted).
    pub client_secret: Option<SecretString>,
    /// `_NATIVE_CLIENT_IDS`: more accepted `aud` values (iOS, Android
    /// client ids; Apple's bundle id).
    pub native_client_ids: Vec<String>,
    /// `_SCOPES` (default `openid email profile`; apple `openid email name`;
    /// github `read:user user:email`).
    pub scopes: String,
    /// `_NAME`: the button label.
    pub name: String,
    /// `_TRUST_EMAIL` (default false): a verified email of this provider
    /// that matches a verified account links at once.
    pub trust_email: bool,
    /// apple `_TEAM_ID`.
    pub team_id: Option<String>,
    /// apple `_KEY_ID`.
    pub key_id: Option<String>,
    /// apple `_PRIVATE_KEY_FILE` (the `.p8`).
    pub private_key_file: Option<PathBuf>,
    /// github `_API_URL` (default `https://api.github.com`).
    pub api_url: String,
    /// github `_AUTHORIZE_URL` (default `https://github.com/login/oauth/authorize`).
    pub authorize_url: String,
    /// github `_TOKEN_URL` (default `https://github.com/login/oauth/access_token`).
    pub token_url: String,
}

impl ProviderSettings {
    /// Every `aud` an ID token of this provider may carry.
    pub fn audiences(&self) -> Vec<String> {
        let mut all = vec![self.client_id.clone()];
        all.extend(self.native_client_ids.iter().cloned());
        all
    }
}

/// Federated sign-in as a whole.
#[derive(Debug, Clone, Default)]
pub struct FederationSettings {
    /// `PORTCULLIS_PROVIDERS`, in order.
    pub providers: Vec<ProviderSettings>,
    /// `PORTCULLIS_REDIRECT_URLS`: exact URLs, or prefixes ending in `*`.
    pub redirect_urls: Vec<String>,
    /// `PORTCULLIS_FEDERATION_SIGNUP` (default true).
    pub signup: bool,
}

impl FederationSettings {
    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<&ProviderSettings> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Whether a flow may return to `url`: an exact match of a listed URL,
    /// or a listed prefix ending in `*`.
    pub fn redirect_allowed(&self, url: &str) -> bool {
        if url.is_empty() || url.chars().any(|c| c.is_control() || c == ' ') {
            return false;
        }
        self.redirect_urls
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => url.starts_with(prefix),
                None => url == allowed,
            })
    }

    #[allow(
        clippy::too_many_lines,
        reason = "one key after another, in the order DESIGN lists them"
    )]
    pub(super) fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut providers = Vec::new();
        for id in provider_ids(map) {
            if !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                bail!(
                    "PORTCULLIS_PROVIDERS: {id:?} is not a provider id (lower-case letters, digits, - and _)"
                );
            }
            if providers.iter().any(|p: &ProviderSettings| p.id == id) {
                bail!("PORTCULLIS_PROVIDERS: {id:?} is listed twice");
            }
            let key = |field: &str| format!("PORTCULLIS_PROVIDER_{}_{field}", env_id(&id));
            let field = |f: &str| get(&key(f)).map(str::to_string);
            let kind = match field("KIND") {
                Some(k) => ProviderKind::parse(&k).with_context(|| {
                    format!(
                        "{}: unknown kind {k:?} (google, apple, microsoft, github, oidc)",
                        key("KIND")
                    )
                })?,
                None => ProviderKind::parse(&id).unwrap_or(ProviderKind::Oidc),
            };
            let issuer = match field("ISSUER").or(kind.default_issuer().map(str::to_string)) {
                Some(i) => i.trim_end_matches('/').to_string(),
                None => bail!("{} is required for an oidc provider", key("ISSUER")),
            };
            let client_id =
                field("CLIENT_ID").with_context(|| format!("{} is required", key("CLIENT_ID")))?;
            let trust_email = match field("TRUST_EMAIL").as_deref() {
                None | Some("false" | "off" | "0") => false,
                Some("true" | "on" | "1") => true,
                Some(other) => bail!(
                    "{} must be true or false, not {other:?}",
                    key("TRUST_EMAIL")
                ),
            };
            let scopes = field("SCOPES").unwrap_or_else(|| {
                match kind {
                    ProviderKind::Apple => "openid email name",
                    ProviderKind::Github => "read:user user:email",
                    _ => "openid email profile",
                }
                .to_string()
            });
            let private_key_file = field("PRIVATE_KEY_FILE").map(PathBuf::from);
            if kind == ProviderKind::Apple {
                for f in ["TEAM_ID", "KEY_ID", "PRIVATE_KEY_FILE"] {
                    if field(f).is_none() {
                        bail!("{} is required for an apple provider", key(f));
                    }
                }
                if field("CLIENT_SECRET").is_some() {
                    bail!(
                        "{}: apple's client secret is minted from {} (do not set it)",
                        key("CLIENT_SECRET"),
                        key("PRIVATE_KEY_FILE")
                    );
                }
            }
            providers.push(ProviderSettings {
                kind,
                issuer,
                client_id,
                client_secret: field("CLIENT_SECRET").map(SecretString::from),
                native_client_ids: split_list(get(&key("NATIVE_CLIENT_IDS"))),
                scopes,
                name: field("NAME").unwrap_or_else(|| kind.default_name().to_string()),
                trust_email,
                team_id: field("TEAM_ID"),
                key_id: field("KEY_ID"),
                private_key_file,
                api_url: field("API_URL")
                    .unwrap_or_else(|| "https://api.github.com".into())
                    .trim_end_matches('/')
                    .to_string(),
                authorize_url: field("AUTHORIZE_URL")
                    .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
                token_url: field("TOKEN_URL")
                    .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
                id,
            });
        }
        let redirect_urls = split_list(get("PORTCULLIS_REDIRECT_URLS"));
        for url in &redirect_urls {
            if !url.contains(':') {
                bail!(
                    "PORTCULLIS_REDIRECT_URLS: {url:?} is not a URL (https://app.example/auth, com.example.app:/auth)"
                );
            }
        }
        let signup = match get("PORTCULLIS_FEDERATION_SIGNUP") {
            None | Some("true" | "on" | "1") => true,
            Some("false" | "off" | "0") => false,
            Some(other) => {
                bail!("PORTCULLIS_FEDERATION_SIGNUP must be true or false, not {other:?}")
            }
        };
        Ok(Self {
            providers,
            redirect_urls,
            signup,
        })
    }
}

/// The ids of `PORTCULLIS_PROVIDERS`, lower-cased.
fn provider_ids(map: &BTreeMap<String, String>) -> Vec<String> {
    split_list(map.get("PORTCULLIS_PROVIDERS").map(String::as_str))
        .into_iter()
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

/// A provider id as it appears in key names (`my-idp` → `MY_IDP`).
fn env_id(id: &str) -> String {
    id.to_ascii_uppercase().replace('-', "_")
}

/// The per-provider keys the providers listed in `map` make known.
pub(super) fn provider_keys(map: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys = Vec::new();
    for id in provider_ids(map) {
        for f in PROVIDER_FIELDS {
            keys.push(format!("PORTCULLIS_PROVIDER_{}_{f}", env_id(&id)));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_map as map;

    #[test]
    fn kinds_default_from_the_id_and_issuers_from_the_kind() {
        let s = FederationSettings::from_map(&map(&[
            ("PORTCULLIS_PROVIDERS", "google,acme"),
            ("PORTCULLIS_PROVIDER_GOOGLE_CLIENT_ID", "web"),
            (
                "PORTCULLIS_PROVIDER_GOOGLE_NATIVE_CLIENT_IDS",
                "ios, android",
            ),
            ("PORTCULLIS_PROVIDER_ACME_CLIENT_ID", "c"),
            ("PORTCULLIS_PROVIDER_ACME_ISSUER", "https://idp.acme.test/"),
        ]))
        .unwrap();
        let g = s.provider("google").unwrap();
        assert_eq!(g.kind, ProviderKind::Google);
        assert_eq!(g.issuer, "https://accounts.google.com");
        assert_eq!(g.audiences(), ["web", "ios", "android"]);
        let a = s.provider("acme").unwrap();
        assert_eq!(a.kind, ProviderKind::Oidc);
        assert_eq!(a.issuer, "https://idp.acme.test");
        assert!(s.signup);
    }

    #[test]
    fn oidc_needs_an_issuer_and_apple_its_key() {
        assert!(
            FederationSettings::from_map(&map(&[
                ("PORTCULLIS_PROVIDERS", "acme"),
                ("PORTCULLIS_PROVIDER_ACME_CLIENT_ID", "c"),
            ]))
            .is_err()
        );
        assert!(
            FederationSettings::from_map(&map(&[
                ("PORTCULLIS_PROVIDERS", "apple"),
                ("PORTCULLIS_PROVIDER_APPLE_CLIENT_ID", "com.example.web"),
            ]))
            .is_err()
        );
    }

    #[test]
    fn redirects_exact_or_by_prefix() {
        let s = FederationSettings::from_map(&map(&[(
            "PORTCULLIS_REDIRECT_URLS",
            "https://app.example/cb, https://app.example/auth/*, com.example.app:/auth",
        )]))
        .unwrap();
        assert!(s.redirect_allowed("https://app.example/cb"));
        assert!(!s.redirect_allowed("https://app.example/cb2"));
        assert!(s.redirect_allowed("https://app.example/auth/done"));
        assert!(s.redirect_allowed("com.example.app:/auth"));
        assert!(!s.redirect_allowed("https://evil.example/cb"));
        assert!(!s.redirect_allowed(""));
    }

    #[test]
    fn provider_keys_follow_the_list() {
        let keys = provider_keys(&map(&[("PORTCULLIS_PROVIDERS", "my-idp")]));
        assert!(keys.contains(&"PORTCULLIS_PROVIDER_MY_IDP_CLIENT_ID".to_string()));
        assert!(!keys.iter().any(|k| k.contains("GOOGLE")));
    }
}

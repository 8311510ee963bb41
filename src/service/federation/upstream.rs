//! Talking to upstream providers: their discovery documents and keys
//! (fetched once and cached), ID-token verification, the code exchange,
//! GitHub's REST API, and Apple's client secret (minted from the `.p8`).
//!
//! Caching: the discovery document is read once per provider (again after
//! a day), the JWKS once and again only when a token names a `kid` it does
//! not hold (key rotation). Such refetches are at most one per
//! [`JWKS_REFETCH_FLOOR`] per provider, one at a time: a flood of tokens
//! with made-up `kid`s costs the upstream one request per floor, never one
//! per request. Every call has a timeout ([`TIMEOUT`]); an upstream that
//! does not answer, or answers nonsense, is [`Error::ProviderUnavailable`]
//! (502), never a hang.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::{ProviderKind, ProviderSettings};
use crate::service::{Error, Result};

/// Bound on every upstream call (connect, send, read).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two JWKS fetches of one provider.
pub const JWKS_REFETCH_FLOOR: Duration = Duration::from_secs(2);
/// How long a discovery document is kept.
const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Clock skew tolerated on upstream `exp`/`iat` (their clocks are not ours).
pub const UPSTREAM_LEEWAY: u64 = 30;
/// Lifetime of a minted Apple client secret; it is renewed when less than
/// a day is left (Apple allows at most six months).
const APPLE_SECRET_TTL: u64 = 30 * 24 * 3600;

/// The endpoints of an upstream.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// `issuer`.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: String,
    /// `token_endpoint_auth_methods_supported`.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

#[derive(Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// One configured upstream and its caches.
pub struct Upstream {
    /// Its settings.
    pub settings: ProviderSettings,
    http: reqwest::Client,
    discovery: Mutex<Option<(Discovery, Instant)>>,
    keys: Mutex<Keys>,
    apple_secret: Mutex<Option<(String, u64)>>,
}

/// What an ID token (or GitHub's API) says about the user.
#[derive(Debug, Clone)]
pub struct IdClaims {
    /// `iss` as it was in the token.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// `email`, when there is one.
    pub email: Option<String>,
    /// `email_verified` (a boolean, or Apple's string `"true"`).
    pub email_verified: bool,
    /// `name`, or `given_name` + `family_name`.
    pub name: Option<String>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `exp`.
    pub exp: u64,
}

fn unavailable(provider: &str, what: &str, e: impl std::fmt::Display) -> Error {
    tracing::warn!(provider, what, error = %e, "identity provider unavailable");
    Error::ProviderUnavailable
}

fn bad(why: &'static str) -> Error {
    Error::IdTokenInvalid(why)
}

/// `email_verified` as providers send it: a boolean, or a string.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The name claims of a token or userinfo: `name`, else given + family.
pub fn name_of(claims: &serde_json::Map<String, Value>) -> Option<String> {
    text(claims.get("name")).or_else(|| {
        let parts: Vec<String> = [claims.get("given_name"), claims.get("family_name")]
            .into_iter()
            .filter_map(text)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

impl Upstream {
    /// An upstream with empty caches.
    pub fn new(settings: ProviderSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            settings,
            http,
            discovery: Mutex::new(None),
            keys: Mutex::new(Keys::default()),
            apple_secret: Mutex::new(None),
        })
    }

    fn id(&self) -> &str {
        &self.settings.id
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value> {
        let mut req = self.http.get(url).header("Accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unavailable(self.id(), url, e))?;
        if !resp.status().is_success() {
            return Err(unavailable(self.id(), url, resp.status()));
        }
        resp.json()
            .await
            .map_err(|e| unavailable(self.id(), url, e))
    }

    /// The discovery document (GitHub: its fixed endpoints).
    pub async fn discovery(&self) -> Result<Discovery> {
        let s = &self.settings;
        if s.kind == ProviderKind::Github {
            return Ok(Discovery {
                issuer: s.issuer.clone(),
                authorization_endpoint: s.authorize_url.clone(),
                token_endpoint: s.token_url.clone(),
                jwks_uri: String::new(),
                token_endpoint_auth_methods_supported: Some(vec!["client_secret_post".into()]),
            });
        }
        let mut cached = self.discovery.lock().await;
        if let Some((d, at)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", s.issuer);
        let doc = self.get_json(&url, None).await?;
        let d: Discovery = serde_json::from_value(doc)
            .map_err(|e| unavailable(self.id(), "discovery document", e))?;
        *cached = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// The key `kid` (or the only key when the token names none), fetching
    /// the JWKS when it is not cached yet, and again (once, under the
    /// floor) when the cached set lacks `kid`.
    async fn key(&self, kid: Option<&str>) -> Result<Option<Jwk>> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let mut keys = self.keys.lock().await;
        if let Some(found) = keys.set.as_ref().and_then(pick) {
            return Ok(Some(found));
        }
        if let Some(at) = keys.fetched {
            // Rotation: refetch, but never faster than the floor (callers
            // wait their turn behind the lock).
            let waited = at.elapsed();
            if waited < JWKS_REFETCH_FLOOR {
                tokio::time::sleep(JWKS_REFETCH_FLOOR - waited).await;
            }
        }
        let uri = self.discovery().await?.jwks_uri;
        if uri.is_empty() {
            return Err(unavailable(self.id(), "jwks", "no jwks_uri"));
        }
        let fetched = self.get_json(&uri, None).await;
        keys.fetched = Some(Instant::now());
        let set: JwkSet =
            serde_json::from_value(fetched?).map_err(|e| unavailable(self.id(), "jwks", e))?;
        let found = pick(&set);
        keys.set = Some(set);
        Ok(found)
    }

    /// Whether `iss` is this provider's issuer. Microsoft's multi-tenant
    /// discovery names `{tenantid}`, filled from the token's `tid`.
    fn issuer_matches(&self, discovered: &str, iss: &str, tid: Option<&str>) -> bool {
        let configured = self.settings.issuer.as_str();
        let candidates = [discovered, configured];
        candidates.iter().any(|want| {
            let want = match tid {
                Some(tid) if want.contains("{tenantid}") => want.replace("{tenantid}", tid),
                _ => (*want).to_string(),
            };
            want.trim_end_matches('/') == iss.trim_end_matches('/')
                // Google also signs with the scheme-less issuer.
                || (self.settings.kind == ProviderKind::Google
                    && want == "https://accounts.google.com"
                    && iss == "accounts.google.com")
        })
    }

    /// Verifies an ID token of this provider at `now`: signature by a key
    /// of its JWKS (asymmetric algorithms only), `iss`, `aud` among
    /// `audiences`, `exp`. The nonce is the caller's to check.
    pub async fn verify_id_token(
        &self,
        token: &str,
        audiences: &[String],
        now: u64,
    ) -> Result<IdClaims> {
        if self.settings.kind == ProviderKind::Github {
            return Err(bad("this provider issues no ID tokens"));
        }
        if token.len() > 16 * 1024 || token.split('.').count() != 3 {
            return Err(bad("malformed token"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed token"))?;
        use Algorithm as A;
        if !matches!(
            header.alg,
            A::RS256
                | A::RS384
                | A::RS512
                | A::PS256
                | A::PS384
                | A::PS512
                | A::ES256
                | A::ES384
                | A::EdDSA
        ) {
            return Err(bad("algorithm not allowed"));
        }
        let jwk = self
            .key(header.kid.as_deref())
            .await?
            .ok_or(bad("unknown signing key"))?;
        if let Some(alg) = jwk.common.key_algorithm
            && alg.to_string() != format!("{:?}", header.alg)
        {
            return Err(bad("algorithm not allowed"));
        }
        if matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
        ) {
            return Err(bad("algorithm not allowed"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad("unusable signing key"))?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => bad("bad signature"),
                    K::InvalidAudience => bad("wrong audience"),
                    K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) | K::Json(_) => {
                        bad("invalid claims")
                    }
                    _ => bad("invalid token"),
                }
            })?;
        let c = data.claims;
        let iss = text(c.get("iss")).ok_or(bad("invalid claims"))?;
        let discovered = self.discovery().await?.issuer;
        if !self.issuer_matches(&discovered, &iss, c.get("tid").and_then(Value::as_str)) {
            return Err(bad("wrong issuer"));
        }
        let exp = c
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(bad("invalid claims"))?;
        if exp.saturating_add(UPSTREAM_LEEWAY) < now {
            return Err(bad("token expired"));
        }
        if let Some(nbf) = c.get("nbf").and_then(Value::as_u64)
            && nbf > now.saturating_add(UPSTREAM_LEEWAY)
        {
            return Err(bad("token not yet valid"));
        }
        let sub = text(c.get("sub")).ok_or(bad("invalid claims"))?;
        Ok(IdClaims {
            iss,
            sub,
            email: text(c.get("email")),
            email_verified: truthy(c.get("email_verified")),
            name: name_of(&c),
            nonce: text(c.get("nonce")),
            exp,
        })
    }

    /// Apple's client secret: an ES256 JWT signed with the `.p8` key,
    /// minted on first use and again when less than a day is left.
    async fn apple_client_secret(&self, now: u64) -> Result<String> {
        let mut cached = self.apple_secret.lock().await;
        if let Some((secret, exp)) = cached.as_ref()
            && *exp > now + 24 * 3600
        {
            return Ok(secret.clone());
        }
        let s = &self.settings;
        let (Some(team), Some(kid), Some(path)) = (&s.team_id, &s.key_id, &s.private_key_file)
        else {
            return Err(Error::Unexpected(anyhow::anyhow!(
                "apple key settings missing"
            )));
        };
        let pem = std::fs::read(path)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("reading {}: {e}", path.display())))?;
        let key = EncodingKey::from_ec_pem(&pem)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("the apple .p8 key: {e}")))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        let exp = now + APPLE_SECRET_TTL;
        let claims = serde_json::json!({
            "iss": team,
            "iat": now,
            "exp": exp,
            "aud": s.issuer,
            "sub": s.client_id,
        });
        let secret = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("minting the apple secret: {e}")))?;
        tracing::info!(provider = %s.id, exp, "apple client secret minted");
        *cached = Some((secret.clone(), exp));
        Ok(secret)
    }

    /// Exchanges an authorization code at the token endpoint (with the PKCE
    /// verifier); returns the token response.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        now: u64,
    ) -> Result<Value> {
        let d = self.discovery().await?;
        let s = &self.settings;
        let secret = match s.kind {
            ProviderKind::Apple => Some(self.apple_client_secret(now).await?),
            _ => s
                .client_secret
                .as_ref()
                .map(|c| c.expose_secret().to_string()),
        };
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        // client_secret_basic when the provider offers it (the OAuth
        // default), else client_secret_post. Apple documents only
        // client_secret_post for its minted secret.
        let basic = s.kind != ProviderKind::Apple
            && d.token_endpoint_auth_methods_supported
                .as_ref()
                .is_none_or(|m| m.iter().any(|m| m == "client_secret_basic"));
        let mut req = self
            .http
            .post(&d.token_endpoint)
            .header("Accept", "application/json");
        match (&secret, basic) {
            (Some(secret), true) => {
                let enc = |v: &str| -> String {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
                };
                let pair = format!("{}:{}", enc(&s.client_id), enc(secret));
                req = req.header("Authorization", format!("Basic {}", STANDARD.encode(pair)));
            }
            (Some(secret), false) => {
                form.push(("client_id", &s.client_id));
                form.push(("client_secret", secret));
            }
            (None, _) => form.push(("client_id", &s.client_id)),
        }
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(self.id(), "token endpoint", e))?;
        let status = resp.status();
        let value: Value = resp
            .json()
            .await
            .map_err(|e| unavailable(self.id(), "token endpoint", e))?;
        if status.is_client_error() || value.get("error").is_some() {
            // The code was refused (expired, used): the user's flow failed,
            // the upstream is fine.
            tracing::info!(provider = %s.id, status = %status, error = ?value.get("error"), "authorization code refused upstream");
            return Err(Error::CodeInvalid);
        }
        if !status.is_success() {
            return Err(unavailable(self.id(), "token endpoint", status));
        }
        Ok(value)
    }

    /// GitHub: the user and their primary verified email, from its API.
    pub async fn github_identity(&self, access_token: &str) -> Result<IdClaims> {
        let api = &self.settings.api_url;
        let user = self
            .get_json(&format!("{api}/user"), Some(access_token))
            .await?;
        let sub = match user.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(unavailable(self.id(), "user", "no id")),
        };
        let emails = self
            .get_json(&format!("{api}/user/emails"), Some(access_token))
            .await?;
        let primary = emails.as_array().and_then(|list| {
            list.iter().find(|e| {
                e.get("primary").and_then(Value::as_bool) == Some(true)
                    && e.get("verified").and_then(Value::as_bool) == Some(true)
            })
        });
        let name = user
            .as_object()
            .and_then(|o| text(o.get("name")).or_else(|| text(o.get("login"))));
        Ok(IdClaims {
            iss: self.settings.issuer.clone(),
            sub,
            email: primary.and_then(|e| text(e.get("email"))),
            email_verified: primary.is_some(),
            name,
            nonce: None,
            exp: 0,
        })
    }
}

/// Every configured upstream.
#[derive(Default)]
pub struct Upstreams {
    by_id: Vec<Arc<Upstream>>,
}

impl Upstreams {
    /// Upstreams for the configured providers (no network yet).
    pub fn new(providers: &[ProviderSettings]) -> anyhow::Result<Self> {
        Ok(Self {
            by_id: providers
                .iter()
                .map(|p| Upstream::new(p.clone()).map(Arc::new))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// The upstream with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Upstream>> {
        self.by_id.iter().find(|u| u.settings.id == id).cloned()
    }

    /// All of them, in configuration order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.by_id.iter()
    }
}

/// Random URL-safe text of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Lower-case hex SHA-256 of `s`.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// PKCE S256 challenge of a verifier (RFC 7636): base64url(SHA-256).
pub fn s256(verifier: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

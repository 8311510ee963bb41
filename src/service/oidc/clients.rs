//! Registered clients: registration, changes, and the redirect URI rules
//! (exact match; loopback on any port, RFC 8252 §7.3; private-use schemes,
//! RFC 8252 §7.1).

use subtle::ConstantTimeEq;

use super::{SCOPES, random_token, sha256_hex};
use crate::service::{Core, Error, FieldError, Result};
use crate::store::{ClientRecord, StoreError};

/// `public` (no secret: native apps, SPAs) or `confidential` (a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    /// No secret; PKCE alone.
    Public,
    /// Authenticates with its secret at the token endpoint.
    Confidential,
}

impl ClientType {
    /// `public` or `confidential`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Confidential => "confidential",
        }
    }
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Shown on the consent page.
    pub name: String,
    /// Where authorization responses may go.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to.
    pub post_logout_redirect_uris: Vec<String>,
    /// Public or confidential.
    pub client_type: ClientType,
    /// Skips consent; always gets a refresh token.
    pub first_party: bool,
    /// Scopes it may ask for (`None`: all of [`SCOPES`]).
    pub scopes: Option<Vec<String>>,
    /// `aud` of its access tokens.
    pub audience: Option<String>,
    /// JOSE algorithm of its ID tokens (`RS256` when unset).
    pub id_token_signed_response_alg: Option<String>,
}

/// Changes to a client; `None` keeps a field, `Some(None)` clears an
/// optional one.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    /// New name.
    pub name: Option<String>,
    /// New redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// New logout redirect URIs.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// First-party or not.
    pub first_party: Option<bool>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New audience.
    pub audience: Option<Option<String>>,
    /// New ID token algorithm.
    pub id_token_signed_response_alg: Option<Option<String>>,
}

/// A client as registered, with its secret the one time it is shown.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    /// The stored client (its `secret_hash` is not for display).
    pub client: ClientRecord,
    /// The secret of a new confidential client; never again.
    pub secret: Option<String>,
}

/// Whether `uri` is a loopback redirect (`http://127.0.0.1[:port]/…` or
/// `http://[::1][:port]/…`); returns it without its port.
fn loopback_without_port(uri: &str) -> Option<String> {
    for host in ["http://127.0.0.1", "http://[::1]"] {
        if let Some(rest) = uri.strip_prefix(host) {
            let rest = match rest.strip_prefix(':') {
                Some(r) => {
                    let digits = r.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 || digits > 5 {
                        return None;
                    }
                    &r[digits..]
                }
                None => rest,
            };
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                return Some(format!("{host}{rest}"));
            }
            return None;
        }
    }
    None
}

/// Whether `presented` matches the registered `registered`: exactly, or,
/// for loopback redirects, whatever the port (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    match (
        loopback_without_port(registered),
        loopback_without_port(presented),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Why a redirect URI cannot be registered, if it cannot.
fn redirect_uri_problem(uri: &str) -> Option<&'static str> {
    if uri.is_empty() || uri.len() > 2000 {
        return Some("must be 1 to 2000 characters");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces");
    }
    if uri.contains('#') {
        return Some("must not have a fragment");
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Some("must be an absolute URI");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !scheme_ok {
        return Some("must start with a lower-case scheme");
    }
    match scheme {
        "https" => {
            let host = rest.strip_prefix("//").unwrap_or("");
            if host.is_empty() || host.starts_with('/') {
                return Some("must name a host");
            }
            None
        }
        "http" => {
            if loopback_without_port(uri).is_some()
                || uri.starts_with("http://localhost:")
                || uri.starts_with("http://localhost/")
            {
                None
            } else {
                Some("http is allowed for loopback addresses only (use https)")
            }
        }
        // Private-use schemes are reverse domain names (RFC 8252 §7.1).
        _ if scheme.contains('.') => None,
        _ => Some("a private-use scheme must be a reverse domain name (com.example.app)"),
    }
}

fn check_uris(field: &'static str, uris: &[String], errors: &mut Vec<FieldError>) {
    if uris.len() > 20 {
        errors.push(FieldError::new(field, "invalid", "holds at most 20 URIs"));
    }
    for uri in uris {
        if let Some(why) = redirect_uri_problem(uri) {
            errors.push(FieldError::new(field, "invalid", format!("{uri:?} {why}")));
        }
    }
}

impl Core {
    fn check_client_fields(&self, c: &ClientRecord) -> Result<()> {
        let mut errors = Vec::new();
        if c.name.trim().is_empty() || c.name.chars().count() > 100 {
            errors.push(FieldError::new(
                "name",
                "invalid",
                "must be 1 to 100 characters",
            ));
        }
        if c.redirect_uris.is_empty() {
            errors.push(FieldError::new(
                "redirect_uris",
                "invalid",
                "must hold at least one URI",
            ));
        }
        check_uris("redirect_uris", &c.redirect_uris, &mut errors);
        check_uris(
            "post_logout_redirect_uris",
            &c.post_logout_redirect_uris,
            &mut errors,
        );
        if let Some(s) = c.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            errors.push(FieldError::new(
                "scopes",
                "invalid",
                format!("{s:?} is not one of openid, email, profile, offline_access"),
            ));
        }
        if let Some(a) = &c.audience
            && (a.is_empty() || a.len() > 200)
        {
            errors.push(FieldError::new(
                "audience",
                "invalid",
                "must be 1 to 200 characters",
            ));
        }
        if let Some(alg) = &c.id_token_signed_response_alg
            && !self.issuer_info().algorithms.contains(alg)
        {
            errors.push(FieldError::new(
                "id_token_signed_response_alg",
                "invalid",
                format!(
                    "must be the algorithm of a published key: {}",
                    self.issuer_info().algorithms.join(", ")
                ),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(errors))
        }
    }

    /// Registers a client; a confidential one gets a secret, returned
    /// here only (stored as its SHA-256).
    pub async fn create_client(&self, new: NewClient) -> Result<RegisteredClient> {
        let now = self.clock.now();
        let secret = (new.client_type == ClientType::Confidential)
            .then(|| format!("pcs_{}", random_token()));
        let mut scopes = new
            .scopes
            .unwrap_or_else(|| SCOPES.iter().map(|s| s.to_string()).collect());
        scopes.sort();
        scopes.dedup();
        let client = ClientRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: new.name.trim().to_string(),
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            client_type: new.client_type.as_str().to_string(),
            first_party: new.first_party,
            scopes,
            audience: new.audience,
            id_token_signed_response_alg: new.id_token_signed_response_alg,
            secret_hash: secret.as_deref().map(sha256_hex),
            created_at: now,
            updated_at: now,
        };
        self.check_client_fields(&client)?;
        match self.store.create_client(&client).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(Error::Conflict("client id taken")),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(client_id = %client.id, event = "client.created", "OAuth client registered");
        Ok(RegisteredClient { client, secret })
    }

    /// Every registered client.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>> {
        Ok(self.store.clients().await?)
    }

    /// One registered client.
    pub async fn client(&self, id: &str) -> Result<ClientRecord> {
        self.store
            .client(id)
            .await?
            .ok_or(Error::NotFound("Client"))
    }

    /// Changes a client.
    pub async fn update_client(&self, id: &str, changes: ClientChanges) -> Result<ClientRecord> {
        let mut c = self.client(id).await?;
        if let Some(v) = changes.name {
            c.name = v.trim().to_string();
        }
        if let Some(v) = changes.redirect_uris {
            c.redirect_uris = v;
        }
        if let Some(v) = changes.post_logout_redirect_uris {
            c.post_logout_redirect_uris = v;
        }
        if let Some(v) = changes.first_party {
            c.first_party = v;
        }
        if let Some(mut v) = changes.scopes {
            v.sort();
            v.dedup();
            c.scopes = v;
        }
        if let Some(v) = changes.audience {
            c.audience = v;
        }
        if let Some(v) = changes.id_token_signed_response_alg {
            c.id_token_signed_response_alg = v;
        }
        c.updated_at = self.clock.now();
        self.check_client_fields(&c)?;
        if !self.store.replace_client(&c).await? {
            return Err(Error::NotFound("Client"));
        }
        Ok(c)
    }

    /// Removes a client: its codes and tokens stop working (the token
    /// endpoint and refreshes look the client up).
    pub async fn delete_client(&self, id: &str) -> Result<()> {
        if !self.store.delete_client(id).await? {
            return Err(Error::NotFound("Client"));
        }
        tracing::info!(client_id = %id, event = "client.deleted", "OAuth client removed");
        Ok(())
    }

    /// Whether `secret` is the client's (constant time).
    pub(crate) fn client_secret_ok(client: &ClientRecord, secret: &str) -> bool {
        match &client.secret_hash {
            Some(h) => bool::from(sha256_hex(secret).as_bytes().ct_eq(h.as_bytes())),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port() {
        assert!(redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:53124/cb"
        ));
        assert!(redirect_uri_matches(
            "http://[::1]:8/cb",
            "http://[::1]:9/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5/other"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1.evil.example/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(redirect_uri_matches(
            "com.example.app:/cb",
            "com.example.app:/cb"
        ));
    }

    #[test]
    fn registration_rules() {
        assert!(redirect_uri_problem("https://app.example/cb").is_none());
        assert!(redirect_uri_problem("com.example.app:/cb").is_none());
        assert!(redirect_uri_problem("http://127.0.0.1:3000/cb").is_none());
        assert!(redirect_uri_problem("http://app.example/cb").is_some());
        assert!(redirect_uri_problem("https://app.example/cb#x").is_some());
        assert!(redirect_uri_problem("myapp:/cb").is_some());
        assert!(redirect_uri_problem("javascript:alert(1)").is_some());
        assert!(redirect_uri_problem("/relative").is_some());
    }
}

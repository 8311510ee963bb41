//! Issuing and verifying JWTs.
//!
//! Access tokens follow RFC 9068 (`typ: at+jwt`); refresh tokens are JWTs of
//! their own type (`typ: refresh+jwt`). Verification trusts nothing from the
//! token that picks a key or algorithm: the `kid` must name a key of our ring,
//! the `alg` must be that key's algorithm, and `jku`/`jwk`/`x5u`/`x5c`/`crit`
//! headers are refused outright. `typ` is checked so one kind of token can
//! never stand in for another. `exp`, `iss`, `aud`, `sub` are required and
//! numeric dates are required to be numbers.
//!
//! The claims and their `typ` values live in `claims.rs` (re-exported here);
//! this module holds [`TokenService`], which issues and verifies them.
//!
//! Refresh tokens are signed with a secret HMAC key of their own
//! (`refresh_key.rs`, HS256) unless `PORTCULLIS_REFRESH_SIGNING=signing-key`;
//! a refresh token signed by a key of the ring (every earlier release) still
//! verifies. The HMAC key verifies refresh tokens only.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::KeyRing;

mod claims;
mod refresh_key;
#[cfg(test)]
mod refresh_tests;
#[cfg(test)]
mod tests;

pub(crate) use claims::registered;
pub use refresh_key::{REFRESH_KEY_FILE, RefreshKey};

pub use claims::{
    ACCESS_TYP, AccessClaims, Confirmation, LEEWAY_SECS, MFA_TYP, MfaClaims, NOT_ME_TYP,
    REFRESH_TYP, RefreshClaims, RegisteredClaims, TimeClaims, TokenError,
};

/// Issues and verifies tokens with one key ring and one issuer/audience.
#[derive(Clone)]
pub struct TokenService {
    ring: Arc<KeyRing>,
    // Shared strings: a `Core` (and this with it) is cloned per request.
    issuer: Arc<str>,
    audience: Arc<str>,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of a session (sliding, renewed at each refresh).
    pub refresh_ttl: Duration,
    /// The HMAC key of refresh tokens, when loaded.
    refresh_key: Option<Arc<RefreshKey>>,
    /// Whether new refresh tokens are signed with `refresh_key`.
    refresh_hmac: bool,
}

/// Access-token claims only some sessions carry; the default is none.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessExtras<'a> {
    /// A guest user not yet upgraded (`is_anonymous`).
    pub is_anonymous: bool,
    /// The upstream identity provider of a federated sign-in (`idp`).
    pub idp: Option<&'a str>,
    /// An OAuth client's session: `aud` and `client_id` (default: the
    /// service's own audience for both).
    pub client: Option<(&'a str, &'a str)>,
    /// The RFC 7638 thumbprint of the DPoP key the session is bound to
    /// (`cnf.jkt`, RFC 9449 §6).
    pub jkt: Option<&'a str>,
}

impl TokenService {
    /// A token service over `ring` for one issuer and audience.
    pub fn new(
        ring: Arc<KeyRing>,
        issuer: String,
        audience: String,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        Self {
            ring,
            issuer: issuer.into(),
            audience: audience.into(),
            access_ttl,
            refresh_ttl,
            refresh_key: None,
            refresh_hmac: false,
        }
    }

    /// Adds the HMAC key of refresh tokens: it verifies refresh tokens
    /// from now on, and signs the new ones when `sign` is true
    /// (`PORTCULLIS_REFRESH_SIGNING=hmac`); otherwise they are signed by the
    /// ring's signer, as before the key existed.
    pub fn with_refresh_key(mut self, key: Option<RefreshKey>, sign: bool) -> Self {
        self.refresh_hmac = sign && key.is_some();
        self.refresh_key = key.map(Arc::new);
        self
    }

    /// The `kid` new refresh tokens are signed under.
    pub fn refresh_kid(&self) -> &str {
        match &self.refresh_key {
            Some(k) if self.refresh_hmac => &k.kid,
            _ => &self.ring.signer().kid,
        }
    }

    /// The key ring (signing key and published keys).
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of access tokens (what resource servers accept).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The `aud` of tokens of type `typ`: [`TokenService::audience`] for
    /// access tokens only. Every other kind gets an audience of its own
    /// under the issuer (`<issuer>/refresh`, `<issuer>/mfa`,
    /// `<issuer>/not-me`), so a resource server that checks `aud` but not
    /// `typ` (PyJWT's and `jose`'s defaults) still refuses them.
    pub fn audience_for(&self, typ: &str) -> String {
        let kind = match typ {
            ACCESS_TYP => return self.audience.to_string(),
            REFRESH_TYP => "refresh",
            MFA_TYP => "mfa",
            NOT_ME_TYP => "not-me",
            other => other.strip_suffix("+jwt").unwrap_or(other),
        };
        format!("{}/{kind}", self.issuer.trim_end_matches('/'))
    }

    /// Signs an access token for a user's session, which the user opened by
    /// proving a credential at `auth_time`.
    pub fn issue_access(
        &self,
        sub: &str,
        sid: &str,
        amr: &[String],
        roles: &[String],
        auth_time: u64,
        now: u64,
    ) -> anyhow::Result<String> {
        self.issue_access_with(
            sub,
            sid,
            amr,
            roles,
            auth_time,
            now,
            AccessExtras::default(),
        )
    }

    /// [`TokenService::issue_access`] with the claims only some sessions
    /// carry ([`AccessExtras`]).
    #[allow(clippy::too_many_arguments)]
    pub fn issue_access_with(
        &self,
        sub: &str,
        sid: &str,
        amr: &[String],
        roles: &[String],
        auth_time: u64,
        now: u64,
        extras: AccessExtras<'_>,
    ) -> anyhow::Result<String> {
        let (aud, client_id) = extras.client.unwrap_or((&*self.audience, &*self.audience));
        let claims = AccessClaims {
            registered: RegisteredClaims {
                iss: self.issuer.to_string(),
                aud: aud.to_string(),
                sub: sub.into(),
                exp: now + self.access_ttl.as_secs(),
                iat: now,
                nbf: now,
                jti: uuid::Uuid::new_v4().to_string(),
            },
            client_id: client_id.to_string(),
            sid: sid.to_string(),
            amr: amr.to_vec(),
            roles: roles.to_vec(),
            auth_time,
            is_anonymous: extras.is_anonymous,
            idp: extras.idp.map(str::to_string),
            cnf: extras.jkt.map(|j| Confirmation { jkt: j.to_string() }),
        };
        self.sign(ACCESS_TYP, &claims)
    }

    /// Signs a refresh token carrying the family's current generation `jti`.
    pub fn issue_refresh(
        &self,
        sub: &str,
        sid: &str,
        jti: &str,
        now: u64,
        exp: u64,
    ) -> anyhow::Result<String> {
        self.issue_refresh_bound(sub, sid, jti, now, exp, None)
    }

    /// Like [`TokenService::issue_refresh`], carrying the session's DPoP
    /// key thumbprint `jkt` when it is bound.
    pub fn issue_refresh_bound(
        &self,
        sub: &str,
        sid: &str,
        jti: &str,
        now: u64,
        exp: u64,
        jkt: Option<&str>,
    ) -> anyhow::Result<String> {
        let claims = RefreshClaims {
            registered: RegisteredClaims {
                iss: self.issuer.to_string(),
                aud: self.audience_for(REFRESH_TYP),
                sub: sub.into(),
                exp,
                iat: now,
                nbf: now,
                jti: jti.to_string(),
            },
            sid: sid.to_string(),
            cnf: jkt.map(|j| Confirmation { jkt: j.to_string() }),
        };
        match &self.refresh_key {
            Some(key) if self.refresh_hmac => {
                let mut header = Header::new(key.alg);
                header.typ = Some(REFRESH_TYP.to_string());
                header.kid = Some(key.kid.clone());
                jsonwebtoken::encode(&header, &claims, &key.encoding)
                    .map_err(|e| anyhow::anyhow!("signing failed: {e}"))
            }
            _ => self.sign(REFRESH_TYP, &claims),
        }
    }

    /// Signs an `mfa+jwt` token for `sub` after a right password, valid
    /// `ttl_secs`; returns the token and its claims.
    pub fn issue_mfa(
        &self,
        sub: &str,
        amr: &[String],
        now: u64,
        ttl_secs: u64,
    ) -> anyhow::Result<(String, MfaClaims)> {
        self.issue_mfa_with_idp(sub, amr, now, ttl_secs, None)
    }

    /// [`TokenService::issue_mfa`] after a federated first step (`idp`).
    pub fn issue_mfa_with_idp(
        &self,
        sub: &str,
        amr: &[String],
        now: u64,
        ttl_secs: u64,
        idp: Option<&str>,
    ) -> anyhow::Result<(String, MfaClaims)> {
        let claims = MfaClaims {
            registered: RegisteredClaims {
                iss: self.issuer.to_string(),
                aud: self.audience_for(MFA_TYP),
                sub: sub.into(),
                exp: now + ttl_secs,
                iat: now,
                nbf: now,
                jti: uuid::Uuid::new_v4().to_string(),
            },
            amr: amr.to_vec(),
            idp: idp.map(str::to_string),
        };
        Ok((self.sign(MFA_TYP, &claims)?, claims))
    }

    /// Verifies an `mfa+jwt` token at time `now`.
    pub fn verify_mfa(&self, token: &str, now: u64) -> Result<MfaClaims, TokenError> {
        self.verify(token, MFA_TYP, now)
    }

    /// Signs any claims with the active key under the given `typ`.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> anyhow::Result<String> {
        self.sign_with(self.ring.signer(), typ, claims)
    }

    /// Signs any claims with `key` (a key of the ring) under `typ`.
    pub fn sign_with<T: Serialize>(
        &self,
        key: &super::keys::KeyEntry,
        typ: &str,
        claims: &T,
    ) -> anyhow::Result<String> {
        let mut header = Header::new(key.alg);
        header.typ = Some(typ.to_string());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| anyhow::anyhow!("signing failed: {e}"))
    }

    /// Verifies an access token at time `now`.
    pub fn verify_access(&self, token: &str, now: u64) -> Result<AccessClaims, TokenError> {
        self.verify(token, ACCESS_TYP, now)
    }

    /// Verifies a refresh token at time `now`.
    ///
    /// Signed by the HMAC key of refresh tokens, or by a key of the ring
    /// (tokens of earlier releases, or of `PORTCULLIS_REFRESH_SIGNING=signing-key`).
    pub fn verify_refresh(&self, token: &str, now: u64) -> Result<RefreshClaims, TokenError> {
        self.verify_keyed(token, REFRESH_TYP, now, true, self.refresh_key.as_deref())
    }

    /// Verifies an access token at time `now` whatever its audience (the
    /// service's or an OAuth client's): for the userinfo endpoint, which
    /// serves every access token Portcullis issued.
    pub fn verify_access_any_audience(
        &self,
        token: &str,
        now: u64,
    ) -> Result<AccessClaims, TokenError> {
        self.verify_keyed(token, ACCESS_TYP, now, false, None)
    }

    /// Verifies signature, type and registered claims at time `now` (the
    /// service clock, with [`LEEWAY_SECS`] of skew); returns the claims.
    pub fn verify<T: DeserializeOwned + TimeClaims>(
        &self,
        token: &str,
        typ: &str,
        now: u64,
    ) -> Result<T, TokenError> {
        self.verify_keyed(token, typ, now, true, None)
    }

    /// Verifies against the ring, or against `hmac` when the token names
    /// its `kid` (only ever the refresh-token key, for refresh tokens).
    fn verify_keyed<T: DeserializeOwned + TimeClaims>(
        &self,
        token: &str,
        typ: &str,
        now: u64,
        check_audience: bool,
        hmac: Option<&RefreshKey>,
    ) -> Result<T, TokenError> {
        if token.len() > 8192 || token.split('.').count() != 3 {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(TokenError::ForbiddenHeader);
        }
        let header_typ = header.typ.as_deref().unwrap_or("");
        let header_typ = header_typ
            .strip_prefix("application/")
            .unwrap_or(header_typ);
        if !header_typ.eq_ignore_ascii_case(typ) {
            return Err(TokenError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let (alg, decoding) = match hmac.filter(|k| k.kid == kid) {
            Some(k) => (k.alg, &k.decoding),
            None => {
                let key = self.ring.by_kid(kid).ok_or(TokenError::UnknownKey)?;
                (key.alg, &key.decoding)
            }
        };
        if header.alg != alg {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        // Time is checked below against the service clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&*self.issuer]);
        // Tokens other than access tokens were issued with the access
        // audience by earlier releases: they are accepted under it until the
        // longest of them (a 30-day refresh token) has expired. `typ` above
        // still keeps every kind in its place.
        let own = self.audience_for(typ);
        if *own == *self.audience {
            validation.set_audience(&[&*self.audience]);
        } else {
            validation.set_audience(&[own.as_str(), &*self.audience]);
        }
        if !check_audience {
            validation.validate_aud = false;
        }
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<T>(token, decoding, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => TokenError::BadSignature,
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer => TokenError::WrongIssuer,
                K::InvalidAudience => TokenError::WrongAudience,
                K::InvalidAlgorithm | K::MissingAlgorithm => TokenError::AlgorithmNotAllowed,
                K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) | K::Json(_) => {
                    TokenError::InvalidClaims
                }
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        if claims.exp().saturating_add(LEEWAY_SECS) < now {
            return Err(TokenError::Expired);
        }
        if claims.nbf() > now.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

//! Issuing and verifying JWTs.
//!
//! Access tokens follow RFC 9068 (`typ: at+jwt`); refresh tokens are JWTs of
//! their own type (`typ: refresh+jwt`). Verification trusts nothing from the
//! token that picks a key or algorithm: the `kid` must name a key of our ring,
//! the `alg` must be that key's algorithm, and `jku`/`jwk`/`x5u`/`x5c`/`crit`
//! headers are refused outright. `typ` is checked so one kind of token can
//! never stand in for another. `exp`, `iss`, `aud`, `sub` are required and
//! numeric dates are required to be numbers.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;

/// JOSE `typ` of access tokens (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";
/// JOSE `typ` of refresh tokens.
pub const REFRESH_TYP: &str = "refresh+jwt";

/// JOSE `typ` of the token between the password and the second factor
/// (`POST /v1/sessions` → `POST /v1/sessions/mfa`).
pub const MFA_TYP: &str = "mfa+jwt";
/// JOSE `typ` of the "not me" token of a new-sign-in notice.
pub const NOT_ME_TYP: &str = "notme+jwt";

/// Clock skew tolerated on `exp`/`nbf`/`iat`, deliberately small
/// (jsonwebtoken's default is 60 s).
pub const LEEWAY_SECS: u64 = 5;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject: the user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Unique token id.
    pub jti: String,
    /// RFC 9068 `client_id` (the audience).
    pub client_id: String,
    /// Session (refresh family) id.
    pub sid: String,
    /// Authentication methods (RFC 8176): `pwd`, `otp`, ...
    pub amr: Vec<String>,
    /// Roles of the user at issue time.
    pub roles: Vec<String>,
    /// When the user last proved a credential (OIDC `auth_time`, Unix
    /// seconds): the sign-in that opened the session, kept across refreshes.
    /// (Absent from tokens signed before it existed: read as 0.)
    #[serde(default)]
    pub auth_time: u64,
}

/// Claims of a refresh token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject: the user id.
    pub sub: String,
    /// Expiry, Unix seconds (the session's expiry).
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// The refresh token's id: the family's current generation.
    pub jti: String,
    /// Session (refresh family) id.
    pub sid: String,
}

/// Claims of an `mfa+jwt` token: proof that the password of `sub` was
/// right, good for one second-factor step within its short lifetime. Its
/// `typ` keeps it from passing as an access or refresh token; its `jti` is
/// claimed in the store when used, so it works once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MfaClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject: the user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds: when the password was checked.
    pub iat: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Unique id of this sign-in attempt (claimed once used).
    pub jti: String,
    /// Methods proven so far (`pwd`).
    pub amr: Vec<String>,
}

/// Why a token was refused. The text is safe to show to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed JWS compact token.
    Malformed,
    /// The JOSE `typ` is not the expected kind of token.
    WrongType,
    /// The `kid` names no key of our ring.
    UnknownKey,
    /// The `alg` is not the named key's algorithm.
    AlgorithmNotAllowed,
    /// A header that could pick a key (`jku`, `jwk`, `x5u`, `x5c`, `crit`).
    ForbiddenHeader,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iss` is not ours.
    WrongIssuer,
    /// `aud` is not ours.
    WrongAudience,
    /// A required claim is missing or of the wrong type.
    InvalidClaims,
}

impl TokenError {
    /// Short, client-safe reason (goes into `WWW-Authenticate`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed token",
            Self::WrongType => "wrong token type",
            Self::UnknownKey => "unknown signing key",
            Self::AlgorithmNotAllowed => "algorithm not allowed",
            Self::ForbiddenHeader => "header not allowed",
            Self::BadSignature => "bad signature",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::InvalidClaims => "invalid claims",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

/// The time claims every token kind carries, checked against the service clock.
pub trait TimeClaims {
    /// Expiry, Unix seconds.
    fn exp(&self) -> u64;
    /// Not before, Unix seconds.
    fn nbf(&self) -> u64;
}

impl TimeClaims for AccessClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn nbf(&self) -> u64 {
        self.nbf
    }
}

impl TimeClaims for RefreshClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn nbf(&self) -> u64 {
        self.nbf
    }
}

impl TimeClaims for MfaClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
    fn nbf(&self) -> u64 {
        self.nbf
    }
}

/// Issues and verifies tokens with one key ring and one issuer/audience.
#[derive(Clone)]
pub struct TokenService {
    ring: Arc<KeyRing>,
    issuer: String,
    audience: String,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of a session (sliding, renewed at each refresh).
    pub refresh_ttl: Duration,
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
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
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
    /// `typ` (PyJWT's and `jose`'s defaults) still refuses them (issue 20 M7).
    pub fn audience_for(&self, typ: &str) -> String {
        let kind = match typ {
            ACCESS_TYP => return self.audience.clone(),
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
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_string(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: self.audience.clone(),
            sid: sid.to_string(),
            amr: amr.to_vec(),
            roles: roles.to_vec(),
            auth_time,
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
        let claims = RefreshClaims {
            iss: self.issuer.clone(),
            aud: self.audience_for(REFRESH_TYP),
            sub: sub.to_string(),
            iat: now,
            nbf: now,
            exp,
            jti: jti.to_string(),
            sid: sid.to_string(),
        };
        self.sign(REFRESH_TYP, &claims)
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
        let claims = MfaClaims {
            iss: self.issuer.clone(),
            aud: self.audience_for(MFA_TYP),
            sub: sub.to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            amr: amr.to_vec(),
        };
        Ok((self.sign(MFA_TYP, &claims)?, claims))
    }

    /// Verifies an `mfa+jwt` token at time `now`.
    pub fn verify_mfa(&self, token: &str, now: u64) -> Result<MfaClaims, TokenError> {
        self.verify(token, MFA_TYP, now)
    }

    /// Signs any claims with the active key under the given `typ`.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> anyhow::Result<String> {
        let key = self.ring.signer();
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
    pub fn verify_refresh(&self, token: &str, now: u64) -> Result<RefreshClaims, TokenError> {
        self.verify(token, REFRESH_TYP, now)
    }

    /// Verifies signature, type and registered claims at time `now` (the
    /// service clock, with [`LEEWAY_SECS`] of skew); returns the claims.
    pub fn verify<T: DeserializeOwned + TimeClaims>(
        &self,
        token: &str,
        typ: &str,
        now: u64,
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
        let key = self.ring.by_kid(kid).ok_or(TokenError::UnknownKey)?;
        if header.alg != key.alg {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY_SECS;
        // Time is checked below against the service clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.issuer]);
        // Tokens other than access tokens were issued with the access
        // audience before issue 20: they are accepted under it until the
        // longest of them (a 30-day refresh token) has expired. `typ` above
        // still keeps every kind in its place.
        let own = self.audience_for(typ);
        if own == self.audience {
            validation.set_audience(&[&self.audience]);
        } else {
            validation.set_audience(&[own.as_str(), self.audience.as_str()]);
        }
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<T>(token, &key.decoding, &validation).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn now_secs() -> u64 {
        crate::clock::Clock::system().now_u64()
    }
    use crate::config::SigningAlg;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use proptest::prelude::*;

    fn service(alg: SigningAlg) -> (tempfile::TempDir, TokenService) {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = KeyRing::load_or_generate(dir.path(), alg).unwrap();
        let svc = TokenService::new(
            Arc::new(ring),
            "https://issuer.test".into(),
            "portcullis".into(),
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        );
        (dir, svc)
    }

    fn access(svc: &TokenService) -> String {
        svc.issue_access(
            "user-1",
            "sid-1",
            &["pwd".into()],
            &["user".into()],
            now_secs(),
            now_secs(),
        )
        .unwrap()
    }

    /// Re-encodes a token's header or claims (signature kept: so it no longer matches).
    fn tamper(token: &str, part: usize, f: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut v: serde_json::Value =
            serde_json::from_slice(&B64.decode(&parts[part]).unwrap()).unwrap();
        f(&mut v);
        parts[part] = B64.encode(serde_json::to_vec(&v).unwrap());
        parts.join(".")
    }

    #[test]
    fn round_trip_for_every_algorithm() {
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
            let (_d, svc) = service(alg);
            let t = access(&svc);
            let header = jsonwebtoken::decode_header(&t).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(
                header.kid.as_deref(),
                Some(svc.ring().signer().kid.as_str())
            );
            let c = svc.verify_access(&t, now_secs()).unwrap();
            assert_eq!(c.sub, "user-1");
            assert_eq!(c.sid, "sid-1");
            assert_eq!(c.amr, vec!["pwd"]);
            assert_eq!(c.exp - c.iat, 900);
        }
    }

    #[test]
    fn tampered_signature_is_refused() {
        let (_d, svc) = service(SigningAlg::EdDsa);
        let t = access(&svc);
        let forged = tamper(&t, 1, |c| c["sub"] = "admin".into());
        assert_eq!(
            svc.verify_access(&forged, now_secs()),
            Err(TokenError::BadSignature)
        );
        let mut sig_flipped = t.clone();
        let last = sig_flipped.pop().unwrap();
        sig_flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert!(svc.verify_access(&sig_flipped, now_secs()).is_err());
    }

    #[test]
    fn wrong_typ_is_refused_both_ways() {
        let (_d, svc) = service(SigningAlg::EdDsa);
        let a = access(&svc);
        let r = svc
            .issue_refresh("u", "s", "j", now_secs(), now_secs() + 60)
            .unwrap();
        assert_eq!(
            svc.verify_refresh(&a, now_secs()).unwrap_err(),
            TokenError::WrongType
        );
        assert_eq!(
            svc.verify_access(&r, now_secs()).unwrap_err(),
            TokenError::WrongType
        );
        let no_typ = tamper(&a, 0, |h| {
            h.as_object_mut()
                .unwrap()
                .remove("typ")
                .map(|_| ())
                .unwrap()
        });
        assert_eq!(
            svc.verify_access(&no_typ, now_secs()).unwrap_err(),
            TokenError::WrongType
        );
    }

    #[test]
    fn mfa_tokens_are_neither_access_nor_refresh_tokens() {
        let (_d, svc) = service(SigningAlg::EdDsa);
        let (m, claims) = svc
            .issue_mfa("u", &["pwd".into()], now_secs(), 300)
            .unwrap();
        assert_eq!(svc.verify_mfa(&m, now_secs()).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(
            svc.verify_access(&m, now_secs()).unwrap_err(),
            TokenError::WrongType
        );
        assert_eq!(
            svc.verify_refresh(&m, now_secs()).unwrap_err(),
            TokenError::WrongType
        );
        assert_eq!(
            svc.verify_mfa(&access(&svc), now_secs()).unwrap_err(),
            TokenError::WrongType
        );
        assert_eq!(
            svc.verify_mfa(&m, now_secs() + 300 + LEEWAY_SECS + 1)
                .unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn wrong_audience_and_issuer_are_refused() {
        let (dir, svc) = service(SigningAlg::EdDsa);
        let ring = KeyRing::load(dir.path(), SigningAlg::EdDsa).unwrap();
        let other_aud = TokenService::new(
            Arc::new(ring),
            "https://issuer.test".into(),
            "other".into(),
            svc.access_ttl,
            svc.refresh_ttl,
        );
        assert_eq!(
            svc.verify_access(&access(&other_aud), now_secs()),
            Err(TokenError::WrongAudience)
        );
        let ring = KeyRing::load(dir.path(), SigningAlg::EdDsa).unwrap();
        let other_iss = TokenService::new(
            Arc::new(ring),
            "https://evil.test".into(),
            "portcullis".into(),
            svc.access_ttl,
            svc.refresh_ttl,
        );
        assert_eq!(
            svc.verify_access(&access(&other_iss), now_secs()),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn expired_is_refused_beyond_the_leeway() {
        let (_d, svc) = service(SigningAlg::EdDsa);
        let past = now_secs() - 900 - LEEWAY_SECS - 2;
        let t = svc.issue_access("u", "s", &[], &[], past, past).unwrap();
        assert_eq!(svc.verify_access(&t, now_secs()), Err(TokenError::Expired));
        let future = svc
            .issue_access("u", "s", &[], &[], now_secs(), now_secs() + 120)
            .unwrap();
        assert_eq!(
            svc.verify_access(&future, now_secs()),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        let (_d, svc) = service(SigningAlg::Rs256);
        let t = access(&svc);
        // alg: none with no signature.
        let none = tamper(&t, 0, |h| h["alg"] = "none".into());
        let none = format!("{}.", none.rsplit_once('.').unwrap().0);
        assert!(svc.verify_access(&none, now_secs()).is_err());
        // HS256 keyed with the public key (classic confusion attack).
        let public = serde_json::to_vec(&svc.ring().signer().jwk).unwrap();
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(svc.ring().signer().kid.clone());
        let claims: AccessClaims = svc.verify_access(&t, now_secs()).unwrap();
        let hs = jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&public),
        )
        .unwrap();
        assert_eq!(
            svc.verify_access(&hs, now_secs()),
            Err(TokenError::AlgorithmNotAllowed)
        );
        // A key embedded in the header is never used.
        let jwk_hdr = tamper(&t, 0, |h| {
            h["jwk"] = serde_json::json!({"kty":"oct","k":"AA"})
        });
        assert_eq!(
            svc.verify_access(&jwk_hdr, now_secs()),
            Err(TokenError::ForbiddenHeader)
        );
        let jku = tamper(&t, 0, |h| h["jku"] = "https://evil.test/jwks".into());
        assert_eq!(
            svc.verify_access(&jku, now_secs()),
            Err(TokenError::ForbiddenHeader)
        );
    }

    #[test]
    fn unknown_kid_is_refused() {
        let (_d, a) = service(SigningAlg::EdDsa);
        let (_e, b) = service(SigningAlg::EdDsa);
        assert_eq!(
            a.verify_access(&access(&b), now_secs()),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn string_dates_are_refused() {
        // Signed properly, but `exp` is a string: must not be skipped.
        let (_d, svc) = service(SigningAlg::EdDsa);
        let mut claims =
            serde_json::to_value(svc.verify_access(&access(&svc), now_secs()).unwrap()).unwrap();
        claims["exp"] = "99999999999".into();
        let t = svc.sign(ACCESS_TYP, &claims).unwrap();
        assert!(svc.verify_access(&t, now_secs()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,300}") {
            let (_d, svc) = service(SigningAlg::EdDsa);
            prop_assert!(svc.verify_access(&s, now_secs()).is_err());
        }

        #[test]
        fn arbitrary_three_part_input_never_panics(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,60}", c in "[A-Za-z0-9_-]{0,60}") {
            let (_d, svc) = service(SigningAlg::EdDsa);
            let token = format!("{a}.{b}.{c}");
            prop_assert!(svc.verify_access(&token, now_secs()).is_err());
        }
    }
}

//! Unit tests of issuing and verifying: every refusal the module docs
//! promise (foreign keys, algorithms, headers, types, times).

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

/// Claims JSON of each kind exactly as the release before
/// [`RegisteredClaims`] wrote it (one flat object, fields in this order).
const ACCESS_JSON: &str = r#"{"iss":"https://issuer.test","aud":"portcullis","sub":"user-1","exp":1900000900,"iat":1900000000,"nbf":1900000000,"jti":"a-jti","client_id":"portcullis","sid":"sid-1","amr":["pwd","otp"],"roles":["user"],"auth_time":1899999000,"is_anonymous":true,"idp":"acme","cnf":{"jkt":"thumb"}}"#;
const REFRESH_JSON: &str = r#"{"iss":"https://issuer.test","aud":"https://issuer.test/refresh","sub":"user-1","exp":1902592000,"iat":1900000000,"nbf":1900000000,"jti":"r-jti","sid":"sid-1"}"#;
const MFA_JSON: &str = r#"{"iss":"https://issuer.test","aud":"https://issuer.test/mfa","sub":"user-1","exp":1900000300,"iat":1900000000,"nbf":1900000000,"jti":"m-jti","amr":["pwd"]}"#;
/// An access token of an earlier release: without `auth_time` (read as 0).
const OLD_ACCESS_JSON: &str = r#"{"iss":"https://issuer.test","aud":"portcullis","sub":"user-1","exp":1900000900,"iat":1900000000,"nbf":1900000000,"jti":"a-jti","client_id":"portcullis","sid":"sid-1","amr":["pwd"],"roles":["user"]}"#;

#[test]
fn claims_keep_their_wire_format() {
    let access: AccessClaims = serde_json::from_str(ACCESS_JSON).unwrap();
    assert_eq!(access.sub, "user-1");
    assert_eq!((access.exp, access.jti.as_str()), (1_900_000_900, "a-jti"));
    assert_eq!(access.cnf.as_ref().map(|c| c.jkt.as_str()), Some("thumb"));
    assert_eq!(serde_json::to_string(&access).unwrap(), ACCESS_JSON);
    let refresh: RefreshClaims = serde_json::from_str(REFRESH_JSON).unwrap();
    assert_eq!(
        (refresh.sid.as_str(), refresh.jti.as_str()),
        ("sid-1", "r-jti")
    );
    assert_eq!(serde_json::to_string(&refresh).unwrap(), REFRESH_JSON);
    let mfa: MfaClaims = serde_json::from_str(MFA_JSON).unwrap();
    assert_eq!(mfa.amr, ["pwd"]);
    assert_eq!(serde_json::to_string(&mfa).unwrap(), MFA_JSON);
    // A missing registered claim is still refused, as it was.
    let no_jti = ACCESS_JSON.replace(r#""jti":"a-jti","#, "");
    assert!(serde_json::from_str::<AccessClaims>(&no_jti).is_err());
}

#[test]
fn tokens_signed_by_the_previous_release_still_verify() {
    let (_d, svc) = service(SigningAlg::EdDsa);
    let now = 1_900_000_010;
    // The bytes the previous release signed: its claims serialized flat.
    let signed = |typ: &str, json: &str| {
        let raw: serde_json::Value = serde_json::from_str(json).unwrap();
        svc.sign(typ, &raw).unwrap()
    };
    let access = svc
        .verify_access(&signed(ACCESS_TYP, ACCESS_JSON), now)
        .unwrap();
    assert_eq!(access, serde_json::from_str(ACCESS_JSON).unwrap());
    let old = svc
        .verify_access(&signed(ACCESS_TYP, OLD_ACCESS_JSON), now)
        .unwrap();
    assert_eq!(
        (old.auth_time, old.is_anonymous, old.cnf.is_none()),
        (0, false, true)
    );
    let refresh = svc
        .verify_refresh(&signed(REFRESH_TYP, REFRESH_JSON), now)
        .unwrap();
    assert_eq!(refresh.sub, "user-1");
    let mfa = svc.verify_mfa(&signed(MFA_TYP, MFA_JSON), now).unwrap();
    assert_eq!(mfa.jti, "m-jti");
    // And the time claims still come from the registered part.
    assert_eq!(
        svc.verify_mfa(&signed(MFA_TYP, MFA_JSON), 1_900_000_400),
        Err(TokenError::Expired)
    );
}

/// What `#[serde(flatten)]` costs on the access token: decoding the claims
/// with and without it, next to a whole verification (signature included).
/// Run: `cargo test --lib flatten_costs -- --ignored --nocapture`. In a
/// test build serde's generic code is unoptimised while the crypto
/// dependencies are (`profile.dev.package."*"`), so this overstates the
/// share of decoding; a release build only shrinks it.
#[test]
#[ignore = "a measurement, not a check"]
fn flatten_costs_little_next_to_the_signature() {
    #[derive(serde::Deserialize)]
    #[allow(dead_code, reason = "only decoded")]
    struct Flat {
        iss: String,
        aud: String,
        sub: String,
        exp: u64,
        iat: u64,
        nbf: u64,
        jti: String,
        client_id: String,
        sid: String,
        amr: Vec<String>,
        roles: Vec<String>,
        #[serde(default)]
        auth_time: u64,
        #[serde(default)]
        is_anonymous: bool,
        idp: Option<String>,
        cnf: Option<Confirmation>,
    }
    fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
        let start = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed() / n
    }
    let (_d, svc) = service(SigningAlg::EdDsa);
    let raw: serde_json::Value = serde_json::from_str(ACCESS_JSON).unwrap();
    let token = svc.sign(ACCESS_TYP, &raw).unwrap();
    let n = 20_000;
    let flat = per_call(n, || {
        std::hint::black_box(serde_json::from_str::<Flat>(ACCESS_JSON).unwrap());
    });
    let flattened = per_call(n, || {
        std::hint::black_box(serde_json::from_str::<AccessClaims>(ACCESS_JSON).unwrap());
    });
    let verify = per_call(n / 10, || {
        std::hint::black_box(svc.verify_access(&token, 1_900_000_010).unwrap());
    });
    println!(
        "decode flat {flat:?}, decode flattened {flattened:?}, whole verify_access {verify:?}"
    );
}

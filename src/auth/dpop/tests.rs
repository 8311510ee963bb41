//! One test per RFC 9449 §4.3 check of a proof (the `jti` replay check
//! needs the store: `service::dpop` tests it on both backends).

use super::*;

const NOW: u64 = 1_900_000_000;
const HTU: &str = "https://id.example.com/v1/me";

fn want(token: Option<&'static str>) -> Expected<'static> {
    Expected {
        htm: "GET",
        htu: HTU,
        access_token: token,
        now: NOW,
        max_age: 60,
    }
}

fn claims(signer_iat: u64) -> serde_json::Value {
    serde_json::json!({"jti": "j-1", "htm": "GET", "htu": HTU, "iat": signer_iat})
}

fn refused(proof: &str, w: &Expected<'_>) -> &'static str {
    match check_proof(proof, w) {
        Err(ProofError::Invalid(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_good_es256_and_eddsa_proof_pass_and_give_the_key_thumbprint() {
    for signer in [ProofSigner::es256().unwrap(), ProofSigner::eddsa().unwrap()] {
        let p = signer.proof("GET", HTU, NOW, Some("tok"), None);
        let (checked, nonce) = check_proof(&p, &want(Some("tok"))).unwrap();
        assert_eq!(checked.jkt, signer.jkt());
        assert_eq!(checked.iat, NOW);
        assert!(nonce.is_none());
        assert_eq!(checked.jkt.len(), 43, "base64url SHA-256");
    }
}

#[test]
fn rfc_7638_thumbprint_of_the_rfc_example_key() {
    // RFC 7638 §3.1's RSA example gives NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs;
    // the same construction for the RFC 8037 §A.3 Ed25519 example key:
    let jwk: Jwk = serde_json::from_value(serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    }))
    .unwrap();
    assert_eq!(
        jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn typ_must_be_dpop_jwt() {
    let s = ProofSigner::es256().unwrap();
    for typ in [
        serde_json::json!("JWT"),
        serde_json::json!(null),
        serde_json::json!("at+jwt"),
    ] {
        let mut h = s.header();
        h["typ"] = typ;
        let p = s.sign_raw(&h, &claims(NOW));
        assert_eq!(refused(&p, &want(None)), "the proof's typ is not dpop+jwt");
    }
}

#[test]
fn only_es256_and_eddsa_are_accepted() {
    let s = ProofSigner::es256().unwrap();
    for alg in ["none", "HS256", "RS256", "ES384"] {
        let mut h = s.header();
        h["alg"] = alg.into();
        let p = s.sign_raw(&h, &claims(NOW));
        assert_eq!(
            refused(&p, &want(None)),
            "the proof's alg is not ES256 or EdDSA"
        );
    }
    // An ES256 header over an Ed25519 key: the curve does not match.
    let e = ProofSigner::eddsa().unwrap();
    let mut h = e.header();
    h["alg"] = "ES256".into();
    let p = e.sign_raw(&h, &claims(NOW));
    assert!(refused(&p, &want(None)).contains("public key"));
}

#[test]
fn a_jwk_with_a_private_member_is_refused() {
    let s = ProofSigner::es256().unwrap();
    let mut h = s.header();
    h["jwk"]["d"] = "c2VjcmV0".into();
    let p = s.sign_raw(&h, &claims(NOW));
    assert_eq!(
        refused(&p, &want(None)),
        "the jwk header holds a private key"
    );
    let mut h = s.header();
    h["jwk"] = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
    let p = s.sign_raw(&h, &claims(NOW));
    assert_eq!(
        refused(&p, &want(None)),
        "the jwk header holds a private key"
    );
}

#[test]
fn a_missing_jwk_or_a_crit_header_is_refused() {
    let s = ProofSigner::es256().unwrap();
    let mut h = s.header();
    h.as_object_mut().unwrap().remove("jwk");
    assert_eq!(
        refused(&s.sign_raw(&h, &claims(NOW)), &want(None)),
        "the proof has no jwk header"
    );
    let mut h = s.header();
    h["crit"] = serde_json::json!(["exp"]);
    assert_eq!(
        refused(&s.sign_raw(&h, &claims(NOW)), &want(None)),
        "the proof has a crit header"
    );
}

#[test]
fn the_signature_must_be_by_the_header_key() {
    let a = ProofSigner::es256().unwrap();
    let b = ProofSigner::es256().unwrap();
    // Signed by b, claiming a's key.
    let p = b.sign_raw(&a.header(), &claims(NOW));
    assert_eq!(
        refused(&p, &want(None)),
        "the proof's signature does not verify with its jwk"
    );
    // A tampered payload.
    let good = a.proof("GET", HTU, NOW, None, None);
    let mut parts: Vec<&str> = good.split('.').collect();
    let other = B64URL.encode(claims(NOW).to_string());
    parts[1] = &other;
    assert!(check_proof(&parts.join("."), &want(None)).is_err());
    assert!(check_proof("a.b", &want(None)).is_err());
    assert!(check_proof(&"x".repeat(9000), &want(None)).is_err());
}

#[test]
fn jti_htm_and_iat_are_required() {
    let s = ProofSigner::eddsa().unwrap();
    for (member, why) in [
        ("jti", "the proof has no jti"),
        ("htm", "the proof's htm is not the request's method"),
        ("htu", "the proof's htu is not an http(s) URL"),
        ("iat", "the proof has no numeric iat"),
    ] {
        let mut c = claims(NOW);
        c.as_object_mut().unwrap().remove(member);
        assert_eq!(refused(&s.sign_raw(&s.header(), &c), &want(None)), why);
    }
    let mut c = claims(NOW);
    // A string iat (jsonwebtoken already refuses non-numeric dates).
    c["iat"] = "1900000000".into();
    assert!(check_proof(&s.sign_raw(&s.header(), &c), &want(None)).is_err());
}

#[test]
fn htm_must_be_the_method() {
    let s = ProofSigner::es256().unwrap();
    for htm in ["POST", "get"] {
        let p = s.proof(htm, HTU, NOW, None, None);
        assert_eq!(
            refused(&p, &want(None)),
            "the proof's htm is not the request's method"
        );
    }
}

#[test]
fn htu_is_compared_normalised_without_query_or_fragment() {
    let s = ProofSigner::es256().unwrap();
    for ok in [
        "https://id.example.com/v1/me",
        "HTTPS://ID.Example.COM/v1/me",
        "https://id.example.com:443/v1/me",
        "https://id.example.com/v1/me?x=1",
        "https://id.example.com/v1/me#frag",
    ] {
        let p = s.proof("GET", ok, NOW, None, None);
        assert!(check_proof(&p, &want(None)).is_ok(), "{ok}");
    }
    for bad in [
        "https://id.example.com/v1/me/",
        "http://id.example.com/v1/me",
        "https://id.example.com:8443/v1/me",
        "https://evil.example.com/v1/me",
        "https://id.example.com/v1/ME",
        "/v1/me",
    ] {
        let p = s.proof("GET", bad, NOW, None, None);
        assert!(check_proof(&p, &want(None)).is_err(), "{bad}");
    }
    assert_eq!(
        normalize_htu("http://LOCALHOST:80/a?b#c").as_deref(),
        Some("http://localhost/a")
    );
    assert_eq!(normalize_htu("ftp://x/y"), None);
}

#[test]
fn iat_must_be_recent_and_not_in_the_future() {
    let s = ProofSigner::es256().unwrap();
    let ok = |iat| check_proof(&s.proof("GET", HTU, iat, None, None), &want(None)).is_ok();
    assert!(ok(NOW - 60));
    assert!(ok(NOW + LEEWAY_SECS));
    assert!(
        !ok(NOW - 60 - LEEWAY_SECS - 1),
        "older than the maximum age"
    );
    assert!(!ok(NOW + LEEWAY_SECS + 1), "in the future");
}

#[test]
fn ath_must_match_the_access_token() {
    let s = ProofSigner::es256().unwrap();
    let p = s.proof("GET", HTU, NOW, None, None);
    assert_eq!(
        refused(&p, &want(Some("tok"))),
        "the proof has no ath for the access token"
    );
    let p = s.proof("GET", HTU, NOW, Some("another token"), None);
    assert_eq!(
        refused(&p, &want(Some("tok"))),
        "the proof's ath does not match the access token"
    );
    // RFC 9449 §7.1's example: ath of the example token.
    assert_eq!(
        ath_of("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn nonces_are_stateless_and_rotate() {
    let keys = NonceKeys::new(SecretBox::new(Box::new([7u8; 32])));
    let other = NonceKeys::new(SecretBox::new(Box::new([8u8; 32])));
    let n = keys.issue(NOW);
    assert!(keys.accepts(&n, NOW));
    assert!(
        keys.accepts(&n, NOW + NONCE_PERIOD_SECS),
        "the next slot still accepts it"
    );
    assert!(!keys.accepts(&n, NOW + 2 * NONCE_PERIOD_SECS), "expired");
    assert!(!other.accepts(&n, NOW), "another server secret");
    assert!(!keys.accepts("garbage", NOW));
    assert!(!keys.accepts(&format!("{}.{}", NOW / NONCE_PERIOD_SECS + 5, "x"), NOW));
    assert_eq!(
        check_nonce(&keys, None, NOW),
        Err(ProofError::NonceRequired)
    );
    assert_eq!(check_nonce(&keys, Some(&n), NOW), Ok(()));
    // The nonce travels in the proof.
    let s = ProofSigner::es256().unwrap();
    let p = s.proof("GET", HTU, NOW, None, Some(&n));
    let (_, got) = check_proof(&p, &want(None)).unwrap();
    assert_eq!(got.as_deref(), Some(n.as_str()));
}

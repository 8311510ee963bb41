//! The HMAC key of refresh tokens: what it signs, what it never verifies,
//! and tokens of earlier releases (signed by the ring) across the change.

use super::*;
use crate::config::SigningAlg;
use jsonwebtoken::{EncodingKey, Header};

fn now() -> u64 {
    crate::clock::Clock::system().now_u64()
}

/// A service over a fresh keys folder: ring plus refresh key, signing
/// refresh tokens with the HMAC key when `hmac`.
fn service(alg: SigningAlg, hmac: bool) -> (tempfile::TempDir, TokenService) {
    let dir = tempfile::tempdir().unwrap();
    let (svc, _) = service_in(dir.path(), alg, hmac);
    (dir, svc)
}

fn service_in(dir: &std::path::Path, alg: SigningAlg, hmac: bool) -> (TokenService, RefreshKey) {
    let (ring, _) = KeyRing::load_or_generate(dir, alg).unwrap();
    let (key, _) = RefreshKey::load_or_create(dir).unwrap();
    let (copy, _) = RefreshKey::load_or_create(dir).unwrap();
    let svc = TokenService::new(
        Arc::new(ring),
        "https://issuer.test".into(),
        "portcullis".into(),
        Duration::from_secs(900),
        Duration::from_secs(86_400),
    )
    .with_refresh_key(Some(key), hmac);
    (svc, copy)
}

/// A verifier of the release before the HMAC key: the same ring, no refresh key.
fn old_release(dir: &std::path::Path, alg: SigningAlg) -> TokenService {
    TokenService::new(
        Arc::new(KeyRing::load(dir, alg).unwrap()),
        "https://issuer.test".into(),
        "portcullis".into(),
        Duration::from_secs(900),
        Duration::from_secs(86_400),
    )
}

fn refresh(svc: &TokenService) -> String {
    svc.issue_refresh_bound("user-1", "sid-1", "jti-1", now(), now() + 60, Some("jkt-1"))
        .unwrap()
}

#[test]
fn refresh_tokens_are_hs256_under_their_own_kid_and_verify() {
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
        let (_d, svc) = service(alg, true);
        let t = refresh(&svc);
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.alg, jsonwebtoken::Algorithm::HS256);
        assert_eq!(h.typ.as_deref(), Some(REFRESH_TYP));
        assert_eq!(h.kid.as_deref(), Some(svc.refresh_kid()));
        assert!(svc.refresh_kid().starts_with("hs256-"));
        assert!(svc.ring().by_kid(svc.refresh_kid()).is_none());
        let c = svc.verify_refresh(&t, now()).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.sid.as_str(), c.jti.as_str()),
            ("user-1", "sid-1", "jti-1")
        );
        assert_eq!(c.cnf.unwrap().jkt, "jkt-1");
        assert_eq!(c.aud, "https://issuer.test/refresh");
        // Tampering breaks the MAC.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = svc
            .issue_refresh_bound("user-2", "sid-1", "jti-1", now(), now() + 60, None)
            .unwrap();
        parts[1] = forged.split('.').nth(1).unwrap();
        assert_eq!(
            svc.verify_refresh(&parts.join("."), now()).unwrap_err(),
            TokenError::BadSignature
        );
        // Expiry is still checked.
        assert_eq!(
            svc.verify_refresh(&t, now() + 61 + LEEWAY_SECS)
                .unwrap_err(),
            TokenError::Expired
        );
    }
}

#[test]
fn a_refresh_token_of_an_earlier_release_still_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    // Minted exactly as the release before the HMAC key did: the ring's
    // signer, before any refresh key existed in the folder.
    let old = {
        let (ring, _) = KeyRing::load_or_generate(dir.path(), SigningAlg::EdDsa).unwrap();
        TokenService::new(
            Arc::new(ring),
            "https://issuer.test".into(),
            "portcullis".into(),
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        )
    };
    let minted = refresh(&old);
    assert_eq!(
        jsonwebtoken::decode_header(&minted).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    let (new, _) = service_in(dir.path(), SigningAlg::EdDsa, true);
    let c = new.verify_refresh(&minted, now()).unwrap();
    assert_eq!(c.jti, "jti-1");
}

#[test]
fn signing_key_mode_is_what_an_older_replica_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (hmac, _) = service_in(dir.path(), SigningAlg::EdDsa, true);
    let (rollout, _) = service_in(dir.path(), SigningAlg::EdDsa, false);
    let old = old_release(dir.path(), SigningAlg::EdDsa);
    // An older replica cannot verify an HMAC refresh token: the reason for
    // PORTCULLIS_REFRESH_SIGNING=signing-key during a rolling upgrade.
    assert_eq!(
        old.verify_refresh(&refresh(&hmac), now()).unwrap_err(),
        TokenError::UnknownKey
    );
    // In signing-key mode new refresh tokens are signed by the ring: an
    // older replica verifies them...
    let t = refresh(&rollout);
    assert_eq!(rollout.refresh_kid(), rollout.ring().signer().kid);
    assert_eq!(
        jsonwebtoken::decode_header(&t).unwrap().kid.as_deref(),
        Some(rollout.ring().signer().kid.as_str())
    );
    assert_eq!(old.verify_refresh(&t, now()).unwrap().jti, "jti-1");
    // ...and a replica in that mode still accepts the HMAC ones of a
    // replica already switched (the second step of the rollout).
    assert_eq!(
        rollout.verify_refresh(&refresh(&hmac), now()).unwrap().jti,
        "jti-1"
    );
}

#[test]
fn the_hmac_key_verifies_no_other_kind_of_token_and_is_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, key) = service_in(dir.path(), SigningAlg::EdDsa, true);
    let access = svc
        .issue_access("user-1", "sid-1", &["pwd".into()], &[], now(), now())
        .unwrap();
    let (mfa, _) = svc
        .issue_mfa("user-1", &["pwd".into()], now(), 300)
        .unwrap();
    // The same claims, re-signed HS256 with the refresh key under its kid
    // (and under the ring's kid): refused as access and as mfa tokens.
    let resign = |token: &str, kid: &str| {
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let typ = jsonwebtoken::decode_header(token).unwrap().typ;
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = typ;
        h.kid = Some(kid.to_string());
        jsonwebtoken::encode(&h, &claims, &key.encoding).unwrap()
    };
    let signer = svc.ring().signer().kid.clone();
    for kid in [key.kid.as_str(), signer.as_str()] {
        let forged = resign(&access, kid);
        assert!(matches!(
            svc.verify_access(&forged, now()).unwrap_err(),
            TokenError::UnknownKey | TokenError::AlgorithmNotAllowed
        ));
        assert!(svc.verify_access_any_audience(&forged, now()).is_err());
        assert!(svc.verify_mfa(&resign(&mfa, kid), now()).is_err());
    }
    // HMAC with the public key's bytes (the classic confusion) is refused too.
    let public = serde_json::to_vec(&svc.ring().signer().jwk).unwrap();
    let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
    h.typ = Some(ACCESS_TYP.into());
    h.kid = Some(signer.clone());
    let claims = svc.verify_access(&access, now()).unwrap();
    let confused = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&public)).unwrap();
    assert_eq!(
        svc.verify_access(&confused, now()).unwrap_err(),
        TokenError::AlgorithmNotAllowed
    );
    // The JWKS holds the ring's public keys only: no `oct` key, no HMAC kid.
    let jwks = serde_json::to_value(svc.ring().jwks()).unwrap();
    let text = jwks.to_string();
    assert!(!text.contains(&key.kid), "{text}");
    assert!(!text.contains("\"oct\""), "{text}");
    assert!(!text.contains("HS256"), "{text}");
}

//! Refresh tokens signed with the secret HMAC key (`keys/refresh-hmac.key`),
//! refresh tokens of earlier releases (signed by the ring) across the
//! change, the rollout setting `PORTCULLIS_REFRESH_SIGNING=signing-key`, and
//! what the HMAC key never does (appear in the JWKS, verify another token).

use portcullis::auth::tokens::{REFRESH_TYP, RefreshKey};
use portcullis::auth::{KeyRing, RefreshClaims, TokenService};
use portcullis::config::SigningAlg;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn header_of(jwt: &str) -> Value {
    use base64::Engine;
    let h = jwt.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

/// The token service of the release before the HMAC key: the server's
/// key ring, no refresh key (so refresh tokens are signed by the ring).
fn previous_release(app: &TestApp, c: &RefreshClaims) -> TokenService {
    let ring = KeyRing::load(app.keys_path(), SigningAlg::EdDsa).unwrap();
    let day = std::time::Duration::from_secs(86_400);
    TokenService::new(
        std::sync::Arc::new(ring),
        c.iss.clone(),
        "portcullis".into(),
        day,
        day,
    )
}

async fn jwks_text(app: &TestApp) -> String {
    app.client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn refresh_tokens_are_hmac_signed_and_rotation_and_reuse_detection_hold() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let first = token(&tokens, "refresh_token");
    let h = header_of(&first);
    assert_eq!(h["alg"], "HS256");
    assert_eq!(h["typ"], "refresh+jwt");
    let (key, created) = RefreshKey::load_or_create(app.keys_path()).unwrap();
    assert!(!created, "the server made refresh-hmac.key at start");
    assert_eq!(h["kid"], key.kid.as_str());
    // The access token is still signed by the published key.
    let access = header_of(&token(&tokens, "access_token"));
    assert_eq!(access["alg"], "EdDSA");
    let jwks = jwks_text(&app).await;
    assert!(jwks.contains(access["kid"].as_str().unwrap()));
    assert!(
        !jwks.contains(&key.kid) && !jwks.contains("\"oct\""),
        "{jwks}"
    );

    let r = app.refresh(&first).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next: Value = r.json().await.unwrap();
    let second = token(&next, "refresh_token");
    assert_eq!(header_of(&second)["alg"], "HS256");
    // The retired token within the grace window gets the current pair.
    let grace = app.refresh(&first).await;
    assert_eq!(grace.status(), StatusCode::OK, "within the grace window");
    // Without a grace window, the retired token is a reuse: the family dies.
    let app2 = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_GRACE".into(), "0s".into());
    })
    .await;
    let (_, t) = app2.signed_in_user().await;
    let r1 = token(&t, "refresh_token");
    let fresh: Value = app2.refresh(&r1).await.json().await.unwrap();
    assert_eq!(app2.refresh(&r1).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app2.refresh(&token(&fresh, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED,
        "reuse revoked the whole family"
    );
}

#[tokio::test]
async fn a_refresh_token_minted_as_the_previous_release_did_refreshes() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    let current = claims_of(&token(&tokens, "refresh_token"));
    // The previous release signed refresh tokens with the ring's signer
    // (EdDSA here), same claims: the generation the store holds now.
    let claims: RefreshClaims = serde_json::from_value(current).unwrap();
    let old = previous_release(&app, &claims)
        .sign(REFRESH_TYP, &claims)
        .unwrap();
    assert_eq!(header_of(&old)["alg"], "EdDSA");
    let r = app.refresh(&old).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next: Value = r.json().await.unwrap();
    assert_eq!(header_of(&token(&next, "refresh_token"))["alg"], "HS256");
    let me = app
        .get_authed("/v1/me", &token(&next, "access_token"))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    // Presented again, the old token is a retired generation as before.
    let app_strict = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_GRACE".into(), "0s".into());
    })
    .await;
    let (_, t) = app_strict.signed_in_user().await;
    let c: RefreshClaims = serde_json::from_value(claims_of(&token(&t, "refresh_token"))).unwrap();
    let old = previous_release(&app_strict, &c)
        .sign(REFRESH_TYP, &c)
        .unwrap();
    assert_eq!(app_strict.refresh(&old).await.status(), StatusCode::OK);
    assert_eq!(
        app_strict.refresh(&old).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn signing_key_mode_signs_refresh_tokens_with_the_ring_and_accepts_hmac_ones() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_REFRESH_SIGNING".into(), "signing-key".into());
    })
    .await;
    let (_, tokens) = app.signed_in_user().await;
    let rt = token(&tokens, "refresh_token");
    let h = header_of(&rt);
    assert_eq!(h["alg"], "EdDSA");
    assert!(jwks_text(&app).await.contains(h["kid"].as_str().unwrap()));
    let r = app.refresh(&rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next: Value = r.json().await.unwrap();
    // A replica already switched to `hmac` signed this generation.
    let c: RefreshClaims =
        serde_json::from_value(claims_of(&token(&next, "refresh_token"))).unwrap();
    let (key, _) = RefreshKey::load_or_create(app.keys_path()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some(REFRESH_TYP.into());
    header.kid = Some(key.kid.clone());
    let secret = std::fs::read_to_string(app.keys_path().join("refresh-hmac.key")).unwrap();
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .unwrap();
    let hmac = jsonwebtoken::encode(
        &header,
        &c,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let r = app.refresh(&hmac).await;
    assert_eq!(r.status(), StatusCode::OK);
    let after: Value = r.json().await.unwrap();
    assert_eq!(header_of(&token(&after, "refresh_token"))["alg"], "EdDSA");
}

#[tokio::test]
async fn hs256_access_tokens_are_refused_and_keys_rotate_never_publishes_the_hmac_key() {
    let keys = tempfile::tempdir().unwrap();
    let env: std::collections::BTreeMap<String, String> = [(
        "PORTCULLIS_KEYS_DIR".to_string(),
        keys.path().display().to_string(),
    )]
    .into();
    let (ok, out, err) = run_cli(&env, &[], &["keys", "generate"], "");
    assert!(ok, "{err}");
    assert!(out.contains("refresh-hmac.key"), "{out}");
    let (ok, _, err) = run_cli(&env, &[], &["keys", "rotate"], "");
    assert!(ok, "{err}");
    let dir = keys.path().display().to_string();
    let app = spawn_app_with(move |m| {
        m.insert("PORTCULLIS_KEYS_DIR".into(), dir);
    })
    .await;
    let jwks: Value = serde_json::from_str(&jwks_text(&app).await).unwrap();
    let (key, created) = RefreshKey::load_or_create(keys.path()).unwrap();
    assert!(!created);
    let published = jwks["keys"].as_array().unwrap();
    assert!(
        published.len() >= 3,
        "two EdDSA keys and the RS256 one: {jwks}"
    );
    for k in published {
        assert_ne!(k["kid"], key.kid.as_str());
        assert_ne!(k["kty"], "oct");
    }
    let (_, tokens) = app.signed_in_user().await;
    assert_eq!(
        header_of(&token(&tokens, "refresh_token"))["kid"],
        key.kid.as_str()
    );
    // An access token's claims re-signed HS256 with the refresh key: refused.
    let access = token(&tokens, "access_token");
    let claims = claims_of(&access);
    let secret = std::fs::read_to_string(keys.path().join("refresh-hmac.key")).unwrap();
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .unwrap();
    for kid in [
        key.kid.clone(),
        header_of(&access)["kid"].as_str().unwrap().to_string(),
    ] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid);
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            app.get_authed("/v1/me", &forged).await.status(),
            StatusCode::UNAUTHORIZED
        );
        // ...and an mfa token likewise.
        header_mfa_refused(&app, &claims, &secret, &header).await;
    }
    assert_eq!(
        app.get_authed("/v1/me", &access).await.status(),
        StatusCode::OK
    );
}

/// An `mfa+jwt` signed HS256 by the refresh key is refused at `POST /v1/sessions/mfa`.
async fn header_mfa_refused(
    app: &TestApp,
    claims: &Value,
    secret: &[u8],
    header: &jsonwebtoken::Header,
) {
    let mut header = header.clone();
    header.typ = Some("mfa+jwt".into());
    let mut c = claims.clone();
    c["aud"] = format!("{}/mfa", c["iss"].as_str().unwrap().trim_end_matches('/')).into();
    let forged =
        jsonwebtoken::encode(&header, &c, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap();
    let r = app
        .login_mfa(&serde_json::json!({"mfa_token": forged, "code": "123456"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{:?}", r.text().await);
}

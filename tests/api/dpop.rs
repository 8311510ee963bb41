//! Sender-constrained tokens (DPoP, RFC 9449) over HTTP: binding at sign-in,
//! use with proofs, replay, other keys, refresh, nonce mode, required mode,
//! CORS, discovery, introspection and userinfo.

use portcullis::auth::dpop::ProofSigner;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, claims_of, spawn_app, spawn_app_with, unique_email};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The URL a proof names: the server's public URL (`http://localhost:<port>`,
/// its default), never the address the test connects to.
fn htu(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.addr.replace("127.0.0.1", "localhost"))
}

fn proof(
    app: &TestApp,
    key: &ProofSigner,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> String {
    key.proof(method, &htu(app, path), now(), token, None)
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: Option<&str>,
    dpop: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut r = app.client.request(method, app.url(path));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    if let Some(p) = dpop {
        r = r.header("dpop", p);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap()
}

/// Registers a user and signs in with a proof by `key`; the tokens body.
async fn bound_sign_in(app: &TestApp, key: &ProofSigner) -> Value {
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let p = proof(app, key, "POST", "/v1/sessions", None);
    let body = json!({"email": email, "password": PASSWORD});
    let r = send(
        app,
        Method::POST,
        "/v1/sessions",
        None,
        Some(&p),
        Some(&body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn get_me(app: &TestApp, key: &ProofSigner, token: &str) -> Response {
    let p = proof(app, key, "GET", "/v1/me", Some(token));
    send(
        app,
        Method::GET,
        "/v1/me",
        Some(&format!("DPoP {token}")),
        Some(&p),
        None,
    )
    .await
}

/// A 401 with a `DPoP` challenge naming `error`.
async fn assert_dpop_401(r: Response, slug: &str, error: &str) -> Value {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("algs=\"ES256 EdDSA\""), "{challenge}");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/problems/{slug}")),
        "{body}"
    );
    assert_eq!(body["error"], error);
    body
}

#[tokio::test]
async fn a_proof_at_sign_in_binds_the_tokens_and_they_work_only_with_proofs() {
    let app = spawn_app().await;
    let key = ProofSigner::es256().unwrap();
    let tokens = bound_sign_in(&app, &key).await;
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["cnf"]["jkt"], key.jkt());
    // Used with a proof carrying ath: fine, again and again (fresh proofs;
    // the second from the verified-token cache).
    for _ in 0..2 {
        assert_eq!(get_me(&app, &key, access).await.status(), StatusCode::OK);
    }
    // A replayed proof.
    let p = proof(&app, &key, "GET", "/v1/me", Some(access));
    let auth = format!("DPoP {access}");
    let first = send(&app, Method::GET, "/v1/me", Some(&auth), Some(&p), None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = send(&app, Method::GET, "/v1/me", Some(&auth), Some(&p), None).await;
    assert_dpop_401(again, "invalid-dpop-proof", "invalid_dpop_proof").await;
    // Copied out and used as a bearer token, or with no proof.
    let bearer = app.get_authed("/v1/me", access).await;
    assert_dpop_401(bearer, "token-invalid", "invalid_token").await;
    let none = send(&app, Method::GET, "/v1/me", Some(&auth), None, None).await;
    assert_dpop_401(none, "invalid-dpop-proof", "invalid_dpop_proof").await;
    // With a proof by another key.
    let thief = ProofSigner::es256().unwrap();
    assert_dpop_401(
        get_me(&app, &thief, access).await,
        "token-invalid",
        "invalid_token",
    )
    .await;
    // A proof for another method, URL (the address connected to, not the
    // public URL) or token.
    for p in [
        proof(&app, &key, "POST", "/v1/me", Some(access)),
        key.proof("GET", &app.url("/v1/me"), now(), Some(access), None),
        proof(&app, &key, "GET", "/v1/sessions", Some(access)),
        proof(&app, &key, "GET", "/v1/me", Some("another token")),
        proof(&app, &key, "GET", "/v1/me", None),
        key.proof("GET", &htu(&app, "/v1/me"), now() - 600, Some(access), None),
    ] {
        let r = send(&app, Method::GET, "/v1/me", Some(&auth), Some(&p), None).await;
        assert_dpop_401(r, "invalid-dpop-proof", "invalid_dpop_proof").await;
    }
    // The userinfo endpoint, and DELETE (htm) sign-out, understand it.
    let p = proof(&app, &key, "GET", "/oauth/userinfo", Some(access));
    let r = send(
        &app,
        Method::GET,
        "/oauth/userinfo",
        Some(&auth),
        Some(&p),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.userinfo(access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let p = proof(&app, &key, "DELETE", "/v1/sessions", Some(access));
    let r = send(
        &app,
        Method::DELETE,
        "/v1/sessions",
        Some(&auth),
        Some(&p),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get_me(&app, &key, access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_ed25519_key_binds_too_and_a_bearer_token_is_not_a_dpop_token() {
    let app = spawn_app().await;
    let key = ProofSigner::eddsa().unwrap();
    let tokens = bound_sign_in(&app, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(get_me(&app, &key, access).await.status(), StatusCode::OK);
    // Without a proof: a bearer session, as before.
    let (_, plain) = app.signed_in_user().await;
    assert_eq!(plain["token_type"], "Bearer");
    let bearer = plain["access_token"].as_str().unwrap();
    assert!(claims_of(bearer).get("cnf").is_none());
    assert_eq!(app.me_status(bearer).await, StatusCode::OK);
    assert_dpop_401(
        get_me(&app, &key, bearer).await,
        "token-invalid",
        "invalid_token",
    )
    .await;
    // A proof with a private key in its jwk is refused at sign-in.
    let mut header = key.header();
    header["jwk"]["d"] = "AAAA".into();
    let claims =
        json!({"jti": "x1", "htm": "POST", "htu": htu(&app, "/v1/sessions"), "iat": now()});
    let bad = key.sign_raw(&header, &claims);
    let body = json!({"email": unique_email(), "password": PASSWORD});
    let r = send(
        &app,
        Method::POST,
        "/v1/sessions",
        None,
        Some(&bad),
        Some(&body),
    )
    .await;
    assert_dpop_401(r, "invalid-dpop-proof", "invalid_dpop_proof").await;
}

#[tokio::test]
async fn refresh_of_a_bound_session_needs_a_proof_by_its_key() {
    let app = spawn_app().await;
    let key = ProofSigner::es256().unwrap();
    let tokens = bound_sign_in(&app, &key).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let body = json!({"refresh_token": refresh});
    // The refresh token alone, or with another key's proof: 401.
    let r = app.refresh(refresh).await;
    assert_dpop_401(r, "token-invalid", "invalid_token").await;
    let thief = ProofSigner::es256().unwrap();
    let p = proof(&app, &thief, "POST", "/v1/sessions/refresh", None);
    let r = send(
        &app,
        Method::POST,
        "/v1/sessions/refresh",
        None,
        Some(&p),
        Some(&body),
    )
    .await;
    assert_dpop_401(r, "token-invalid", "invalid_token").await;
    // The same at the OAuth token endpoint: invalid_grant.
    let r = app.oauth_refresh(refresh).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The family was not burned: the owner refreshes as usual.
    let p = proof(&app, &key, "POST", "/v1/sessions/refresh", None);
    let r = send(
        &app,
        Method::POST,
        "/v1/sessions/refresh",
        None,
        Some(&p),
        Some(&body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["token_type"], "DPoP");
    let access = next["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["cnf"]["jkt"], key.jkt());
    assert_eq!(get_me(&app, &key, access).await.status(), StatusCode::OK);
    // And at /oauth/token with a proof.
    let p = proof(&app, &key, "POST", "/oauth/token", None);
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .header("dpop", p)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", next["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let oauth: Value = r.json().await.unwrap();
    assert_eq!(oauth["token_type"], "DPoP");
    // A bad proof there is RFC 9449 §5's 400.
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .header("dpop", "not.a.proof")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );
}

#[tokio::test]
async fn a_bearer_session_refreshed_with_a_proof_becomes_bound() {
    let app = spawn_app().await;
    let (_, plain) = app.signed_in_user().await;
    let key = ProofSigner::es256().unwrap();
    let p = proof(&app, &key, "POST", "/v1/sessions/refresh", None);
    let body = json!({"refresh_token": plain["refresh_token"]});
    let r = send(
        &app,
        Method::POST,
        "/v1/sessions/refresh",
        None,
        Some(&p),
        Some(&body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let bound: Value = r.json().await.unwrap();
    assert_eq!(bound["token_type"], "DPoP");
    // From now on the refresh needs the key.
    let r = app.refresh(bound["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nonce_mode_asks_for_a_nonce_and_the_retry_works() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_DPOP_NONCE".into(), "true".into());
    })
    .await;
    let key = ProofSigner::es256().unwrap();
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let body = json!({"email": email, "password": PASSWORD});
    let p = proof(&app, &key, "POST", "/v1/sessions", None);
    let r = send(
        &app,
        Method::POST,
        "/v1/sessions",
        None,
        Some(&p),
        Some(&body),
    )
    .await;
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
    assert_dpop_401(r, "use-dpop-nonce", "use_dpop_nonce").await;
    let p = key.proof(
        "POST",
        &htu(&app, "/v1/sessions"),
        now(),
        None,
        Some(&nonce),
    );
    let r = send(
        &app,
        Method::POST,
        "/v1/sessions",
        None,
        Some(&p),
        Some(&body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().contains_key("dpop-nonce"),
        "a fresh nonce with every answer"
    );
    let tokens: Value = r.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    // Resource requests need it too.
    let r = get_me(&app, &key, access).await;
    assert_dpop_401(r, "use-dpop-nonce", "use_dpop_nonce").await;
    let p = key.proof(
        "GET",
        &htu(&app, "/v1/me"),
        now(),
        Some(access),
        Some(&nonce),
    );
    let r = send(
        &app,
        Method::GET,
        "/v1/me",
        Some(&format!("DPoP {access}")),
        Some(&p),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The token endpoint answers RFC 9449 §5's 400 with the header.
    let p = proof(&app, &key, "POST", "/oauth/token", None);
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .header("dpop", p)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().contains_key("dpop-nonce"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "use_dpop_nonce");
}

#[tokio::test]
async fn required_mode_issues_no_bearer_tokens() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_DPOP".into(), "required".into());
    })
    .await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let r = app.login(&email, PASSWORD).await;
    let body = assert_problem_dpop_required(r).await;
    assert!(body["detail"].as_str().unwrap().contains("DPoP"));
    let r = app.oauth_refresh("whatever").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );
    // Routes that issue nothing are unaffected.
    assert_eq!(app.status_of("/v1/captcha").await, StatusCode::OK);
    let key = ProofSigner::es256().unwrap();
    let p = proof(&app, &key, "POST", "/v1/sessions", None);
    let login = json!({"email": email, "password": PASSWORD});
    let r = send(
        &app,
        Method::POST,
        "/v1/sessions",
        None,
        Some(&p),
        Some(&login),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "DPoP");
}

async fn assert_problem_dpop_required(r: Response) -> Value {
    assert_dpop_401(r, "dpop-required", "invalid_dpop_proof").await
}

#[tokio::test]
async fn cors_allows_the_header_and_exposes_the_nonce_and_discovery_lists_algorithms() {
    let origin = "https://spa.example";
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_CORS_ORIGINS".into(), origin.into());
    })
    .await;
    let r = app
        .client
        .request(Method::OPTIONS, app.url("/v1/me"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization, dpop")
        .send()
        .await
        .unwrap();
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.split(", ").any(|h| h == "dpop"), "{allowed}");
    let r = app.with_origin(Method::GET, "/v1/captcha", origin).await;
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.split(", ").any(|h| h == "dpop-nonce"), "{exposed}");
    for slug in ["invalid-dpop-proof", "use-dpop-nonce", "dpop-required"] {
        assert_eq!(
            app.status_of(&format!("/problems/{slug}")).await,
            StatusCode::OK,
            "{slug}"
        );
    }
    let d = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        d["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
}

#[tokio::test]
async fn introspection_shows_the_binding() {
    let app = spawn_app_with(|m| {
        m.insert("PORTCULLIS_INTROSPECTION_TOKEN".into(), "rs-secret".into());
    })
    .await;
    let key = ProofSigner::es256().unwrap();
    let tokens = bound_sign_in(&app, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let r = app.oauth_introspect(Some("rs-secret"), access).await;
    assert_eq!(r.status(), StatusCode::OK);
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "DPoP");
    assert_eq!(i["cnf"]["jkt"], key.jkt());
    let r = app
        .oauth_introspect(Some("rs-secret"), tokens["refresh_token"].as_str().unwrap())
        .await;
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["cnf"]["jkt"], key.jkt());
    // A bearer token has no cnf.
    let (_, plain) = app.signed_in_user().await;
    let r = app
        .oauth_introspect(Some("rs-secret"), plain["access_token"].as_str().unwrap())
        .await;
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["token_type"], "Bearer");
    assert!(i.get("cnf").is_none());
}

// -- The Rust resource-server check of docs/guides/dpop.md ("Rust, with
// jsonwebtoken"), verbatim, run against real tokens below.
mod guide {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    use serde::Deserialize;
    use sha2::{Digest, Sha256};

    #[derive(Deserialize)]
    struct Cnf {
        jkt: String,
    }
    #[derive(Deserialize)]
    struct Access {
        sub: String,
        cnf: Option<Cnf>,
    }
    #[derive(Deserialize)]
    struct Proof {
        jti: String,
        htm: String,
        htu: String,
        iat: u64,
        ath: Option<String>,
    }

    /// `key`: Portcullis's public key for the access token's `kid` (from the JWKS).
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        issuer: &str,
        key: &DecodingKey,
        alg: Algorithm,
        scheme: &str,
        token: &str,
        proof: &str,
        method: &str,
        url: &str,
        now: u64,
    ) -> anyhow::Result<String> {
        let mut v = Validation::new(alg);
        v.set_issuer(&[issuer]);
        v.set_audience(&["portcullis"]);
        let header = decode_header(token)?;
        anyhow::ensure!(
            header.typ.as_deref() == Some("at+jwt"),
            "not an access token"
        );
        let at = decode::<Access>(token, key, &v)?.claims;
        let Some(cnf) = at.cnf else {
            anyhow::ensure!(scheme == "Bearer", "a bearer token must come as Bearer");
            return Ok(at.sub);
        };
        anyhow::ensure!(scheme == "DPoP", "a DPoP-bound token needs the DPoP scheme");

        let ph = decode_header(proof)?;
        anyhow::ensure!(ph.typ.as_deref() == Some("dpop+jwt"), "not a DPoP proof");
        anyhow::ensure!(
            matches!(ph.alg, Algorithm::ES256 | Algorithm::EdDSA),
            "algorithm"
        );
        // Refuse private keys: read the raw header, not only the parsed Jwk
        // (its parser ignores members it does not know, such as `d`).
        let raw: serde_json::Value =
            serde_json::from_slice(&B64.decode(proof.split('.').next().unwrap_or(""))?)?;
        anyhow::ensure!(raw["jwk"].get("d").is_none(), "private key in the proof");
        let jwk: Jwk = ph.jwk.ok_or_else(|| anyhow::anyhow!("no jwk"))?;
        let mut pv = Validation::new(ph.alg);
        pv.validate_exp = false;
        pv.validate_aud = false;
        pv.required_spec_claims.clear();
        let p = decode::<Proof>(proof, &DecodingKey::from_jwk(&jwk)?, &pv)?.claims;
        anyhow::ensure!(
            jwk.thumbprint(ThumbprintHash::SHA256)? == cnf.jkt,
            "proof by another key"
        );
        anyhow::ensure!(p.htm == method && p.htu == url, "proof for another request");
        anyhow::ensure!(
            p.iat + 65 >= now && p.iat <= now + 5,
            "proof too old or in the future"
        );
        let ath = B64.encode(Sha256::digest(token.as_bytes()));
        anyhow::ensure!(
            p.ath.as_deref() == Some(ath.as_str()),
            "proof for another token"
        );
        // Finally claim p.jti in a store shared by your replicas (expiring after ~70 s).
        let _ = p.jti;
        Ok(at.sub)
    }
}

#[tokio::test]
async fn the_guides_rust_resource_server_check_works_on_real_tokens() {
    let app = spawn_app().await;
    let key = ProofSigner::es256().unwrap();
    let tokens = bound_sign_in(&app, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let issuer = app.get_json("/.well-known/openid-configuration").await["issuer"]
        .as_str()
        .unwrap()
        .to_string();
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kid = jsonwebtoken::decode_header(access).unwrap().kid.unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap()
            .clone(),
    )
    .unwrap();
    let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let alg = jsonwebtoken::decode_header(access).unwrap().alg;
    let api = "https://api.example.com/orders";
    let check = |scheme: &str, proof: &str, url: &str| {
        guide::verify(&issuer, &dk, alg, scheme, access, proof, "GET", url, now())
    };
    let good = key.proof("GET", api, now(), Some(access), None);
    let sub = claims_of(access)["sub"].as_str().unwrap().to_string();
    assert_eq!(check("DPoP", &good, api).unwrap(), sub);
    let other = ProofSigner::es256()
        .unwrap()
        .proof("GET", api, now(), Some(access), None);
    assert!(check("DPoP", &other, api).is_err());
    assert!(check("Bearer", &good, api).is_err());
    assert!(check("DPoP", &good, "https://api.example.com/admin").is_err());
    let mut h = key.header();
    h["jwk"]["d"] = "AAAA".into();
    let private = key.sign_raw(
        &h,
        &json!({"jti": "j", "htm": "GET", "htu": api, "iat": now(), "ath": portcullis::auth::dpop::ath_of(access)}),
    );
    assert!(check("DPoP", &private, api).is_err());
}

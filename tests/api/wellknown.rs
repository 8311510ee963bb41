//! Discovery documents, probes, docs and the committed spec.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_resource_server_can_verify_tokens_from_the_jwks() {
    for alg in ["EdDSA", "ES256", "RS256"] {
        let app = spawn_app_with(|m| {
            m.insert("PORTCULLIS_SIGNING_ALG".into(), alg.into());
        })
        .await;
        let config = app.get_json("/.well-known/openid-configuration").await;
        // No PORTCULLIS_PUBLIC_URL: the issuer follows the port actually bound.
        let port = app.addr.rsplit(':').next().unwrap();
        assert_eq!(config["issuer"], format!("http://localhost:{port}"));
        let jwks_uri = config["jwks_uri"].as_str().unwrap();
        assert!(jwks_uri.ends_with("/.well-known/jwks.json"));
        let r = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let jwks: JwkSet = r.json().await.unwrap();
        let (_, tokens) = app.signed_in_user().await;
        let at = token(&tokens, "access_token");
        let header = jsonwebtoken::decode_header(&at).unwrap();
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid published");
        assert_eq!(
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            header.kid.clone().unwrap(),
            "kid is the RFC 7638 thumbprint"
        );
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[format!("http://localhost:{port}")]);
        v.set_audience(&["portcullis"]);
        let data = jsonwebtoken::decode::<Value>(&at, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], tokens["user"]["id"]);
        assert_eq!(format!("{:?}", header.alg), alg);
        for k in &jwks.keys {
            let v = serde_json::to_value(k).unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(v.get(private).is_none(), "private part {private} published");
            }
        }
    }
}

#[tokio::test]
async fn probes_docs_and_spec() {
    let app = spawn_app().await;
    for p in ["/healthz", "/readyz"] {
        assert_eq!(
            app.client.get(app.url(p)).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
    let spec = app.get_json("/openapi.json").await;
    assert!(spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer");
}

#[test]
fn committed_openapi_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let current = portcullis::api::spec_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json` (or UPDATE_OPENAPI=1 cargo test)"
    );
}

#[test]
fn the_spec_documents_every_error_status_as_problem_json() {
    let spec: Value = serde_json::from_str(&portcullis::api::spec_json()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                let code: u16 = status.parse().unwrap();
                // OAuth endpoints answer 400 in their protocol's own JSON
                // (RFC 6749 §5.2 `{"error": ...}`), as OAuth clients expect;
                // the token endpoint's `invalid_client` is a 401.
                let oauth_error = path.starts_with("/oauth/")
                    && (code == 400 || (path == "/oauth/token" && code == 401))
                    && resp["content"]["application/json; charset=utf-8"]["schema"]["$ref"]
                        == "#/components/schemas/OAuthError";
                // The browser's entry points answer an error *page* (DESIGN:
                // "a problem page, never a redirect").
                let browser_page = op.get("x-browser-route").is_some()
                    && resp["content"].get("text/html").is_some();
                let excepted = (path == "/readyz" && code == 503) || oauth_error || browser_page;
                if code >= 400 && !excepted {
                    assert!(
                        resp["content"].get("application/problem+json").is_some(),
                        "{method} {path} {status} is not problem+json"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} lacks 401"
                );
            }
        }
    }
}

#[tokio::test]
async fn metrics_in_prometheus_text_format() {
    let app = spawn_app().await;
    let (_, tokens) = app.signed_in_user().await;
    app.get_authed("/v1/sessions", &token(&tokens, "access_token"))
        .await;
    app.client
        .get(app.url("/v1/sessions/some-session-id"))
        .send()
        .await
        .unwrap();
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("portcullis_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/sessions\""));
    assert!(text.contains("portcullis_logins_total"));
    assert!(text.contains("portcullis_http_request_duration_seconds_bucket"));
    assert!(
        !text.contains("some-session-id"),
        "raw paths must not become labels"
    );
}

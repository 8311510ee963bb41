//! Every error is problem+json; hostile input changes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn router_errors_are_problems() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not-found").await;
    let r = app.client.put(app.url("/v1/users")).send().await.unwrap();
    assert_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/v1/users"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed-request").await;
    let r = app
        .client
        .post(app.url("/v1/sessions"))
        .header("content-type", "text/plain")
        .body("email=a&password=b")
        .send()
        .await
        .unwrap();
    assert_problem(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE || r.status() == StatusCode::BAD_REQUEST
    );
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn oversized_bodies_are_413_even_without_content_length() {
    let app = spawn_app().await;
    let huge = json!({"email": "a".repeat(70 * 1024), "password": PASSWORD});
    let r = app.post_json("/v1/users", &huge).await;
    assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
    // Chunked transfer: no Content-Length header to trust.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 40 * 1024]), Ok(vec![b' '; 40 * 1024])];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = app
        .client
        .post(app.url("/v1/users"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
}

#[tokio::test]
async fn hostile_fields_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (email, _) = app.signed_in_user().await;
    let hostile = [
        json!({"email": {"$ne": null}, "password": {"$ne": null}}),
        json!({"email": {"$gt": ""}, "password": PASSWORD}),
        json!({"email": email, "password": {"$ne": "x"}}),
        json!({"email": [email], "password": PASSWORD}),
        json!({"email": 42, "password": PASSWORD}),
        json!({"email": email, "password": true}),
        json!({"email": email, "password": PASSWORD, "extra": 1}),
        json!([email, PASSWORD]),
        json!(null),
    ];
    for body in &hostile {
        let r = app.post_json("/v1/sessions", body).await;
        let s = r.status();
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {s}"
        );
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = app.post_json("/v1/users", body).await;
        let s = r.status();
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {s}"
        );
    }
    // The account is intact and usable.
    app.login_ok(&email, PASSWORD).await;
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = spawn_app().await;
    for path in ["/healthz", "/no/such", "/docs", "/.well-known/jwks.json"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(
            r.headers().contains_key("content-security-policy"),
            "{path}"
        );
        assert!(r.headers().contains_key("x-request-id"), "{path}");
    }
    let (_, tokens) = app.signed_in_user().await;
    let r = app.refresh(&token(&tokens, "refresh_token")).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let app = spawn_app_with(|m| {
        m.insert(
            "PORTCULLIS_CORS_ORIGINS".into(),
            "https://app.example".into(),
        );
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/sessions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let bad = preflight("https://evil.example").await.unwrap();
    assert!(!bad.headers().contains_key("access-control-allow-origin"));
    // Without configuration there is no CORS at all.
    let plain = spawn_app().await;
    let r = plain
        .client
        .get(plain.url("/healthz"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

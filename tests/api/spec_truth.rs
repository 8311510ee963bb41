//! The served spec is the refined one (the committed `openapi/openapi.json`):
//! bodies refuse unknown fields, examples, slugs; Swagger UI shows it too.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn served_spec_and_swagger_ui_tell_the_truth() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/openapi.json", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let spec: Value = r.json().await.unwrap();
    let login = &spec["components"]["schemas"]["LoginRequest"];
    assert_eq!(login["additionalProperties"], Value::Bool(false));
    let tags: Vec<&str> = spec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for tag in ["Two-factor", "OAuth", "Well-known"] {
        assert!(tags.contains(&tag), "{tags:?}");
    }
    let committed: Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    assert_eq!(
        spec, committed,
        "openapi/openapi.json is stale: regenerate it"
    );

    let ui = app
        .client
        .get(format!("{}/docs", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    let html = ui.text().await.unwrap();
    assert!(html.contains("\"additionalProperties\": false"));
    assert!(html.contains("ada@example.com"));

    // An unknown field is refused, as the spec now says.
    let r = app
        .client
        .post(format!("{}/v1/sessions", app.addr))
        .json(&serde_json::json!({"email": "a@example.com", "password": "x", "extra": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // `captcha: null` is what the spec says: the field left out.
    let r = app
        .client
        .post(format!("{}/v1/password/forgot", app.addr))
        .json(&serde_json::json!({"email": "a@example.com", "captcha": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        spec["components"]["schemas"]["ForgotPasswordRequest"]["properties"]["captcha"]["nullable"],
        Value::Bool(true)
    );
}

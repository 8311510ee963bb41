//! Assertions and small decoders shared by the tests: problem responses,
//! JWT claims, TOTP codes, CAPTCHA solutions, event lists.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// The RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at `time`,
/// computed with totp-rs directly (not through the service's wrapper).
pub fn totp_code(secret: &str, time: i64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret).unwrap();
    totp_rs::Builder::new()
        .with_secret(bytes.as_bytes().to_vec())
        .build()
        .unwrap()
        .generate(u64::try_from(time).unwrap())
        .to_string()
}

/// Event types of a list of events, oldest first.
pub fn kinds_oldest_first(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

pub fn token(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap().to_string()
}

/// The claims of a JWT (payload decoded, signature not checked).
pub fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts a problem+json response of the given status and slug; returns the body.
pub async fn assert_problem(r: Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(r.status(), status, "status");
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json",
        "content type"
    );
    if status == StatusCode::UNAUTHORIZED {
        let h = r
            .headers()
            .get("www-authenticate")
            .expect("401 without WWW-Authenticate");
        assert!(h.to_str().unwrap().starts_with("Bearer"));
    }
    let body: Value = r.json().await.unwrap();
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/problems/{slug}")),
        "type {} is not {slug}",
        body["type"]
    );
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    body
}

/// Solves an ALTCHA v1 challenge (the JSON of `GET /v1/captcha`) the way a
/// browser widget does: find `number` with `sha256(salt + number) ==
/// challenge`, then base64 the solution JSON.
pub fn solve_captcha(c: &Value) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let salt = c["salt"].as_str().unwrap();
    let challenge = c["challenge"].as_str().unwrap();
    let max = c["maxnumber"].as_u64().unwrap();
    let number = (0..=max)
        .find(|n| {
            let digest = Sha256::digest(format!("{salt}{n}").as_bytes());
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                == challenge
        })
        .expect("challenge has a solution");
    let solution = json!({
        "algorithm": c["algorithm"], "challenge": challenge, "number": number,
        "salt": salt, "signature": c["signature"],
    });
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&solution).unwrap())
}

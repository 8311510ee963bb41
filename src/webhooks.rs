//! Security events POSTed to `PORTCULLIS_WEBHOOK_URL`, in the Standard
//! Webhooks style (<https://www.standardwebhooks.com/>):
//!
//! - body: `{"id", "type", "timestamp" (RFC 3339), "data": {...}}`;
//! - headers `webhook-id` (the event id: receivers de-duplicate on it),
//!   `webhook-timestamp` (Unix seconds of the attempt) and
//!   `webhook-signature: v1,<base64 HMAC-SHA-256 of "id.timestamp.body">`
//!   keyed with `PORTCULLIS_WEBHOOK_SECRET` (a `whsec_` prefix means the
//!   rest is the base64 key, as Standard Webhooks writes secrets).
//!
//! Deliveries wait in a store-backed queue ([`WebhookStore`](crate::store::WebhookStore)):
//! the audit flusher queues one per event, the delivery task (`jobs.rs`)
//! sends what is due and removes an entry only after a 2xx answer. A
//! failure is retried with exponential backoff (1 s, 2 s, 4 s, ... capped
//! at [`MAX_BACKOFF_SECS`]) until [`GIVE_UP_AFTER_SECS`]: delivery is at
//! least once, so a receiver may see an event twice and must de-duplicate
//! on `webhook-id`.

use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::secrets::hmac_sha256;
use crate::store::{AuditRecord, WebhookDelivery};

/// Longest wait between two attempts.
pub const MAX_BACKOFF_SECS: i64 = 3600;
/// A delivery not accepted within three days is abandoned.
pub const GIVE_UP_AFTER_SECS: i64 = 3 * 86_400;
/// Bound on one attempt (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON body of one event.
pub fn body_of(e: &AuditRecord) -> String {
    let timestamp = time::OffsetDateTime::from_unix_timestamp(e.at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    serde_json::json!({
        "id": e.id,
        "type": e.kind,
        "timestamp": timestamp,
        "data": {
            "user_id": e.user_id,
            "ip": e.ip,
            "user_agent": e.user_agent,
            "outcome": e.outcome,
            "details": e.details,
            "at": e.at,
        }
    })
    .to_string()
}

/// A queue entry for `e`, due at once.
pub fn delivery_of(e: &AuditRecord, now: i64) -> WebhookDelivery {
    WebhookDelivery {
        id: e.id.clone(),
        body: body_of(e),
        attempts: 0,
        next_at: now,
        created_at: now,
        expires_at: now.saturating_add(GIVE_UP_AFTER_SECS),
    }
}

/// Seconds to wait after the `attempts`-th failure.
pub fn backoff_secs(attempts: u32) -> i64 {
    1_i64
        .checked_shl(attempts.saturating_sub(1).min(30))
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

/// The signature header value for `id`, `timestamp` and `body`.
pub fn signature(secret: &SecretString, id: &str, timestamp: i64, body: &str) -> String {
    let key = key_bytes(secret);
    let mac = hmac_sha256(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// `whsec_<base64>` → the decoded key; anything else → its bytes.
fn key_bytes(secret: &SecretString) -> Vec<u8> {
    let s = secret.expose_secret();
    s.strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_else(|| s.as_bytes().to_vec())
}

/// Sends webhooks to one URL with one secret.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    secret: SecretString,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookSender {
    /// A sender for `url`, signing with `secret`.
    pub fn new(url: String, secret: SecretString) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url,
            secret,
        })
    }

    /// One attempt; `Ok` when the receiver answered 2xx. The error says
    /// why (status or transport), never the secret.
    pub async fn send(&self, d: &WebhookDelivery, now: i64) -> Result<(), String> {
        let sig = signature(&self.secret, &d.id, now, &d.body);
        let r = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", sig)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    "connection failed".to_string()
                } else {
                    "request failed".to_string()
                }
            })?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("receiver answered {}", r.status().as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (v1 signature).
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string());
        let sig = signature(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_secs(1), 1);
        assert_eq!(backoff_secs(2), 2);
        assert_eq!(backoff_secs(5), 16);
        assert_eq!(backoff_secs(40), MAX_BACKOFF_SECS);
    }
}

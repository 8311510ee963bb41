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

/// Shortest accepted signing key, in bytes (after `whsec_` decoding).
pub const MIN_KEY_BYTES: usize = 16;

/// Checks `PORTCULLIS_WEBHOOK_SECRET` at start-up: a
/// `whsec_` value must be base64 that decodes, and the key must have at
/// least [`MIN_KEY_BYTES`] bytes (an empty or 1-byte key lets anyone
/// forge events). The error says why, never the secret.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| {
                "PORTCULLIS_WEBHOOK_SECRET starts with `whsec_` but the rest is not base64 \
                 (Standard Webhooks keys are `whsec_` + base64 of the key bytes)"
                    .to_string()
            })?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "PORTCULLIS_WEBHOOK_SECRET must give a key of at least {MIN_KEY_BYTES} bytes \
             (this one has {}); e.g. `whsec_` + base64 of 32 random bytes",
            key.len()
        ));
    }
    Ok(())
}

/// Checks `PORTCULLIS_WEBHOOK_URL` beyond its scheme: the cloud metadata
/// addresses (link-local `169.254.0.0/16`, `fe80::/10`, and
/// `metadata.google.internal`) are refused, since nothing legitimate
/// receives webhooks there. Other internal addresses stay allowed: the
/// URL is the operator's choice (a receiver on the same host or network
/// is common).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| "PORTCULLIS_WEBHOOK_URL is not a URL".to_string())?;
    let host = parsed
        .host_str()
        .ok_or_else(|| "PORTCULLIS_WEBHOOK_URL has no host".to_string())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let metadata = match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_link_local(),
        Ok(std::net::IpAddr::V6(ip)) => {
            (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
        Err(_) => bare
            .trim_end_matches('.')
            .eq_ignore_ascii_case("metadata.google.internal"),
    };
    if metadata {
        return Err(
            "PORTCULLIS_WEBHOOK_URL points at a link-local (cloud metadata) address".to_string(),
        );
    }
    Ok(())
}

/// `whsec_<base64>` → the decoded key; anything else → its bytes (checked
/// at start-up by [`check_secret`]).
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
        check_secret(secret.expose_secret()).map_err(anyhow::Error::msg)?;
        check_url(&url).map_err(anyhow::Error::msg)?;
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

    /// L8: empty, short and undecodable keys are refused; good ones pass.
    #[test]
    fn weak_or_broken_secrets_are_refused() {
        for bad in [
            "whsec_",
            "a",
            "short secret",
            "whsec_!!!notbase64",
            "whsec_AAAA",
        ] {
            assert!(check_secret(bad).is_err(), "{bad:?} accepted");
        }
        let err = check_secret("whsec_!!!notbase64").unwrap_err();
        assert!(err.contains("not base64") && !err.contains("!!!"), "{err}");
        assert!(check_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(check_secret("a raw secret of enough bytes").is_ok());
    }

    /// L8: metadata addresses are refused; other hosts are the operator's call.
    #[test]
    fn metadata_addresses_are_refused() {
        for bad in [
            "http://169.254.169.254/latest/meta-data/iam",
            "http://[fe80::1]/hook",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(check_url(bad).is_err(), "{bad} accepted");
        }
        for good in [
            "https://hooks.example.com/portcullis",
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/hook",
        ] {
            assert!(check_url(good).is_ok(), "{good} refused");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_secs(1), 1);
        assert_eq!(backoff_secs(2), 2);
        assert_eq!(backoff_secs(5), 16);
        assert_eq!(backoff_secs(40), MAX_BACKOFF_SECS);
    }
}

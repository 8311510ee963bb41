//! Email-flow helpers: password reset and verification requests,
//! and reading the `.eml` outbox the server writes under its data directory.

use reqwest::Response;
use serde_json::json;

use super::TestApp;

impl TestApp {
    /// `POST /v1/password/forgot`.
    pub async fn forgot(&self, email: &str) -> Response {
        self.post_json("/v1/password/forgot", &json!({"email": email}))
            .await
    }

    /// `POST /v1/password/reset` with the link's token.
    pub async fn reset_with_token(&self, token: &str, new_password: &str) -> Response {
        self.post_json(
            "/v1/password/reset",
            &json!({"token": token, "new_password": new_password}),
        )
        .await
    }

    /// `POST /v1/password/reset` with the address and the mail's code.
    pub async fn reset_with_code(&self, email: &str, code: &str, new_password: &str) -> Response {
        self.post_json(
            "/v1/password/reset",
            &json!({"email": email, "email_code": code, "new_password": new_password}),
        )
        .await
    }

    /// `POST /v1/email/verify` with the link's token.
    pub async fn verify_email_token(&self, token: &str) -> Response {
        self.post_json("/v1/email/verify", &json!({"token": token}))
            .await
    }

    /// `POST /v1/email/verify` with the address and the code.
    pub async fn verify_email_code(&self, email: &str, code: &str) -> Response {
        self.post_json(
            "/v1/email/verify",
            &json!({"email": email, "email_code": code}),
        )
        .await
    }

    /// `POST /v1/email/verify/resend`.
    pub async fn resend_verification(&self, token: &str) -> Response {
        self.client
            .post(self.url("/v1/email/verify/resend"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /reset-password` as the built-in page's form sends it.
    pub async fn post_reset_form(&self, fields: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/reset-password"))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// The `.eml` files of the outbox (outbox mode), parsed.
    pub fn emails(&self) -> Vec<crate::mailbox::Mail> {
        let dir = self.data_path.join("outbox");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| crate::mailbox::Mail::parse(&std::fs::read(p).unwrap()))
            .collect()
    }

    /// Waits (at most 20 s) for an outbox mail to `to` whose subject has `subject`.
    pub async fn wait_for_email(&self, to: &str, subject: &str) -> crate::mailbox::Mail {
        for _ in 0..200 {
            if let Some(m) = self
                .emails()
                .into_iter()
                .find(|m| m.to == to && m.subject.contains(subject))
            {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no outbox mail to {to} with subject {subject:?}");
    }

    /// Waits (at most 20 s) until the server's mail queue is empty: every
    /// mail queued so far is in the outbox.
    pub async fn settle_mail(&self) {
        for _ in 0..400 {
            let stats = self.store.mail_queue_stats(self.clock.now()).await.unwrap();
            if stats.pending == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the mail queue did not drain");
    }

    /// The outbox mails to `to` whose subject has `subject` that no earlier
    /// call returned, once every queued mail is sent.
    pub async fn new_emails(&self, to: &str, subject: &str) -> Vec<crate::mailbox::Mail> {
        self.settle_mail().await;
        let mut seen = self.seen_mail.lock().unwrap();
        self.emails()
            .into_iter()
            .filter(|m| m.to == to && m.subject.contains(subject))
            .filter(|m| seen.insert(m.message_id.clone()))
            .collect()
    }
}

//! Developer mode's mail log: every message is sent as usual and its links
//! and codes are also written to the log, decoded (the `.eml` files of the
//! outbox are quoted-printable, where `=` turns into `=3D`).

use async_trait::async_trait;
use lettre::message::Mailbox;

use super::{MailError, Mailer, OutgoingMail};

/// Wraps a mailer; see the module docs. Only for developer mode: the log
/// lines carry live links and codes.
pub struct DevLogMailer<M: ?Sized>(pub std::sync::Arc<M>);

#[async_trait]
impl<M: Mailer + ?Sized> Mailer for DevLogMailer<M> {
    async fn send(&self, from: &Mailbox, mail: &OutgoingMail) -> Result<(), MailError> {
        self.0.send(from, mail).await?;
        let (links, codes) = links_and_codes(&mail.content.text);
        tracing::info!(
            to = %mail.to,
            subject = %mail.content.subject,
            links = %links.join(" "),
            codes = %codes.join(" "),
            "dev mail sent"
        );
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "{}, links and codes logged (developer mode)",
            self.0.describe()
        )
    }
}

/// The `http(s)://` links of a text body and the values of its `Code:` lines.
pub fn links_and_codes(text: &str) -> (Vec<String>, Vec<String>) {
    let links = text
        .split_whitespace()
        .filter(|w| w.starts_with("https://") || w.starts_with("http://"))
        .map(|w| w.trim_end_matches(['.', ',', ')', '>', '"']).to_string())
        .collect();
    let codes = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Code:"))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    (links, codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_links_and_codes() {
        let text = "Open this link:\n\nhttp://localhost:8080/reset-password?token=AbC-_1=\n\n    Code: 123456\n\nSee https://example.com/x.";
        let (links, codes) = links_and_codes(text);
        assert_eq!(
            links,
            [
                "http://localhost:8080/reset-password?token=AbC-_1=",
                "https://example.com/x"
            ]
        );
        assert_eq!(codes, ["123456"]);
    }
}

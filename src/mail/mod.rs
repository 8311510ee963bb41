//! Outgoing mail: the [`Mailer`] (SMTP through `lettre`, or `.eml` files in
//! an outbox folder for development) and the [`Templates`] the messages are
//! rendered from. MIME and SMTP are `lettre`'s; nothing here builds either
//! by hand. The durable queue that feeds the mailer is a store trait
//! ([`MailQueueStore`](crate::store::MailQueueStore)); the sender loop is
//! in [`jobs`](crate::jobs) and the use cases in `service::mail`.

mod dev;
mod outbox;
mod smtp;
pub mod templates;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart, header};

pub use dev::DevLogMailer;
pub use outbox::OutboxMailer;
pub use smtp::SmtpMailer;
pub use templates::{Rendered, Templates};

/// A message ready to send.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// The idempotency key of the event; the `Message-ID` is built from it,
    /// so a message sent twice by accident is one message to the reader.
    pub id: String,
    /// Recipient address.
    pub to: String,
    /// The rendered subject and bodies.
    pub content: Rendered,
}

/// Why a send failed (a transport error text: never a message body).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message could not be built (a bad address): retrying cannot help.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The transport failed (server down, refused, I/O): retried later.
    #[error("transport: {0}")]
    Transport(String),
}

/// Sends one message.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `mail` from `from`; `Ok` once the server (or the outbox
    /// folder) has accepted it.
    async fn send(&self, from: &Mailbox, mail: &OutgoingMail) -> Result<(), MailError>;
    /// Where mail goes, for logs (no credentials).
    fn describe(&self) -> String;
}

/// The mailer the settings name: SMTP when `smtp_url` is set, else the
/// outbox folder under `data_dir`. Must be called inside a tokio runtime
/// (lettre's pooled transport lives there).
pub fn mailer_from_settings(
    smtp_url: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn Mailer>> {
    match smtp_url {
        Some(url) => Ok(Arc::new(SmtpMailer::new(url)?)),
        None => Ok(Arc::new(OutboxMailer::new(data_dir.join("outbox")))),
    }
}

/// Parses the sender address (`PORTCULLIS_SMTP_FROM`).
pub fn parse_from(from: &str) -> anyhow::Result<Mailbox> {
    from.parse::<Mailbox>()
        .map_err(|e| anyhow::anyhow!("PORTCULLIS_SMTP_FROM {from:?} is not a mail address: {e}"))
}

/// The MIME message (multipart/alternative: the text part first, always,
/// then the HTML part).
pub fn build_message(from: &Mailbox, mail: &OutgoingMail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::Invalid(format!("recipient: {e}")))?;
    let domain = from.email.domain().to_string();
    let message_id = format!("<{}@{}>", sanitize_id(&mail.id), domain);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.content.subject.clone())
        .message_id(Some(message_id))
        .header(header::MIME_VERSION_1_0)
        .multipart(MultiPart::alternative_plain_html(
            mail.content.text.clone(),
            mail.content.html.clone(),
        ))
        .map_err(|e| MailError::Invalid(e.to_string()))
}

/// An id reduced to characters safe in a `Message-ID` and a file name.
pub(crate) fn sanitize_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            id: "reset:abc/../x".into(),
            to: "user@example.com".into(),
            content: Rendered {
                subject: "Hello".into(),
                text: "plain body".into(),
                html: "<p>html body</p>".into(),
            },
        }
    }

    #[test]
    fn message_has_a_text_and_an_html_part_and_a_stable_id() {
        let from = parse_from("Portcullis <no-reply@example.org>").unwrap();
        let raw = String::from_utf8(build_message(&from, &mail()).unwrap().formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
        assert!(
            raw.contains("Message-ID: <reset_abc_.._x@example.org>"),
            "{raw}"
        );
    }

    #[test]
    fn bad_recipient_is_invalid_not_a_panic() {
        let from = parse_from("no-reply@example.org").unwrap();
        let mut m = mail();
        m.to = "not an address".into();
        assert!(matches!(
            build_message(&from, &m),
            Err(MailError::Invalid(_))
        ));
    }
}

//! SMTP delivery through `lettre`'s pooled async transport.
//!
//! `PORTCULLIS_SMTP_URL` forms: `smtp://host:port` (plain),
//! `smtp://host:port?tls=starttls` (STARTTLS required; lettre's
//! `tls=required`, and `tls=opportunistic`, are accepted too) and
//! `smtps://host:port` (implicit TLS). Credentials go in the URL's user
//! part; the URL is never logged.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{MailError, Mailer, OutgoingMail, build_message};

/// How long one SMTP exchange may take (well inside the queue's lease).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends over SMTP.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
}

impl SmtpMailer {
    /// A mailer for `url` (see the module docs). Must run inside a tokio
    /// runtime.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = url.replace("tls=starttls", "tls=required");
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|_| anyhow::anyhow!("PORTCULLIS_SMTP_URL is not a valid SMTP URL (smtp://host:port, smtp://host:port?tls=starttls or smtps://host:port)"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let host = url
            .split_once("://")
            .map(|(scheme, rest)| {
                let hostport = rest.rsplit('@').next().unwrap_or(rest);
                let hostport = hostport.split(['?', '/']).next().unwrap_or(hostport);
                format!("{scheme}://{hostport}")
            })
            .unwrap_or_default();
        Ok(Self { transport, host })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, from: &Mailbox, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = build_message(from, mail)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Transport(e.to_string()))
    }

    fn describe(&self) -> String {
        format!("smtp ({})", self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_of_every_form_are_accepted_and_credentials_never_shown() {
        for (url, shown) in [
            ("smtp://127.0.0.1:2525", "smtp://127.0.0.1:2525"),
            (
                "smtp://user:s3cret@mail.example:587?tls=starttls",
                "smtp://mail.example:587",
            ),
            ("smtps://user:s3cret@mail.example", "smtps://mail.example"),
        ] {
            let m = SmtpMailer::new(url).unwrap();
            assert_eq!(m.describe(), format!("smtp ({shown})"));
            assert!(!m.describe().contains("s3cret"));
        }
        let err = SmtpMailer::new("ftp://user:s3cret@x").err().unwrap();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}

//! Development delivery: each message is written as an `.eml` file (the
//! raw MIME message, which any mail client opens) into `<data dir>/outbox/`.
//! The file name is the mail's idempotency key, so writing one mail twice
//! leaves one file; a file appears whole (written aside, then renamed).

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::Mailbox;

use super::{MailError, Mailer, OutgoingMail, build_message, sanitize_id};

/// Writes `.eml` files into a folder.
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// A mailer writing into `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, from: &Mailbox, mail: &OutgoingMail) -> Result<(), MailError> {
        let raw = build_message(from, mail)?.formatted();
        let dir = self.dir.clone();
        let name = sanitize_id(&mail.id);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, raw)?;
            std::fs::rename(&tmp, dir.join(format!("{name}.eml")))
        })
        .await
        .map_err(|e| MailError::Transport(e.to_string()))?
        .map_err(|e| MailError::Transport(format!("writing the outbox: {e}")))
    }

    fn describe(&self) -> String {
        format!("outbox ({})", self.dir.display())
    }
}

//! A real SMTP server on loopback for the tests (enough of RFC 5321 for a
//! real client: greeting, EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing,
//! RSET, NOOP, QUIT), and received messages parsed as MIME with
//! `mail-parser` to get the link, token and code out of them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One received message, parsed.
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub message_id: String,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Mail {
        let msg = mail_parser::MessageParser::default()
            .parse(raw)
            .expect("a MIME message");
        Mail {
            raw: String::from_utf8_lossy(raw).into_owned(),
            to: msg
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string(),
            subject: msg.subject().unwrap_or_default().to_string(),
            text: msg.body_text(0).unwrap_or_default().into_owned(),
            html: msg.body_html(0).unwrap_or_default().into_owned(),
            message_id: msg.message_id().unwrap_or_default().to_string(),
        }
    }

    /// Every link in the text part.
    pub fn links(&self) -> Vec<String> {
        self.text
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(str::to_string)
            .collect()
    }

    /// Every `href` of the HTML part (entity-decoded).
    pub fn html_links(&self) -> Vec<String> {
        self.html
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(|s| {
                s.replace("&#x2f;", "/")
                    .replace("&amp;", "&")
                    .replace("&#x3d;", "=")
            })
            .collect()
    }

    /// The link carrying `token=`.
    pub fn link(&self) -> String {
        self.links()
            .into_iter()
            .find(|l| l.contains("token="))
            .unwrap_or_else(|| panic!("no link with a token in:\n{}", self.text))
    }

    /// The `token` query parameter of the link.
    pub fn token(&self) -> String {
        self.link()
            .split("token=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string()
    }

    /// The 8-digit code.
    pub fn code(&self) -> String {
        self.text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Code:"))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|| panic!("no code in:\n{}", self.text))
    }
}

/// A running SMTP server and what it received.
pub struct SmtpServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let sink = sink.clone();
                tokio::spawn(async move {
                    let _ = session(socket, sink).await;
                });
            }
        });
        SmtpServer {
            port,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<Mail> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|m| Mail::parse(m))
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most 20 s); returns all.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        for _ in 0..200 {
            if self.received.lock().unwrap().len() >= n {
                return self.messages();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "expected {n} messages, got {}",
            self.received.lock().unwrap().len()
        );
    }

    /// Waits for the next message to `to` whose subject contains `subject`.
    pub async fn wait_for_mail(&self, to: &str, subject: &str) -> Mail {
        for _ in 0..200 {
            if let Some(m) = self
                .messages()
                .into_iter()
                .rev()
                .find(|m| m.to == to && m.subject.contains(subject))
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no mail to {to} with subject {subject:?}; got {:?}",
            self.messages()
                .iter()
                .map(|m| (&m.to, &m.subject))
                .collect::<Vec<_>>()
        );
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    sink: Arc<Mutex<Vec<Vec<u8>>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 localhost ESMTP portcullis-test\r\n")
        .await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                write
                    .write_all(b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?
            }
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => write.write_all(b"250 OK\r\n").await?,
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if lines.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" || l == b".\n" {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 §4.5.2).
                    if l.starts_with(b"..") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                sink.lock().unwrap().push(data);
                write.write_all(b"250 queued\r\n").await?;
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"502 not implemented\r\n").await?,
        }
    }
}

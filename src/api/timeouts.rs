//! Connection timeouts: a client that sends its request slowly
//! (slowloris), or keeps a connection open doing nothing, is cut off.
//!
//! poem's server has only an idle timeout that any trickle of bytes resets,
//! and hyper's header timeout needs a timer poem does not install. So every
//! accepted connection is wrapped in [`DeadlineIo`], which watches the bytes
//! themselves:
//!
//! - a request: from its first byte until the server starts answering, the
//!   client has `PORTCULLIS_HTTP_TIMEOUT` (default 30 s) to send headers and
//!   body, however it spaces them;
//! - between requests (after an answer, or before the first byte), a
//!   connection may stay silent for `PORTCULLIS_IDLE_TIMEOUT` (default 60 s).
//!
//! Past either deadline the next read fails with `TimedOut` and hyper closes
//! the connection.
//!
//! "The server starts answering" means, on HTTP/2, a HEADERS or DATA frame
//! (followed by [`H2Frames`]): the PING, SETTINGS and WINDOW_UPDATE frames
//! a client can make the server write at will do not count, so a client
//! pinging every second is still cut at the deadline. A
//! stream's body is also bounded on its own by the body-limit middleware,
//! since many HTTP/2 requests share one connection's deadline.
//!
//! hyper answers a request it cannot parse (a garbage request line, a bad
//! `Content-Length`, too many or too large headers) by itself, before any
//! service runs: an empty 400, 414 or 431 with no header of ours, and
//! neither hyper nor poem offers a hook to shape it. So [`DeadlineIo`] also
//! recognises that answer on its way out (a whole response head with
//! `content-length: 0` and no `content-type`, which no answer of the
//! service has) and writes a problem+json one with the security headers
//! in its place. Once the whole request has arrived (the body-limit
//! middleware calls [`mark_received`]), the request deadline stops: a
//! handler waiting its turn for bcrypt under load is never cut off.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Open connections by client address, each with its "request received"
/// flag. A client address (ip:port) names one TCP connection at a time, so
/// the middleware can find the connection of a request.
static RECEIVED: LazyLock<Mutex<HashMap<SocketAddr, Arc<AtomicBool>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Called once a request (headers and body) has been read: its
/// connection's request deadline no longer applies.
pub fn mark_received(remote: &poem::web::RemoteAddr) {
    let Some(addr) = remote.as_socket_addr() else {
        return;
    };
    if let Ok(map) = RECEIVED.lock()
        && let Some(flag) = map.get(addr)
    {
        flag.store(true, Ordering::Release);
    }
}

/// The two deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a request's first byte until its answer starts.
    pub request: Duration,
    /// Silence allowed between requests.
    pub idle: Duration,
}

/// An acceptor whose connections carry [`Timeouts`].
pub struct TimeoutAcceptor<A> {
    inner: A,
    timeouts: Timeouts,
}

impl<A> TimeoutAcceptor<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, timeouts: Timeouts) -> Self {
        Self { inner, timeouts }
    }
}

impl<A: Acceptor> Acceptor for TimeoutAcceptor<A>
where
    A::Io: Unpin,
{
    type Io = DeadlineIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let mut io = DeadlineIo::new(io, self.timeouts);
        if let Some(addr) = remote.as_socket_addr()
            && let Ok(mut map) = RECEIVED.lock()
        {
            map.insert(*addr, io.received.clone());
            io.key = Some(*addr);
        }
        Ok((io, local, remote, scheme))
    }
}

/// Whether the connection is inside a request or between two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's first byte.
    Idle,
    /// A request's bytes are arriving (or it is being handled).
    Request,
}

/// A connection with deadlines; see the module docs.
pub struct DeadlineIo<T> {
    inner: T,
    timeouts: Timeouts,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// Set by [`mark_received`] when the current request has been read.
    received: Arc<AtomicBool>,
    /// This connection's entry in the registry.
    key: Option<SocketAddr>,
    /// `Some(true)` once the client's first bytes are the HTTP/2 preface,
    /// `Some(false)` for HTTP/1; `None` until known.
    h2: Option<bool>,
    /// The server's HTTP/2 frames, followed to find its answers.
    frames: H2Frames,
    /// A replacement answer still to be written (see the module docs).
    pending: Vec<u8>,
}

/// hyper's own answer to an unparsable request, as problem+json with the
/// headers every answer of the service carries; `None` for anything else.
fn replace_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let (slug, title, detail) = match status {
        "400" => (
            "malformed-request",
            "Malformed request",
            "The request line, a header or the Content-Length could not be parsed.",
        ),
        "414" => (
            "uri-too-long",
            "URI too long",
            "The request target is longer than this server accepts.",
        ),
        "431" => (
            "request-header-fields-too-large",
            "Request header fields too large",
            "The request has too many headers, or headers too large.",
        ),
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    if !lower.ends_with("\r\n\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || lower.contains("\r\ncontent-type:")
    {
        return None;
    }
    let code = poem::http::StatusCode::from_u16(status.parse().ok()?).ok()?;
    let problem = super::problem::Problem::new(code, slug, title, detail);
    let body = serde_json::to_vec(&problem.body).ok()?;
    let date = text
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("date:"))
        .map(|l| format!("{l}\r\n"))
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {status} {title}\r\n\
         content-type: application/problem+json\r\n\
         content-length: {}\r\n\
         connection: close\r\n\
         x-content-type-options: nosniff\r\n\
         referrer-policy: no-referrer\r\n\
         x-frame-options: DENY\r\n\
         cross-origin-opener-policy: same-origin\r\n\
         content-security-policy: default-src 'none'; frame-ancestors 'none'; base-uri 'none'\r\n\
         cache-control: no-store\r\n\
         {date}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

/// The HTTP/2 client connection preface starts with this.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Follows the frame boundaries of what the server writes on an HTTP/2
/// connection (a 9-byte header: 24-bit length, type, flags, stream id;
/// then the payload), wherever the writes split them.
#[derive(Debug, Default)]
struct H2Frames {
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to come.
    skip: usize,
}

impl H2Frames {
    /// Takes written bytes; true when they start a HEADERS (0x1) or DATA
    /// (0x0) frame: an answer.
    fn answers(&mut self, mut data: &[u8]) -> bool {
        let mut answered = false;
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 9 {
                let h = self.header;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                answered |= matches!(h[3], 0x0 | 0x1);
                self.have = 0;
            }
        }
        answered
    }
}

impl<T> Drop for DeadlineIo<T> {
    fn drop(&mut self) {
        if let (Some(key), Ok(mut map)) = (self.key, RECEIVED.lock()) {
            map.remove(&key);
        }
    }
}

impl<T> DeadlineIo<T> {
    fn new(inner: T, timeouts: Timeouts) -> Self {
        Self {
            inner,
            timeouts,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(timeouts.idle)),
            received: Arc::new(AtomicBool::new(false)),
            key: None,
            h2: None,
            frames: H2Frames::default(),
            pending: Vec::new(),
        }
    }

    /// Whether `written` (accepted by the socket) starts the answer to a
    /// request: any byte on HTTP/1, a HEADERS or DATA frame on HTTP/2.
    fn answering(&mut self, written: &[u8]) -> bool {
        if self.h2 == Some(true) {
            self.frames.answers(written)
        } else {
            !written.is_empty()
        }
    }

    /// Learns the protocol from the client's first bytes.
    fn learn_protocol(&mut self, first: &[u8]) {
        if self.h2.is_none() {
            let n = first.len().min(H2_PREFACE.len());
            if first[..n] != H2_PREFACE[..n] {
                self.h2 = Some(false);
            } else if n == H2_PREFACE.len() {
                self.h2 = Some(true);
            }
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.received.store(false, Ordering::Release);
        let after = match phase {
            Phase::Idle => self.timeouts.idle,
            Phase::Request => self.timeouts.request,
        };
        self.deadline.as_mut().reset(Instant::now() + after);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    if self.h2.is_none() {
                        let first = buf.filled()[before..].to_vec();
                        self.learn_protocol(&first);
                    }
                    if self.phase == Phase::Idle {
                        self.enter(Phase::Request);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // The request is in: the handler works, no deadline runs.
            Poll::Pending
                if self.phase == Phase::Request && self.received.load(Ordering::Acquire) =>
            {
                Poll::Pending
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let what = match self.phase {
                        Phase::Idle => "idle connection timed out",
                        Phase::Request => "request not received in time",
                    };
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> DeadlineIo<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n.min(self.pending.len()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// On HTTP/1, hyper's own answer to an unparsable request is taken
    /// whole and replaced (see the module docs).
    fn replaced(&mut self, data: &[u8]) -> bool {
        if self.h2 == Some(true) || self.phase != Phase::Request {
            return false;
        }
        match replace_parse_error(data) {
            Some(answer) => {
                self.pending = answer;
                self.enter(Phase::Idle);
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        if !this.pending.is_empty() {
            return Poll::Pending;
        }
        if this.replaced(data) {
            let _ = this.poll_pending(cx);
            return Poll::Ready(Ok(data.len()));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r
            && this.answering(&data[..n.min(data.len())])
        {
            // The answer has started: the request is over, the connection
            // is between requests from here.
            this.enter(Phase::Idle);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        if !this.pending.is_empty() {
            return Poll::Pending;
        }
        if let [only] = bufs
            && this.replaced(only)
        {
            let _ = this.poll_pending(cx);
            return Poll::Ready(Ok(only.len()));
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = r {
            let mut answered = false;
            for b in bufs {
                if n == 0 {
                    break;
                }
                let take = n.min(b.len());
                answered |= this.answering(&b[..take]);
                n -= take;
            }
            if answered {
                this.enter(Phase::Idle);
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    /// L2: PING, SETTINGS and WINDOW_UPDATE frames are not an answer;
    /// HEADERS and DATA are, however the writes split them.
    #[test]
    fn only_headers_and_data_frames_answer() {
        let mut f = H2Frames::default();
        assert!(!f.answers(&frame(0x4, &[0; 6]))); // SETTINGS
        assert!(!f.answers(&frame(0x6, &[1; 8]))); // PING (ack)
        assert!(!f.answers(&frame(0x8, &[0, 0, 1, 0]))); // WINDOW_UPDATE
        // A PING whose payload looks like a HEADERS frame header.
        assert!(!f.answers(&frame(0x6, &[0, 0, 1, 1, 0, 0, 0, 0])));
        let headers = frame(0x1, &[0x88]);
        let (a, b) = headers.split_at(4);
        assert!(!f.answers(a));
        assert!(f.answers(b));
        let mut both = frame(0x6, &[2; 8]);
        both.extend(frame(0x0, b"{}"));
        assert!(f.answers(&both));
        for byte in frame(0x6, &[3; 8]) {
            assert!(!f.answers(&[byte]));
        }
    }

    /// hyper's automatic answers are replaced; the service's are not.
    #[test]
    fn only_hypers_empty_error_answers_are_replaced() {
        let hyper400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 01:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replace_parse_error(hyper400).unwrap()).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 400 Malformed request\r\n"),
            "{out}"
        );
        assert!(out.contains("content-type: application/problem+json\r\n"));
        assert!(out.contains("x-content-type-options: nosniff\r\n"));
        assert!(out.contains("date: Sun, 06 Dec 2026 01:00:00 GMT\r\n"));
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["status"], 400);
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));
        let hyper431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(replace_parse_error(hyper431).is_some());
        // The service's own answers carry a type and a body.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n";
        assert!(replace_parse_error(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(replace_parse_error(ok).is_none());
        let partial = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n";
        assert!(replace_parse_error(partial).is_none());
    }

    #[tokio::test]
    async fn the_protocol_is_learned_from_the_preface() {
        let io = |first: &[u8]| {
            let mut d = DeadlineIo::new(
                (),
                Timeouts {
                    request: Duration::from_secs(1),
                    idle: Duration::from_secs(1),
                },
            );
            d.learn_protocol(first);
            d.h2
        };
        assert_eq!(io(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(true));
        assert_eq!(io(b"POST /v1/sessions HTTP/1.1\r\n"), Some(false));
        assert_eq!(io(b"PRI"), None);
        assert_eq!(io(b"GET / HTTP/1.1\r\n"), Some(false));
    }
}

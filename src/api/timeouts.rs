//! Connection timeouts (issue 9): a client that sends its request slowly
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
//! the connection. Once the whole request has arrived (the body-limit
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
                if buf.filled().len() > before && self.phase == Phase::Idle {
                    self.enter(Phase::Request);
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

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            // The answer has started: the request is over, the connection
            // is between requests from here.
            self.enter(Phase::Idle);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.enter(Phase::Idle);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

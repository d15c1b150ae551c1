//! The accept loop: the router served over HTTP/1.1 with the bounds a public endpoint needs and
//! `axum::serve` does not offer.
//!
//! - **Header timeout**: a connection whose request headers have not all arrived this long after
//!   it was accepted (or, on a kept-alive connection, after the first byte of the next request)
//!   is closed.
//! - **Request timeout**: a request whose body has not all arrived this long after its headers
//!   is answered 408 `request_timeout` and its connection closed.
//! - **Idle timeout**: a kept-alive connection with no request for this long is closed.
//! - **Connection bound**: at most this many client connections are open at once. The next one
//!   is not accepted until a slot frees: it waits in the kernel's listen backlog (first come,
//!   first served) rather than being refused, so a genuine callback is delayed, not failed.
//!
//! hyper 1's own `header_read_timeout` starts when hyper begins waiting for a request head, so
//! on a kept-alive connection it also bounds the idle wait between requests: it cannot give an
//! idle timeout longer than the header timeout. Both are therefore kept here, per connection,
//! by [`TimedIo`] around the socket, which knows from the service whether a request is in
//! flight. No database here: this is the HTTP edge only.
//!
//! On shutdown the listener closes first, idle connections close at once, and requests in flight
//! are answered before [`serve`] returns.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::ApiError;
use crate::metrics::Metrics;

/// How long clients may take, and how many may be connected at once.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// From accept (or the first byte of a next request) to the end of the request headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub request_timeout: Duration,
    /// Between the end of a response and the first byte of the next request.
    pub idle_timeout: Duration,
    /// Client connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// File descriptors the rest of the process needs besides client connections (database
    /// connections, the spool, logs, the private PostgreSQL's pipes), for the check of the
    /// open-files limit at start.
    pub reserved_fds: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            reserved_fds: 128,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then stops
/// accepting, lets the requests in flight finish, and returns.
///
/// Raises the soft open-files limit to the hard limit first (see [`raise_open_files_limit`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ClientLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    check_open_files_limit(&limits);
    widen_backlog(&listener);
    let mut shutdown = pin!(shutdown);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // hyper's header timeout would also cut idle kept-alive connections; ours is in TimedIo.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let mut warned_full_at: Option<Instant> = None;

    loop {
        if slots.available_permits() == 0
            && warned_full_at.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
        {
            warned_full_at = Some(Instant::now());
            tracing::warn!(
                max_client_connections = limits.max_connections,
                "every client connection slot is taken; new connections wait to be accepted until one closes"
            );
        }
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let turns = Arc::new(Turns::default());
        let io = TokioIo::new(TimedIo::new(
            stream,
            turns.clone(),
            &limits,
            metrics.clone(),
        ));
        let service = ConnService {
            router: router.clone(),
            turns,
            request_timeout: limits.request_timeout,
            metrics: metrics.clone(),
        };
        let connection = graceful.watch(builder.serve_connection(io, service));
        let open = OpenConnection::new(metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "client connection closed");
            }
            drop(open);
            drop(slot);
        });
    }

    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Lengthens the listen queue from the 128 that std and tokio set to the system's `somaxconn`
/// (4096 by default on Linux), by calling `listen` again on the listening socket (Linux updates
/// the backlog of a listening socket; nginx does the same for inherited sockets). Connections
/// beyond the bound wait in that queue, and a burst of connects waits there while the loop
/// accepts them; a full queue drops SYNs, which costs the client a retransmission (1 s, then
/// 3 s or more) instead of a prompt answer.
fn widen_backlog(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    // The kernel caps it at net.core.somaxconn.
    const BACKLOG: i32 = 65_535;
    // SAFETY: `listen` on a descriptor the listener owns and keeps open during the call.
    let result = unsafe { nix::libc::listen(listener.as_raw_fd(), BACKLOG) };
    if result != 0 {
        let e = io::Error::last_os_error();
        tracing::warn!(error = %e, "lengthening the listen queue failed; it stays at its default");
    }
}

/// Errors of `accept` that concern one connection are skipped; any other (such as EMFILE,
/// out of descriptors) is logged and retried after a pause, as hyper 0.14 and axum do.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a client connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit; returns both the
/// soft limit found and the one now in force. Every client connection holds a descriptor, and
/// the usual soft limit of 1,024 is below the default connection bound.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Ok((soft, hard)),
        // An unlimited hard limit cannot be the soft one for files: use the kernel's ceiling.
        Err(_) => {
            let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .unwrap_or(soft)
                .min(hard);
            setrlimit(Resource::RLIMIT_NOFILE, ceiling, hard)?;
            Ok((soft, ceiling))
        }
    }
}

fn check_open_files_limit(limits: &ClientLimits) {
    let needed = (limits.max_connections as u64).saturating_add(limits.reserved_fds);
    match raise_open_files_limit() {
        Ok((before, now)) => {
            if now > before {
                tracing::info!(
                    before,
                    now,
                    "raised the open-files limit (RLIMIT_NOFILE) to the hard limit"
                );
            } else {
                tracing::info!(now, "open-files limit (RLIMIT_NOFILE)");
            }
            if needed > now {
                tracing::warn!(
                    limit = now,
                    needed,
                    max_client_connections = limits.max_connections,
                    reserved = limits.reserved_fds,
                    "the open-files limit is below --max-client-connections plus the descriptors for PostgreSQL, the spool and logs: \
                     raise the hard limit (LimitNOFILE= in systemd, ulimit -Hn) or lower --max-client-connections"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading or raising the open-files limit failed"),
    }
}

/// Counts the open client connections in `/metrics` while it lives.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.client_connection_opened();
        Self(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.client_connection_closed();
    }
}

/// Where a connection is between requests: each request's start and its response's end add one,
/// so an even count means "waiting for a request" and an odd one "a request is in flight".
#[derive(Debug, Default)]
struct Turns {
    count: AtomicU64,
    /// The connection's task while a request is in flight, woken when its response ends: hyper
    /// may not read again by itself then, and the idle timer must start.
    parked: Mutex<Option<Waker>>,
}

impl Turns {
    fn next(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn current(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    fn park(&self, waker: &Waker) {
        let mut parked = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        if !parked.as_ref().is_some_and(|p| p.will_wake(waker)) {
            *parked = Some(waker.clone());
        }
    }

    fn response_ended(&self) {
        self.next();
        let parked = self.parked.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = parked {
            waker.wake();
        }
    }
}

/// Which timer a waiting connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// A request has begun (or the connection is new): its headers must arrive in time.
    Header,
    /// Between requests, before any byte of the next.
    Idle,
}

impl Wait {
    fn label(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Idle => "idle",
        }
    }
}

/// The socket, with the header and idle timeouts of a connection. While a request is in flight
/// it runs no timer (the body has its own, and the handler's time is the application's);
/// between requests it runs the idle timer until a byte arrives, then the header timer. When a
/// timer expires, reads and writes fail with `TimedOut` and hyper closes the connection.
struct TimedIo {
    stream: TcpStream,
    turns: Arc<Turns>,
    seen_turn: u64,
    waiting: Option<Wait>,
    timer: Pin<Box<Sleep>>,
    expired: Option<Wait>,
    header_timeout: Duration,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl TimedIo {
    fn new(
        stream: TcpStream,
        turns: Arc<Turns>,
        limits: &ClientLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            stream,
            turns,
            seen_turn: 0,
            waiting: Some(Wait::Header),
            timer: Box::pin(tokio::time::sleep(limits.header_timeout)),
            expired: None,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            metrics,
        }
    }

    fn wait(&mut self, wait: Wait) {
        let timeout = match wait {
            Wait::Header => self.header_timeout,
            Wait::Idle => self.idle_timeout,
        };
        self.waiting = Some(wait);
        self.timer.as_mut().reset(Instant::now() + timeout);
    }

    /// Follows the service: a request started (no timer) or a response ended (idle timer).
    fn follow_turns(&mut self) {
        let turn = self.turns.current();
        if turn != self.seen_turn {
            self.seen_turn = turn;
            if turn % 2 == 1 {
                self.waiting = None;
            } else {
                self.wait(Wait::Idle);
            }
        }
    }

    /// `Ready(error)` once the running timer has expired; registers for its wake-up otherwise.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.expired.is_none() {
            self.follow_turns();
            let Some(wait) = self.waiting else {
                self.turns.park(cx.waker());
                return Poll::Pending;
            };
            ready!(self.timer.as_mut().poll(cx));
            self.expired = Some(wait);
            self.metrics.client_timeout(wait.label());
        }
        let wait = self.expired.expect("set above");
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{} timeout", wait.label()),
        ))
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(e) = this.poll_expired(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before && this.waiting == Some(Wait::Idle) {
            // The first byte of a next request: its headers are now on the clock.
            this.wait(Wait::Header);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            // A client that does not read its answers is bounded by the same timers.
            Poll::Pending => this.poll_expired(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.poll_expired(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_expired(cx).map(Err),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The router as hyper sees it on one connection: marks each request's turns, and puts the
/// request timeout on its body.
#[derive(Clone)]
struct ConnService {
    router: Router,
    turns: Arc<Turns>,
    request_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TurnEnd>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.turns.next();
        let expired = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.request_timeout;
        let request = request.map(|body| DeadlineBody {
            inner: body,
            deadline,
            timer: None,
            expired: expired.clone(),
        });
        let router = self.router.clone();
        let turns = self.turns.clone();
        let metrics = self.metrics.clone();
        let secs = self.request_timeout.as_secs();
        Box::pin(async move {
            let response = router
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            // Whatever the handler made of its failed read, the precise answer is 408.
            let response = if expired.load(Ordering::Acquire) {
                metrics.client_timeout("request");
                ApiError::RequestTimeout { secs }.into_response()
            } else {
                response
            };
            Ok(response.map(|body| TurnEnd { body, turns }))
        })
    }
}

/// A request body that fails once its deadline has passed, and says so in `expired`.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl DeadlineBody {
    fn expire(&self) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        self.expired.store(true, Ordering::Release);
        Poll::Ready(Some(Err(BodyTimedOut.into())))
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired.load(Ordering::Acquire) {
            return this.expire();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => return Poll::Ready(None),
            // Checked on every frame too, so that a body trickled in byte by byte is cut as well.
            Poll::Ready(Some(frame)) if Instant::now() < this.deadline => {
                return Poll::Ready(Some(frame.map_err(Into::into)));
            }
            Poll::Ready(Some(_)) => return this.expire(),
            Poll::Pending => {}
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        this.expire()
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that, once hyper has taken all of it (and drops it), puts its connection
/// back to waiting for the next request.
struct TurnEnd {
    body: axum::body::Body,
    turns: Arc<Turns>,
}

impl Drop for TurnEnd {
    fn drop(&mut self) {
        self.turns.response_ended();
    }
}

impl Body for TurnEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

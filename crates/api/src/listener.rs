//! The accept loop behind [`crate::serve`]: hyper's HTTP/1 server with the `http:` limits.
//!
//! `axum::serve` has no header-read timeout, idle timeout or connection cap, so a client that
//! opens connections and sends half a request head holds a file descriptor each, forever.
//! Here every connection is bounded:
//! - a permit from a semaphore of `max_connections`; a connection beyond is accepted and
//!   closed at once (counted in [`Listener::refused`]), so the descriptors stay bounded;
//! - hyper's `header_read_timeout` (which also bounds a keep-alive connection waiting for
//!   its next request) and `max_buf_size` / `max_headers` for the head;
//! - an idle timeout on the socket: no byte moved either way for `idle_timeout` closes it;
//! - `request_timeout` on the handler and `max_body_bytes` on a declared body (tower-http).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::HttpConfig;
use crate::metrics::Exposition;

/// The running listener: where it listens and what it has done.
#[derive(Debug, Clone)]
pub struct Listener {
    pub addr: std::net::SocketAddr,
    stats: Arc<Stats>,
    permits: Arc<Semaphore>,
    max_connections: usize,
}

/// What the listener has done, for [`Listener`] and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    refused: AtomicU64,
    open: AtomicU64,
}

impl Stats {
    /// The listener's counters and gauge in Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut e = Exposition::default();
        self.expose(&mut e);
        e.finish()
    }

    pub(crate) fn expose(&self, e: &mut Exposition) {
        e.counter("stock_observer_http_connections_accepted_total", "HTTP connections accepted and served.")
            .value(self.accepted.load(Relaxed));
        e.counter(
            "stock_observer_http_connections_refused_total",
            "HTTP connections closed at once: http.max_connections were open.",
        )
        .value(self.refused.load(Relaxed));
        e.gauge("stock_observer_http_connections_open", "HTTP connections open now.").value(self.open.load(Relaxed));
    }
}

/// Counts a connection open until dropped.
struct Open(Arc<Stats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

impl Listener {
    /// Connections being served now.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.permits.available_permits()
    }
    /// Connections accepted and served (refused ones not included).
    pub fn accepted(&self) -> u64 {
        self.stats.accepted.load(Relaxed)
    }
    /// Connections closed at once because `max_connections` were open.
    pub fn refused(&self) -> u64 {
        self.stats.refused.load(Relaxed)
    }
}

pub(crate) fn spawn(
    listener: TcpListener,
    app: Router,
    cfg: &HttpConfig,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> io::Result<Listener> {
    let addr = listener.local_addr()?;
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let handle = Listener { addr, stats, permits, max_connections: cfg.max_connections };
    let app = app
        .layer(RequestBodyLimitLayer::new(cfg.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, cfg.request_timeout.get()));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout.get())
        .max_buf_size(cfg.max_request_head_bytes)
        .max_headers(cfg.max_headers);
    let accept = Accept {
        listener,
        app,
        http,
        idle: cfg.idle_timeout.get(),
        accept_retry: cfg.accept_retry.get(),
        handle: handle.clone(),
    };
    tokio::spawn(accept.run(stop));
    Ok(handle)
}

struct Accept {
    listener: TcpListener,
    app: Router,
    http: http1::Builder,
    idle: Duration,
    accept_retry: Duration,
    handle: Listener,
}

impl Accept {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = model::stopped(&mut stop) => break,
                r = self.listener.accept() => match r {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait rather than spin.
                        tracing::warn!(error = %e, retry_in = ?self.accept_retry, "http accept failed");
                        tokio::time::sleep(self.accept_retry).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = self.handle.permits.clone().try_acquire_owned() else {
                // Dropping the stream closes it: the client sees the connection end at once.
                let refused = self.handle.stats.refused.fetch_add(1, Relaxed) + 1;
                if refused.is_power_of_two() {
                    tracing::warn!(
                        max_connections = self.handle.max_connections,
                        refused,
                        "http connection refused: http.max_connections are open"
                    );
                }
                continue;
            };
            self.handle.stats.accepted.fetch_add(1, Relaxed);
            self.handle.stats.open.fetch_add(1, Relaxed);
            let open = Open(self.handle.stats.clone());
            let _ = stream.set_nodelay(true);
            let io = TokioIo::new(IdleTimeout::new(stream, self.idle));
            // The peer for handlers' logs (a refused API key names who tried), as
            // `into_make_service_with_connect_info` would give it.
            let app = self.app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
            let service = TowerToHyperService::new(app);
            let http = self.http.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _open = open;
                let conn = http.serve_connection(io, service);
                let mut conn = std::pin::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = model::stopped(&mut stop) => {
                        // Finish a request in flight (bounded by the timeouts), then close.
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "http connection closed");
                }
            });
        }
    }
}

/// A socket that fails with `TimedOut` once no byte has moved either way for `idle`.
struct IdleTimeout {
    io: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(io: TcpStream, idle: Duration) -> Self {
        IdleTimeout { io, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// Called when the socket is not ready: an error once the deadline has passed.
    fn check<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "http.idle_timeout"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if r.is_ok() && buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.check(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

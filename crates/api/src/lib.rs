//! The HTTP surface of a live `collect`, on a loopback address by default: `/health` (JSON)
//! and `/metrics` (Prometheus text), open; and `/api/v1`, each route needing an API key of
//! its scope ([`keys`], [`auth`]): today the backup pull source ([`backup`]).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use engine::Live;
use model::UtcTime;
use model::settings::{Checker, Interval, Validate};

pub mod auth;
pub mod backup;
pub mod dashboard;
mod error;
pub mod keys;
mod listener;
pub mod metrics;
pub mod session;
pub mod v1;
pub use backup::BackupRoutes;
pub use error::ApiError;
pub use listener::{Listener, Stats};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub enabled: bool,
    /// Where the API listens. Loopback by default: `/health` and `/metrics` are open.
    pub listen: SocketAddr,
    /// Serve on a non-loopback `listen` address anyway. Refused at start-up otherwise:
    /// `/health` and `/metrics` have no authentication, so anyone who can reach the port
    /// reads them (the `/api/v1` routes need an API key).
    pub allow_remote: bool,
    /// `/metrics` needs an API key of scope `read` (a Prometheus scrape sends it as its
    /// bearer token). `/health` stays open either way: a liveness probe carries no secret.
    pub metrics_auth: bool,
    /// A client must send a whole request head within this time of the connection opening
    /// (or of its previous response), else the connection is closed.
    pub header_read_timeout: Interval,
    /// A connection that moves no byte either way for this long is closed (a client that
    /// stops reading its response, or trickles a body).
    pub idle_timeout: Interval,
    /// A handler that has not answered within this time answers 503.
    pub request_timeout: Interval,
    /// Connections served at once; one beyond is accepted and closed at once, so the
    /// recorder's file descriptors stay bounded (the archive needs them).
    pub max_connections: usize,
    /// Bytes buffered for one request head (hyper's read buffer; its minimum is 8192).
    pub max_request_head_bytes: usize,
    /// Header lines in one request.
    pub max_headers: usize,
    /// Bytes of a request body; a larger declared body answers 413.
    pub max_body_bytes: usize,
    /// Wait after an accept error (e.g. out of file descriptors) before accepting again.
    pub accept_retry: Interval,
}

/// Bounds on the `http:` limits, so a typo cannot switch a limit off.
pub mod bounds {
    use model::settings::Interval;
    /// hyper refuses (panics on) a smaller read buffer.
    pub const MIN_HEAD_BYTES: usize = 8192;
    pub const MAX_HEAD_BYTES: usize = 1 << 20;
    pub const MAX_HEADERS: usize = 1024;
    pub const MAX_BODY_BYTES: usize = 1 << 20;
    /// Each connection holds a file descriptor; the archive and the providers need theirs.
    pub const MAX_CONNECTIONS: usize = 4096;
    pub const MAX_TIMEOUT: Interval = Interval::from_millis(10 * 60 * 1000);
}

impl HttpConfig {
    /// Whether `listen` is a loopback address (IPv4-mapped IPv6 included).
    pub fn is_loopback(&self) -> bool {
        self.listen.ip().to_canonical().is_loopback()
    }
}

impl Validate for HttpConfig {
    fn validate(&self, c: &mut Checker) {
        use bounds::*;
        if self.enabled && !self.is_loopback() && !self.allow_remote {
            c.check(
                false,
                "listen",
                format_args!(
                    "{} is not a loopback address, and /health and /metrics have no authentication: \
                     anyone who can reach the port reads them (the /api/v1 routes need an API key). \
                     Listen on 127.0.0.1, or set http.allow_remote: true \
                     (STOCK_OBSERVER__HTTP__ALLOW_REMOTE) to serve it anyway",
                    self.listen
                ),
            );
        }
        let one_ms = Interval::from_millis(1);
        c.range("header_read_timeout", self.header_read_timeout, one_ms, MAX_TIMEOUT);
        c.range("idle_timeout", self.idle_timeout, one_ms, MAX_TIMEOUT);
        c.range("request_timeout", self.request_timeout, one_ms, MAX_TIMEOUT);
        c.range("accept_retry", self.accept_retry, one_ms, MAX_TIMEOUT);
        c.range("max_connections", self.max_connections, 1, MAX_CONNECTIONS);
        c.range("max_request_head_bytes", self.max_request_head_bytes, MIN_HEAD_BYTES, MAX_HEAD_BYTES);
        c.range("max_headers", self.max_headers, 1, MAX_HEADERS);
        c.range("max_body_bytes", self.max_body_bytes, 0, MAX_BODY_BYTES);
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub uptime_seconds: i64,
    pub session_id: String,
    pub providers: Vec<String>,
    pub market_time: UtcTime,
    pub last_record_time: Option<UtcTime>,
    pub universe: u64,
    /// Slots Track B sampled last, summed over providers…
    pub slots: u64,
    pub slot_capacity: u64,
    /// …and how many of them had data younger than `tracks.scalp.stale_after`.
    pub slots_streaming: u64,
    pub hz: f64,
    pub mitigation_level: u8,
    /// connected, connecting, reconnecting or degraded.
    pub connection: String,
    pub reconnects_today: u64,
    pub gaps_today: u64,
    /// Track B samples due this run, and of those written: with data, stale, empty.
    pub scalp_samples_due: u64,
    pub scalp_samples_with_data: u64,
    pub scalp_samples_stale: u64,
    pub scalp_samples_no_data: u64,
    /// `scalp_samples_with_data / scalp_samples_due`; null before any sample was due.
    pub recording_rate: Option<f64>,
    /// Anomaly-day conditions tripped today.
    pub anomalies_today: Vec<String>,
    pub files_open: u64,
}

pub fn health(live: &Live) -> Health {
    let now = live.clock.now();
    let last = live.stats.last_record_ms.load(Relaxed);
    let day = live.day();
    let (slots, slots_streaming) = live.slots();
    let s = live.stats.snapshot();
    Health {
        status: "ok".into(),
        uptime_seconds: now.millis_since(live.started) / 1000,
        session_id: live.session.to_string(),
        providers: live.providers.iter().map(|(p, m)| format!("{p}/{m}")).collect(),
        market_time: now,
        last_record_time: (last > 0).then(|| UtcTime::from_millis(last)),
        universe: live.universe_size.load(Relaxed),
        slots,
        slot_capacity: live.slot_capacity.load(Relaxed),
        slots_streaming,
        hz: live.hz(),
        mitigation_level: live.mitigation.load(Relaxed),
        connection: live.connection_state().into(),
        reconnects_today: day.reconnects,
        gaps_today: day.gaps,
        scalp_samples_due: s.scalp_expected,
        scalp_samples_with_data: s.scalp_written.saturating_sub(s.scalp_no_data),
        scalp_samples_stale: s.scalp_stale,
        scalp_samples_no_data: s.scalp_no_data,
        recording_rate: s.recording_rate(),
        anomalies_today: day.tripped,
        files_open: live.stats.files_open.load(Relaxed),
    }
}

/// The run's counters and gauges in Prometheus text format (see [`metrics`]); `/metrics`
/// adds the listener's connections and the newest backup.
pub fn metrics(live: &Live) -> String {
    let mut e = metrics::Exposition::default();
    metrics::write(&mut e, live, None);
    e.finish()
}

pub fn router(live: Arc<Live>) -> Router {
    router_with(live, None, Mounts::default())
}

/// More families for `/metrics`, from components this crate does not know (alerts).
pub type ExtraMetrics = Arc<dyn Fn(&mut metrics::Exposition) + Send + Sync>;

/// What `collect` mounts beside `/health` and `/metrics`.
#[derive(Default)]
pub struct Mounts {
    /// The backup pull routes (and the newest backup on `/metrics`).
    pub backup: Option<BackupRoutes>,
    pub metrics: Option<ExtraMetrics>,
    /// `/api/v1` ([`v1::router`]).
    pub v1: Option<Router>,
    /// When given (`http.metrics_auth`), `/metrics` needs a `read` key of this store.
    pub metrics_keys: Option<Arc<keys::KeyStore>>,
}

/// The routes; `/metrics` also shows the listener's connection counts when given.
fn router_with(live: Arc<Live>, http: Option<Arc<Stats>>, mounts: Mounts) -> Router {
    type S = (Arc<Live>, Option<Arc<Stats>>, Option<lifecycle::package::Packages>, Option<ExtraMetrics>);
    let Mounts { backup, metrics: extra, v1, metrics_keys } = mounts;
    let packages = backup.as_ref().map(|b| b.packages.clone());
    let state: S = (live, http, packages, extra);
    let health_route = Router::new()
        .route("/health", get(|State((l, ..)): State<S>| async move { Json(health(&l)) }))
        .with_state(state.clone());
    let metrics_route = Router::new()
        .route(
            "/metrics",
            get(|State((l, http, packages, extra)): State<S>| async move {
                // A few small files under /proc and the backup dir: read off the runtime.
                let body = tokio::task::spawn_blocking(move || {
                    let mut e = metrics::Exposition::default();
                    metrics::write(&mut e, &l, packages.as_ref());
                    if let Some(h) = http {
                        h.expose(&mut e);
                    }
                    if let Some(extra) = extra {
                        extra(&mut e);
                    }
                    e.finish()
                });
                match body.await {
                    Ok(body) => {
                        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
                    }
                    Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
        .with_state(state);
    let metrics_route = match metrics_keys {
        Some(keys) => auth::guard(metrics_route, keys, keys::Scope::Read),
        None => metrics_route,
    };
    let open = health_route.merge(metrics_route);
    let open = match backup {
        Some(b) => open.merge(backup::router(b)),
        None => open,
    };
    match v1 {
        Some(v1) => open.merge(v1),
        None => open,
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} (http.listen): {source}; is another collector running? Give this one \
     another http.listen (STOCK_OBSERVER__HTTP__LISTEN) or http.enabled: false"
)]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds now (so a taken port is reported at start-up) and serves `/health`, `/metrics`
/// and, when given, the backup routes until `stop`, within the `http:` limits.
pub async fn serve(
    cfg: &HttpConfig,
    live: Arc<Live>,
    mounts: Mounts,
    stop: watch::Receiver<bool>,
) -> Result<Listener, BindError> {
    let stats = Arc::new(Stats::default());
    let app = router_with(live, Some(stats.clone()), mounts);
    serve_app(cfg, app, stats, stop).await
}

/// [`serve`] for any router: binds `cfg.listen` and serves `app` within the limits,
/// counting into `stats`.
pub async fn serve_app(
    cfg: &HttpConfig,
    app: Router,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
) -> Result<Listener, BindError> {
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.map_err(|source| BindError { addr: cfg.listen, source })?;
    if !cfg.is_loopback() {
        tracing::warn!(
            listen = %cfg.listen,
            "serving /health and /metrics on a non-loopback address without authentication (http.allow_remote: true)"
        );
    }
    listener::spawn(listener, app, cfg, stats, stop).map_err(|source| BindError { addr: cfg.listen, source })
}

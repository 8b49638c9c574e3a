//! The HTTP surface. For now: `/health` (JSON) and `/metrics` (Prometheus text) for a live
//! `collect`, on a loopback address by default.

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
use model::settings::{Checker, Validate};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub enabled: bool,
    /// Where `/health` and `/metrics` listen. Loopback by default: the API has no auth yet.
    pub listen: SocketAddr,
}

impl Validate for HttpConfig {
    fn validate(&self, _c: &mut Checker) {}
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: String,
    pub uptime_seconds: i64,
    pub session_id: String,
    pub providers: Vec<String>,
    pub market_time: UtcTime,
    pub last_record_time: Option<UtcTime>,
    pub universe: u64,
    pub slots: u64,
    pub slot_capacity: u64,
    pub hz: f64,
    pub mitigation_level: u8,
    /// connected, connecting, reconnecting or degraded.
    pub connection: String,
    pub reconnects_today: u64,
    pub gaps_today: u64,
    /// Track B samples written over samples asked for, today.
    pub recording_rate: f64,
    /// Anomaly-day conditions tripped today.
    pub anomalies_today: Vec<String>,
    pub files_open: u64,
}

pub fn health(live: &Live) -> Health {
    let now = live.clock.now();
    let last = live.stats.last_record_ms.load(Relaxed);
    let day = live.day();
    Health {
        status: "ok".into(),
        uptime_seconds: now.millis_since(live.started) / 1000,
        session_id: live.session.to_string(),
        providers: live.providers.iter().map(|(p, m)| format!("{p}/{m}")).collect(),
        market_time: now,
        last_record_time: (last > 0).then(|| UtcTime::from_millis(last)),
        universe: live.universe_size.load(Relaxed),
        slots: live.slots.load(Relaxed),
        slot_capacity: live.slot_capacity.load(Relaxed),
        hz: live.hz(),
        mitigation_level: live.mitigation.load(Relaxed),
        connection: live.connection_state().into(),
        reconnects_today: day.reconnects,
        gaps_today: day.gaps,
        recording_rate: day.recording_rate(),
        anomalies_today: day.tripped,
        files_open: live.stats.files_open.load(Relaxed),
    }
}

pub fn router(live: Arc<Live>) -> Router {
    Router::new()
        .route("/health", get(|State(l): State<Arc<Live>>| async move { Json(health(&l)) }))
        .route(
            "/metrics",
            get(|State(l): State<Arc<Live>>| async move {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], l.stats.snapshot().prometheus()).into_response()
            }),
        )
        .with_state(live)
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

/// Binds now (so a taken port is reported at start-up) and serves until `stop`.
pub async fn serve(
    cfg: &HttpConfig,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> Result<SocketAddr, BindError> {
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.map_err(|source| BindError { addr: cfg.listen, source })?;
    let addr = listener.local_addr().map_err(|source| BindError { addr: cfg.listen, source })?;
    tokio::spawn(async move {
        let shutdown = async move {
            model::stopped(&mut stop).await;
        };
        if let Err(e) = axum::serve(listener, router(live)).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "http server failed");
        }
    });
    Ok(addr)
}

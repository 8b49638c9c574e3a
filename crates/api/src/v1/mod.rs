//! `/api/v1`: the recorded data and the observer's evidence for any HTTP client (seed 000
//! §5, seed 004 §5), served by `collect` beside `/health` and by `stock-observer serve` over
//! a database without collecting. Every route needs an API key of scope `read` (an `admin`
//! key passes); answers are JSON, times RFC 3339, prices and sizes decimal strings, and every
//! refusal the one error shape with a status that says whose fault it was.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use engine::Live;
use model::Clock;
use model::settings::{Checker, Interval, Validate};
use store::{Store, StoreError};

use crate::auth;
use crate::error::ApiError;
use crate::keys::{KeyStore, Scope};

pub mod admin;
mod login;
mod market;
pub mod openapi;
mod params;
mod scalp;
mod slots;
mod state;
pub mod stream;

/// The `api:` section: how much one request may ask for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiLimits {
    /// Ticks per page without `limit`, and the most a `limit` may ask for.
    pub default_ticks: u32,
    pub max_ticks: u32,
    /// Bars before `to` without `from`, and the most one range may hold.
    pub default_bars: u32,
    pub max_bars: u32,
    /// Items `/api/v1/stream` keeps for a client that reconnects with `Last-Event-ID`.
    pub stream_replay: usize,
    /// An idle stream's keep-alive comment comes this often.
    pub stream_keep_alive: Interval,
    /// How long a session token (`POST /api/v1/session`) stays valid.
    pub session_ttl: Interval,
}

impl Validate for ApiLimits {
    fn validate(&self, c: &mut Checker) {
        c.range("max_ticks", self.max_ticks, 1, 100_000);
        c.range("default_ticks", self.default_ticks, 1, self.max_ticks.max(1));
        c.range("max_bars", self.max_bars, 1, 1_000_000);
        c.range("default_bars", self.default_bars, 1, self.max_bars.max(1));
        c.range("stream_replay", self.stream_replay, 1, 10_000_000);
    }
}

/// What the routes read.
pub struct ApiState {
    pub store: Arc<Store>,
    /// The running collection, inside `collect`; `None` in `serve`.
    pub live: Option<Arc<Live>>,
    /// The archive (universe files).
    pub data_dir: std::path::PathBuf,
    pub clock: Clock,
    pub limits: ApiLimits,
    /// The live feed of `/api/v1/stream`, inside `collect`.
    pub stream: Option<Arc<stream::Hub>>,
    /// Packs backups for `POST /api/v1/admin/backup` (`None`: not configured here).
    pub upkeep: Option<Arc<lifecycle::upkeep::Upkeep>>,
    /// `store.batch_rows`, for `POST /api/v1/admin/etl`.
    pub etl_batch_rows: usize,
    /// The admin jobs started (fill with `Default::default()`).
    pub jobs: admin::Jobs,
}

impl ApiState {
    /// Over a database and archive, with nothing live and no backups: what `serve` starts
    /// from (set `live`, `stream`, `upkeep` with struct update syntax).
    pub fn new(store: Arc<Store>, data_dir: std::path::PathBuf, clock: Clock, limits: ApiLimits) -> ApiState {
        ApiState {
            store,
            live: None,
            data_dir,
            clock,
            limits,
            stream: None,
            upkeep: None,
            etl_batch_rows: store::StoreConfig::default().batch_rows,
            jobs: admin::Jobs::default(),
        }
    }
}

/// The `/api/v1` routes, each behind a `read` key (the stream: a `stream` key).
pub fn router(state: ApiState, keys: Arc<KeyStore>) -> Router {
    let state = Arc::new(state);
    // Without a collector there is nothing live: the stream route says so in the one error
    // shape (after the credential check, like every route).
    let live = match state.stream.clone() {
        Some(hub) => Router::new().route("/api/v1/stream", get(stream::stream)).with_state(hub),
        None => Router::new().route("/api/v1/stream", get(stream::no_collector)),
    };
    let live = auth::guard(live, keys.clone(), Scope::Stream);
    let routes = Router::new()
        .route("/api/v1/bars/{symbol}", get(market::bars))
        .route("/api/v1/latest/{symbol}", get(market::latest))
        .route("/api/v1/ticks/{symbol}", get(market::ticks))
        .route("/api/v1/gaps", get(state::gaps))
        .route("/api/v1/events", get(state::events))
        .route("/api/v1/overflow", get(state::overflow))
        .route("/api/v1/status", get(state::status))
        .route("/api/v1/universe", get(state::universe))
        .route("/api/v1/anomalies", get(state::anomalies))
        .route("/api/v1/db", get(state::db))
        .route("/api/v1/slots", get(slots::slots))
        .route("/api/v1/scalp/{symbol}", get(scalp::scalp))
        .with_state(state.clone());
    let admin = Router::new()
        .route("/api/v1/admin/compress", post(admin::compress))
        .route("/api/v1/admin/refresh", post(admin::refresh))
        .route("/api/v1/admin/backup", post(admin::backup))
        .route("/api/v1/admin/etl", post(admin::etl))
        .route("/api/v1/admin/jobs", get(admin::jobs))
        .route("/api/v1/admin/jobs/{id}", get(admin::job))
        .with_state(state);
    let routes = auth::guard(routes, keys.clone(), Scope::Read)
        .merge(auth::guard(admin, keys.clone(), Scope::Admin))
        // It authenticates the key itself: any scope may have a session of its own scope.
        .merge(
            Router::new()
                .route("/api/v1/session", post(login::create).delete(login::delete).fallback(login::other_method))
                .with_state(keys),
        );
    let routes = routes.merge(crate::dashboard::router()).route("/api/v1/openapi.json", get(openapi::serve));
    routes.merge(live)
}

/// `/api/v1` and a `/health` that says what is served, for `stock-observer serve`.
pub fn standalone(state: ApiState, keys: Arc<KeyStore>, database: String) -> Router {
    let health = serde_json::json!({ "status": "ok", "mode": "serve", "database": database });
    router(state, keys).route("/health", get(move || std::future::ready(axum::Json(health.clone()))))
}

/// A database failure: the detail to the log, a 503 to the client (the database, not the
/// request, is at fault, and the archive still has everything).
fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "/api/v1: database query failed");
    ApiError::unavailable("the database did not answer; the archive has the data (see the server's log)")
}

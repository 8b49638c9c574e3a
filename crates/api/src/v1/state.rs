//! The observer's evidence and state: the day's gaps, system events and overflow entries from
//! the database, and (inside `collect`) what the status line shows.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use model::{Day, Market, Provider, UtcTime};
use store::Backend;

use super::params::Params;
use super::{ApiState, store_error};
use crate::error::ApiError;

/// `date`, or the Seoul day of now.
fn day(s: &ApiState, p: &Params) -> Result<Day, ApiError> {
    Ok(p.day("date")?.unwrap_or_else(|| Day::of(s.clock.now())))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Gap {
    pub provider: Provider,
    pub start: UtcTime,
    pub end: UtcTime,
    pub seconds: i64,
    pub scope: String,
    pub reason: String,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Gaps {
    pub date: Day,
    pub gaps: Vec<Gap>,
}

/// `GET /api/v1/gaps?date=YYYYMMDD`: the day's gap markers, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/gaps",
    tag = "state",
    summary = "The day's gap markers",
    params(
        ("date" = Option<model::Day>, Query, description = "Seoul day YYYYMMDD (default: today)")
    ),
    responses(
        (status = 200, description = "Gaps, oldest first", body = Gaps),
        crate::error::Refusals
    )
)]
pub async fn gaps(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Json<Gaps>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = day(&s, &p)?;
    let rows = s.store.gaps(date.date()).await.map_err(store_error)?;
    let gaps = rows
        .into_iter()
        .map(|g| Gap {
            provider: g.provider,
            start: g.gap_start_ts,
            end: g.gap_end_ts,
            seconds: g.gap_seconds,
            scope: g.scope,
            reason: g.reason,
            detail: g.detail,
        })
        .collect();
    Ok(Json(Gaps { date, gaps }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub provider: Provider,
    pub time: UtcTime,
    pub event_type: String,
    /// The archive line, as recorded.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

impl From<store::EventRow> for Event {
    fn from(e: store::EventRow) -> Event {
        Event { provider: e.provider, time: e.event_time, event_type: e.event_type, body: e.body }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Events {
    pub date: Day,
    pub events: Vec<Event>,
}

/// `GET /api/v1/events?date=YYYYMMDD&type=`: the day's system events, oldest first,
/// optionally of one `event_type` (`gap_marker`, `slot_decision`, `anomaly_day`, …).
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "state",
    summary = "The day's system events",
    params(
        ("date" = Option<model::Day>, Query, description = "Seoul day YYYYMMDD (default: today)"),
        ("type" = Option<String>, Query, pattern = "^[a-z_]+$", description = "Only this event_type (snake_case)")
    ),
    responses(
        (status = 200, description = "Events, oldest first", body = Events),
        crate::error::Refusals
    )
)]
pub async fn events(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Json<Events>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = day(&s, &p)?;
    let only = p.get("type");
    if let Some(t) = only
        && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err(ApiError::bad_request(format!("type: {t:?} is not an event type (snake_case, e.g. gap_marker)")));
    }
    let rows = s.store.events(date.date()).await.map_err(store_error)?;
    let events = rows.into_iter().filter(|e| only.is_none_or(|t| e.event_type == t)).map(Event::from).collect();
    Ok(Json(Events { date, events }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OverflowOut {
    pub provider: Provider,
    pub time: UtcTime,
    pub symbol: String,
    pub candidate_score: f64,
    pub cutoff_rank: u32,
    pub decision_reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overflow {
    pub date: Day,
    pub overflow: Vec<OverflowOut>,
}

/// `GET /api/v1/overflow?date=YYYYMMDD`: candidates that did not get a slot.
#[utoipa::path(
    get,
    path = "/api/v1/overflow",
    tag = "state",
    summary = "Candidates that did not get a slot",
    params(
        ("date" = Option<model::Day>, Query, description = "Seoul day YYYYMMDD (default: today)")
    ),
    responses(
        (status = 200, description = "Overflow entries", body = Overflow),
        crate::error::Refusals
    )
)]
pub async fn overflow(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Json<Overflow>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = day(&s, &p)?;
    let rows = s.store.overflow(date.date()).await.map_err(store_error)?;
    let overflow = rows
        .into_iter()
        .map(|o| OverflowOut {
            provider: o.provider,
            time: o.ts,
            symbol: o.symbol,
            candidate_score: o.candidate_score,
            cutoff_rank: o.cutoff_rank,
            decision_reason: o.decision_reason,
        })
        .collect();
    Ok(Json(Overflow { date, overflow }))
}

/// One provider's pipeline, as `/metrics` labels it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedStatus {
    pub provider: Provider,
    pub market: Market,
    /// connected, connecting, reconnecting, degraded or rest_polling.
    pub connection: &'static str,
    /// Market-clock seconds since the stream last delivered data while an outage is open.
    pub disconnected_seconds: f64,
    pub universe: u64,
    pub slot_capacity: u64,
    pub slots: u64,
    pub slots_streaming: u64,
    /// Frames waiting in the observer queue, and the bytes of the stream's frames among them.
    pub queued_frames: u64,
    pub queued_bytes: u64,
}

/// `/health`'s figures (summed over providers), and each provider's own.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    #[serde(flatten)]
    pub health: crate::Health,
    pub per_provider: Vec<FeedStatus>,
}

/// `GET /api/v1/status`: what the status line and `/health` show, inside `collect`; a
/// `serve` process records nothing and says so.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "state",
    summary = "What the status line shows (inside collect)",
    responses(
        (status = 200, description = "The collector's status", body = Status),
        (status = 404, description = "No collector runs in this process (serve)", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn status(State(s): State<Arc<ApiState>>) -> Result<Json<Status>, ApiError> {
    match &s.live {
        Some(live) => {
            let now = live.clock.now();
            let per_provider = live
                .feeds()
                .iter()
                .map(|f| {
                    let (frames, bytes) = f.queued();
                    FeedStatus {
                        provider: f.provider,
                        market: f.market,
                        connection: f.connection_state(),
                        disconnected_seconds: f.disconnected_seconds(now),
                        universe: f.universe.load(Relaxed),
                        slot_capacity: f.slot_capacity,
                        slots: f.slots.assigned.load(Relaxed),
                        slots_streaming: f.slots.streaming.load(Relaxed),
                        queued_frames: frames,
                        queued_bytes: bytes,
                    }
                })
                .collect();
            Ok(Json(Status { health: crate::health(live), per_provider }))
        }
        None => Err(ApiError::not_found(
            "no collector runs in this process (stock-observer serve); ask the collector's /api/v1/status",
        )),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Universes {
    pub date: Day,
    /// One per market the archive has a universe file of that day for.
    #[schema(value_type = Vec<Object>)]
    pub universes: Vec<archive::universe::UniverseFile>,
}

/// `GET /api/v1/universe?date=YYYYMMDD&market=kr_stocks|crypto|us_stocks`: the day's
/// universe as the archive recorded it (the file the collector wrote at the day's start).
#[utoipa::path(
    get,
    path = "/api/v1/universe",
    tag = "state",
    summary = "The day's universe as archived",
    params(
        ("date" = Option<model::Day>, Query, description = "Seoul day YYYYMMDD (default: today)"),
        ("market" = Option<model::Market>, Query, description = "Only this market")
    ),
    responses(
        (status = 200, description = "Universe files of the day", body = Universes),
        (status = 503, description = "A universe file cannot be read", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn universe(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Json<Universes>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = day(&s, &p)?;
    let markets: Vec<Market> = match p.get("market") {
        None => Market::ALL.to_vec(),
        Some(m) => vec![m.parse().map_err(|_| {
            let known: Vec<&str> = Market::ALL.iter().map(|m| m.as_str()).collect();
            ApiError::bad_request(format!("market: {m:?} is not one of {}", known.join(", ")))
        })?],
    };
    let root = s.data_dir.clone();
    let found = tokio::task::spawn_blocking(move || {
        markets
            .into_iter()
            .filter_map(|m| archive::universe::load(&root, &date.to_string(), m).transpose())
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| ApiError::internal("universe read task failed"))?;
    let universes = found.map_err(|e| {
        tracing::error!(error = %e, "/api/v1/universe: unreadable universe file");
        ApiError::unavailable("a universe file of that day cannot be read (see the server's log)")
    })?;
    Ok(Json(Universes { date, universes }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Anomalies {
    pub date: Day,
    /// `anomaly_day` events of the day in the database.
    pub recorded: Vec<Event>,
    /// Conditions tripped today in this collector (`null` outside `collect` or for another day).
    pub live: Option<Vec<String>>,
}

/// `GET /api/v1/anomalies?date=YYYYMMDD`: the day's anomaly-day conditions.
#[utoipa::path(
    get,
    path = "/api/v1/anomalies",
    tag = "state",
    summary = "The day's anomaly-day conditions",
    params(
        ("date" = Option<model::Day>, Query, description = "Seoul day YYYYMMDD (default: today)")
    ),
    responses(
        (status = 200, description = "Recorded and live conditions", body = Anomalies),
        crate::error::Refusals
    )
)]
pub async fn anomalies(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Json<Anomalies>, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = day(&s, &p)?;
    let rows = s.store.events(date.date()).await.map_err(store_error)?;
    let recorded = rows.into_iter().filter(|e| e.event_type == "anomaly_day").map(Event::from).collect();
    let live = s.live.as_ref().filter(|_| date == Day::of(s.clock.now())).map(|l| l.day().tripped);
    Ok(Json(Anomalies { date, recorded, live }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Db {
    /// Where the data is (credentials never shown).
    pub database: String,
    pub mode: String,
    #[schema(value_type = Object)]
    pub migrations: store::StatusReport,
    pub pending_migrations: usize,
    /// Native PostgreSQL mode's daily partitions (empty in other modes).
    pub daily_partitions: Vec<String>,
    /// Table, partition and chunk sizes, and TimescaleDB's compression ratio.
    pub storage: store::Storage,
    /// The connection pool (PostgreSQL; `null` for SQLite's one writer and one reader).
    pub pool: Option<store::PoolStatus>,
}

/// `GET /api/v1/db`: the database's mode, migrations and partitions.
#[utoipa::path(
    get,
    path = "/api/v1/db",
    tag = "operations",
    summary = "The database: mode, migrations, pool, sizes, compression",
    responses(
        (status = 200, description = "The database's state", body = Db),
        crate::error::Refusals
    )
)]
pub async fn db(State(s): State<Arc<ApiState>>) -> Result<Json<Db>, ApiError> {
    let status = s.store.status().await.map_err(store_error)?;
    let daily_partitions = s.store.daily_partitions().await.map_err(store_error)?;
    let storage = s.store.storage().await.map_err(store_error)?;
    Ok(Json(Db {
        pool: s.store.pool_status(),
        storage,
        database: s.store.describe(),
        mode: status.mode.clone(),
        pending_migrations: status.pending(),
        migrations: status,
        daily_partitions,
    }))
}

//! The observer's evidence and state: the day's gaps, system events and overflow entries from
//! the database, and (inside `collect`) what the status line shows.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;

use model::{Day, Provider, UtcTime};
use store::Backend;

use super::params::Params;
use super::{ApiState, store_error};
use crate::error::ApiError;

/// `date`, or the Seoul day of now.
fn day(s: &ApiState, p: &Params) -> Result<Day, ApiError> {
    Ok(p.day("date")?.unwrap_or_else(|| Day::of(s.clock.now())))
}

#[derive(Debug, Serialize)]
pub struct Gap {
    pub provider: Provider,
    pub start: UtcTime,
    pub end: UtcTime,
    pub seconds: i64,
    pub scope: String,
    pub reason: String,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Gaps {
    pub date: Day,
    pub gaps: Vec<Gap>,
}

/// `GET /api/v1/gaps?date=YYYYMMDD`: the day's gap markers, oldest first.
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

#[derive(Debug, Serialize)]
pub struct Event {
    pub provider: Provider,
    pub time: UtcTime,
    pub event_type: String,
    /// The archive line, as recorded.
    pub body: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct Events {
    pub date: Day,
    pub events: Vec<Event>,
}

/// `GET /api/v1/events?date=YYYYMMDD&type=`: the day's system events, oldest first,
/// optionally of one `event_type` (`gap_marker`, `slot_decision`, `anomaly_day`, …).
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
    let events = rows
        .into_iter()
        .filter(|e| only.is_none_or(|t| e.event_type == t))
        .map(|e| Event { provider: e.provider, time: e.event_time, event_type: e.event_type, body: e.body })
        .collect();
    Ok(Json(Events { date, events }))
}

#[derive(Debug, Serialize)]
pub struct OverflowOut {
    pub provider: Provider,
    pub time: UtcTime,
    pub symbol: String,
    pub candidate_score: f64,
    pub cutoff_rank: u32,
    pub decision_reason: String,
}

#[derive(Debug, Serialize)]
pub struct Overflow {
    pub date: Day,
    pub overflow: Vec<OverflowOut>,
}

/// `GET /api/v1/overflow?date=YYYYMMDD`: candidates that did not get a slot.
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

/// `GET /api/v1/status`: what the status line and `/health` show, inside `collect`; a
/// `serve` process records nothing and says so.
pub async fn status(State(s): State<Arc<ApiState>>) -> Result<Json<crate::Health>, ApiError> {
    match &s.live {
        Some(live) => Ok(Json(crate::health(live))),
        None => Err(ApiError::not_found(
            "no collector runs in this process (stock-observer serve); ask the collector's /api/v1/status",
        )),
    }
}

//! Track B's samples of one symbol (`scalp_ticks`): the book and last price at each sample
//! time, with how old the data behind it was.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;

use model::{Price, Provider, Qty, QualityFlag, Symbol, UtcTime};
use store::{Backend, SampleQuery};

use super::params::{Paged, bad_cursor};
use super::{ApiState, store_error};
use crate::error::ApiError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SampleOut {
    pub time: UtcTime,
    pub provider: Provider,
    pub bid_price: Option<Price>,
    pub ask_price: Option<Price>,
    pub bid_size: Option<Qty>,
    pub ask_size: Option<Qty>,
    pub last_price: Option<Price>,
    pub volume: Option<Qty>,
    /// Milliseconds between the newest data behind the sample and the sample (`null`: none yet).
    pub data_age_ms: Option<i64>,
    pub sample_interval_ms: u64,
    /// `normal`, `degraded`, `stale`, `no_data`, …: a sample is only as good as its data.
    pub quality_flag: QualityFlag,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Samples {
    pub symbol: Symbol,
    pub samples: Vec<SampleOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/scalp/{symbol}?from&to&limit&cursor&provider`: Track B samples in
/// `[from, to)`, oldest first, paged like `ticks` (`api.default_ticks`, at most `api.max_ticks`).
#[utoipa::path(
    get,
    path = "/api/v1/scalp/{symbol}",
    tag = "market",
    summary = "Track B samples of a symbol, paged",
    params(
        ("symbol" = model::Symbol, Path, description = "The instrument, as the provider spells it"),
        super::params::PagedQuery
    ),
    responses(
        (status = 200, description = "A page of samples, oldest first", body = Samples),
        crate::error::Refusals
    )
)]
pub async fn scalp(
    State(s): State<Arc<ApiState>>,
    Path(sym): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Samples>, ApiError> {
    let p = Paged::parse(&sym, q.as_deref(), s.clock.now(), &s.limits, 2)?;
    let after = p.after.as_ref().map(|k| sample_key(k)).transpose()?;
    let q = SampleQuery {
        symbol: p.symbol.clone(),
        provider: p.provider,
        from: p.from,
        to: p.to,
        limit: p.limit + 1,
        after,
    };
    let rows = s.store.samples(q).await.map_err(store_error)?;
    let (rows, next_cursor) = p.page(rows, |r| vec![r.event_time.as_millis().to_string(), r.provider.as_str().into()]);
    let samples = rows
        .into_iter()
        .map(|r| SampleOut {
            time: r.event_time,
            provider: r.provider,
            bid_price: r.bid_price,
            ask_price: r.ask_price,
            bid_size: r.bid_size,
            ask_size: r.ask_size,
            last_price: r.last_price,
            volume: r.volume,
            data_age_ms: r.data_age_ms,
            sample_interval_ms: r.sample_interval_ms,
            quality_flag: r.meta.quality_flag,
        })
        .collect();
    Ok(Json(Samples { symbol: p.symbol, samples, next_cursor }))
}

/// A cursor's (time, provider).
fn sample_key(k: &[String]) -> Result<(UtcTime, Provider), ApiError> {
    Ok((UtcTime::from_millis(k[0].parse().map_err(|_| bad_cursor())?), k[1].parse().map_err(|_| bad_cursor())?))
}

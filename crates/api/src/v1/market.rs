//! Market data: bars, the latest price with its age, and ticks page by page.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;

use model::{Market, Price, Provider, Qty, Side, Symbol, UtcTime};
use store::{Backend, BarQuery, TickKey, TickQuery};

use super::params::{Paged, Params, bad_cursor, symbol};
use super::{ApiState, store_error};
use crate::error::ApiError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BarOut {
    pub time: UtcTime,
    pub provider: Provider,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Qty,
    /// Share of the bar's time covered by samples with data (1m); 1 for rollups of full bars.
    pub coverage_ratio: f64,
    /// Samples (1m) or bars (rollups) behind it.
    pub count: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bars {
    pub symbol: Symbol,
    pub interval: &'static str,
    pub from: UtcTime,
    pub to: UtcTime,
    pub bars: Vec<BarOut>,
}

/// `GET /api/v1/bars/{symbol}?interval=1m|10m|1h|1d&from&to&provider`: bars starting in
/// `[from, to)`, oldest first. Without `to`, now; without `from`, `api.default_bars` bars
/// before `to`. A range of more than `api.max_bars` bars is refused.
#[utoipa::path(
    get,
    path = "/api/v1/bars/{symbol}",
    tag = "market",
    summary = "OHLCV bars of a symbol",
    params(
        ("symbol" = model::Symbol, Path, description = "The instrument, as the provider spells it"),
        ("interval" = Option<store::BarInterval>, Query, description = "Bar size (default 1m)"),
        ("from" = Option<model::UtcTime>, Query, description = "Start, inclusive (default: api.default_bars bars before to)"),
        ("to" = Option<model::UtcTime>, Query, description = "End, exclusive (RFC 3339; default: now)"),
        ("provider" = Option<model::Provider>, Query, description = "Only this provider's records")
    ),
    responses(
        (status = 200, description = "Bars starting in [from, to), oldest first", body = Bars),
        crate::error::Refusals
    )
)]
pub async fn bars(
    State(s): State<Arc<ApiState>>,
    Path(sym): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Bars>, ApiError> {
    let symbol = symbol(&sym)?;
    let p = Params::parse(q.as_deref())?;
    let interval = p.interval()?;
    let provider = p.provider()?;
    let step = interval.millis();
    let to = p.time("to")?.unwrap_or_else(|| s.clock.now());
    let from = p.time("from")?.unwrap_or_else(|| to.plus_millis(-step * i64::from(s.limits.default_bars)));
    if from >= to {
        return Err(ApiError::bad_request(format!("from: {from} must be before to ({to})")));
    }
    let span = to.millis_since(from);
    let n = span / step + i64::from(span % step != 0);
    if n > i64::from(s.limits.max_bars) {
        return Err(ApiError::bad_request(format!(
            "from: the range holds up to {n} bars of {}, more than {} (api.max_bars); narrow from/to",
            interval.as_str(),
            s.limits.max_bars
        )));
    }
    let rows =
        s.store.bars(BarQuery { symbol: symbol.clone(), provider, interval, from, to }).await.map_err(store_error)?;
    let bars = rows
        .into_iter()
        .map(|b| BarOut {
            time: b.bar_time,
            provider: b.provider,
            open: b.open,
            high: b.high,
            low: b.low,
            close: b.close,
            volume: b.volume,
            coverage_ratio: b.coverage_ratio,
            count: b.count,
        })
        .collect();
    Ok(Json(Bars { symbol, interval: interval.as_str(), from, to, bars }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Latest {
    pub symbol: Symbol,
    pub provider: Provider,
    pub market: Market,
    pub time: UtcTime,
    pub price: Price,
    pub volume: Qty,
    pub trade_id: String,
    /// Seconds between the trade and now: a realtime price is only as good as its age.
    pub age_seconds: f64,
}

/// `GET /api/v1/latest/{symbol}?provider`: the newest recorded trade, with its age.
#[utoipa::path(
    get,
    path = "/api/v1/latest/{symbol}",
    tag = "market",
    summary = "The newest recorded trade, with its age",
    params(
        ("symbol" = model::Symbol, Path, description = "The instrument, as the provider spells it"),
        ("provider" = Option<model::Provider>, Query, description = "Only this provider's records")
    ),
    responses(
        (status = 200, description = "The newest trade", body = Latest),
        (status = 404, description = "Nothing recorded for it", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn latest(
    State(s): State<Arc<ApiState>>,
    Path(sym): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Latest>, ApiError> {
    let symbol = symbol(&sym)?;
    let provider = Params::parse(q.as_deref())?.provider()?;
    let l = s
        .store
        .latest_price(symbol.clone(), provider)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("no trade of {symbol} is recorded in the database")))?;
    let age_seconds = s.clock.now().millis_since(l.time) as f64 / 1000.0;
    Ok(Json(Latest {
        symbol: l.symbol,
        provider: l.provider,
        market: l.market,
        time: l.time,
        price: l.price,
        volume: l.volume,
        trade_id: l.trade_id,
        age_seconds,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TickOut {
    pub time: UtcTime,
    pub provider: Provider,
    pub trade_id: String,
    pub price: Price,
    pub volume: Qty,
    pub side: Option<Side>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ticks {
    pub symbol: Symbol,
    pub ticks: Vec<TickOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/ticks/{symbol}?from&to&limit&cursor&provider`: trades in `[from, to)`,
/// oldest first, `limit` per page (`api.default_ticks`, at most `api.max_ticks`). A page's
/// `next_cursor` continues exactly after its last trade, even among trades of one instant.
#[utoipa::path(
    get,
    path = "/api/v1/ticks/{symbol}",
    tag = "market",
    summary = "Trades of a symbol, paged",
    params(
        ("symbol" = model::Symbol, Path, description = "The instrument, as the provider spells it"),
        super::params::PagedQuery
    ),
    responses(
        (status = 200, description = "A page of trades, oldest first", body = Ticks),
        crate::error::Refusals
    )
)]
pub async fn ticks(
    State(s): State<Arc<ApiState>>,
    Path(sym): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Ticks>, ApiError> {
    let p = Paged::parse(&sym, q.as_deref(), s.clock.now(), &s.limits, 3)?;
    let after = p.after.as_ref().map(|k| trade_key(k)).transpose()?;
    let q =
        TickQuery { symbol: p.symbol.clone(), provider: p.provider, from: p.from, to: p.to, limit: p.limit + 1, after };
    let rows = s.store.ticks(q).await.map_err(store_error)?;
    let (rows, next_cursor) =
        p.page(rows, |t| vec![t.time.as_millis().to_string(), t.provider.as_str().into(), t.trade_id.clone()]);
    let ticks = rows
        .into_iter()
        .map(|t| TickOut {
            time: t.time,
            provider: t.provider,
            trade_id: t.trade_id,
            price: t.price,
            volume: t.volume,
            side: t.side,
        })
        .collect();
    Ok(Json(Ticks { symbol: p.symbol, ticks, next_cursor }))
}

/// A cursor's (time, provider, trade id).
fn trade_key(k: &[String]) -> Result<TickKey, ApiError> {
    Ok(TickKey {
        time: UtcTime::from_millis(k[0].parse().map_err(|_| bad_cursor())?),
        provider: k[1].parse().map_err(|_| bad_cursor())?,
        trade_id: k[2].clone(),
    })
}

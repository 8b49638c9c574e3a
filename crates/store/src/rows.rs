//! Row types: what the store writes and the queries return. Prices and sizes stay `Price` /
//! `Qty` (exact decimals) all the way to the column.

use jiff::civil::Date;
use serde::Serialize;

use model::{Market, MarketEvent, Price, Provider, Qty, QualityFlag, Record, ScalpSample, Side, Symbol, UtcTime};

/// The common meta (seed 001 §2.14.3) as stored beside a row; `event_time` is the row's own
/// time column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowMeta {
    pub schema_version: String,
    pub receive_time: UtcTime,
    pub session_id: String,
    pub mitigation_level: u8,
    pub quality_flag: QualityFlag,
    pub raw_ref: Option<String>,
}

impl RowMeta {
    pub fn from_meta(m: &model::Meta) -> Self {
        RowMeta {
            schema_version: m.schema_version.to_string(),
            receive_time: m.receive_time,
            session_id: m.session_id.to_string(),
            mitigation_level: m.mitigation_level,
            quality_flag: m.quality_flag,
            raw_ref: m.raw_ref.clone(),
        }
    }
}

/// One executed trade (`market_ticks`). Natural key: (symbol, time, provider, trade_id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketTickRow {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub time: UtcTime,
    /// The provider's trade id; for a provider without one, the `raw_ref` of the frame, which
    /// the engine and the ETL derive identically.
    pub trade_id: String,
    pub price: Price,
    pub volume: Qty,
    pub side: Option<Side>,
    pub cum_volume: Option<Qty>,
    pub change: Option<Price>,
    pub meta: RowMeta,
}

impl MarketTickRow {
    /// The row of a tick record; `None` for quotes and snapshots.
    pub fn from_record(rec: &Record<MarketEvent>) -> Option<Self> {
        let MarketEvent::Tick(t) = &rec.body else { return None };
        let trade_id = t.trade_id.clone().or_else(|| rec.meta.raw_ref.clone()).unwrap_or_default();
        Some(MarketTickRow {
            provider: t.provider,
            market: t.market,
            symbol: t.symbol.clone(),
            time: rec.meta.event_time,
            trade_id,
            price: t.price,
            volume: t.size,
            side: t.side,
            cum_volume: t.cum_volume,
            change: None,
            meta: RowMeta::from_meta(&rec.meta),
        })
    }
}

/// One Track B sample (`scalp_ticks`). Natural key: (symbol, event_time, provider).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalpTickRow {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub event_time: UtcTime,
    pub bid_price: Option<Price>,
    pub ask_price: Option<Price>,
    pub bid_size: Option<Qty>,
    pub ask_size: Option<Qty>,
    pub last_price: Option<Price>,
    pub volume: Option<Qty>,
    pub data_age_ms: Option<i64>,
    pub sample_interval_ms: u64,
    pub meta: RowMeta,
}

impl ScalpTickRow {
    pub fn from_record(rec: &Record<ScalpSample>) -> Self {
        let s = &rec.body;
        ScalpTickRow {
            provider: s.provider,
            market: s.market,
            symbol: s.symbol.clone(),
            event_time: rec.meta.event_time,
            bid_price: s.bid_price,
            ask_price: s.ask_price,
            bid_size: s.bid_size,
            ask_size: s.ask_size,
            last_price: s.last_price,
            volume: s.volume,
            data_age_ms: s.data_age_ms,
            sample_interval_ms: s.sample_interval_ms,
            meta: RowMeta::from_meta(&rec.meta),
        }
    }
}

/// Bar sizes the store serves.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum BarInterval {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "10m")]
    M10,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
}

impl BarInterval {
    pub const ALL: [BarInterval; 4] = [BarInterval::M1, BarInterval::M10, BarInterval::H1, BarInterval::D1];

    pub const fn as_str(self) -> &'static str {
        match self {
            BarInterval::M1 => "1m",
            BarInterval::M10 => "10m",
            BarInterval::H1 => "1h",
            BarInterval::D1 => "1d",
        }
    }

    /// The bar's length (a Seoul day for 1d).
    pub const fn millis(self) -> i64 {
        match self {
            BarInterval::M1 => 60_000,
            BarInterval::M10 => 600_000,
            BarInterval::H1 => 3_600_000,
            BarInterval::D1 => 86_400_000,
        }
    }

    pub(crate) const fn table(self) -> &'static str {
        match self {
            BarInterval::M1 => "scalp_1m_bars",
            BarInterval::M10 => "bars_10m",
            BarInterval::H1 => "bars_1h",
            BarInterval::D1 => "bars_1d",
        }
    }

    /// Start of the bar containing `t`. Days are Asia/Seoul days (KRX trading days); the
    /// shorter sizes divide the hour, so UTC and Seoul agree on them.
    pub fn bucket(self, t: UtcTime) -> UtcTime {
        let ms = t.as_millis();
        let size = match self {
            BarInterval::M1 => 60_000,
            BarInterval::M10 => 600_000,
            BarInterval::H1 => 3_600_000,
            BarInterval::D1 => {
                let off = model::time::KST_OFFSET_MS;
                return UtcTime::from_millis((ms + off).div_euclid(86_400_000) * 86_400_000 - off);
            }
        };
        UtcTime::from_millis(ms.div_euclid(size) * size)
    }
}

impl std::str::FromStr for BarInterval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BarInterval::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| format!("unknown bar interval {s:?} (expected 1m, 10m, 1h or 1d)"))
    }
}

/// Session-level meta of a bar built from archived samples (1m and swing bars).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BarMeta {
    pub session_id: String,
    pub schema_version: String,
    pub mitigation_level: u8,
    pub quality_flag: QualityFlag,
}

/// An OHLCV bar. `count` is the samples behind a 1m bar, the minutes behind a rollup, or the
/// snapshots behind a swing bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub bar_time: UtcTime,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Qty,
    pub coverage_ratio: f64,
    pub count: u32,
    /// Present on 1m and swing bars (written, not returned by rollup queries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<BarMeta>,
}

/// Which bar table a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarTable {
    Scalp(BarInterval),
    Swing10m,
}

/// The day's close of a symbol (`eod_prices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EodRow {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub trade_date: Date,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Qty,
    pub prev_close: Price,
    pub session_id: String,
    pub schema_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UniverseRow {
    pub trade_date: Date,
    pub market: Market,
    pub provider: Provider,
    pub symbol: Symbol,
    pub name: String,
    pub prev_close: Price,
    pub source: String,
}

/// Where an archive-only row came from; its natural key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SrcRef {
    pub file: String,
    /// 1-based.
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GapRow {
    pub src: SrcRef,
    pub provider: Provider,
    pub gap_start_ts: UtcTime,
    pub gap_end_ts: UtcTime,
    pub gap_seconds: i64,
    pub scope: String,
    pub reason: String,
    pub detail: Option<String>,
    pub meta: RowMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverflowRow {
    pub src: SrcRef,
    pub provider: Provider,
    pub ts: UtcTime,
    pub symbol: String,
    pub candidate_score: f64,
    pub cutoff_rank: u32,
    pub decision_reason: String,
    pub meta: RowMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub src: SrcRef,
    pub provider: Provider,
    pub event_time: UtcTime,
    pub event_type: String,
    /// The whole archive line.
    pub body: serde_json::Value,
    pub meta: RowMeta,
}

/// The newest trade of a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatestPrice {
    pub provider: Provider,
    pub market: Market,
    pub symbol: Symbol,
    pub time: UtcTime,
    pub price: Price,
    pub volume: Qty,
    pub trade_id: String,
}

/// Query for bars of one symbol in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarQuery {
    pub symbol: Symbol,
    pub provider: Option<Provider>,
    pub interval: BarInterval,
    pub from: UtcTime,
    pub to: UtcTime,
}

/// Query for ticks of one symbol in `[from, to)`, oldest first, at most `limit`; with
/// `after`, only those that sort after that tick (the next page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickQuery {
    pub symbol: Symbol,
    pub provider: Option<Provider>,
    pub from: UtcTime,
    pub to: UtcTime,
    pub limit: u32,
    pub after: Option<TickKey>,
}

/// A page of one symbol's Track B samples (`scalp_ticks`), in (time, provider) order,
/// continuing after `after` when given.
#[derive(Debug, Clone)]
pub struct SampleQuery {
    pub symbol: Symbol,
    pub provider: Option<Provider>,
    pub from: UtcTime,
    pub to: UtcTime,
    pub limit: u32,
    pub after: Option<(UtcTime, Provider)>,
}

/// Where a tick sorts: the order tick queries return (time, then provider, then trade id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickKey {
    pub time: UtcTime,
    pub provider: Provider,
    pub trade_id: String,
}

/// Tables the ETL reconciles, with how a day's rows are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    MarketTicks,
    ScalpTicks,
    Scalp1mBars,
    Bars10m,
    Bars1h,
    Bars1d,
    SwingBars10m,
    EodPrices,
    ScalpGaps,
    OverflowEntries,
    SystemEvents,
    Universe,
}

impl Table {
    pub const ALL: [Table; 12] = [
        Table::MarketTicks,
        Table::ScalpTicks,
        Table::Scalp1mBars,
        Table::Bars10m,
        Table::Bars1h,
        Table::Bars1d,
        Table::SwingBars10m,
        Table::EodPrices,
        Table::ScalpGaps,
        Table::OverflowEntries,
        Table::SystemEvents,
        Table::Universe,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Table::MarketTicks => "market_ticks",
            Table::ScalpTicks => "scalp_ticks",
            Table::Scalp1mBars => "scalp_1m_bars",
            Table::Bars10m => "bars_10m",
            Table::Bars1h => "bars_1h",
            Table::Bars1d => "bars_1d",
            Table::SwingBars10m => "swing_bars_10m",
            Table::EodPrices => "eod_prices",
            Table::ScalpGaps => "scalp_gaps",
            Table::OverflowEntries => "overflow_entries",
            Table::SystemEvents => "system_events",
            Table::Universe => "universe",
        }
    }
}

impl Serialize for Table {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The Seoul day `[start, end)` of a `YYYYMMDD` partition date.
pub fn day_range(day: Date) -> (UtcTime, UtcTime) {
    let start = UtcTime::from_kst(day.to_datetime(jiff::civil::Time::midnight()));
    (start, start.plus_millis(86_400_000))
}

/// Parses `YYYYMMDD`.
pub fn parse_day(s: &str) -> Result<Date, String> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a date as YYYYMMDD"));
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i16>().map_err(|e| e.to_string());
    Date::new(n(0..4)?, n(4..6)? as i8, n(6..8)? as i8).map_err(|e| format!("{s:?} is not a date: {e}"))
}

pub fn yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
}

//! Rules both backends must apply identically, kept in one place so that SQLite and
//! PostgreSQL count a day, pick a latest price and encode a row the same way.

use std::collections::HashMap;

use jiff::civil::Date;

use model::{Provider, QualityFlag, Side};

use crate::error::StoreError;
use crate::rows::{MarketTickRow, Table, yyyymmdd};

/// The `LIKE` pattern selecting a day's rows of a table counted by archive file: the
/// `raw_ref` of `market_ticks` (`raw/{provider}/D/…#seq`), the `src_file` of
/// `overflow_entries` and of `scalp_gaps` / `system_events` (both from the events file).
pub(crate) fn like_pattern(table: Table, day: Date) -> String {
    let d = yyyymmdd(day);
    match table {
        Table::MarketTicks => format!("raw/%/{d}/%"),
        Table::OverflowEntries => format!("system/overflow/%/{d}_overflow.jsonl"),
        _ => format!("system/events/%/{d}.jsonl"),
    }
}

/// A table retention applies to, and its time column. Only the tick-rate tables have
/// retention; the rest are small and kept.
pub(crate) fn retained(table: Table) -> Result<(&'static str, &'static str), StoreError> {
    match table {
        Table::MarketTicks => Ok(("market_ticks", "time")),
        Table::ScalpTicks => Ok(("scalp_ticks", "event_time")),
        other => Err(StoreError::Invalid(format!("{} has no retention", other.name()))),
    }
}

/// The newest trade of each (symbol, provider) among `rows`, in no particular order: the row
/// `latest_prices` keeps (later time wins, then the greater trade id).
pub(crate) fn latest_of(rows: &[MarketTickRow]) -> Vec<&MarketTickRow> {
    let mut best: HashMap<(&str, Provider), &MarketTickRow> = HashMap::new();
    for r in rows {
        let e = best.entry((r.symbol.as_str(), r.provider)).or_insert(r);
        if (r.time, &r.trade_id) > (e.time, &e.trade_id) {
            *e = r;
        }
    }
    best.into_values().collect()
}

/// The stored form of a trade's side.
pub(crate) fn side_str(s: Option<Side>) -> Option<&'static str> {
    s.map(|s| match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    })
}

/// A stored side back; anything but `buy` / `sell` is an unknown side.
pub(crate) fn side_from_str(s: Option<&str>) -> Option<Side> {
    match s {
        Some("buy") => Some(Side::Buy),
        Some("sell") => Some(Side::Sell),
        _ => None,
    }
}

/// A stored `quality_flag` of a row of `table` back. A value this binary does not know is an
/// error naming it: reading it as `normal` would pass damaged or foreign data off as good.
pub(crate) fn quality_flag(value: &str, table: Table) -> Result<QualityFlag, StoreError> {
    QualityFlag::parse(value).ok_or_else(|| StoreError::UnknownQualityFlag { table: table.name(), value: value.into() })
}

//! Reads on the reader connection (WAL lets it run beside the writer): the day counts the ETL
//! reconciles with, and the queries the API serves, decoded back into the row types.

use jiff::civil::Date;
use rusqlite::{OptionalExtension, params};

use model::{Market, Price, Provider, Qty, Symbol};

use super::SqliteStore;
use super::codec::{decode_err, get_opt_parse, get_parse, get_side, row_meta, time};
use crate::backend::shared::like_pattern;
use crate::error::StoreError;
use crate::rows::*;

/// The day's Seoul range in milliseconds (`count_day` widens it by a day each side for
/// tables counted by archive file, whose rows' own times can straddle midnight).
fn lo_hi(day: Date) -> (i64, i64) {
    let (lo, hi) = day_range(day);
    (lo.as_millis(), hi.as_millis())
}

pub(super) async fn count_day(db: &SqliteStore, table: Table, day: Date) -> Result<u64, StoreError> {
    db.read(move |c| {
        let (lo, hi) = lo_hi(day);
        let wide = (lo - 86_400_000, hi + 86_400_000);
        let n: i64 = match table {
            Table::MarketTicks => c.query_row(
                "SELECT count(*) FROM market_ticks WHERE time >= ?1 AND time < ?2 AND raw_ref LIKE ?3",
                params![wide.0, wide.1, like_pattern(table, day)],
                |r| r.get(0),
            )?,
            Table::ScalpTicks => c.query_row(
                "SELECT count(*) FROM scalp_ticks WHERE event_time >= ?1 AND event_time < ?2",
                [lo, hi],
                |r| r.get(0),
            )?,
            Table::Scalp1mBars | Table::Bars10m | Table::Bars1h | Table::Bars1d | Table::SwingBars10m => c.query_row(
                &format!("SELECT count(*) FROM {} WHERE bar_time >= ?1 AND bar_time < ?2", table.name()),
                [lo, hi],
                |r| r.get(0),
            )?,
            Table::EodPrices | Table::Universe => c.query_row(
                &format!("SELECT count(*) FROM {} WHERE trade_date = ?1", table.name()),
                [day.to_string()],
                |r| r.get(0),
            )?,
            Table::ScalpGaps | Table::OverflowEntries | Table::SystemEvents => c.query_row(
                &format!("SELECT count(*) FROM {} WHERE src_file LIKE ?1", table.name()),
                [like_pattern(table, day)],
                |r| r.get(0),
            )?,
        };
        Ok(n as u64)
    })
    .await
}

pub(super) async fn bars(db: &SqliteStore, q: BarQuery) -> Result<Vec<Bar>, StoreError> {
    db.read(move |c| {
        let count = match q.interval {
            BarInterval::M1 => "samples",
            _ => "minutes",
        };
        let sql = format!(
            "SELECT provider, market, symbol, bar_time, open, high, low, close, volume, coverage_ratio, {count}
             FROM {} WHERE symbol = ?1 AND bar_time >= ?2 AND bar_time < ?3 AND (?4 IS NULL OR provider = ?4)
             ORDER BY bar_time, provider",
            q.interval.table()
        );
        let mut st = c.prepare_cached(&sql)?;
        let rows = st
            .query_map(
                params![q.symbol.as_str(), q.from.as_millis(), q.to.as_millis(), q.provider.map(|p| p.as_str())],
                |r| {
                    Ok(Bar {
                        provider: get_parse(r, 0, "provider")?,
                        market: get_parse(r, 1, "market")?,
                        symbol: get_parse(r, 2, "symbol")?,
                        bar_time: time(r, 3)?,
                        open: get_parse(r, 4, "open")?,
                        high: get_parse(r, 5, "high")?,
                        low: get_parse(r, 6, "low")?,
                        close: get_parse(r, 7, "close")?,
                        volume: get_parse(r, 8, "volume")?,
                        coverage_ratio: r.get(9)?,
                        count: r.get(10)?,
                        meta: None,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
}

pub(super) async fn latest_price(
    db: &SqliteStore,
    symbol: Symbol,
    provider: Option<Provider>,
) -> Result<Option<LatestPrice>, StoreError> {
    // latest_prices holds a row per (provider, symbol): a point read.
    db.read_point(move |c| {
        let mut st = c.prepare_cached(
            "SELECT provider, market, symbol, time, price, volume, trade_id FROM latest_prices
             WHERE symbol = ?1 AND (?2 IS NULL OR provider = ?2) ORDER BY time DESC LIMIT 1",
        )?;
        let row = st
            .query_row(params![symbol.as_str(), provider.map(|p| p.as_str())], |r| {
                Ok(LatestPrice {
                    provider: get_parse::<Provider>(r, 0, "provider")?,
                    market: get_parse::<Market>(r, 1, "market")?,
                    symbol: get_parse(r, 2, "symbol")?,
                    time: time(r, 3)?,
                    price: get_parse::<Price>(r, 4, "price")?,
                    volume: get_parse::<Qty>(r, 5, "volume")?,
                    trade_id: r.get(6)?,
                })
            })
            .optional()?;
        Ok(row)
    })
    .await
}

pub(super) async fn ticks(db: &SqliteStore, q: TickQuery) -> Result<Vec<MarketTickRow>, StoreError> {
    db.read(move |c| {
        let mut st = c.prepare_cached(
            "SELECT provider, market, symbol, time, trade_id, price, volume, side, cum_volume, change,
                schema_version, receive_time, session_id, mitigation_level, quality_flag, raw_ref
             FROM market_ticks WHERE symbol = ?1 AND time >= ?2 AND time < ?3 AND (?4 IS NULL OR provider = ?4)
               AND (?6 IS NULL OR (time, provider, trade_id) > (?6, ?7, ?8))
             ORDER BY time, provider, trade_id LIMIT ?5",
        )?;
        let after = q.after.as_ref();
        let rows = st
            .query_map(
                params![
                    q.symbol.as_str(),
                    q.from.as_millis(),
                    q.to.as_millis(),
                    q.provider.map(|p| p.as_str()),
                    q.limit,
                    after.map(|k| k.time.as_millis()),
                    after.map(|k| k.provider.as_str()),
                    after.map(|k| k.trade_id.as_str())
                ],
                |r| {
                    Ok(MarketTickRow {
                        provider: get_parse(r, 0, "provider")?,
                        market: get_parse(r, 1, "market")?,
                        symbol: get_parse(r, 2, "symbol")?,
                        time: time(r, 3)?,
                        trade_id: r.get(4)?,
                        price: get_parse(r, 5, "price")?,
                        volume: get_parse(r, 6, "volume")?,
                        side: get_side(r, 7)?,
                        cum_volume: get_opt_parse(r, 8, "cum_volume")?,
                        change: get_opt_parse(r, 9, "change")?,
                        meta: row_meta(r, 10, true, true, Table::MarketTicks)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
}

pub(super) async fn gaps(db: &SqliteStore, day: Date) -> Result<Vec<GapRow>, StoreError> {
    db.read(move |c| {
        let mut st = c.prepare_cached(
            "SELECT src_file, src_line, provider, gap_start_ts, gap_end_ts, gap_seconds, scope, reason, detail,
                schema_version, session_id, mitigation_level, quality_flag
             FROM scalp_gaps WHERE src_file LIKE ?1 ORDER BY gap_start_ts, src_file, src_line",
        )?;
        let rows = st
            .query_map([like_pattern(Table::ScalpGaps, day)], |r| {
                Ok(GapRow {
                    src: SrcRef { file: r.get(0)?, line: r.get::<_, i64>(1)? as u64 },
                    provider: get_parse(r, 2, "provider")?,
                    gap_start_ts: time(r, 3)?,
                    gap_end_ts: time(r, 4)?,
                    gap_seconds: r.get(5)?,
                    scope: r.get(6)?,
                    reason: r.get(7)?,
                    detail: r.get(8)?,
                    meta: row_meta(r, 9, false, false, Table::ScalpGaps)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
}

pub(super) async fn overflow(db: &SqliteStore, day: Date) -> Result<Vec<OverflowRow>, StoreError> {
    db.read(move |c| {
        let mut st = c.prepare_cached(
            "SELECT src_file, src_line, provider, ts, symbol, candidate_score, cutoff_rank, decision_reason,
                schema_version, session_id, mitigation_level, quality_flag
             FROM overflow_entries WHERE src_file LIKE ?1 ORDER BY ts, src_file, src_line",
        )?;
        let rows = st
            .query_map([like_pattern(Table::OverflowEntries, day)], |r| {
                Ok(OverflowRow {
                    src: SrcRef { file: r.get(0)?, line: r.get::<_, i64>(1)? as u64 },
                    provider: get_parse(r, 2, "provider")?,
                    ts: time(r, 3)?,
                    symbol: r.get(4)?,
                    candidate_score: r.get(5)?,
                    cutoff_rank: r.get(6)?,
                    decision_reason: r.get(7)?,
                    meta: row_meta(r, 8, false, false, Table::OverflowEntries)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
}

pub(super) async fn events(db: &SqliteStore, day: Date) -> Result<Vec<EventRow>, StoreError> {
    db.read(move |c| {
        let mut st = c.prepare_cached(
            "SELECT src_file, src_line, provider, event_time, event_type, body,
                schema_version, session_id, mitigation_level, quality_flag
             FROM system_events WHERE src_file LIKE ?1 ORDER BY event_time, src_file, src_line",
        )?;
        let rows = st
            .query_map([like_pattern(Table::SystemEvents, day)], |r| {
                let body: String = r.get(5)?;
                Ok(EventRow {
                    src: SrcRef { file: r.get(0)?, line: r.get::<_, i64>(1)? as u64 },
                    provider: get_parse(r, 2, "provider")?,
                    event_time: time(r, 3)?,
                    event_type: r.get(4)?,
                    body: serde_json::from_str(&body).map_err(|e| decode_err("body", e.to_string()))?,
                    meta: row_meta(r, 6, false, false, Table::SystemEvents)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
}

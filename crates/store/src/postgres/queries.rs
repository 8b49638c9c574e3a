//! Reads: the day counts the ETL reconciles with, and the queries the API serves (bars,
//! latest price, ticks, gaps, overflow entries, system events), with the decoding of their
//! rows back into the row types.

use std::str::FromStr;

use jiff::civil::Date;
use rust_decimal::Decimal;
use tokio_postgres::Row;

use model::{Market, Price, Provider, Qty, Symbol, UtcTime};

use super::{PgStore, ts};
use crate::backend::shared::{like_pattern, quality_flag, side_from_str};
use crate::error::StoreError;
use crate::rows::*;

pub(super) async fn count_day(pg: &PgStore, table: Table, day: Date) -> Result<u64, StoreError> {
    let c = pg.client().await?;
    let (lo, hi) = day_range(day);
    let (lo, hi) = (ts(lo), ts(hi));
    let day_ms = 86_400_000;
    let (wlo, whi) = (ts(day_range(day).0.plus_millis(-day_ms)), ts(day_range(day).1.plus_millis(day_ms)));
    let row = match table {
        Table::MarketTicks => {
            c.query_one(
                "SELECT count(*) FROM market_ticks WHERE time >= $1 AND time < $2 AND raw_ref LIKE $3",
                &[&wlo, &whi, &like_pattern(table, day)],
            )
            .await?
        }
        Table::ScalpTicks => {
            c.query_one("SELECT count(*) FROM scalp_ticks WHERE event_time >= $1 AND event_time < $2", &[&lo, &hi])
                .await?
        }
        Table::Scalp1mBars | Table::Bars10m | Table::Bars1h | Table::Bars1d | Table::SwingBars10m => {
            c.query_one(
                &format!("SELECT count(*) FROM {} WHERE bar_time >= $1 AND bar_time < $2", table.name()),
                &[&lo, &hi],
            )
            .await?
        }
        Table::EodPrices | Table::Universe => {
            c.query_one(&format!("SELECT count(*) FROM {} WHERE trade_date = $1", table.name()), &[&day]).await?
        }
        Table::ScalpGaps | Table::OverflowEntries | Table::SystemEvents => {
            c.query_one(
                &format!("SELECT count(*) FROM {} WHERE src_file LIKE $1", table.name()),
                &[&like_pattern(table, day)],
            )
            .await?
        }
    };
    Ok(row.get::<_, i64>(0) as u64)
}

pub(super) async fn bars(pg: &PgStore, q: BarQuery) -> Result<Vec<Bar>, StoreError> {
    let c = pg.client().await?;
    let count = if q.interval == BarInterval::M1 { "samples" } else { "minutes" };
    let sql = format!(
        "SELECT provider, market, symbol::text, bar_time, open, high, low, close, volume, coverage_ratio, {count}
         FROM {} WHERE symbol = $1 AND bar_time >= $2 AND bar_time < $3 AND ($4::text IS NULL OR provider = $4)
         ORDER BY bar_time, provider",
        q.interval.table()
    );
    let st = c.prepare_cached(&sql).await?;
    let provider = q.provider.map(|p| p.as_str());
    let rows = c.query(&st, &[&q.symbol.as_str(), &ts(q.from), &ts(q.to), &provider]).await?;
    rows.iter().map(bar_from_row).collect()
}

pub(super) async fn latest_price(
    pg: &PgStore,
    symbol: Symbol,
    provider: Option<Provider>,
) -> Result<Option<LatestPrice>, StoreError> {
    let c = pg.client().await?;
    let st = c
        .prepare_cached(
            "SELECT provider, market, symbol::text, time, price, volume, trade_id FROM latest_prices
             WHERE symbol = $1 AND ($2::text IS NULL OR provider = $2) ORDER BY time DESC LIMIT 1",
        )
        .await?;
    let provider = provider.map(|p| p.as_str());
    let Some(r) = c.query_opt(&st, &[&symbol.as_str(), &provider]).await? else { return Ok(None) };
    Ok(Some(LatestPrice {
        provider: parse::<Provider>(r.get(0), "provider")?,
        market: parse::<Market>(r.get(1), "market")?,
        symbol: parse(r.get(2), "symbol")?,
        time: from_ts(r.get(3)),
        price: Price(r.get(4)),
        volume: Qty(r.get(5)),
        trade_id: r.get(6),
    }))
}

pub(super) async fn ticks(pg: &PgStore, q: TickQuery) -> Result<Vec<MarketTickRow>, StoreError> {
    let c = pg.client().await?;
    let st = c
        .prepare_cached(
            "SELECT provider, market, symbol::text, time, trade_id, price, volume, side, cum_volume, change,
                schema_version::text, receive_time, session_id::text, mitigation_level, quality_flag::text, raw_ref
             FROM market_ticks WHERE symbol = $1 AND time >= $2 AND time < $3 AND ($4::text IS NULL OR provider = $4)
               AND ($6::timestamptz IS NULL OR (time, provider, trade_id) > ($6, $7::text, $8::text))
             ORDER BY time, provider, trade_id LIMIT $5",
        )
        .await?;
    let provider = q.provider.map(|p| p.as_str());
    let after = q.after.as_ref();
    let (a_time, a_provider, a_id) =
        (after.map(|k| ts(k.time)), after.map(|k| k.provider.as_str()), after.map(|k| k.trade_id.as_str()));
    let rows = c
        .query(
            &st,
            &[&q.symbol.as_str(), &ts(q.from), &ts(q.to), &provider, &(q.limit as i64), &a_time, &a_provider, &a_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(MarketTickRow {
                provider: parse(r.get(0), "provider")?,
                market: parse(r.get(1), "market")?,
                symbol: parse(r.get(2), "symbol")?,
                time: from_ts(r.get(3)),
                trade_id: r.get(4),
                price: Price(r.get(5)),
                volume: Qty(r.get(6)),
                side: side_from_str(r.get(7)),
                cum_volume: r.get::<_, Option<Decimal>>(8).map(Qty),
                change: r.get::<_, Option<Decimal>>(9).map(Price),
                meta: meta_at(r, 10, true, true, Table::MarketTicks)?,
            })
        })
        .collect()
}

pub(super) async fn gaps(pg: &PgStore, day: Date) -> Result<Vec<GapRow>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT src_file, src_line, provider, gap_start_ts, gap_end_ts, gap_seconds, scope::text, reason::text,
                detail, schema_version::text, session_id::text, mitigation_level, quality_flag::text
             FROM scalp_gaps WHERE src_file LIKE $1 ORDER BY gap_start_ts, src_file, src_line",
            &[&like_pattern(Table::ScalpGaps, day)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(GapRow {
                src: SrcRef { file: r.get(0), line: r.get::<_, i64>(1) as u64 },
                provider: parse(r.get(2), "provider")?,
                gap_start_ts: from_ts(r.get(3)),
                gap_end_ts: from_ts(r.get(4)),
                gap_seconds: r.get(5),
                scope: r.get(6),
                reason: r.get(7),
                detail: r.get(8),
                meta: meta_at(r, 9, false, false, Table::ScalpGaps)?,
            })
        })
        .collect()
}

pub(super) async fn overflow(pg: &PgStore, day: Date) -> Result<Vec<OverflowRow>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT src_file, src_line, provider, ts, symbol::text, candidate_score, cutoff_rank, decision_reason,
                schema_version::text, session_id::text, mitigation_level, quality_flag::text
             FROM overflow_entries WHERE src_file LIKE $1 ORDER BY ts, src_file, src_line",
            &[&like_pattern(Table::OverflowEntries, day)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OverflowRow {
                src: SrcRef { file: r.get(0), line: r.get::<_, i64>(1) as u64 },
                provider: parse(r.get(2), "provider")?,
                ts: from_ts(r.get(3)),
                symbol: r.get(4),
                candidate_score: r.get(5),
                cutoff_rank: r.get::<_, i32>(6) as u32,
                decision_reason: r.get(7),
                meta: meta_at(r, 8, false, false, Table::OverflowEntries)?,
            })
        })
        .collect()
}

pub(super) async fn events(pg: &PgStore, day: Date) -> Result<Vec<EventRow>, StoreError> {
    let c = pg.client().await?;
    let rows = c
        .query(
            "SELECT src_file, src_line, provider, event_time, event_type, body::text,
                schema_version::text, session_id::text, mitigation_level, quality_flag::text
             FROM system_events WHERE src_file LIKE $1 ORDER BY event_time, src_file, src_line",
            &[&like_pattern(Table::SystemEvents, day)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let body: &str = r.get(5);
            Ok(EventRow {
                src: SrcRef { file: r.get(0), line: r.get::<_, i64>(1) as u64 },
                provider: parse(r.get(2), "provider")?,
                event_time: from_ts(r.get(3)),
                event_type: r.get(4),
                body: serde_json::from_str(body)
                    .map_err(|e| StoreError::Decode { column: "body", why: e.to_string() })?,
                meta: meta_at(r, 6, false, false, Table::SystemEvents)?,
            })
        })
        .collect()
}

pub(super) fn from_ts(t: jiff::Timestamp) -> UtcTime {
    UtcTime::from_timestamp(t)
}

pub(super) fn parse<T: FromStr>(s: &str, column: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| StoreError::Decode { column, why: e.to_string() })
}

fn bar_from_row(r: &Row) -> Result<Bar, StoreError> {
    Ok(Bar {
        provider: parse(r.get::<_, &str>(0), "provider")?,
        market: parse(r.get::<_, &str>(1), "market")?,
        symbol: parse(r.get::<_, &str>(2), "symbol")?,
        bar_time: from_ts(r.get(3)),
        open: Price(r.get(4)),
        high: Price(r.get(5)),
        low: Price(r.get(6)),
        close: Price(r.get(7)),
        volume: Qty(r.get(8)),
        coverage_ratio: r.get(9),
        count: r.get::<_, i32>(10) as u32,
        meta: None,
    })
}

/// The common meta of a row of `table`, from column `i` on: `schema_version`,
/// `receive_time` (`with_receive`), `session_id`, `mitigation_level`, `quality_flag` and
/// `raw_ref` (`with_ref`).
pub(super) fn meta_at(
    r: &Row,
    i: usize,
    with_receive: bool,
    with_ref: bool,
    table: Table,
) -> Result<RowMeta, StoreError> {
    let mut j = i + 1;
    let receive_time = if with_receive {
        j += 1;
        from_ts(r.get(i + 1))
    } else {
        UtcTime::default()
    };
    Ok(RowMeta {
        schema_version: r.get(i),
        receive_time,
        session_id: r.get(j),
        mitigation_level: r.get::<_, i16>(j + 1).clamp(0, 255) as u8,
        quality_flag: quality_flag(r.get(j + 2), table)?,
        raw_ref: if with_ref { r.get(j + 3) } else { None },
    })
}

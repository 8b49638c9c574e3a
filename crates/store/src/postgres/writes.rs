//! Writes of the smaller tables (bars, end-of-day prices, universe, gaps, overflow entries,
//! system events): one `INSERT … SELECT FROM unnest(arrays)` per batch, so a batch costs one
//! round trip however many rows it has. Bars are upserts that change nothing when equal;
//! the rest are `ON CONFLICT DO NOTHING` on their natural keys, so a repeat writes nothing.

use jiff::civil::Date;
use rust_decimal::Decimal;

use model::QualityFlag;

use super::{PgStore, ts};
use crate::error::StoreError;
use crate::rows::*;

pub(super) async fn write_bars(pg: &PgStore, table: BarTable, rows: Vec<Bar>) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let rollup = matches!(table, BarTable::Scalp(i) if i != BarInterval::M1);
    if rollup && pg.is_timescale() {
        // Continuous aggregates compute these; see `refresh_rollups`.
        return Ok(0);
    }
    let symbol: Vec<&str> = rows.iter().map(|b| b.symbol.as_str()).collect();
    let bar_time: Vec<jiff::Timestamp> = rows.iter().map(|b| ts(b.bar_time)).collect();
    let provider: Vec<&str> = rows.iter().map(|b| b.provider.as_str()).collect();
    let market: Vec<&str> = rows.iter().map(|b| b.market.as_str()).collect();
    let open: Vec<Decimal> = rows.iter().map(|b| b.open.0).collect();
    let high: Vec<Decimal> = rows.iter().map(|b| b.high.0).collect();
    let low: Vec<Decimal> = rows.iter().map(|b| b.low.0).collect();
    let close: Vec<Decimal> = rows.iter().map(|b| b.close.0).collect();
    let volume: Vec<Decimal> = rows.iter().map(|b| b.volume.0).collect();
    let coverage: Vec<f64> = rows.iter().map(|b| b.coverage_ratio).collect();
    let count: Vec<i32> = rows.iter().map(|b| b.count as i32).collect();
    if rollup {
        let name = match table {
            BarTable::Scalp(i) => i.table(),
            BarTable::Swing10m => "swing_bars_10m",
        };
        let sql = format!(
            "INSERT INTO {name} AS t (symbol, bar_time, provider, market, open, high, low, close, volume,
                coverage_ratio, minutes)
             SELECT * FROM unnest($1::varchar[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[],
                $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::float8[], $11::int4[])
             ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET market = excluded.market, open = excluded.open,
                high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume,
                coverage_ratio = excluded.coverage_ratio, minutes = excluded.minutes
             WHERE (t.open, t.high, t.low, t.close, t.volume, t.coverage_ratio, t.minutes)
                IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                    excluded.coverage_ratio, excluded.minutes)"
        );
        return pg
            .unnest_exec(
                &sql,
                &[&symbol, &bar_time, &provider, &market, &open, &high, &low, &close, &volume, &coverage, &count],
            )
            .await;
    }
    let metas: Vec<BarMeta> = rows
        .iter()
        .map(|b| {
            b.meta.clone().unwrap_or(BarMeta {
                session_id: String::new(),
                schema_version: model::SCHEMA_VERSION.into(),
                mitigation_level: 0,
                quality_flag: QualityFlag::Normal,
            })
        })
        .collect();
    let session: Vec<&str> = metas.iter().map(|m| m.session_id.as_str()).collect();
    let schema: Vec<&str> = metas.iter().map(|m| m.schema_version.as_str()).collect();
    let mitigation: Vec<i16> = metas.iter().map(|m| m.mitigation_level as i16).collect();
    let flag: Vec<&str> = metas.iter().map(|m| m.quality_flag.as_str()).collect();
    let sql = if table == BarTable::Swing10m {
        "INSERT INTO swing_bars_10m AS t (symbol, bar_time, provider, market, open, high, low, close, volume,
            snapshots, session_id, schema_version, mitigation_level, quality_flag)
         SELECT * FROM unnest($1::varchar[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[],
            $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $11::int4[], $12::varchar[],
            $13::varchar[], $14::int2[], $15::varchar[])
         WHERE $10::float8[] IS NOT NULL
         ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET open = excluded.open, high = excluded.high,
            low = excluded.low, close = excluded.close, volume = excluded.volume, snapshots = excluded.snapshots,
            session_id = excluded.session_id, mitigation_level = excluded.mitigation_level,
            quality_flag = excluded.quality_flag
         WHERE (t.open, t.high, t.low, t.close, t.volume, t.snapshots, t.session_id, t.mitigation_level,
                t.quality_flag)
            IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                excluded.snapshots, excluded.session_id, excluded.mitigation_level, excluded.quality_flag)"
    } else {
        "INSERT INTO scalp_1m_bars AS t (symbol, bar_time, provider, market, open, high, low, close, volume,
            coverage_ratio, samples, session_id, schema_version, mitigation_level, quality_flag)
         SELECT * FROM unnest($1::varchar[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[],
            $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::float8[], $11::int4[],
            $12::varchar[], $13::varchar[], $14::int2[], $15::varchar[])
         ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET open = excluded.open, high = excluded.high,
            low = excluded.low, close = excluded.close, volume = excluded.volume,
            coverage_ratio = excluded.coverage_ratio, samples = excluded.samples,
            session_id = excluded.session_id, mitigation_level = excluded.mitigation_level,
            quality_flag = excluded.quality_flag
         WHERE (t.open, t.high, t.low, t.close, t.volume, t.coverage_ratio, t.samples, t.session_id,
                t.mitigation_level, t.quality_flag)
            IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                excluded.coverage_ratio, excluded.samples, excluded.session_id, excluded.mitigation_level,
                excluded.quality_flag)"
    };
    pg.unnest_exec(
        sql,
        &[
            &symbol,
            &bar_time,
            &provider,
            &market,
            &open,
            &high,
            &low,
            &close,
            &volume,
            &coverage,
            &count,
            &session,
            &schema,
            &mitigation,
            &flag,
        ],
    )
    .await
}

pub(super) async fn write_eod(pg: &PgStore, rows: Vec<EodRow>) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let symbol: Vec<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
    let date: Vec<Date> = rows.iter().map(|r| r.trade_date).collect();
    let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
    let market: Vec<&str> = rows.iter().map(|r| r.market.as_str()).collect();
    let open: Vec<Decimal> = rows.iter().map(|r| r.open.0).collect();
    let high: Vec<Decimal> = rows.iter().map(|r| r.high.0).collect();
    let low: Vec<Decimal> = rows.iter().map(|r| r.low.0).collect();
    let close: Vec<Decimal> = rows.iter().map(|r| r.close.0).collect();
    let volume: Vec<Decimal> = rows.iter().map(|r| r.volume.0).collect();
    let prev: Vec<Decimal> = rows.iter().map(|r| r.prev_close.0).collect();
    let session: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
    let schema: Vec<&str> = rows.iter().map(|r| r.schema_version.as_str()).collect();
    pg.unnest_exec(
        "INSERT INTO eod_prices AS t (symbol, trade_date, provider, market, open, high, low, close, volume,
            prev_close, session_id, schema_version)
         SELECT * FROM unnest($1::varchar[], $2::date[], $3::text[], $4::text[], $5::numeric[], $6::numeric[],
            $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::varchar[], $12::varchar[])
         ON CONFLICT (symbol, trade_date, provider) DO UPDATE SET open = excluded.open, high = excluded.high,
            low = excluded.low, close = excluded.close, volume = excluded.volume, prev_close = excluded.prev_close,
            session_id = excluded.session_id
         WHERE (t.open, t.high, t.low, t.close, t.volume, t.prev_close, t.session_id)
            IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                excluded.prev_close, excluded.session_id)",
        &[&symbol, &date, &provider, &market, &open, &high, &low, &close, &volume, &prev, &session, &schema],
    )
    .await
}

pub(super) async fn write_universe(pg: &PgStore, rows: Vec<UniverseRow>) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let date: Vec<Date> = rows.iter().map(|r| r.trade_date).collect();
    let market: Vec<&str> = rows.iter().map(|r| r.market.as_str()).collect();
    let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
    let symbol: Vec<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
    let name: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let prev: Vec<Decimal> = rows.iter().map(|r| r.prev_close.0).collect();
    let source: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    pg.unnest_exec(
        "INSERT INTO universe (trade_date, market, provider, symbol, name, prev_close, source)
         SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::varchar[], $5::text[], $6::numeric[],
            $7::text[])
         ON CONFLICT DO NOTHING",
        &[&date, &market, &provider, &symbol, &name, &prev, &source],
    )
    .await
}

pub(super) async fn write_gaps(pg: &PgStore, rows: Vec<GapRow>) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let file: Vec<&str> = rows.iter().map(|r| r.src.file.as_str()).collect();
    let line: Vec<i64> = rows.iter().map(|r| r.src.line as i64).collect();
    let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
    let start: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.gap_start_ts)).collect();
    let end: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.gap_end_ts)).collect();
    let secs: Vec<i64> = rows.iter().map(|r| r.gap_seconds).collect();
    let scope: Vec<&str> = rows.iter().map(|r| r.scope.as_str()).collect();
    let reason: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
    let detail: Vec<Option<&str>> = rows.iter().map(|r| r.detail.as_deref()).collect();
    let session: Vec<&str> = rows.iter().map(|r| r.meta.session_id.as_str()).collect();
    let schema: Vec<&str> = rows.iter().map(|r| r.meta.schema_version.as_str()).collect();
    let mitigation: Vec<i16> = rows.iter().map(|r| r.meta.mitigation_level as i16).collect();
    let flag: Vec<&str> = rows.iter().map(|r| r.meta.quality_flag.as_str()).collect();
    pg.unnest_exec(
        "INSERT INTO scalp_gaps (src_file, src_line, provider, gap_start_ts, gap_end_ts, gap_seconds, scope,
            reason, detail, session_id, schema_version, mitigation_level, quality_flag)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[], $5::timestamptz[],
            $6::int8[], $7::varchar[], $8::varchar[], $9::text[], $10::varchar[], $11::varchar[], $12::int2[],
            $13::varchar[])
         ON CONFLICT DO NOTHING",
        &[
            &file,
            &line,
            &provider,
            &start,
            &end,
            &secs,
            &scope,
            &reason,
            &detail,
            &session,
            &schema,
            &mitigation,
            &flag,
        ],
    )
    .await
}

pub(super) async fn write_overflow(pg: &PgStore, rows: Vec<OverflowRow>) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let file: Vec<&str> = rows.iter().map(|r| r.src.file.as_str()).collect();
    let line: Vec<i64> = rows.iter().map(|r| r.src.line as i64).collect();
    let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
    let t: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.ts)).collect();
    let symbol: Vec<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
    let score: Vec<f64> = rows.iter().map(|r| r.candidate_score).collect();
    let rank: Vec<i32> = rows.iter().map(|r| r.cutoff_rank as i32).collect();
    let reason: Vec<&str> = rows.iter().map(|r| r.decision_reason.as_str()).collect();
    let session: Vec<&str> = rows.iter().map(|r| r.meta.session_id.as_str()).collect();
    let schema: Vec<&str> = rows.iter().map(|r| r.meta.schema_version.as_str()).collect();
    let mitigation: Vec<i16> = rows.iter().map(|r| r.meta.mitigation_level as i16).collect();
    let flag: Vec<&str> = rows.iter().map(|r| r.meta.quality_flag.as_str()).collect();
    pg.unnest_exec(
        "INSERT INTO overflow_entries (src_file, src_line, provider, ts, symbol, candidate_score, cutoff_rank,
            decision_reason, session_id, schema_version, mitigation_level, quality_flag)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[], $5::varchar[],
            $6::float8[], $7::int4[], $8::text[], $9::varchar[], $10::varchar[], $11::int2[], $12::varchar[])
         ON CONFLICT DO NOTHING",
        &[&file, &line, &provider, &t, &symbol, &score, &rank, &reason, &session, &schema, &mitigation, &flag],
    )
    .await
}

pub(super) async fn write_events(pg: &PgStore, rows: Vec<EventRow>) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let file: Vec<&str> = rows.iter().map(|r| r.src.file.as_str()).collect();
    let line: Vec<i64> = rows.iter().map(|r| r.src.line as i64).collect();
    let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
    let t: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.event_time)).collect();
    let kind: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    let session: Vec<&str> = rows.iter().map(|r| r.meta.session_id.as_str()).collect();
    let schema: Vec<&str> = rows.iter().map(|r| r.meta.schema_version.as_str()).collect();
    let mitigation: Vec<i16> = rows.iter().map(|r| r.meta.mitigation_level as i16).collect();
    let flag: Vec<&str> = rows.iter().map(|r| r.meta.quality_flag.as_str()).collect();
    // JSON goes as text and is cast, which avoids a serde_json feature on postgres-types.
    let body: Vec<String> = rows.iter().map(|r| r.body.to_string()).collect();
    pg.unnest_exec(
        "INSERT INTO system_events (src_file, src_line, provider, event_time, event_type, session_id,
            schema_version, mitigation_level, quality_flag, body)
         SELECT f, l, p, t, k, s, v, m, q, b::jsonb FROM unnest($1::text[], $2::int8[], $3::text[],
            $4::timestamptz[], $5::text[], $6::varchar[], $7::varchar[], $8::int2[], $9::varchar[], $10::text[])
            AS u(f, l, p, t, k, s, v, m, q, b)
         ON CONFLICT DO NOTHING",
        &[&file, &line, &provider, &t, &kind, &session, &schema, &mitigation, &flag, &body],
    )
    .await
}

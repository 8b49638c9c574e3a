//! Writes: one prepared statement per batch in one transaction on the writer connection.
//! Ticks and samples are `ON CONFLICT DO NOTHING` on their natural keys (market ticks also
//! keep `latest_prices` current); bars and end-of-day prices are upserts that change nothing
//! when equal.

use rusqlite::params;

use model::QualityFlag;

use super::SqliteStore;
use super::codec::{dec, opt_dec};
use crate::backend::shared::{latest_of, side_str};
use crate::error::StoreError;
use crate::rows::*;

pub(super) async fn write_market_ticks(db: &SqliteStore, rows: Vec<MarketTickRow>) -> Result<u64, StoreError> {
    db.write(move |c| {
        let tx = c.transaction()?;
        let mut n = 0u64;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO market_ticks (symbol, time, provider, trade_id, market, price, volume, side, cum_volume,
                    change, schema_version, receive_time, session_id, mitigation_level, quality_flag, raw_ref)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT DO NOTHING",
            )?;
            for r in &rows {
                n += st.execute(params![
                    r.symbol.as_str(),
                    r.time.as_millis(),
                    r.provider.as_str(),
                    r.trade_id,
                    r.market.as_str(),
                    dec(&r.price),
                    dec(&r.volume),
                    side_str(r.side),
                    opt_dec(&r.cum_volume),
                    opt_dec(&r.change),
                    r.meta.schema_version,
                    r.meta.receive_time.as_millis(),
                    r.meta.session_id,
                    r.meta.mitigation_level,
                    r.meta.quality_flag.as_str(),
                    r.meta.raw_ref,
                ])? as u64;
            }
            let mut up = tx.prepare_cached(
                "INSERT INTO latest_prices (symbol, provider, market, time, price, volume, trade_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (symbol, provider) DO UPDATE SET market = excluded.market, time = excluded.time,
                    price = excluded.price, volume = excluded.volume, trade_id = excluded.trade_id
                 WHERE excluded.time > latest_prices.time
                    OR (excluded.time = latest_prices.time AND excluded.trade_id > latest_prices.trade_id)",
            )?;
            for r in latest_of(&rows) {
                up.execute(params![
                    r.symbol.as_str(),
                    r.provider.as_str(),
                    r.market.as_str(),
                    r.time.as_millis(),
                    dec(&r.price),
                    dec(&r.volume),
                    r.trade_id
                ])?;
            }
        }
        tx.commit()?;
        Ok(n)
    })
    .await
}

pub(super) async fn write_scalp_ticks(db: &SqliteStore, rows: Vec<ScalpTickRow>) -> Result<u64, StoreError> {
    const SQL: &str =
        "INSERT INTO scalp_ticks (symbol, event_time, provider, market, bid_price, ask_price, bid_size, ask_size,
                    last_price, volume, data_age_ms, sample_interval_ms, schema_version, receive_time, session_id,
                    mitigation_level, quality_flag, raw_ref)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                 ON CONFLICT DO NOTHING";
    db.insert_rows(SQL, rows, |st, r| {
        st.execute(params![
            r.symbol.as_str(),
            r.event_time.as_millis(),
            r.provider.as_str(),
            r.market.as_str(),
            opt_dec(&r.bid_price),
            opt_dec(&r.ask_price),
            opt_dec(&r.bid_size),
            opt_dec(&r.ask_size),
            opt_dec(&r.last_price),
            opt_dec(&r.volume),
            r.data_age_ms,
            r.sample_interval_ms as i64,
            r.meta.schema_version,
            r.meta.receive_time.as_millis(),
            r.meta.session_id,
            r.meta.mitigation_level,
            r.meta.quality_flag.as_str(),
            r.meta.raw_ref,
        ])
    })
    .await
}

pub(super) async fn write_bars(db: &SqliteStore, table: BarTable, rows: Vec<Bar>) -> Result<u64, StoreError> {
    db.write(move |c| {
        let tx = c.transaction()?;
        let mut n = 0u64;
        {
            let sql = match table {
                BarTable::Scalp(BarInterval::M1) | BarTable::Swing10m => {
                    let (name, count) = match table {
                        BarTable::Swing10m => ("swing_bars_10m", "snapshots"),
                        _ => ("scalp_1m_bars", "samples"),
                    };
                    let cov = if name == "swing_bars_10m" { "" } else { "coverage_ratio, " };
                    let cov_v = if name == "swing_bars_10m" { "" } else { "?10, " };
                    format!(
                        "INSERT INTO {name} (symbol, bar_time, provider, market, open, high, low, close, volume, {cov}
                            {count}, session_id, schema_version, mitigation_level, quality_flag)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, {cov_v} ?11, ?12, ?13, ?14, ?15)
                         ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET open = excluded.open,
                            high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume,
                            {cov_u} {count} = excluded.{count}, session_id = excluded.session_id,
                            mitigation_level = excluded.mitigation_level, quality_flag = excluded.quality_flag
                         WHERE ({name}.open, {name}.high, {name}.low, {name}.close, {name}.volume, {cov_w} {name}.{count},
                                {name}.session_id, {name}.mitigation_level, {name}.quality_flag)
                            IS NOT (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                                {cov_x} excluded.{count}, excluded.session_id, excluded.mitigation_level,
                                excluded.quality_flag)",
                        cov_u = if cov.is_empty() { "" } else { "coverage_ratio = excluded.coverage_ratio," },
                        cov_w = if cov.is_empty() { String::new() } else { format!("{name}.coverage_ratio,") },
                        cov_x = if cov.is_empty() { "" } else { "excluded.coverage_ratio," },
                    )
                }
                BarTable::Scalp(i) => {
                    let name = i.table();
                    format!(
                        "INSERT INTO {name} (symbol, bar_time, provider, market, open, high, low, close, volume,
                            coverage_ratio, minutes)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                         ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET open = excluded.open,
                            high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume,
                            coverage_ratio = excluded.coverage_ratio, minutes = excluded.minutes
                         WHERE ({name}.open, {name}.high, {name}.low, {name}.close, {name}.volume,
                                {name}.coverage_ratio, {name}.minutes)
                            IS NOT (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                                excluded.coverage_ratio, excluded.minutes)"
                    )
                }
            };
            let mut st = tx.prepare(&sql)?;
            for b in &rows {
                let m = b.meta.clone().unwrap_or(BarMeta {
                    session_id: String::new(),
                    schema_version: model::SCHEMA_VERSION.to_string(),
                    mitigation_level: 0,
                    quality_flag: QualityFlag::Normal,
                });
                let base = params![
                    b.symbol.as_str(),
                    b.bar_time.as_millis(),
                    b.provider.as_str(),
                    b.market.as_str(),
                    dec(&b.open),
                    dec(&b.high),
                    dec(&b.low),
                    dec(&b.close),
                    dec(&b.volume),
                    b.coverage_ratio,
                    b.count,
                    m.session_id,
                    m.schema_version,
                    m.mitigation_level,
                    m.quality_flag.as_str(),
                ];
                let used = match table {
                    BarTable::Scalp(BarInterval::M1) | BarTable::Swing10m => base,
                    BarTable::Scalp(_) => &base[..11],
                };
                n += st.execute(used)? as u64;
            }
        }
        tx.commit()?;
        Ok(n)
    })
    .await
}

pub(super) async fn write_eod(db: &SqliteStore, rows: Vec<EodRow>) -> Result<u64, StoreError> {
    const SQL: &str = "INSERT INTO eod_prices (symbol, trade_date, provider, market, open, high, low, close, volume,
                    prev_close, session_id, schema_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (symbol, trade_date, provider) DO UPDATE SET open = excluded.open, high = excluded.high,
                    low = excluded.low, close = excluded.close, volume = excluded.volume,
                    prev_close = excluded.prev_close, session_id = excluded.session_id
                 WHERE (eod_prices.open, eod_prices.high, eod_prices.low, eod_prices.close, eod_prices.volume,
                        eod_prices.prev_close, eod_prices.session_id)
                    IS NOT (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                        excluded.prev_close, excluded.session_id)";
    db.insert_rows(SQL, rows, |st, r| {
        st.execute(params![
            r.symbol.as_str(),
            r.trade_date.to_string(),
            r.provider.as_str(),
            r.market.as_str(),
            dec(&r.open),
            dec(&r.high),
            dec(&r.low),
            dec(&r.close),
            dec(&r.volume),
            dec(&r.prev_close),
            r.session_id,
            r.schema_version,
        ])
    })
    .await
}

pub(super) async fn write_universe(db: &SqliteStore, rows: Vec<UniverseRow>) -> Result<u64, StoreError> {
    const SQL: &str = "INSERT INTO universe (trade_date, market, provider, symbol, name, prev_close, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING";
    db.insert_rows(SQL, rows, |st, r| {
        st.execute(params![
            r.trade_date.to_string(),
            r.market.as_str(),
            r.provider.as_str(),
            r.symbol.as_str(),
            r.name,
            dec(&r.prev_close),
            r.source
        ])
    })
    .await
}

pub(super) async fn write_gaps(db: &SqliteStore, rows: Vec<GapRow>) -> Result<u64, StoreError> {
    const SQL: &str =
        "INSERT INTO scalp_gaps (src_file, src_line, provider, gap_start_ts, gap_end_ts, gap_seconds, scope,
                    reason, detail, session_id, schema_version, mitigation_level, quality_flag)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING";
    db.insert_rows(SQL, rows, |st, r| {
        st.execute(params![
            r.src.file,
            r.src.line as i64,
            r.provider.as_str(),
            r.gap_start_ts.as_millis(),
            r.gap_end_ts.as_millis(),
            r.gap_seconds,
            r.scope,
            r.reason,
            r.detail,
            r.meta.session_id,
            r.meta.schema_version,
            r.meta.mitigation_level,
            r.meta.quality_flag.as_str(),
        ])
    })
    .await
}

pub(super) async fn write_overflow(db: &SqliteStore, rows: Vec<OverflowRow>) -> Result<u64, StoreError> {
    const SQL: &str =
        "INSERT INTO overflow_entries (src_file, src_line, provider, ts, symbol, candidate_score, cutoff_rank,
                    decision_reason, session_id, schema_version, mitigation_level, quality_flag)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING";
    db.insert_rows(SQL, rows, |st, r| {
        st.execute(params![
            r.src.file,
            r.src.line as i64,
            r.provider.as_str(),
            r.ts.as_millis(),
            r.symbol,
            r.candidate_score,
            r.cutoff_rank,
            r.decision_reason,
            r.meta.session_id,
            r.meta.schema_version,
            r.meta.mitigation_level,
            r.meta.quality_flag.as_str(),
        ])
    })
    .await
}

pub(super) async fn write_events(db: &SqliteStore, rows: Vec<EventRow>) -> Result<u64, StoreError> {
    const SQL: &str = "INSERT INTO system_events (src_file, src_line, provider, event_time, event_type, session_id,
                    schema_version, mitigation_level, quality_flag, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING";
    db.insert_rows(SQL, rows, |st, r| {
        st.execute(params![
            r.src.file,
            r.src.line as i64,
            r.provider.as_str(),
            r.event_time.as_millis(),
            r.event_type,
            r.meta.session_id,
            r.meta.schema_version,
            r.meta.mitigation_level,
            r.meta.quality_flag.as_str(),
            r.body.to_string(),
        ])
    })
    .await
}

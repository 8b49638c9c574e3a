//! The embedded default: one SQLite file in WAL mode. rusqlite is synchronous, so every call
//! runs on tokio's blocking pool; one writer connection (SQLite allows one writer anyway) and
//! one reader connection, which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use model::{Market, Price, Provider, Qty, QualityFlag, Side, Symbol, UtcTime};

use crate::backend::shared::{latest_of, like_pattern, side_from_str, side_str};
use crate::backend::{Backend, Mode};
use crate::error::StoreError;
use crate::migrate::{self, Applied, MigrateReport, Migration, StatusReport};
use crate::rows::*;

#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // The archive, not this file, is the durable record: NORMAL loses at most the last
    // transactions on power loss, which `etl` restores.
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;")?;
    Ok(conn)
}

fn poisoned() -> StoreError {
    StoreError::Task("sqlite connection lock poisoned by a panic".into())
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        }
        let writer = open_conn(path)?;
        let reader = open_conn(path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let c = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut g = c.lock().map_err(|_| poisoned())?;
            f(&mut g)
        })
        .await?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let c = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let g = c.lock().map_err(|_| poisoned())?;
            f(&g)
        })
        .await?
    }

    /// Writes `rows` with one prepared statement in one transaction; returns the rows the
    /// statement inserted or changed (0 for a repeat).
    async fn insert_rows<R: Send + 'static>(
        &self,
        sql: &'static str,
        rows: Vec<R>,
        bind: fn(&mut rusqlite::CachedStatement<'_>, &R) -> rusqlite::Result<usize>,
    ) -> Result<u64, StoreError> {
        self.write(move |c| {
            let tx = c.transaction()?;
            let mut n = 0u64;
            {
                let mut st = tx.prepare_cached(sql)?;
                for r in &rows {
                    n += bind(&mut st, r)? as u64;
                }
            }
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    /// Applies `files` (tests use their own lists; `migrate` uses the embedded ones).
    pub async fn migrate_files(&self, files: Vec<Migration>) -> Result<MigrateReport, StoreError> {
        self.write(move |c| migrate_sqlite(c, &files)).await
    }

    pub async fn status_files(&self, files: Vec<Migration>) -> Result<StatusReport, StoreError> {
        // Read-only, like PostgreSQL's: status never creates the bookkeeping table.
        self.read(move |c| {
            let bookkept: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
                [],
                |r| r.get(0),
            )?;
            let applied = if bookkept { read_applied(c)? } else { Vec::new() };
            Ok(migrate::plan("sqlite", &files, &applied))
        })
        .await
    }

    /// Names of the user tables, for tests that check a failed migration left nothing behind.
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            let names = st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok(names)
        })
        .await
    }
}

fn read_applied(c: &Connection) -> Result<Vec<Applied>, StoreError> {
    let mut st = c.prepare("SELECT version, name, checksum, mode, skipped, applied_at FROM schema_migrations")?;
    let rows = st
        .query_map([], |r| {
            Ok(Applied {
                version: r.get(0)?,
                name: r.get(1)?,
                checksum: r.get(2)?,
                mode: r.get(3)?,
                skipped: r.get::<_, i64>(4)? != 0,
                applied_at: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn migrate_sqlite(c: &mut Connection, files: &[Migration]) -> Result<MigrateReport, StoreError> {
    c.execute_batch(migrate::SQLITE_BOOTSTRAP)?;
    let status = migrate::plan("sqlite", files, &read_applied(c)?);
    if let Some(p) = status.problem() {
        return Err(p);
    }
    let mut report = MigrateReport { mode: "sqlite".into(), ..Default::default() };
    for f in files {
        // IMMEDIATE takes the write lock first, so a concurrent migrator waits and then sees
        // the file as applied instead of running it twice.
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: Option<i64> = tx
            .query_row("SELECT version FROM schema_migrations WHERE version = ?1", [f.version], |r| r.get(0))
            .optional()?;
        if done.is_some() {
            continue;
        }
        tx.execute_batch(&f.sql).map_err(|e| StoreError::MigrationFailed {
            version: f.version,
            name: f.name.clone(),
            why: e.to_string(),
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, mode, skipped, applied_at)
             VALUES (?1, ?2, ?3, 'sqlite', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            params![f.version, f.name, f.checksum()],
        )?;
        tx.commit()?;
        report.applied.push(migrate::label(f));
    }
    Ok(report)
}

// ------------------------------------------------------------------------------------------
// Encoding: instants as ms, decimals as their exact text.

fn dec<T: ToString>(v: &T) -> String {
    v.to_string()
}
fn opt_dec<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

fn get_parse<T: FromStr>(r: &Row<'_>, i: usize, column: &'static str) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let s: String = r.get(i)?;
    s.parse::<T>().map_err(|e| decode_err(column, e.to_string()))
}

fn get_opt_parse<T: FromStr>(r: &Row<'_>, i: usize, column: &'static str) -> rusqlite::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let s: Option<String> = r.get(i)?;
    s.map(|s| s.parse::<T>().map_err(|e| decode_err(column, e.to_string()))).transpose()
}

fn decode_err(column: &'static str, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(StoreError::Decode { column, why }),
    )
}

fn time(r: &Row<'_>, i: usize) -> rusqlite::Result<UtcTime> {
    Ok(UtcTime::from_millis(r.get(i)?))
}

fn quality(s: &str) -> QualityFlag {
    QualityFlag::parse(s).unwrap_or_default()
}

fn get_side(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Side>> {
    let s: Option<String> = r.get(i)?;
    Ok(side_from_str(s.as_deref()))
}

fn row_meta(r: &Row<'_>, base: usize, with_receive: bool, with_ref: bool) -> rusqlite::Result<RowMeta> {
    let mut i = base;
    let schema_version: String = r.get(i)?;
    i += 1;
    let receive_time = if with_receive {
        i += 1;
        time(r, i - 1)?
    } else {
        UtcTime::default()
    };
    let session_id: String = r.get(i)?;
    let mitigation_level: i64 = r.get(i + 1)?;
    let q: String = r.get(i + 2)?;
    let raw_ref = if with_ref { r.get(i + 3)? } else { None };
    Ok(RowMeta {
        schema_version,
        receive_time,
        session_id,
        mitigation_level: mitigation_level.clamp(0, 255) as u8,
        quality_flag: quality(&q),
        raw_ref,
    })
}

/// Rows of the day's Seoul range, widened by a day each side for tables counted by
/// archive file, whose rows' own times can straddle midnight.
fn lo_hi(day: Date) -> (i64, i64) {
    let (lo, hi) = day_range(day);
    (lo.as_millis(), hi.as_millis())
}

impl Backend for SqliteStore {
    fn mode(&self) -> Mode {
        Mode::Sqlite
    }

    async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        self.migrate_files(migrate::sqlite_migrations()).await
    }

    async fn status(&self) -> Result<StatusReport, StoreError> {
        self.status_files(migrate::sqlite_migrations()).await
    }

    async fn maintain(&self, _from: Date, _days: u32) -> Result<u32, StoreError> {
        Ok(0)
    }

    async fn apply_retention(
        &self,
        now: UtcTime,
        ticks: Option<std::time::Duration>,
        samples: Option<std::time::Duration>,
    ) -> Result<u32, StoreError> {
        self.write(move |c| {
            let mut n = 0;
            if let Some(d) = ticks {
                let cut = now.as_millis() - d.as_millis() as i64;
                n += c.execute("DELETE FROM market_ticks WHERE time < ?1", [cut])?;
            }
            if let Some(d) = samples {
                let cut = now.as_millis() - d.as_millis() as i64;
                n += c.execute("DELETE FROM scalp_ticks WHERE event_time < ?1", [cut])?;
            }
            Ok(n as u32)
        })
        .await
    }

    async fn daily_partitions(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn refresh_rollups(&self, _day: Date) -> Result<(), StoreError> {
        Ok(())
    }

    async fn write_market_ticks(&self, rows: Vec<MarketTickRow>) -> Result<u64, StoreError> {
        self.write(move |c| {
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

    async fn write_scalp_ticks(&self, rows: Vec<ScalpTickRow>) -> Result<u64, StoreError> {
        const SQL: &str =
            "INSERT INTO scalp_ticks (symbol, event_time, provider, market, bid_price, ask_price, bid_size, ask_size,
                        last_price, volume, data_age_ms, sample_interval_ms, schema_version, receive_time, session_id,
                        mitigation_level, quality_flag, raw_ref)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                     ON CONFLICT DO NOTHING";
        self.insert_rows(SQL, rows, |st, r| {
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

    async fn write_bars(&self, table: BarTable, rows: Vec<Bar>) -> Result<u64, StoreError> {
        self.write(move |c| {
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

    async fn write_eod(&self, rows: Vec<EodRow>) -> Result<u64, StoreError> {
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
        self.insert_rows(SQL, rows, |st, r| {
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

    async fn write_universe(&self, rows: Vec<UniverseRow>) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO universe (trade_date, market, provider, symbol, name, prev_close, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING";
        self.insert_rows(SQL, rows, |st, r| {
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

    async fn write_gaps(&self, rows: Vec<GapRow>) -> Result<u64, StoreError> {
        const SQL: &str =
            "INSERT INTO scalp_gaps (src_file, src_line, provider, gap_start_ts, gap_end_ts, gap_seconds, scope,
                        reason, detail, session_id, schema_version, mitigation_level, quality_flag)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING";
        self.insert_rows(SQL, rows, |st, r| {
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

    async fn write_overflow(&self, rows: Vec<OverflowRow>) -> Result<u64, StoreError> {
        const SQL: &str =
            "INSERT INTO overflow_entries (src_file, src_line, provider, ts, symbol, candidate_score, cutoff_rank,
                        decision_reason, session_id, schema_version, mitigation_level, quality_flag)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING";
        self.insert_rows(SQL, rows, |st, r| {
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

    async fn write_events(&self, rows: Vec<EventRow>) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO system_events (src_file, src_line, provider, event_time, event_type, session_id,
                        schema_version, mitigation_level, quality_flag, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING";
        self.insert_rows(SQL, rows, |st, r| {
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

    async fn count_day(&self, table: Table, day: Date) -> Result<u64, StoreError> {
        self.read(move |c| {
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
                Table::Scalp1mBars | Table::Bars10m | Table::Bars1h | Table::Bars1d | Table::SwingBars10m => c
                    .query_row(
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

    async fn bars(&self, q: BarQuery) -> Result<Vec<Bar>, StoreError> {
        self.read(move |c| {
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

    async fn latest_price(
        &self,
        symbol: Symbol,
        provider: Option<Provider>,
    ) -> Result<Option<LatestPrice>, StoreError> {
        self.read(move |c| {
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

    async fn ticks(&self, q: TickQuery) -> Result<Vec<MarketTickRow>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT provider, market, symbol, time, trade_id, price, volume, side, cum_volume, change,
                    schema_version, receive_time, session_id, mitigation_level, quality_flag, raw_ref
                 FROM market_ticks WHERE symbol = ?1 AND time >= ?2 AND time < ?3 AND (?4 IS NULL OR provider = ?4)
                 ORDER BY time, provider, trade_id LIMIT ?5",
            )?;
            let rows = st
                .query_map(
                    params![
                        q.symbol.as_str(),
                        q.from.as_millis(),
                        q.to.as_millis(),
                        q.provider.map(|p| p.as_str()),
                        q.limit
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
                            meta: row_meta(r, 10, true, true)?,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn gaps(&self, day: Date) -> Result<Vec<GapRow>, StoreError> {
        self.read(move |c| {
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
                        meta: row_meta(r, 9, false, false)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn overflow(&self, day: Date) -> Result<Vec<OverflowRow>, StoreError> {
        self.read(move |c| {
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
                        meta: row_meta(r, 8, false, false)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn events(&self, day: Date) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |c| {
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
                        meta: row_meta(r, 6, false, false)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

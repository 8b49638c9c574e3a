//! The embedded default: one SQLite file in WAL mode. rusqlite is synchronous, so no call
//! runs on the async threads: writes go to tokio's blocking pool on one writer connection
//! (SQLite allows one writer anyway), reads to a few reader threads with a connection each
//! ([`readers`]), which WAL lets run beside each other and the writer.
//!
//! Rooms: [`schema`] (migrations), [`codec`] (how values are stored and read back),
//! [`writes`], [`queries`], [`readers`]. This file holds the store, its connections, and the
//! [`Backend`] implementation that routes each call to its room.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use rusqlite::Connection;

use model::{Day, Provider, Symbol, UtcTime};

use crate::backend::shared::retained;
use crate::backend::{Backend, Mode};
use crate::error::StoreError;
use crate::migrate::{self, MigrateReport, StatusReport};
use crate::rows::*;

mod codec;
mod outbox;
mod queries;
mod readers;
mod samples;
mod schema;
mod storage;
mod writes;

const DAY_MS: i64 = 86_400_000;
const KST_OFFSET_MS: i64 = 9 * 3_600_000;

#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<readers::Readers>,
}

/// Reader connections: reads run side by side up to the cores, up to a few (each holds its
/// own page cache).
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // The archive, not this file, is the durable record: NORMAL loses at most the last
    // transactions on power loss, which `etl` restores.
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;")?;
    // The bundled SQLite is built with STAT4, which marks a statement whose plan might
    // depend on a bound value (an `=` on a parameter under ORDER BY, a LIKE pattern) for
    // re-preparing whenever its parameters are rebound: every reuse of a cached statement
    // was parsed and planned again (a third of `GET /api/v1/latest`'s CPU, docs/benchmarks.md
    // "bench api"). Nothing here can profit from it (no ANALYZE statistics; LIKE is never
    // index-assisted without NOCASE columns or case_sensitive_like), so plans are fixed at
    // prepare time.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
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
        let readers = readers::Readers::open(path, reader_count(), open_conn)?;
        Ok(SqliteStore { path: path.to_path_buf(), writer: Arc::new(Mutex::new(writer)), readers })
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
        self.readers.read(f).await
    }

    /// A read of one row by its key, on the calling thread ([`readers::Readers::read_point`]).
    async fn read_point<T: Send + 'static>(
        &self,
        f: impl Fn(&Connection) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        self.readers.read_point(f).await
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

    async fn retention_days(&self, table: Table, before: Day) -> Result<Vec<Day>, StoreError> {
        let (name, col) = retained(table)?;
        // Times are UTC milliseconds; Seoul is UTC+9 all year (no daylight saving since 1988),
        // so shifting by nine hours and dividing by a day gives the Seoul day number. One
        // scan, like the DELETE that follows it: these tables have no index on time alone.
        let sql =
            format!("SELECT DISTINCT ({col} + {KST_OFFSET_MS}) / {DAY_MS} FROM {name} WHERE {col} < ?1 ORDER BY 1");
        let cut = before.start().as_millis();
        let days: Vec<i64> = self
            .read(move |c| {
                let mut st = c.prepare(&sql)?;
                let rows = st.query_map([cut], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        Ok(days.into_iter().map(|n| Day::of(UtcTime::from_millis(n * DAY_MS - KST_OFFSET_MS))).collect())
    }

    async fn apply_retention(&self, table: Table, before: Option<Day>) -> Result<u32, StoreError> {
        let (name, col) = retained(table)?;
        let Some(before) = before else { return Ok(0) };
        let cut = before.start().as_millis();
        self.write(move |c| Ok(c.execute(&format!("DELETE FROM {name} WHERE {col} < ?1"), [cut])? as u32)).await
    }

    async fn daily_partitions(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn refresh_rollups(&self, _day: Date) -> Result<(), StoreError> {
        Ok(())
    }

    async fn write_market_ticks(&self, rows: Vec<MarketTickRow>) -> Result<u64, StoreError> {
        writes::write_market_ticks(self, rows).await
    }

    async fn write_scalp_ticks(&self, rows: Vec<ScalpTickRow>) -> Result<u64, StoreError> {
        writes::write_scalp_ticks(self, rows).await
    }

    async fn write_bars(&self, table: BarTable, rows: Vec<Bar>) -> Result<u64, StoreError> {
        writes::write_bars(self, table, rows).await
    }

    async fn write_eod(&self, rows: Vec<EodRow>) -> Result<u64, StoreError> {
        writes::write_eod(self, rows).await
    }

    async fn write_universe(&self, rows: Vec<UniverseRow>) -> Result<u64, StoreError> {
        writes::write_universe(self, rows).await
    }

    async fn write_gaps(&self, rows: Vec<GapRow>) -> Result<u64, StoreError> {
        writes::write_gaps(self, rows).await
    }

    async fn write_overflow(&self, rows: Vec<OverflowRow>) -> Result<u64, StoreError> {
        writes::write_overflow(self, rows).await
    }

    async fn write_events(&self, rows: Vec<EventRow>) -> Result<u64, StoreError> {
        writes::write_events(self, rows).await
    }

    async fn count_day(&self, table: Table, day: Date) -> Result<u64, StoreError> {
        queries::count_day(self, table, day).await
    }

    async fn bars(&self, q: BarQuery) -> Result<Vec<Bar>, StoreError> {
        queries::bars(self, q).await
    }

    async fn latest_price(
        &self,
        symbol: Symbol,
        provider: Option<Provider>,
    ) -> Result<Option<LatestPrice>, StoreError> {
        queries::latest_price(self, symbol, provider).await
    }

    async fn ticks(&self, q: TickQuery) -> Result<Vec<MarketTickRow>, StoreError> {
        queries::ticks(self, q).await
    }

    async fn storage(&self) -> Result<crate::storage::Storage, StoreError> {
        storage::storage(self).await
    }

    /// SQLite compresses nothing (the archive's zstd packages are the compact copy).
    async fn compress(&self, _older_than: UtcTime) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    async fn samples(&self, q: SampleQuery) -> Result<Vec<ScalpTickRow>, StoreError> {
        samples::samples(self, q).await
    }

    async fn gaps(&self, day: Date) -> Result<Vec<GapRow>, StoreError> {
        queries::gaps(self, day).await
    }

    async fn overflow(&self, day: Date) -> Result<Vec<OverflowRow>, StoreError> {
        queries::overflow(self, day).await
    }

    async fn events(&self, day: Date) -> Result<Vec<EventRow>, StoreError> {
        queries::events(self, day).await
    }
}

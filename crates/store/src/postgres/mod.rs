//! PostgreSQL: a deadpool pool of tokio-postgres connections. Tick-rate rows go in with one
//! binary COPY straight into the table (its daily partition); only when that COPY hits a
//! unique violation — a re-run, an overlap with the live sink — is the transaction rolled
//! back and the batch merged through a per-session TEMP staging table with `INSERT … SELECT …
//! ON CONFLICT DO NOTHING`, so one duplicate never costs the rest of its batch while fresh data
//! costs a single COPY. Smaller tables go in as one `INSERT … SELECT FROM unnest(arrays)` per
//! batch, one round trip however many rows.
//!
//! Rooms: [`connect`] (URL, password, TLS, pool), [`schema`] (migrations and mode),
//! [`copy`] (the COPY loads), [`writes`] (the `unnest` writes), [`queries`] (reads and row
//! decoding), [`maintenance`] (partitions, retention, continuous aggregates). This file holds
//! the store itself and the [`Backend`] implementation that routes each call to its room.

use std::sync::atomic::{AtomicU8, Ordering};

use deadpool_postgres::Pool;
use jiff::civil::Date;
use tokio_postgres::types::ToSql;

use model::{Day, Provider, Symbol, UtcTime};

use crate::backend::{Backend, Mode};
use crate::config::TimescaleChoice;
use crate::error::StoreError;
use crate::migrate::{self, MigrateReport, StatusReport};
use crate::rows::*;

mod connect;
mod copy;
mod maintenance;
mod outbox;
mod queries;
mod samples;
mod schema;
mod storage;
mod writes;

const MODE_UNKNOWN: u8 = 0;
const MODE_NATIVE: u8 = 1;
const MODE_TIMESCALE: u8 = 2;

pub struct PgStore {
    pool: Pool,
    url: String,
    timescale: TimescaleChoice,
    mode: AtomicU8,
    copy_connections: usize,
    copy_chunk_rows: usize,
}

/// An instant as the driver's `timestamptz`.
fn ts(t: UtcTime) -> jiff::Timestamp {
    t.to_timestamp()
}

impl PgStore {
    pub fn url_redacted(&self) -> &str {
        &self.url
    }

    pub fn pool_status(&self) -> crate::storage::PoolStatus {
        let s = self.pool.status();
        crate::storage::PoolStatus { max_size: s.max_size, size: s.size, available: s.available, waiting: s.waiting }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    fn set_mode(&self, mode: Mode) {
        let v = if mode == Mode::Timescale { MODE_TIMESCALE } else { MODE_NATIVE };
        self.mode.store(v, Ordering::Relaxed);
    }

    async fn unnest_exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let st = tx.prepare_cached(sql).await?;
        let n = tx.execute(&st, params).await?;
        tx.commit().await?;
        Ok(n)
    }

    fn is_timescale(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == MODE_TIMESCALE
    }
}

impl Backend for PgStore {
    fn mode(&self) -> Mode {
        if self.is_timescale() { Mode::Timescale } else { Mode::Native }
    }

    async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        self.migrate_files(migrate::postgres_migrations()).await
    }

    async fn status(&self) -> Result<StatusReport, StoreError> {
        self.status_files(migrate::postgres_migrations()).await
    }

    async fn maintain(&self, from: Date, days: u32) -> Result<u32, StoreError> {
        maintenance::maintain(self, from, days).await
    }

    async fn retention_days(&self, table: Table, before: Day) -> Result<Vec<Day>, StoreError> {
        maintenance::retention_days(self, table, before).await
    }

    async fn apply_retention(&self, table: Table, before: Option<Day>) -> Result<u32, StoreError> {
        maintenance::apply_retention(self, table, before).await
    }

    async fn daily_partitions(&self) -> Result<Vec<String>, StoreError> {
        maintenance::daily_partitions(self).await
    }

    async fn refresh_rollups(&self, day: Date) -> Result<(), StoreError> {
        maintenance::refresh_rollups(self, day).await
    }

    async fn write_market_ticks(&self, rows: Vec<MarketTickRow>) -> Result<u64, StoreError> {
        copy::write_market_ticks(self, rows).await
    }

    async fn write_scalp_ticks(&self, rows: Vec<ScalpTickRow>) -> Result<u64, StoreError> {
        copy::write_scalp_ticks(self, rows).await
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

    async fn compress(&self, older_than: UtcTime) -> Result<Option<u64>, StoreError> {
        storage::compress(self, older_than).await
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

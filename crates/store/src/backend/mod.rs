//! The contract between the store's users and its backends: the [`Backend`] trait both
//! implement, the [`Mode`] a database runs in, and ([`shared`]) the helpers both backends
//! use so that they count and decode rows alike. Backends depend on this module; it depends
//! on no backend.

use std::future::Future;

use jiff::civil::Date;
use serde::Serialize;

use model::{Day, Provider, Symbol, UtcTime};

use crate::error::StoreError;
use crate::migrate::{MigrateReport, StatusReport};
use crate::rows::*;

pub(crate) mod shared;

/// How the database keeps time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL with daily range partitions and rollups maintained by the store.
    Native,
    /// PostgreSQL with TimescaleDB hypertables, compression and continuous aggregates.
    Timescale,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Sqlite => "sqlite",
            Mode::Native => "native",
            Mode::Timescale => "timescale",
        }
    }
}

/// A storage backend. Writes take their rows by value (SQLite runs them on a blocking
/// thread) and return how many rows were new or changed, so a repeated write returns 0.
pub trait Backend: Send + Sync {
    fn mode(&self) -> Mode;
    fn migrate(&self) -> impl Future<Output = Result<MigrateReport, StoreError>> + Send;
    fn status(&self) -> impl Future<Output = Result<StatusReport, StoreError>> + Send;
    /// Prepares storage for `days` Seoul days from `from` (native mode: daily partitions).
    fn maintain(&self, from: Date, days: u32) -> impl Future<Output = Result<u32, StoreError>> + Send;
    /// The Seoul days before `before` on which a time-series table (`market_ticks` or
    /// `scalp_ticks`) has rows that retention could drop, oldest first. Maintenance asks
    /// whether each is held before it lets retention past it.
    fn retention_days(&self, table: Table, before: Day) -> impl Future<Output = Result<Vec<Day>, StoreError>> + Send;
    /// Drops a time-series table's data of the Seoul days before `before` (never anything of
    /// `before` or later); `None` drops nothing. Returns what went: rows (SQLite), daily
    /// partitions (native) or chunks (TimescaleDB).
    fn apply_retention(
        &self,
        table: Table,
        before: Option<Day>,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Names of the daily partitions of the time-series tables (native mode), sorted.
    fn daily_partitions(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Brings rollups of `day` up to date where the database computes them (TimescaleDB
    /// continuous aggregates); elsewhere the ETL writes them and this does nothing.
    fn refresh_rollups(&self, day: Date) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn write_market_ticks(&self, rows: Vec<MarketTickRow>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn write_scalp_ticks(&self, rows: Vec<ScalpTickRow>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Upserts: a bar recomputed from more data replaces the stored one; an equal bar is a no-op.
    fn write_bars(&self, table: BarTable, rows: Vec<Bar>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn write_eod(&self, rows: Vec<EodRow>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn write_universe(&self, rows: Vec<UniverseRow>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn write_gaps(&self, rows: Vec<GapRow>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn write_overflow(&self, rows: Vec<OverflowRow>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn write_events(&self, rows: Vec<EventRow>) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Rows of `table` belonging to archive partition date `day` (see `etl` for the rules).
    fn count_day(&self, table: Table, day: Date) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn bars(&self, q: BarQuery) -> impl Future<Output = Result<Vec<Bar>, StoreError>> + Send;
    fn latest_price(
        &self,
        symbol: Symbol,
        provider: Option<Provider>,
    ) -> impl Future<Output = Result<Option<LatestPrice>, StoreError>> + Send;
    fn ticks(&self, q: TickQuery) -> impl Future<Output = Result<Vec<MarketTickRow>, StoreError>> + Send;
    /// Sizes of tables, partitions and chunks, and the compression ratio where the mode compresses.
    fn storage(&self) -> impl Future<Output = Result<crate::storage::Storage, StoreError>> + Send;
    /// Compresses what is older than `older_than` now (TimescaleDB); `None`: nothing to compress in this mode.
    fn compress(&self, older_than: UtcTime) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    fn samples(&self, q: SampleQuery) -> impl Future<Output = Result<Vec<ScalpTickRow>, StoreError>> + Send;
    fn gaps(&self, day: Date) -> impl Future<Output = Result<Vec<GapRow>, StoreError>> + Send;
    fn overflow(&self, day: Date) -> impl Future<Output = Result<Vec<OverflowRow>, StoreError>> + Send;
    fn events(&self, day: Date) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;
}

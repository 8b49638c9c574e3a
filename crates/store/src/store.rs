//! The one interface both backends implement, and `Store`, which picks one from the config.

use std::future::Future;
use std::path::Path;

use jiff::civil::Date;
use serde::Serialize;

use model::{Provider, Symbol, UtcTime};

use crate::migrate::{MigrateReport, StatusReport};
use crate::postgres::PgStore;
use crate::rows::*;
use crate::sqlite::SqliteStore;
use crate::{StoreConfig, StoreError};

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
    /// Drops time-series data older than the given ages as of `now`; returns what went.
    fn apply_retention(
        &self,
        now: UtcTime,
        ticks: Option<std::time::Duration>,
        samples: Option<std::time::Duration>,
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
    fn gaps(&self, day: Date) -> impl Future<Output = Result<Vec<GapRow>, StoreError>> + Send;
    fn overflow(&self, day: Date) -> impl Future<Output = Result<Vec<OverflowRow>, StoreError>> + Send;
    fn events(&self, day: Date) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;
}

/// The configured backend.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the store `cfg.url` names, or `<data_dir>/observer.db`. PostgreSQL connects
    /// lazily: opening succeeds while the server is down, the first query fails.
    pub async fn open(cfg: &StoreConfig, data_dir: &Path) -> Result<Store, StoreError> {
        match cfg.url.as_deref() {
            None => Ok(Store::Sqlite(SqliteStore::open(&data_dir.join("observer.db"))?)),
            Some(u) if u.starts_with("sqlite://") => {
                let path = u.trim_start_matches("sqlite://");
                Ok(Store::Sqlite(SqliteStore::open(Path::new(path))?))
            }
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Store::Postgres(PgStore::connect(u, cfg).await?))
            }
            Some(_) => Err(StoreError::Url {
                url: "(not shown)".into(),
                why: "expected postgres://, postgresql:// or sqlite://".into(),
            }),
        }
    }

    /// Where the data is, safe to print.
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => format!("sqlite {}", s.path().display()),
            Store::Postgres(p) => format!("postgres {}", p.url_redacted()),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Backend for Store {
    fn mode(&self) -> Mode {
        dispatch!(self, s => s.mode())
    }
    async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        dispatch!(self, s => s.migrate().await)
    }
    async fn status(&self) -> Result<StatusReport, StoreError> {
        dispatch!(self, s => s.status().await)
    }
    async fn maintain(&self, from: Date, days: u32) -> Result<u32, StoreError> {
        dispatch!(self, s => s.maintain(from, days).await)
    }
    async fn apply_retention(
        &self,
        now: UtcTime,
        ticks: Option<std::time::Duration>,
        samples: Option<std::time::Duration>,
    ) -> Result<u32, StoreError> {
        dispatch!(self, s => s.apply_retention(now, ticks, samples).await)
    }
    async fn daily_partitions(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.daily_partitions().await)
    }
    async fn refresh_rollups(&self, day: Date) -> Result<(), StoreError> {
        dispatch!(self, s => s.refresh_rollups(day).await)
    }
    async fn write_market_ticks(&self, rows: Vec<MarketTickRow>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_market_ticks(rows).await)
    }
    async fn write_scalp_ticks(&self, rows: Vec<ScalpTickRow>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_scalp_ticks(rows).await)
    }
    async fn write_bars(&self, table: BarTable, rows: Vec<Bar>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_bars(table, rows).await)
    }
    async fn write_eod(&self, rows: Vec<EodRow>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_eod(rows).await)
    }
    async fn write_universe(&self, rows: Vec<UniverseRow>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_universe(rows).await)
    }
    async fn write_gaps(&self, rows: Vec<GapRow>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_gaps(rows).await)
    }
    async fn write_overflow(&self, rows: Vec<OverflowRow>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_overflow(rows).await)
    }
    async fn write_events(&self, rows: Vec<EventRow>) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_events(rows).await)
    }
    async fn count_day(&self, table: Table, day: Date) -> Result<u64, StoreError> {
        dispatch!(self, s => s.count_day(table, day).await)
    }
    async fn bars(&self, q: BarQuery) -> Result<Vec<Bar>, StoreError> {
        dispatch!(self, s => s.bars(q).await)
    }
    async fn latest_price(
        &self,
        symbol: Symbol,
        provider: Option<Provider>,
    ) -> Result<Option<LatestPrice>, StoreError> {
        dispatch!(self, s => s.latest_price(symbol, provider).await)
    }
    async fn ticks(&self, q: TickQuery) -> Result<Vec<MarketTickRow>, StoreError> {
        dispatch!(self, s => s.ticks(q).await)
    }
    async fn gaps(&self, day: Date) -> Result<Vec<GapRow>, StoreError> {
        dispatch!(self, s => s.gaps(day).await)
    }
    async fn overflow(&self, day: Date) -> Result<Vec<OverflowRow>, StoreError> {
        dispatch!(self, s => s.overflow(day).await)
    }
    async fn events(&self, day: Date) -> Result<Vec<EventRow>, StoreError> {
        dispatch!(self, s => s.events(day).await)
    }
}

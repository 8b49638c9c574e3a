//! `Store`, the configured backend: opens the one the config names and forwards every
//! [`Backend`] call to it.

use std::path::Path;

use jiff::civil::Date;

use model::{Day, Provider, Symbol, UtcTime};

use crate::backend::{Backend, Mode};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::migrate::{MigrateReport, StatusReport};
use crate::outbox::{Chat, Claimed, NewNotification, OutboxCounts, OutboxRow, Settle};
use crate::postgres::PgStore;
use crate::rows::*;
use crate::sqlite::SqliteStore;

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
    /// The PostgreSQL pool's connections (`None` for SQLite).
    pub fn pool_status(&self) -> Option<crate::storage::PoolStatus> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some(p.pool_status()),
        }
    }

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
    async fn retention_days(&self, table: Table, before: Day) -> Result<Vec<Day>, StoreError> {
        dispatch!(self, s => s.retention_days(table, before).await)
    }
    async fn apply_retention(&self, table: Table, before: Option<Day>) -> Result<u32, StoreError> {
        dispatch!(self, s => s.apply_retention(table, before).await)
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
    async fn storage(&self) -> Result<crate::storage::Storage, StoreError> {
        dispatch!(self, s => s.storage().await)
    }
    async fn compress(&self, older_than: UtcTime) -> Result<Option<u64>, StoreError> {
        dispatch!(self, s => s.compress(older_than).await)
    }
    async fn samples(&self, q: SampleQuery) -> Result<Vec<ScalpTickRow>, StoreError> {
        dispatch!(self, s => s.samples(q).await)
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

/// The notification outbox (`crate::outbox`), on whichever backend is configured.
impl Store {
    /// Makes `telegram_chats` say what the config says: listed chats enabled with their
    /// `min_severity`, every other chat disabled (kept, so old outbox rows still name it).
    pub async fn sync_chats(&self, chats: &[Chat]) -> Result<(), StoreError> {
        dispatch!(self, s => s.sync_chats(chats.to_vec()).await)
    }

    /// Enabled chats.
    pub async fn chats(&self) -> Result<Vec<Chat>, StoreError> {
        dispatch!(self, s => s.chats().await)
    }

    /// `enqueue_notification()`: the new row's id, or `None` when `dedupe_key` was taken.
    pub async fn enqueue(&self, n: NewNotification) -> Result<Option<i64>, StoreError> {
        crate::outbox::check_key(&n)?;
        dispatch!(self, s => s.enqueue(n).await)
    }

    /// Claims up to `limit` due PENDING rows, oldest first, leasing them until `lease_until`
    /// (their `send_after`): another worker skips them, and a worker that dies mid-send lets
    /// them come due again. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`; SQLite in one
    /// write transaction (it has a single writer).
    pub async fn claim(&self, now: UtcTime, lease_until: UtcTime, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        dispatch!(self, s => s.claim(now, lease_until, limit).await)
    }

    pub async fn settle(&self, id: i64, how: Settle) -> Result<(), StoreError> {
        dispatch!(self, s => s.settle(id, how).await)
    }

    /// A group became a supergroup: the chat and its pending rows move to the new id.
    pub async fn migrate_chat(&self, from: i64, to: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate_chat(from, to).await)
    }

    /// Rows by status.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        dispatch!(self, s => s.outbox_counts().await)
    }

    /// Every row, oldest first.
    pub async fn outbox_rows(&self) -> Result<Vec<OutboxRow>, StoreError> {
        dispatch!(self, s => s.outbox_rows().await)
    }
}

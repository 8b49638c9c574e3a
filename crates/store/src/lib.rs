//! The query database (DESIGN.md "Storage"): numbered SQL migrations, an embedded SQLite
//! backend (the default, `<data-dir>/observer.db`) and a PostgreSQL backend (native daily
//! partitions, or TimescaleDB when the server has it), the archive → database ETL, bars, the
//! queries the API serves, and a live sink that writes while recording without ever holding
//! the archive up.
//!
//! The archive is the source of truth: every row here can be rebuilt from it with `etl`,
//! every table has a natural key so a repeated write is a no-op, and prices and sizes stay
//! exact decimals (TEXT on SQLite, NUMERIC on PostgreSQL).

#![forbid(unsafe_code)]

mod backend;
pub mod bars;
mod config;
mod error;
pub mod etl;
pub mod maintain;
pub mod migrate;
pub mod outbox;
pub mod pgconn;
mod pgcopy;
pub mod postgres;
pub mod rows;
pub mod sink;
pub mod sqlite;
mod storage;
mod store;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{Backend, Mode};
pub use config::{LiveSinkConfig, StoreConfig, TimescaleChoice};
pub use error::StoreError;
pub use etl::{EtlOptions, EtlReport, TableReconcile, run_etl};
pub use maintain::{MaintenanceReport, RetentionKept, maintain};
pub use migrate::{MigrateReport, Migration, MigrationState, MigrationStatus, StatusReport};
pub use pgconn::{PASSWORD_ENV, PgUrl, SslMode, shown_url, url_has_password};
pub use rows::*;
pub use sink::{LiveSink, SinkSnapshot, SinkStats};
pub use storage::{Compression, PoolStatus, Relation, Storage};
pub use store::Store;
pub use sync::{SyncOptions, SyncProgress, SyncReport, TableRows, sync};

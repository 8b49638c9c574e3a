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

pub mod bars;
mod config;
mod error;
pub mod etl;
pub mod maintain;
pub mod migrate;
pub mod pgconn;
mod pgcopy;
pub mod postgres;
pub mod rows;
pub mod sink;
pub mod sqlite;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{LiveSinkConfig, PASSWORD_ENV, StoreConfig, TimescaleChoice};
pub use error::StoreError;
pub use etl::{EtlOptions, EtlReport, TableReconcile, run_etl};
pub use maintain::{MaintenanceReport, maintain};
pub use migrate::{MigrateReport, Migration, MigrationState, MigrationStatus, StatusReport};
pub use pgconn::{PgUrl, SslMode, shown_url};
pub use rows::*;
pub use sink::{LiveSink, SinkSnapshot, SinkStats};
pub use store::{Backend, Mode, Store};

/// Whether a connection URL carries a password (`scheme://user:pass@host`). Passwords come
/// from the environment only, so a URL can be logged and shown in errors.
pub fn url_has_password(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else { return false };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

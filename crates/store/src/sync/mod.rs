//! `db sync`: a one-way copy of a whole database, production → local (seed 000 §5.4).
//!
//! PostgreSQL → PostgreSQL streams `pg_dump --format=custom` of the source through
//! `pg_restore --clean --if-exists --single-transaction` into `psql` at the destination
//! ([`pg`]): no temporary file, nothing written at the source (pg_dump only reads, so a
//! read-only role is enough), and a failure anywhere rolls the destination back to what it
//! was. SQLite →
//! SQLite copies one consistent snapshot with SQLite's online backup API from the source
//! opened read-only, into `DST.tmp`, fsynced and renamed over `DST` ([`sqlite`]). Kinds are
//! not mixed: the two schemas differ (TEXT against NUMERIC, partitions), and a mixed copy
//! would be a second ETL; `etl` from the archive fills either kind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::StoreError;
use crate::pgconn::{PgUrl, shown_url};

mod pg;
mod sqlite;

pub use pg::FROM_PASSWORD_ENV;

/// How far a copy has got, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncProgress {
    /// PostgreSQL: bytes of the dump streamed into pg_restore so far.
    Bytes(u64),
    /// SQLite: pages copied of the snapshot's total.
    Pages { copied: u64, total: u64 },
}

pub type ProgressFn = Arc<dyn Fn(SyncProgress) + Send + Sync>;

#[derive(Clone, Default)]
pub struct SyncOptions {
    /// PEM certificates trusted besides the system store (`store.tls_ca_file`).
    pub tls_ca_file: Option<PathBuf>,
    /// Connection attempts give up after this long unless the URL sets `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// Where `pg_dump`, `pg_restore` and `psql` are; default: the `PATH`. pg_dump must be at
    /// least as new as the source's server.
    pub tools_dir: Option<PathBuf>,
    pub progress: Option<ProgressFn>,
}

/// One table of the destination after the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRows {
    pub table: String,
    pub rows: u64,
}

/// What a sync copied.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// `postgres` or `sqlite`.
    pub kind: &'static str,
    /// The source and destination as they may be shown (no password).
    pub from: String,
    pub to: String,
    /// Every table at the destination afterwards, with its row count.
    pub tables: Vec<TableRows>,
    /// PostgreSQL: bytes of the dump streamed. SQLite: size of the destination file.
    pub bytes: u64,
    /// SQLite: pages of the snapshot.
    pub pages: Option<u64>,
    pub elapsed_ms: u64,
}

impl SyncReport {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// A database named on the command line.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Postgres { url: Box<PgUrl>, shown: String },
    Sqlite(PathBuf),
}

impl Endpoint {
    /// `postgres://…` / `postgresql://…` (no password in it), `sqlite://PATH`, or a path.
    /// Errors never repeat a URL that did not parse.
    pub fn parse(s: &str) -> Result<Endpoint, StoreError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let url = PgUrl::parse(s).map_err(|why| StoreError::Url { url: shown_url(s), why })?;
            let shown = url.display();
            return Ok(Endpoint::Postgres { url: Box::new(url), shown });
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            return Ok(Endpoint::Sqlite(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(StoreError::Url {
                url: "(not shown)".into(),
                why: "expected postgres://, postgresql://, sqlite://PATH or a file path".into(),
            });
        }
        if s.is_empty() {
            return Err(StoreError::Invalid("an empty database path".into()));
        }
        Ok(Endpoint::Sqlite(PathBuf::from(s)))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Postgres { .. } => "postgres",
            Endpoint::Sqlite(_) => "sqlite",
        }
    }

    /// Safe to print.
    pub fn shown(&self) -> String {
        match self {
            Endpoint::Postgres { shown, .. } => shown.clone(),
            Endpoint::Sqlite(p) => p.display().to_string(),
        }
    }
}

/// Copies the whole database `from` over `to` (see the module documentation). `from` is
/// never written. Refuses the same database on both sides, and mixed kinds.
pub async fn sync(from: &str, to: &str, opts: &SyncOptions) -> Result<SyncReport, StoreError> {
    let src = Endpoint::parse(from)?;
    let dst = Endpoint::parse(to)?;
    let started = Instant::now();
    let mut report = match (&src, &dst) {
        (Endpoint::Postgres { url: s, .. }, Endpoint::Postgres { url: d, .. }) => {
            if pg::same_database(s, d) {
                return Err(same(&src));
            }
            pg::sync(s, d, opts).await?
        }
        (Endpoint::Sqlite(s), Endpoint::Sqlite(d)) => {
            if sqlite::same_file(s, d) {
                return Err(same(&src));
            }
            let (s, d, progress) = (s.clone(), d.clone(), opts.progress.clone());
            tokio::task::spawn_blocking(move || sqlite::sync(&s, &d, progress.as_ref())).await??
        }
        _ => {
            return Err(StoreError::Invalid(format!(
                "cannot sync {} ({}) into {} ({}): both sides must be PostgreSQL, or both SQLite \
                 (the schemas differ; load the archive with `etl` instead)",
                src.shown(),
                src.kind(),
                dst.shown(),
                dst.kind()
            )));
        }
    };
    report.from = src.shown();
    report.to = dst.shown();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn same(src: &Endpoint) -> StoreError {
    StoreError::Invalid(format!(
        "--from and --to are the same database ({}): a sync would replace the source with itself",
        src.shown()
    ))
}

/// A report with the copy's figures; `from`, `to` and `elapsed_ms` are filled in by [`sync`].
fn report(kind: &'static str, tables: Vec<TableRows>, bytes: u64, pages: Option<u64>) -> SyncReport {
    SyncReport { kind, from: String::new(), to: String::new(), tables, bytes, pages, elapsed_ms: 0 }
}

/// `path` with `suffix` appended to its file name (`observer.db` → `observer.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

//! `etl`: one archive day → the database. Idempotent (natural keys, and bars are upserts that
//! change nothing when equal), and checked: after loading, each table's rows for the day are
//! counted in the database and compared with what the archive says should be there.
//!
//! Which rows belong to day D (archive partition date, Asia/Seoul):
//! * market_ticks: ticks parsed from `raw/*/D/*.jsonl`, counted by their `raw_ref`;
//! * scalp_ticks, bars: event / bar time inside the Seoul day;
//! * eod_prices, universe: trade date D;
//! * scalp_gaps, system_events, overflow_entries: lines of the day's files (by `src_file`).
//!
//! [`run_etl`] is a list of steps: find the day's files ([`files`]), load each stream
//! ([`ticks`], [`samples`], [`snapshots`], [`system`], [`universe`]) while [`day_load`]
//! keeps the counts, then reconcile. [`record_reconcile`] keeps the report in the archive.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use jiff::civil::Date;
use serde::Serialize;

use model::{MarketEvent, Provider, RawFrame, SystemEvent, UtcTime};

use crate::backend::{Backend, Mode};
use crate::error::StoreError;
use crate::rows::{Table, parse_day};

mod day_load;
mod files;
mod record;
mod samples;
mod snapshots;
mod system;
mod ticks;
mod universe;

pub use files::archive_dates;
pub use record::record_reconcile;

use day_load::DayLoad;
use files::Files;

#[derive(Debug, Clone)]
pub struct EtlOptions {
    /// Archive partition date, `YYYYMMDD`.
    pub date: String,
    pub batch_rows: usize,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

/// One table's reconciliation: what the archive implies against what the database holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReconcile {
    pub table: Table,
    /// Archive lines (or parsed events) read for this table.
    pub source_lines: u64,
    /// Distinct rows those lines imply for the day.
    pub expected: u64,
    /// Rows this run added or changed (0 on a re-run).
    pub written: u64,
    /// Rows of the day in the database after the run.
    pub in_db: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EtlReport {
    pub date: String,
    pub mode: Mode,
    pub ok: bool,
    pub tables: Vec<TableReconcile>,
    /// Raw frames whose provider has no parser here yet (their ticks are not loaded).
    pub unparsed_frames: BTreeMap<String, u64>,
    /// Frames a parser rejected (the engine rejected them too, with a system event).
    pub malformed_frames: u64,
    pub bad_lines: u64,
    pub bad_line_samples: Vec<String>,
    pub files: u64,
    pub elapsed_ms: u64,
    /// Providers with archive files on this day, in `Provider::ALL` order.
    pub providers: Vec<Provider>,
}

impl EtlReport {
    /// The report as the `etl_reconcile` system event.
    pub fn to_event(&self) -> SystemEvent {
        SystemEvent::EtlReconcile {
            date: self.date.clone(),
            mode: self.mode.as_str().to_string(),
            ok: self.ok,
            tables: serde_json::to_value(&self.tables).unwrap_or_default(),
            unparsed_frames: self.unparsed_frames.clone(),
            malformed_frames: self.malformed_frames,
            bad_lines: self.bad_lines,
            bad_line_samples: self.bad_line_samples.clone(),
            files: self.files,
            elapsed_ms: self.elapsed_ms,
        }
    }

    /// The event as JSON (what `etl` prints), without the common meta.
    pub fn to_event_body(&self) -> serde_json::Value {
        serde_json::to_value(self.to_event()).unwrap_or_default()
    }

    pub fn table(&self, t: Table) -> Option<&TableReconcile> {
        self.tables.iter().find(|r| r.table == t)
    }
}

/// Parses a raw frame with the mapper of the provider that sent it (`providers::mapper`).
pub fn parse_frame(frame: &RawFrame) -> Result<Vec<(UtcTime, MarketEvent)>, FrameError> {
    let mapper = providers::mapper(frame.provider).ok_or(FrameError::NoParser)?;
    (mapper.parse)(frame).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[derive(Debug)]
pub enum FrameError {
    NoParser,
    Malformed(String),
}

/// Loads archive day `opts.date` from `root` into `store` and reconciles every table.
pub async fn run_etl<B: Backend>(store: &B, root: &Path, opts: &EtlOptions) -> Result<EtlReport, StoreError> {
    let started = Instant::now();
    let day = parse_day(&opts.date).map_err(StoreError::Invalid)?;
    let files = prepare(store, root, &opts.date, day).await?;
    let mut cx = DayLoad::new(root, day, opts, store.mode(), &files);
    ticks::load_ticks(store, &mut cx, &files.raw).await?;
    let bars_1m = samples::load_samples(store, &mut cx, &files.scalp).await?;
    samples::load_sample_bars(store, &mut cx, bars_1m).await?;
    snapshots::load_snapshots(store, &mut cx, &files.swing).await?;
    system::load_events(store, &mut cx, &files.events).await?;
    system::load_overflow(store, &mut cx, &files.overflow).await?;
    universe::load_universe(store, &mut cx, &files.universe).await?;
    cx.bar.finish_and_clear();
    let mut report = reconcile(store, cx).await?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Everything checked before a row is written, so that a run which cannot finish changes
/// nothing: the archive root is readable, the database is migrated and unchanged, and the
/// day has files. Then storage is readied for the day and its neighbours (native mode:
/// daily partitions; rows near midnight can fall on either side) and the files returned.
async fn prepare<B: Backend>(store: &B, root: &Path, date: &str, day: Date) -> Result<Files, StoreError> {
    std::fs::read_dir(root).map_err(StoreError::io(root))?;
    let status = store.status().await?;
    if let Some(p) = status.problem() {
        return Err(p);
    }
    if status.pending() > 0 {
        return Err(StoreError::NotMigrated { pending: status.pending() });
    }
    let files = files::find_files(root, date)?;
    if files.is_empty() {
        return Err(StoreError::Invalid(files::no_files_for(root, date)));
    }
    store.maintain(day.yesterday().unwrap_or(day), 3).await?;
    Ok(files)
}

/// Counts each table's rows of the day in the database and compares them with the rows the
/// archive implies: the check that makes a run trustworthy, and a re-run's way of showing
/// nothing was missing. TimescaleDB's continuous aggregates are refreshed by the database on
/// its own schedule, so their counts are reported but not held against the run.
async fn reconcile<B: Backend>(store: &B, cx: DayLoad<'_>) -> Result<EtlReport, StoreError> {
    let timescale = store.mode() == Mode::Timescale;
    let mut report = cx.report;
    for table in Table::ALL {
        let in_db = store.count_day(table, cx.day).await?;
        let exp = cx.expected.get(&table).copied().unwrap_or(0);
        let aggregate = timescale && matches!(table, Table::Bars10m | Table::Bars1h | Table::Bars1d);
        report.tables.push(TableReconcile {
            table,
            source_lines: cx.lines.get(&table).copied().unwrap_or(0),
            expected: exp,
            written: cx.written.get(&table).copied().unwrap_or(0),
            in_db,
            ok: aggregate || in_db == exp,
            note: aggregate.then(|| "continuous aggregate, refreshed by TimescaleDB".to_string()),
        });
    }
    report.ok = report.tables.iter().all(|t| t.ok);
    Ok(report)
}

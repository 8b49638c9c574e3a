//! `etl`: one archive day → the database. Idempotent (natural keys, and bars are upserts that
//! change nothing when equal), and checked: after loading, each table's rows for the day are
//! counted in the database and compared with what the archive says should be there.
//!
//! Which rows belong to day D (archive partition date, Asia/Seoul):
//! * market_ticks: ticks parsed from `raw/*/D/*.jsonl`, counted by their `raw_ref`;
//! * scalp_ticks, bars: event / bar time inside the Seoul day;
//! * eod_prices, universe: trade date D;
//! * scalp_gaps, system_events, overflow_entries: lines of the day's files (by `src_file`).

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use model::{
    Market, MarketEvent, OverflowEntry, Price, Provider, RawFrame, RawFrameKind, Record, ScalpSample, Symbol,
    SystemEvent, UtcTime,
};

use model::num::PLAUSIBLE_ABS_MAX;

use crate::backend::{Backend, Mode};
use crate::bars::{BarBuilder, eod_rows, rollup};
use crate::error::StoreError;
use crate::rows::*;

/// First bad lines quoted in a report; the rest are counted.
const MAX_BAD_LINES: usize = 20;

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

/// One raw-archive line (engine `RawLine` + meta).
#[derive(Deserialize)]
struct RawLineIn {
    provider: Provider,
    kind: RawFrameKind,
    channel: String,
    seq: u64,
    frame: String,
}

/// `universe/YYYYMMDD_{market}.json`, the fields the store keeps.
#[derive(Deserialize)]
struct UniverseIn {
    market: Market,
    provider: Provider,
    #[serde(default)]
    source: String,
    symbols: Vec<UniverseEntryIn>,
}

#[derive(Deserialize)]
struct UniverseEntryIn {
    symbol: Symbol,
    #[serde(default)]
    name: String,
    prev_close: Price,
}

#[derive(Default)]
struct Files {
    providers: std::collections::BTreeSet<Provider>,
    raw: Vec<PathBuf>,
    scalp: Vec<PathBuf>,
    swing: Vec<PathBuf>,
    events: Vec<PathBuf>,
    overflow: Vec<PathBuf>,
    universe: Vec<PathBuf>,
}

impl Files {
    fn is_empty(&self) -> bool {
        [&self.raw, &self.scalp, &self.swing, &self.events, &self.overflow, &self.universe].iter().all(|v| v.is_empty())
    }
}

/// Why a day cannot be loaded, with the days the archive does have (from `manifests/`), so a
/// mistyped date or data directory is obvious.
fn no_files_for(root: &Path, date: &str) -> String {
    let mut days: Vec<String> = std::fs::read_dir(root.join("manifests"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .filter(|d| parse_day(d).is_ok())
        .collect();
    days.sort();
    let known = match days.len() {
        0 => "no day has a manifest there".to_string(),
        n if n <= 5 => format!("days with a manifest: {}", days.join(", ")),
        n => format!("{n} days with a manifest, the latest {}", days[n - 5..].join(", ")),
    };
    format!("the archive under {} has no files for {date}; nothing was loaded ({known})", root.display())
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                v.push(e.map_err(StoreError::io(dir))?.path());
            }
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::Io { path: dir.to_path_buf(), source: e }),
    }
}

fn jsonl(v: Vec<PathBuf>) -> impl Iterator<Item = PathBuf> {
    v.into_iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
}

fn find_files(root: &Path, date: &str) -> Result<Files, StoreError> {
    let mut f = Files::default();
    for p in list_dir(&root.join("raw"))? {
        f.raw.extend(jsonl(list_dir(&p.join(date))?));
    }
    for (kind, out) in [("scalp", &mut f.scalp), ("swing", &mut f.swing)] {
        for p in list_dir(&root.join(kind))? {
            for m in list_dir(&p)? {
                out.extend(jsonl(list_dir(&m.join(date))?));
            }
        }
    }
    for p in list_dir(&root.join("system/events"))? {
        let file = p.join(format!("{date}.jsonl"));
        if file.is_file() {
            f.events.push(file);
        }
    }
    for p in list_dir(&root.join("system/overflow"))? {
        let file = p.join(format!("{date}_overflow.jsonl"));
        if file.is_file() {
            f.overflow.push(file);
        }
    }
    for (kind, v) in [("raw", &f.raw), ("scalp", &f.scalp), ("swing", &f.swing), ("system/events", &f.events)] {
        for p in v {
            let provider =
                p.strip_prefix(root.join(kind)).ok().and_then(|r| r.iter().next()?.to_str()?.parse::<Provider>().ok());
            f.providers.extend(provider);
        }
    }
    for p in &f.overflow {
        f.providers.extend(p.parent().and_then(|d| d.file_name()?.to_str()?.parse::<Provider>().ok()));
    }
    let prefix = format!("{date}_");
    f.universe = list_dir(&root.join("universe"))?
        .into_iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        })
        .collect();
    Ok(f)
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn key_hash(h: impl Hash) -> u64 {
    let mut s = std::collections::hash_map::DefaultHasher::new();
    h.hash(&mut s);
    s.finish()
}

struct Ctx<'a> {
    root: &'a Path,
    bar: indicatif::ProgressBar,
    report: EtlReport,
    written: BTreeMap<Table, u64>,
    lines: BTreeMap<Table, u64>,
}

impl Ctx<'_> {
    fn bad(&mut self, path: &Path, line: u64, why: impl std::fmt::Display) {
        self.report.bad_lines += 1;
        if self.report.bad_line_samples.len() < MAX_BAD_LINES {
            self.report.bad_line_samples.push(format!("{}:{line}: {why}", rel(self.root, path)));
        }
    }

    fn add(&mut self, t: Table, written: u64) {
        *self.written.entry(t).or_default() += written;
    }

    fn line(&mut self, t: Table) {
        *self.lines.entry(t).or_default() += 1;
    }

    /// Calls `each` with every complete line of `path` (1-based numbers). A trailing partial
    /// line is a write in flight (or torn by a crash and cut at the next start): skipped.
    fn read_lines(&mut self, path: &Path, mut each: impl FnMut(&mut Self, u64, &str)) -> Result<(), StoreError> {
        let file = std::fs::File::open(path).map_err(StoreError::io(path))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::new();
        let mut n = 0u64;
        let max = archive::lines::MAX_LINE_BYTES;
        while let Some(read) = archive::lines::read_line(&mut r, &mut buf, max, |_| {}).map_err(StoreError::io(path))? {
            if read.end == archive::lines::LineEnd::Eof {
                break;
            }
            n += 1;
            self.bar.inc(read.bytes);
            // A line past the bound, or bytes that are not UTF-8 (a damaged file), make a bad
            // line, not a failed run.
            if read.too_long {
                self.bad(path, n, format_args!("line of {} bytes, longer than {max}", read.bytes));
                continue;
            }
            match std::str::from_utf8(&buf) {
                Ok(line) => each(self, n, line.trim_end_matches('\r')),
                Err(e) => self.bad(path, n, format_args!("not UTF-8 ({e})")),
            }
        }
        self.report.files += 1;
        Ok(())
    }
}

/// Why a Track B sample line cannot be loaded although it parses: an implausible time or
/// number (issue 14; the engine never writes one, so the line is damaged or forged).
fn implausible_sample(rec: &Record<ScalpSample>) -> Option<String> {
    rec.meta
        .implausible()
        .or_else(|| rec.body.number_beyond(PLAUSIBLE_ABS_MAX).map(|(name, v)| format!("implausible {name} {v}")))
}

/// Loads archive day `opts.date` from `root` into `store` and reconciles every table.
pub async fn run_etl<B: Backend>(store: &B, root: &Path, opts: &EtlOptions) -> Result<EtlReport, StoreError> {
    let started = Instant::now();
    let day = parse_day(&opts.date).map_err(StoreError::Invalid)?;
    std::fs::read_dir(root).map_err(StoreError::io(root))?;
    let status = store.status().await?;
    if let Some(p) = status.problem() {
        return Err(p);
    }
    if status.pending() > 0 {
        return Err(StoreError::NotMigrated { pending: status.pending() });
    }
    let files = find_files(root, &opts.date)?;
    if files.is_empty() {
        return Err(StoreError::Invalid(no_files_for(root, &opts.date)));
    }
    store.maintain(day.yesterday().unwrap_or(day), 3).await?;
    let total: u64 = [&files.raw, &files.scalp, &files.swing, &files.events, &files.overflow]
        .iter()
        .flat_map(|v| v.iter())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "etl {msg:12} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let batch = opts.batch_rows.max(1);
    let mut cx = Ctx {
        root,
        bar,
        report: EtlReport {
            date: opts.date.clone(),
            mode: store.mode(),
            ok: false,
            tables: Vec::new(),
            unparsed_frames: BTreeMap::new(),
            malformed_frames: 0,
            bad_lines: 0,
            bad_line_samples: Vec::new(),
            files: 0,
            elapsed_ms: 0,
            providers: files.providers.iter().copied().collect(),
        },
        written: BTreeMap::new(),
        lines: BTreeMap::new(),
    };
    let (day_lo, day_hi) = day_range(day);
    let mut expected: BTreeMap<Table, u64> = BTreeMap::new();

    // market_ticks from raw frames.
    cx.bar.set_message("raw");
    let mut tick_keys: HashSet<u64> = HashSet::new();
    let mut pending: Vec<MarketTickRow> = Vec::new();
    for path in &files.raw {
        let file_rel = rel(root, path);
        let mut rows_here = Vec::new();
        cx.read_lines(path, |cx, n, line| {
            let rec: Record<RawLineIn> = match serde_json::from_str(line) {
                Ok(r) => r,
                Err(e) => return cx.bad(path, n, e),
            };
            if let Some(why) = rec.meta.implausible() {
                return cx.bad(path, n, why);
            }
            if !matches!(rec.body.kind, RawFrameKind::Ws | RawFrameKind::Rest) {
                return;
            }
            let frame = RawFrame {
                provider: rec.body.provider,
                kind: rec.body.kind,
                channel: rec.body.channel,
                frame: rec.body.frame,
                receive_time: rec.meta.receive_time,
            };
            let events = match parse_frame(&frame) {
                Ok(e) => e,
                Err(FrameError::NoParser) => {
                    *cx.report.unparsed_frames.entry(frame.provider.to_string()).or_default() += 1;
                    return;
                }
                Err(FrameError::Malformed(_)) => {
                    cx.report.malformed_frames += 1;
                    return;
                }
            };
            let raw_ref = format!("{file_rel}#{}", rec.body.seq);
            // What the observer core refuses as implausible (issue 14) is no market tick.
            let before = events.len();
            let events: Vec<_> = events
                .into_iter()
                .filter(|(t, ev)| t.is_plausible() && ev.number_beyond(PLAUSIBLE_ABS_MAX).is_none())
                .collect();
            if events.len() < before {
                cx.report.malformed_frames += 1;
            }
            for (event_time, ev) in events {
                let mut meta = rec.meta.clone();
                meta.event_time = event_time;
                meta.raw_ref = Some(raw_ref.clone());
                if let Some(row) = MarketTickRow::from_record(&Record { body: ev, meta }) {
                    cx.line(Table::MarketTicks);
                    tick_keys.insert(key_hash((row.symbol.as_str(), row.time, row.provider, &row.trade_id)));
                    rows_here.push(row);
                }
            }
        })?;
        pending.extend(rows_here);
        while pending.len() >= batch {
            let rest = pending.split_off(batch);
            let n = store.write_market_ticks(std::mem::replace(&mut pending, rest)).await?;
            cx.add(Table::MarketTicks, n);
        }
    }
    let n = store.write_market_ticks(std::mem::take(&mut pending)).await?;
    cx.add(Table::MarketTicks, n);
    expected.insert(Table::MarketTicks, tick_keys.len() as u64);
    drop(tick_keys);

    // scalp_ticks and 1m bars from Track B samples.
    cx.bar.set_message("scalp");
    let mut bars_1m = BarBuilder::new(BarInterval::M1);
    let mut sample_keys: HashSet<u64> = HashSet::new();
    let mut pending: Vec<ScalpTickRow> = Vec::new();
    for path in &files.scalp {
        let mut rows_here = Vec::new();
        cx.read_lines(path, |cx, n, line| match serde_json::from_str::<Record<ScalpSample>>(line) {
            Ok(rec) => {
                if let Some(why) = implausible_sample(&rec) {
                    return cx.bad(path, n, why);
                }
                cx.line(Table::ScalpTicks);
                let row = ScalpTickRow::from_record(&rec);
                if row.event_time >= day_lo && row.event_time < day_hi {
                    sample_keys.insert(key_hash((row.symbol.as_str(), row.event_time, row.provider)));
                }
                bars_1m.push_sample(&row);
                rows_here.push(row);
            }
            Err(e) => cx.bad(path, n, e),
        })?;
        pending.extend(rows_here);
        while pending.len() >= batch {
            let rest = pending.split_off(batch);
            let n = store.write_scalp_ticks(std::mem::replace(&mut pending, rest)).await?;
            cx.add(Table::ScalpTicks, n);
        }
    }
    let n = store.write_scalp_ticks(std::mem::take(&mut pending)).await?;
    cx.add(Table::ScalpTicks, n);
    expected.insert(Table::ScalpTicks, sample_keys.len() as u64);
    drop(sample_keys);

    let in_day = |b: &Bar| b.bar_time >= day_lo && b.bar_time < day_hi;
    let mut skipped_bars = Vec::new();
    let m1: Vec<Bar> = bars_1m.finish(&mut skipped_bars).into_iter().filter(in_day).collect();
    let rollups =
        [(Table::Bars10m, BarInterval::M10), (Table::Bars1h, BarInterval::H1), (Table::Bars1d, BarInterval::D1)];
    for (table, size) in rollups {
        let r = rollup(&m1, size, &mut skipped_bars);
        expected.insert(table, r.len() as u64);
        *cx.lines.entry(table).or_default() += m1.len() as u64;
        for chunk in r.chunks(batch) {
            let n = store.write_bars(BarTable::Scalp(size), chunk.to_vec()).await?;
            cx.add(table, n);
        }
    }
    expected.insert(Table::Scalp1mBars, m1.len() as u64);
    *cx.lines.entry(Table::Scalp1mBars).or_default() += cx.lines.get(&Table::ScalpTicks).copied().unwrap_or(0);
    for chunk in m1.chunks(batch) {
        let n = store.write_bars(BarTable::Scalp(BarInterval::M1), chunk.to_vec()).await?;
        cx.add(Table::Scalp1mBars, n);
    }
    store.refresh_rollups(day).await?;

    // swing bars and end-of-day prices from Track A snapshots.
    cx.bar.set_message("swing");
    let mut swing = BarBuilder::new(BarInterval::M10);
    let mut snaps = Vec::new();
    for path in &files.swing {
        cx.read_lines(path, |cx, n, line| match serde_json::from_str::<Record<MarketEvent>>(line) {
            Ok(Record { body, meta })
                if meta.implausible().is_some() || body.number_beyond(PLAUSIBLE_ABS_MAX).is_some() =>
            {
                let why = meta.implausible().or_else(|| {
                    body.number_beyond(PLAUSIBLE_ABS_MAX).map(|(name, v)| format!("implausible {name} {v}"))
                });
                cx.bad(path, n, why.unwrap_or_default())
            }
            Ok(Record { body: MarketEvent::Snapshot(s), meta }) => {
                cx.line(Table::SwingBars10m);
                cx.line(Table::EodPrices);
                let m = RowMeta::from_meta(&meta);
                swing.push_snapshot(&s, meta.event_time, &m);
                snaps.push((meta.event_time, s, m));
            }
            Ok(_) => cx.bad(path, n, "not a snapshot"),
            Err(e) => cx.bad(path, n, e),
        })?;
    }
    let swing_bars: Vec<Bar> = swing.finish(&mut skipped_bars).into_iter().filter(in_day).collect();
    for why in skipped_bars {
        cx.report.bad_lines += 1;
        if cx.report.bad_line_samples.len() < MAX_BAD_LINES {
            cx.report.bad_line_samples.push(format!("bars: {why}"));
        }
    }
    expected.insert(Table::SwingBars10m, swing_bars.len() as u64);
    for chunk in swing_bars.chunks(batch) {
        let n = store.write_bars(BarTable::Swing10m, chunk.to_vec()).await?;
        cx.add(Table::SwingBars10m, n);
    }
    let eod = eod_rows(&snaps, day);
    expected.insert(Table::EodPrices, eod.len() as u64);
    let n = store.write_eod(eod).await?;
    cx.add(Table::EodPrices, n);
    drop(snaps);

    // system events and the gap markers among them.
    cx.bar.set_message("events");
    let (mut events, mut gaps) = (Vec::new(), Vec::new());
    for path in &files.events {
        let file_rel = rel(root, path);
        cx.read_lines(path, |cx, n, line| {
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => return cx.bad(path, n, e),
            };
            let meta = match serde_json::from_value::<model::Meta>(value.clone()) {
                Ok(m) => m,
                Err(e) => return cx.bad(path, n, format_args!("meta: {e}")),
            };
            if let Some(why) = meta.implausible() {
                return cx.bad(path, n, why);
            }
            let Some(provider) = path.parent().and_then(|p| p.file_name()).and_then(|p| p.to_str()?.parse().ok())
            else {
                return cx.bad(path, n, "file is not under system/events/{provider}");
            };
            let event_type = value.get("event_type").and_then(|v| v.as_str()).unwrap_or("unknown").to_string();
            let src = SrcRef { file: file_rel.clone(), line: n };
            let row_meta = RowMeta::from_meta(&meta);
            cx.line(Table::SystemEvents);
            if event_type == "gap_marker" {
                cx.line(Table::ScalpGaps);
                match serde_json::from_value::<SystemEvent>(value.clone()) {
                    Ok(SystemEvent::GapMarker { gap_start_ts, gap_end_ts, .. })
                        if !gap_start_ts.is_plausible() || !gap_end_ts.is_plausible() =>
                    {
                        cx.bad(path, n, format_args!("gap_marker: implausible span {gap_start_ts}..{gap_end_ts}"))
                    }
                    Ok(SystemEvent::GapMarker { gap_start_ts, gap_end_ts, gap_seconds, scope, reason, detail }) => gaps
                        .push(GapRow {
                            src: src.clone(),
                            provider,
                            gap_start_ts,
                            gap_end_ts,
                            gap_seconds,
                            scope,
                            reason,
                            detail,
                            meta: row_meta.clone(),
                        }),
                    Ok(_) => {}
                    Err(e) => cx.bad(path, n, format_args!("gap_marker: {e}")),
                }
            }
            events.push(EventRow {
                src,
                provider,
                event_time: meta.event_time,
                event_type,
                body: value,
                meta: row_meta,
            });
        })?;
    }
    expected.insert(Table::SystemEvents, events.len() as u64);
    expected.insert(Table::ScalpGaps, gaps.len() as u64);
    for chunk in events.chunks(batch) {
        let n = store.write_events(chunk.to_vec()).await?;
        cx.add(Table::SystemEvents, n);
    }
    for chunk in gaps.chunks(batch) {
        let n = store.write_gaps(chunk.to_vec()).await?;
        cx.add(Table::ScalpGaps, n);
    }

    cx.bar.set_message("overflow");
    let mut overflow = Vec::new();
    for path in &files.overflow {
        let file_rel = rel(root, path);
        cx.read_lines(path, |cx, n, line| match serde_json::from_str::<Record<OverflowEntry>>(line) {
            Ok(rec) if rec.meta.implausible().is_some() || !rec.body.timestamp.is_plausible() => {
                let why =
                    rec.meta.implausible().unwrap_or_else(|| format!("implausible timestamp {}", rec.body.timestamp));
                cx.bad(path, n, why)
            }
            Ok(rec) => {
                cx.line(Table::OverflowEntries);
                overflow.push(OverflowRow {
                    src: SrcRef { file: file_rel.clone(), line: n },
                    provider: rec.body.provider,
                    ts: rec.body.timestamp,
                    symbol: rec.body.symbol.to_string(),
                    candidate_score: rec.body.candidate_score,
                    cutoff_rank: rec.body.cutoff_rank,
                    decision_reason: rec.body.decision_reason,
                    meta: RowMeta::from_meta(&rec.meta),
                });
            }
            Err(e) => cx.bad(path, n, e),
        })?;
    }
    expected.insert(Table::OverflowEntries, overflow.len() as u64);
    for chunk in overflow.chunks(batch) {
        let n = store.write_overflow(chunk.to_vec()).await?;
        cx.add(Table::OverflowEntries, n);
    }

    let mut universe = Vec::new();
    let mut universe_keys = HashSet::new();
    for path in &files.universe {
        let bytes = std::fs::read(path).map_err(StoreError::io(path))?;
        cx.report.files += 1;
        match serde_json::from_slice::<UniverseIn>(&bytes) {
            Ok(u) => {
                for e in u.symbols {
                    cx.line(Table::Universe);
                    universe_keys.insert((u.market, u.provider, e.symbol.clone()));
                    universe.push(UniverseRow {
                        trade_date: day,
                        market: u.market,
                        provider: u.provider,
                        symbol: e.symbol,
                        name: e.name,
                        prev_close: e.prev_close,
                        source: u.source.clone(),
                    });
                }
            }
            Err(e) => cx.bad(path, 0, e),
        }
    }
    expected.insert(Table::Universe, universe_keys.len() as u64);
    for chunk in universe.chunks(batch) {
        let n = store.write_universe(chunk.to_vec()).await?;
        cx.add(Table::Universe, n);
    }
    cx.bar.finish_and_clear();

    // Reconcile.
    let timescale = store.mode() == Mode::Timescale;
    for table in Table::ALL {
        let in_db = store.count_day(table, day).await?;
        let exp = expected.get(&table).copied().unwrap_or(0);
        let aggregate = timescale && matches!(table, Table::Bars10m | Table::Bars1h | Table::Bars1d);
        cx.report.tables.push(TableReconcile {
            table,
            source_lines: cx.lines.get(&table).copied().unwrap_or(0),
            expected: exp,
            written: cx.written.get(&table).copied().unwrap_or(0),
            in_db,
            ok: aggregate || in_db == exp,
            note: aggregate.then(|| "continuous aggregate, refreshed by TimescaleDB".to_string()),
        });
    }
    let mut report = cx.report;
    report.ok = report.tables.iter().all(|t| t.ok);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The partition dates (`YYYYMMDD`) the archive has data for, from its manifests and folders.
pub fn archive_dates(root: &Path) -> Result<Vec<String>, StoreError> {
    let mut dates = std::collections::BTreeSet::new();
    for m in list_dir(&root.join("manifests"))? {
        if let Some(d) = m.file_stem().and_then(|s| s.to_str()).filter(|d| parse_day(d).is_ok()) {
            dates.insert(d.to_string());
        }
    }
    for p in list_dir(&root.join("raw"))? {
        for d in list_dir(&p)? {
            if let Some(d) = d.file_name().and_then(|s| s.to_str()).filter(|d| parse_day(d).is_ok()) {
                dates.insert(d.to_string());
            }
        }
    }
    Ok(dates.into_iter().collect())
}

/// Appends `report` as an `etl_reconcile` system event to its day's `system/events` file,
/// through the archive writer so the file's manifest entry stays right (`verify` passes).
/// The event goes to the first provider with data that day, as the collector does with
/// facts that belong to no provider, stamped inside the day (the last millisecond of a past
/// day) so it lands in that day's file; `receive_time` is when it was written. Returns the
/// file's archive path.
///
/// Refuses while a recording session is open or unfinished (`.session` present): the writer
/// of a running `collect` owns the archive, and after a crash the next `collect` must be the
/// one to find it and write the gap marker.
pub fn record_reconcile(
    root: &Path,
    cfg: &archive::ArchiveConfig,
    report: &EtlReport,
    now: UtcTime,
) -> Result<String, StoreError> {
    let day = parse_day(&report.date).map_err(StoreError::Invalid)?;
    let Some(&provider) = report.providers.first() else {
        return Err(StoreError::Invalid(format!(
            "the archive has no data for {}, so no system/events file to record the reconciliation in",
            report.date
        )));
    };
    if root.join(".session").exists() {
        return Err(StoreError::Invalid(format!(
            "{} has a recording session open or unfinished (.session): the reconciliation is not written \
             into the archive while collect runs, or before collect has recovered after a crash",
            root.display()
        )));
    }
    let (lo, hi) = day_range(day);
    let at = now.clamp(lo, hi.plus_millis(-1));
    let session = model::SessionId::starting_at(now);
    let rec = Record { body: report.to_event(), meta: model::Meta::new(at, now, session.clone()) };
    let line = serde_json::to_vec(&rec).map_err(|e| StoreError::Invalid(format!("encoding the event: {e}")))?;
    let (mut writer, _) = archive::ArchiveWriter::open(root, cfg, now, &session)?;
    let stream = archive::Stream::Events(provider);
    writer.append(stream, at, &line)?;
    writer.close_all(now)?;
    Ok(stream.partition(at, cfg.scalp_window).path)
}

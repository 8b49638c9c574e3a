//! The bookkeeping of one day's load, shared by every stream's loader: the report being
//! built (bad lines, files read), per table the source lines read, the rows expected and the
//! rows written, and the progress bar. Kept apart from the loaders so that each of them only
//! says what its stream means, and the counts the reconciliation compares are kept one way.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use jiff::civil::Date;

use model::UtcTime;

use super::files::{Files, rel};
use super::{EtlOptions, EtlReport};
use crate::backend::Mode;
use crate::error::StoreError;
use crate::rows::{Table, day_range};

/// First bad lines quoted in a report; the rest are counted.
const MAX_BAD_LINES: usize = 20;

pub(super) struct DayLoad<'a> {
    pub(super) root: &'a Path,
    /// The archive partition date being loaded.
    pub(super) day: Date,
    /// Its Seoul day `[day_lo, day_hi)`.
    pub(super) day_lo: UtcTime,
    pub(super) day_hi: UtcTime,
    /// Rows per write.
    pub(super) batch: usize,
    pub(super) bar: indicatif::ProgressBar,
    pub(super) report: EtlReport,
    pub(super) written: BTreeMap<Table, u64>,
    pub(super) lines: BTreeMap<Table, u64>,
    /// Distinct rows the archive implies for the day, per table.
    pub(super) expected: BTreeMap<Table, u64>,
    /// Bars the bar builders left out, with why; reported as bad lines once the last bars
    /// (swing) are built, after the lines of every file they were built from.
    pub(super) skipped_bars: Vec<String>,
}

impl<'a> DayLoad<'a> {
    /// An empty load of `day` from `files` under `root`, with a progress bar over the bytes
    /// of the line files when `opts.progress` asks for one.
    pub(super) fn new(root: &'a Path, day: Date, opts: &EtlOptions, mode: Mode, files: &Files) -> Self {
        let total: u64 = [&files.raw, &files.scalp, &files.swing, &files.events, &files.overflow]
            .iter()
            .flat_map(|v| v.iter())
            // A compressed file counts its compressed size: the bar runs ahead on such days.
            .filter_map(|p| std::fs::metadata(p).or_else(|_| std::fs::metadata(archive::compressed_path(p))).ok())
            .map(|m| m.len())
            .sum();
        let (day_lo, day_hi) = day_range(day);
        DayLoad {
            root,
            day,
            day_lo,
            day_hi,
            batch: opts.batch_rows.max(1),
            bar: progress_bar(opts.progress, total),
            report: EtlReport {
                date: opts.date.clone(),
                mode,
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
            expected: BTreeMap::new(),
            skipped_bars: Vec::new(),
        }
    }

    /// Counts a line that cannot be loaded, quoting the first few with their place.
    pub(super) fn bad(&mut self, path: &Path, line: u64, why: impl std::fmt::Display) {
        self.report.bad_lines += 1;
        if self.report.bad_line_samples.len() < MAX_BAD_LINES {
            self.report.bad_line_samples.push(format!("{}:{line}: {why}", rel(self.root, path)));
        }
    }

    /// Counts the bars the builders skipped as bad lines (see `skipped_bars`).
    pub(super) fn report_skipped_bars(&mut self) {
        for why in std::mem::take(&mut self.skipped_bars) {
            self.report.bad_lines += 1;
            if self.report.bad_line_samples.len() < MAX_BAD_LINES {
                self.report.bad_line_samples.push(format!("bars: {why}"));
            }
        }
    }

    /// Adds rows a write reported new or changed.
    pub(super) fn add(&mut self, t: Table, written: u64) {
        *self.written.entry(t).or_default() += written;
    }

    /// Counts one source line (or parsed event) read for `t`.
    pub(super) fn line(&mut self, t: Table) {
        self.add_lines(t, 1);
    }

    pub(super) fn add_lines(&mut self, t: Table, n: u64) {
        *self.lines.entry(t).or_default() += n;
    }

    /// Records how many distinct rows of `t` the archive implies for the day.
    pub(super) fn expect(&mut self, t: Table, rows: u64) {
        self.expected.insert(t, rows);
    }

    /// Calls `each` with every complete line of `path` (1-based numbers), stored plain or
    /// compressed. A trailing partial line is a write in flight (or torn by a crash and cut
    /// at the next start): skipped.
    pub(super) fn read_lines(
        &mut self,
        path: &Path,
        mut each: impl FnMut(&mut Self, u64, &str),
    ) -> Result<(), StoreError> {
        let mut r = archive::open_lines(path).map_err(StoreError::io(path))?;
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

/// The bar `etl` draws on stderr (hidden anyway when stderr is not a terminal), or a hidden
/// one.
fn progress_bar(show: bool, total_bytes: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::with_draw_target(Some(total_bytes), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "etl {msg:12} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b
}

/// A row's natural key, hashed: the distinct keys of a day are counted without keeping them.
pub(super) fn key_hash(h: impl Hash) -> u64 {
    let mut s = std::collections::hash_map::DefaultHasher::new();
    h.hash(&mut s);
    s.finish()
}

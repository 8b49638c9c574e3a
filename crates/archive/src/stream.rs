use std::path::{Path, PathBuf};

use model::settings::Interval;
use model::time::KST_OFFSET_MS;
use model::{Market, Provider, UtcTime};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// One append-only sequence of records; each maps to one open file at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Raw(Provider),
    Swing(Provider, Market),
    Scalp(Provider, Market),
    Events(Provider),
    Overflow(Provider),
    /// Backups, receipts, compression and retention: the data dir's own life, not a
    /// provider's (`system/lifecycle/YYYYMMDD.jsonl`).
    Lifecycle,
}

/// Where a record received at some instant goes: a file (relative to the data dir, `/`
/// separators) covering the window `[start, end)`, listed in `manifests/{date}.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub path: String,
    pub start: UtcTime,
    pub end: UtcTime,
    pub date: String,
}

impl Stream {
    /// The partition containing `at`. Windows are aligned to the Seoul day, so a scalp
    /// window that divides the hour yields `HH_MM_SS` names on the window grid.
    pub fn partition(self, at: UtcTime, scalp_window: Interval) -> Partition {
        let local = at.as_millis() + KST_OFFSET_MS;
        let day_start = local.div_euclid(DAY_MS) * DAY_MS;
        let window = match self {
            Stream::Raw(_) | Stream::Swing(..) => HOUR_MS,
            // Validation guarantees 1s..=1h; clamping keeps a bad value from producing
            // thousands of files or a division by zero.
            Stream::Scalp(..) => (scalp_window.as_millis() as i64).clamp(1_000, HOUR_MS),
            Stream::Events(_) | Stream::Overflow(_) | Stream::Lifecycle => DAY_MS,
        };
        let start_local = day_start + (local - day_start) / window * window;
        let end_local = (start_local + window).min(day_start + DAY_MS);
        let start = UtcTime::from_millis(start_local - KST_OFFSET_MS);
        let end = UtcTime::from_millis(end_local - KST_OFFSET_MS);
        let date = start.kst_yyyymmdd();
        let t = start.kst();
        let (h, m, s) = (t.hour(), t.minute(), t.second());
        let path = match self {
            Stream::Raw(p) => raw_path(p, start),
            Stream::Swing(p, mk) => format!("swing/{p}/{mk}/{date}/{h:02}_00.jsonl"),
            Stream::Scalp(p, mk) => {
                format!("scalp/{p}/{mk}/{date}/{h:02}_{m:02}_{s:02}.jsonl")
            }
            Stream::Events(p) => format!("system/events/{p}/{date}.jsonl"),
            Stream::Overflow(p) => format!("system/overflow/{p}/{date}_overflow.jsonl"),
            Stream::Lifecycle => format!("system/lifecycle/{date}.jsonl"),
        };
        Partition { path, start, end, date }
    }

    /// The provider whose records the stream holds; `None` for the data dir's own.
    pub fn provider(self) -> Option<Provider> {
        match self {
            Stream::Raw(p) | Stream::Swing(p, _) | Stream::Scalp(p, _) | Stream::Events(p) | Stream::Overflow(p) => {
                Some(p)
            }
            Stream::Lifecycle => None,
        }
    }

    /// Dense index for the writer's slot table: a plain array index is cheaper on the hot
    /// path than hashing the key.
    pub(crate) fn slot(self) -> usize {
        let np = Provider::ALL.len();
        let nm = Market::ALL.len();
        match self {
            Stream::Raw(p) => p as usize,
            Stream::Swing(p, m) => np + p as usize * nm + m as usize,
            Stream::Scalp(p, m) => np + np * nm + p as usize * nm + m as usize,
            Stream::Events(p) => np + 2 * np * nm + p as usize,
            Stream::Overflow(p) => 2 * np + 2 * np * nm + p as usize,
            Stream::Lifecycle => 3 * np + 2 * np * nm,
        }
    }

    pub(crate) fn slot_count() -> usize {
        let np = Provider::ALL.len();
        3 * np + 2 * np * Market::ALL.len() + 1
    }
}

/// `raw/{provider}/YYYYMMDD/HH.jsonl`: the raw file holding what `provider` sent at `at`
/// (Seoul date and hour). The one place the raw layout is spelled; `raw_ref`s name it too.
pub fn raw_path(provider: Provider, at: UtcTime) -> String {
    format!("raw/{provider}/{}/{:02}.jsonl", at.kst_yyyymmdd(), at.kst().hour())
}

/// The compressed form's name is the plain name plus this.
pub const ZSTD_SUFFIX: &str = ".zst";

/// `X.jsonl` → `X.jsonl.zst`.
pub fn compressed_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ZSTD_SUFFIX);
    PathBuf::from(s)
}

/// The name an archive line file is known by (its manifest key, the file `raw_ref`s name):
/// `X.jsonl` for `X.jsonl` and for `X.jsonl.zst`; `None` for any other file.
pub fn logical_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".jsonl") {
        return Some(path.to_path_buf());
    }
    let plain = name.strip_suffix(ZSTD_SUFFIX).filter(|n| n.ends_with(".jsonl"))?;
    Some(path.with_file_name(plain))
}

/// The archive line files among `paths` (a folder's listing, say), each once by its
/// [`logical_path`] however many forms of it are on disk; sorted, so hourly files come in
/// hour order whichever are compressed. Open each with [`open_lines`](crate::open_lines).
pub fn logical_files(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = paths.into_iter().filter_map(|p| logical_path(&p)).collect();
    out.sort();
    out.dedup();
    out
}

/// The partition date (`YYYYMMDD`) of an archive file (plain or compressed), from its
/// relative path; `None` for anything that does not follow the layout.
pub(crate) fn partition_date(rel: &str) -> Option<&str> {
    let rel = rel.strip_suffix(ZSTD_SUFFIX).unwrap_or(rel);
    let parts: Vec<&str> = rel.split('/').collect();
    let date = match parts.as_slice() {
        ["raw", _, d, f] if f.ends_with(".jsonl") => *d,
        ["swing" | "scalp", _, _, d, f] if f.ends_with(".jsonl") => *d,
        ["system", "events", _, f] => f.strip_suffix(".jsonl")?,
        ["system", "overflow", _, f] => f.strip_suffix("_overflow.jsonl")?,
        ["system", "lifecycle", f] => f.strip_suffix(".jsonl")?,
        _ => return None,
    };
    (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())).then_some(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_dense_and_distinct() {
        let mut all = vec![Stream::Lifecycle];
        for &p in Provider::ALL {
            all.push(Stream::Raw(p));
            all.push(Stream::Events(p));
            all.push(Stream::Overflow(p));
            for &m in Market::ALL {
                all.push(Stream::Swing(p, m));
                all.push(Stream::Scalp(p, m));
            }
        }
        let mut slots: Vec<usize> = all.iter().map(|s| s.slot()).collect();
        slots.sort();
        assert_eq!(slots, (0..Stream::slot_count()).collect::<Vec<_>>());
    }

    #[test]
    fn compressed_names() {
        let p = Path::new("raw/kis/20260114/09.jsonl");
        assert_eq!(compressed_path(p), Path::new("raw/kis/20260114/09.jsonl.zst"));
        assert_eq!(logical_path(&compressed_path(p)).as_deref(), Some(p));
        assert_eq!(logical_path(p).as_deref(), Some(p));
        assert_eq!(logical_path(Path::new("a/09.jsonl.zst.tmp")), None);
        assert_eq!(logical_path(Path::new("a/x.zst")), None);
        let files = logical_files(
            ["b/10.jsonl", "b/09.jsonl.zst", "b/09.jsonl", "b/x.json", "b/11.jsonl.zst"].map(PathBuf::from),
        );
        assert_eq!(files, ["b/09.jsonl", "b/10.jsonl", "b/11.jsonl"].map(PathBuf::from));
    }

    #[test]
    fn partition_dates_follow_the_layout() {
        let w: Interval = "5m".parse().unwrap();
        let t = UtcTime::parse("2026-01-14T00:34:59.999Z").unwrap();
        for s in [
            Stream::Raw(Provider::Sim),
            Stream::Swing(Provider::Kis, Market::KrStocks),
            Stream::Scalp(Provider::Upbit, Market::Crypto),
            Stream::Events(Provider::Alpaca),
            Stream::Overflow(Provider::Kiwoom),
            Stream::Lifecycle,
        ] {
            let p = s.partition(t, w);
            assert_eq!(partition_date(&p.path), Some("20260114"), "{}", p.path);
            assert!(p.start <= t && t < p.end);
        }
        assert_eq!(partition_date("raw/sim/20260114/09.jsonl.zst"), Some("20260114"));
        assert_eq!(partition_date("system/overflow/sim/20260114_overflow.jsonl.zst"), Some("20260114"));
        assert_eq!(partition_date("raw/sim/20260114/09.jsonl.zst.tmp"), None);
        assert_eq!(partition_date("raw/sim/2026011/09.jsonl"), None);
        assert_eq!(partition_date("other/x.jsonl"), None);
    }
}

//! Offline (or live, read-only) consistency check of an archive against its manifests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader};
use std::path::Path;

use model::meta::REQUIRED_META_FIELDS;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

use crate::compress::Hashing;
use crate::manifest::{Manifest, ManifestEntry};
use crate::stream::{ZSTD_SUFFIX, partition_date};
use crate::{ArchiveError, fsutil};

/// Line-level problems reported per file before the rest are summarised; a file of
/// garbage should not produce a million-line report.
const MAX_LINE_PROBLEMS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Archive files read.
    pub files: u64,
    /// Complete lines read.
    pub lines: u64,
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    /// Relative to the data dir, `/` separators.
    pub file: String,
    /// 1-based.
    pub line: Option<u64>,
    pub what: String,
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "{}:{}: {}", self.file, n, self.what),
            None => write!(f, "{}: {}", self.file, self.what),
        }
    }
}

/// Checks every archive file (of partition date `date`, if given) against its manifest
/// and checks every line's shape. Safe to run while a collector writes: it only reads, and
/// files the collector has open are judged by their complete lines only.
///
/// A compressed file is checked twice over: its decompressed lines and bytes against the
/// original's entry, and the `.zst` bytes against the entry's `zstd`. Each file is read in
/// one form: the one its entry records (the other is a leftover of an interrupted
/// compression, which the next run removes). Problems name the file as it is (or should be)
/// on disk, `X.jsonl` or `X.jsonl.zst`.
pub fn verify(root: &Path, date: Option<&str>) -> Result<VerifyReport, ArchiveError> {
    // A mistyped data dir must not pass as an empty, healthy archive.
    std::fs::read_dir(root).map_err(ArchiveError::io(root))?;
    let live = collector_running(root)?;
    let manifests: BTreeMap<String, Manifest> = match date {
        Some(d) => [(d.to_string(), Manifest::load(root, d)?)].into(),
        None => Manifest::load_all(root)?,
    };
    let listed: HashMap<&str, &ManifestEntry> =
        manifests.values().flat_map(|m| m.files.iter().map(|(k, v)| (k.as_str(), v))).collect();

    // The forms each file is on disk in, by its manifest name.
    let mut on_disk: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for path in fsutil::archive_files(root)? {
        let real = fsutil::rel_string(root, &path);
        match real.strip_suffix(ZSTD_SUFFIX) {
            Some(name) => on_disk.entry(name.to_string()).or_default().1 = true,
            None => on_disk.entry(real).or_default().0 = true,
        }
    }

    let mut report = VerifyReport::default();
    for (rel, &(plain, zst)) in &on_disk {
        let pdate = partition_date(rel);
        if date.is_some() && pdate != date {
            continue;
        }
        let entry = listed.get(rel.as_str()).copied();
        let recorded = entry.is_some_and(|e| e.zstd.is_some());
        let path = root.join(rel);
        if zst && (!plain || recorded) {
            check_compressed_file(root, rel, pdate, entry, &mut report)?;
            continue;
        }
        if pdate.is_none() {
            report.problems.push(problem(rel, None, "not part of the archive layout"));
        } else if entry.is_none() && !live {
            report.problems.push(problem(
                rel,
                None,
                "unclosed file; a collector crashed here? run `stock-observer collect` on this \
                 data dir to recover",
            ));
        }
        if recorded {
            report.problems.push(problem(
                &format!("{rel}{ZSTD_SUFFIX}"),
                None,
                "missing file (the manifest records the file as compressed)",
            ));
        }
        match File::open(&path) {
            Ok(f) => {
                let mut reader = BufReader::with_capacity(1 << 20, f);
                let open = live && entry.is_none();
                let seen = check_lines(&mut reader, rel, open, &mut report).map_err(ArchiveError::io(&path))?;
                check_original(rel, "", &seen, entry, &mut report);
            }
            // Compressed since the listing: its plain form is gone, the `.zst` is there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && zst => {
                check_compressed_file(root, rel, pdate, entry, &mut report)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.problems.push(problem(rel, None, "missing file (removed while verify ran?)"));
            }
            Err(e) => return Err(ArchiveError::io(&path)(e)),
        }
    }
    for (rel, e) in listed.iter().filter(|(rel, _)| !on_disk.contains_key(**rel)) {
        let name = if e.zstd.is_some() { format!("{rel}{ZSTD_SUFFIX}") } else { rel.to_string() };
        report.problems.push(problem(&name, None, "missing file (listed in manifest)"));
    }
    report.problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(report)
}

/// Checks `rel`'s compressed form. An entry read before the file was compressed does not
/// record it yet, so that day's manifest is read again before calling the form unrecorded.
fn check_compressed_file(
    root: &Path,
    rel: &str,
    pdate: Option<&str>,
    entry: Option<&ManifestEntry>,
    report: &mut VerifyReport,
) -> Result<(), ArchiveError> {
    let shown = format!("{rel}{ZSTD_SUFFIX}");
    let fresh;
    let entry = match (entry, pdate) {
        (Some(e), _) if e.zstd.is_some() => Some(e),
        (_, Some(d)) => {
            fresh = Manifest::load(root, d)?.files.remove(rel);
            fresh.as_ref().or(entry)
        }
        (_, None) => entry,
    };
    match entry {
        _ if pdate.is_none() => report.problems.push(problem(&shown, None, "not part of the archive layout")),
        None => report.problems.push(problem(&shown, None, "compressed file not listed in any manifest")),
        Some(e) if e.zstd.is_none() => {
            report.problems.push(problem(&shown, None, "compressed file not recorded in its manifest entry"))
        }
        Some(_) => {}
    }
    let path = root.join(&shown);
    let f = match File::open(&path) {
        Ok(f) => f,
        // Gone since the listing (retention, or a reopened file restored): nothing to check.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.problems.push(problem(&shown, None, "missing file (removed while verify ran?)"));
            return Ok(());
        }
        Err(e) => return Err(ArchiveError::io(&path)(e)),
    };
    let decoder = zstd::Decoder::new(Hashing::new(f)).map_err(ArchiveError::io(&path))?;
    let mut reader = BufReader::with_capacity(1 << 20, decoder);
    match check_lines(&mut reader, &shown, false, report) {
        Ok(seen) => check_original(&shown, "decompressed ", &seen, entry, report),
        Err(e) => report.problems.push(problem(&shown, None, format!("cannot be decompressed ({e})"))),
    }
    // The rest of the compressed bytes (all of them if decoding stopped early) for its
    // checksum.
    let mut rest = reader.into_inner().finish();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(ArchiveError::io(&path))?;
    let (_, stored) = rest.into_inner().finish();
    if let Some(z) = entry.and_then(|e| e.zstd.as_ref()) {
        if stored.size != z.size {
            report.problems.push(problem(&shown, None, format!("size {} != manifest {}", stored.size, z.size)));
        }
        if !stored.sha256.eq_ignore_ascii_case(&z.sha256) {
            report.problems.push(problem(
                &shown,
                None,
                format!("sha256 mismatch (file {}, manifest {})", stored.sha256, z.sha256),
            ));
        }
    }
    Ok(())
}

fn problem(file: &str, line: Option<u64>, what: impl Into<String>) -> VerifyProblem {
    VerifyProblem { file: file.to_string(), line, what: what.into() }
}

/// Whether a collector holds the data-dir lock right now. Never creates or changes anything.
pub fn collector_running(root: &Path) -> Result<bool, ArchiveError> {
    let path = root.join(".lock");
    // Read-only and never created: verify must not change the data dir.
    let f = match OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(ArchiveError::io(&path)(e)),
    };
    match f.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(ArchiveError::io(&path)(e)),
    }
}

/// Size, line count and sha256 of a file's (original) bytes.
struct Seen {
    size: u64,
    lines: u64,
    sha256: String,
}

/// Reads every line of `reader`, reporting bad ones against `rel`. `open` is set for a
/// file a running collector is still appending to: its trailing partial line is in flight,
/// not torn.
fn check_lines(reader: &mut impl BufRead, rel: &str, open: bool, report: &mut VerifyReport) -> std::io::Result<Seen> {
    let mut hasher = Sha256::new();
    let (mut size, mut lines, mut line_problems) = (0u64, 0u64, 0usize);
    let mut buf = Vec::new();
    report.files += 1;
    loop {
        let read = crate::lines::read_line(reader, &mut buf, crate::lines::MAX_LINE_BYTES, |b| hasher.update(b));
        let Some(read) = read? else { break };
        size += read.bytes;
        if read.end == crate::lines::LineEnd::Eof {
            if !open {
                report.problems.push(problem(rel, Some(lines + 1), "incomplete last line (no newline; torn write?)"));
            }
            break;
        }
        lines += 1;
        let what = if read.too_long {
            Some(format!("line of {} bytes, longer than {}", read.bytes, crate::lines::MAX_LINE_BYTES))
        } else {
            check_line(&buf)
        };
        if let Some(what) = what {
            line_problems += 1;
            if line_problems <= MAX_LINE_PROBLEMS {
                report.problems.push(problem(rel, Some(lines), what));
            }
        }
    }
    report.lines += lines;
    if line_problems > MAX_LINE_PROBLEMS {
        report.problems.push(problem(
            rel,
            None,
            format!("{} more bad lines not listed", line_problems - MAX_LINE_PROBLEMS),
        ));
    }
    Ok(Seen { size, lines, sha256: hex::encode(hasher.finalize()) })
}

/// Compares what was read with the entry's original size, lines and sha256; `what` says
/// which bytes they are ("decompressed " for a compressed file).
fn check_original(rel: &str, what: &str, seen: &Seen, entry: Option<&ManifestEntry>, report: &mut VerifyReport) {
    let Some(e) = entry else { return };
    let Seen { size, lines, sha256 } = seen;
    if *size != e.size {
        let hint = if *size < e.size { "truncated?" } else { "appended to after it was closed?" };
        report.problems.push(problem(rel, None, format!("{what}size {size} != manifest {} ({hint})", e.size)));
    } else if *lines != e.lines {
        report.problems.push(problem(rel, None, format!("{what}lines {lines} != manifest {}", e.lines)));
    }
    if !sha256.eq_ignore_ascii_case(&e.sha256) {
        report.problems.push(problem(
            rel,
            None,
            format!("{what}sha256 mismatch (file {sha256}, manifest {})", e.sha256),
        ));
    }
}

fn check_line(content: &[u8]) -> Option<String> {
    match serde_json::from_slice::<LineCheck>(content) {
        Ok(line) => {
            let missing: Vec<&str> = REQUIRED_META_FIELDS
                .iter()
                .enumerate()
                .filter(|(i, _)| line.present & (1 << i) == 0)
                .map(|(_, k)| *k)
                .collect();
            if !missing.is_empty() {
                return Some(format!("missing meta field(s) {}", missing.join(", ")));
            }
            line.bad_time
        }
        Err(e) if e.is_data() => Some("not a JSON object".to_string()),
        // One document per line, so serde_json's "line 1" carries no information.
        Err(e) => Some(format!("not JSON ({})", e.to_string().replace(" at line 1 column ", " at column "))),
    }
}

/// What `check_line` learns from one pass over a line: which meta fields are present (bit i
/// for `REQUIRED_META_FIELDS[i]`), and the first event or receive time that is not an
/// RFC 3339 instant inside the archive's domain (`model::time::PLAUSIBLE_TIMES`): a line
/// with `receive_time` 9999-12-31T20:00:00.000Z is damaged, and `replay` and `etl` refuse it
/// too (issue 14).
struct LineCheck {
    present: u32,
    bad_time: Option<String>,
}

impl<'de> serde::Deserialize<'de> for LineCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LineCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<LineCheck, A::Error> {
                let mut out = LineCheck { present: 0, bad_time: None };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let idx = REQUIRED_META_FIELDS.iter().position(|k| *k == key);
                    if let Some(i) = idx {
                        out.present |= 1 << i;
                    }
                    if key == "event_time" || key == "receive_time" {
                        let v = map.next_value::<serde_json::Value>()?;
                        if out.bad_time.is_none() {
                            out.bad_time = time_problem(&key, &v);
                        }
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

fn time_problem(key: &str, v: &serde_json::Value) -> Option<String> {
    let Some(text) = v.as_str() else { return Some(format!("{key} is not a string")) };
    match model::UtcTime::parse(text) {
        Ok(t) if t.is_plausible() => None,
        Ok(_) => {
            let d = model::time::PLAUSIBLE_TIMES;
            Some(format!("implausible {key} {text} (outside {}..{})", d.start, d.end))
        }
        Err(_) => Some(format!("{key} {text:?} is not an RFC 3339 time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINE: &str = r#"{"provider":"kis","kind":"open","channel":"ws","seq":1,"frame":"{}","schema_version":"1.0","event_time":"2026-01-14T01:00:05.617Z","receive_time":"2026-01-14T01:00:05.617Z","session_id":"sess_20260114_100000","mitigation_level":0,"quality_flag":"normal"}"#;

    #[test]
    fn times_outside_the_archive_domain_are_bad_lines() {
        assert_eq!(check_line(LINE.as_bytes()), None);
        let far = LINE.replacen("2026-01-14T01:00:05.617Z", "9999-12-31T20:00:00.000Z", 1);
        assert!(check_line(far.as_bytes()).unwrap().contains("implausible event_time 9999-12-31T20:00:00.000Z"));
        let bad = LINE.replacen("\"2026-01-14T01:00:05.617Z\"", "5", 1);
        assert_eq!(check_line(bad.as_bytes()).unwrap(), "event_time is not a string");
        let text = LINE.replacen("2026-01-14T01:00:05.617Z", "yesterday", 1);
        assert!(check_line(text.as_bytes()).unwrap().contains("not an RFC 3339 time"));
        assert_eq!(check_line(b"[1,2,3,4,5,6]").unwrap(), "not a JSON object");
        assert!(check_line(b"{}").unwrap().starts_with("missing meta field(s) schema_version, event_time"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Fuzzing verify's line check with random bytes and damaged real lines.
        #[test]
        fn the_line_check_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..400,
            junk in "[\\[\\]{}\",:0-9eE.+TZ-]{0,12}",
        ) {
            let _ = check_line(&bytes);
            let at = cut.min(LINE.len());
            let _ = check_line(format!("{}{junk}{}", &LINE[..at], &LINE[at..]).as_bytes());
            let _ = check_line(&LINE.as_bytes()[..at]);
        }
    }
}

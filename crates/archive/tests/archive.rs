mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;

use common::*;
use model::{Market, Provider, SessionId};
use so_archive::{ArchiveError, ArchiveWriter, Stream, verify};

const SIM: Provider = Provider::Sim;
const KR: Market = Market::KrStocks;

#[test]
fn hourly_rotation_boundary_for_raw_and_swing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let before = kst("2026-01-14T09:59:59.999");
    let after = kst("2026-01-14T10:00:00.000");
    for s in [Stream::Raw(SIM), Stream::Swing(SIM, KR)] {
        w.append(s, before, &line(before, 1)).unwrap();
    }
    assert_eq!(w.open_files(), 2);
    assert!(manifest(root, "20260114").files.is_empty());
    for s in [Stream::Raw(SIM), Stream::Swing(SIM, KR)] {
        w.append(s, after, &line(after, 2)).unwrap();
    }
    // Rotation closed the 09 files and listed them.
    let m = manifest(root, "20260114");
    assert_eq!(
        m.files.keys().collect::<Vec<_>>(),
        ["raw/sim/20260114/09.jsonl", "swing/sim/kr_stocks/20260114/09_00.jsonl"]
    );
    assert_eq!(m.files["raw/sim/20260114/09.jsonl"].closed_at, after);
    assert_eq!(w.files_closed(), 2);
    w.close_all(kst("2026-01-14T10:30:00.000")).unwrap();
    for rel in [
        "raw/sim/20260114/09.jsonl",
        "raw/sim/20260114/10.jsonl",
        "swing/sim/kr_stocks/20260114/09_00.jsonl",
        "swing/sim/kr_stocks/20260114/10_00.jsonl",
    ] {
        assert_eq!(count_lines(root, rel), 1, "{rel}");
    }
    assert!(fs::read_to_string(root.join("raw/sim/20260114/10.jsonl")).unwrap().contains("\"n\":2"));
    assert!(verify(root, None).unwrap().ok());
}

#[test]
fn scalp_rotates_on_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let s = Stream::Scalp(Provider::Kis, KR);
    let a = kst("2026-01-14T09:34:59.999");
    let b = kst("2026-01-14T09:35:00.000");
    w.append(s, a, &line(a, 1)).unwrap();
    w.append(s, b, &line(b, 2)).unwrap();
    let m = manifest(root, "20260114");
    assert!(m.files.contains_key("scalp/kis/kr_stocks/20260114/09_30_00.jsonl"));
    w.close_all(b).unwrap();
    assert_eq!(count_lines(root, "scalp/kis/kr_stocks/20260114/09_30_00.jsonl"), 1);
    assert_eq!(count_lines(root, "scalp/kis/kr_stocks/20260114/09_35_00.jsonl"), 1);
}

#[test]
fn system_files_rotate_at_seoul_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (mut w, _) = open(root, kst("2026-01-14T23:00:00.000"));
    let a = kst("2026-01-14T23:59:59.999");
    // 00:00 KST is 15:00 UTC of the previous UTC day: the partition must follow Seoul.
    let b = kst("2026-01-15T00:00:00.000");
    for s in [Stream::Events(SIM), Stream::Overflow(SIM)] {
        w.append(s, a, &line(a, 1)).unwrap();
        w.append(s, b, &line(b, 2)).unwrap();
    }
    let m = manifest(root, "20260114");
    assert_eq!(
        m.files.keys().collect::<Vec<_>>(),
        ["system/events/sim/20260114.jsonl", "system/overflow/sim/20260114_overflow.jsonl"]
    );
    w.close_all(b).unwrap();
    let m = manifest(root, "20260115");
    assert!(m.files.contains_key("system/events/sim/20260115.jsonl"));
    assert!(m.files.contains_key("system/overflow/sim/20260115_overflow.jsonl"));
}

#[test]
fn close_expired_closes_at_window_end_without_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let t = kst("2026-01-14T09:10:00.000");
    w.append(Stream::Raw(SIM), t, &line(t, 1)).unwrap();
    w.append(Stream::Scalp(SIM, KR), t, &line(t, 1)).unwrap();
    w.append(Stream::Events(SIM), t, &line(t, 1)).unwrap();
    assert_eq!(w.close_expired(kst("2026-01-14T09:14:59.999")).unwrap(), 0);
    assert_eq!(w.close_expired(kst("2026-01-14T09:15:00.000")).unwrap(), 1);
    assert!(manifest(root, "20260114").files.contains_key("scalp/sim/kr_stocks/20260114/09_10_00.jsonl"));
    let at_hour = kst("2026-01-14T10:00:00.000");
    assert_eq!(w.close_expired(at_hour).unwrap(), 1);
    let m = manifest(root, "20260114");
    assert_eq!(m.files["raw/sim/20260114/09.jsonl"].closed_at, at_hour);
    assert_eq!(w.open_files(), 1, "the daily events file stays open");
    w.close_all(at_hour).unwrap();
}

#[test]
fn manifest_checksums_and_line_counts_match_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A small buffer so files are written in several flushes.
    let cfg = so_archive::ArchiveConfig { buffer_bytes: 4096, ..cfg() };
    let (mut w, _) = open_with(root, &cfg, kst("2026-01-14T09:00:00.000"));
    let start = kst("2026-01-14T09:00:00.000");
    for i in 0..5_000u64 {
        let t = start.plus_millis(i as i64 * 1_000);
        w.append(Stream::Swing(SIM, KR), t, &line(t, i)).unwrap();
        w.append(Stream::Scalp(SIM, KR), t, &line(t, i)).unwrap();
        if i % 777 == 0 {
            w.sync().unwrap();
        }
    }
    assert_eq!(w.lines_written(), 10_000);
    let summary = w.close_all(start.plus_millis(5_000_000)).unwrap();
    assert_eq!(summary.lines_written, 10_000);
    let m = manifest(root, "20260114");
    let total: u64 = m.files.values().map(|e| e.lines).sum();
    assert_eq!(total, 10_000);
    // 5000 s = 1h23m20s: two swing hours and 17 five-minute scalp files.
    assert_eq!(m.files.len(), 2 + 17);
    assert_eq!(assert_manifests_match_files(root), 19);
    let e = &m.files["swing/sim/kr_stocks/20260114/09_00.jsonl"];
    assert_eq!(e.lines, 3_600);
    let report = verify(root, Some("20260114")).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.lines, 10_000);
    assert_eq!(report.files, 19);
}

/// A closed archive with one swing and one scalp file; returns the swing path.
fn clean_archive(root: &std::path::Path) -> String {
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    for i in 0..50u64 {
        let t = kst("2026-01-14T09:30:00.000").plus_millis(i as i64 * 100);
        w.append(Stream::Swing(SIM, KR), t, &line(t, i)).unwrap();
        w.append(Stream::Scalp(SIM, KR), t, &line(t, i)).unwrap();
    }
    w.close_all(kst("2026-01-14T09:31:00.000")).unwrap();
    let report = verify(root, None).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.files, report.lines), (2, 100));
    "swing/sim/kr_stocks/20260114/09_00.jsonl".to_string()
}

fn problems(root: &std::path::Path) -> Vec<String> {
    let report = verify(root, None).unwrap();
    assert!(!report.ok());
    report.problems.iter().map(|p| p.to_string()).collect()
}

#[test]
fn verify_catches_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rel = clean_archive(root);
    let path = root.join(&rel);
    let mut bytes = fs::read(&path).unwrap();
    let original = bytes.clone();
    // Inside the value of "n" on line 1: still JSON, different content.
    let pos = bytes.windows(5).position(|w| w == b"\"n\":0").unwrap() + 4;
    bytes[pos] = b'7';
    fs::write(&path, &bytes).unwrap();
    let p = problems(root);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with(&format!("{rel}: sha256 mismatch")), "{p:?}");

    // At the opening brace of line 17: now the line is not JSON either.
    let mut bytes = original;
    let pos = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(15).unwrap().0 + 1;
    bytes[pos] = b'x';
    fs::write(&path, &bytes).unwrap();
    let p = problems(root);
    assert!(p.iter().any(|p| p.starts_with(&format!("{rel}: sha256 mismatch"))), "{p:?}");
    assert!(p.contains(&format!("{rel}:17: not JSON (expected value at column 1)")), "{p:?}");
}

#[test]
fn verify_catches_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rel = clean_archive(root);
    let path = root.join(&rel);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 10).unwrap();
    let p = problems(root);
    assert!(p.contains(&format!("{rel}: size {} != manifest {len} (truncated?)", len - 10)), "{p:?}");
    assert!(p.iter().any(|p| p.contains("incomplete last line")), "{p:?}");
}

#[test]
fn verify_refuses_a_missing_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify(&dir.path().join("nope"), None).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn verify_catches_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rel = clean_archive(root);
    fs::remove_file(root.join(&rel)).unwrap();
    let p = problems(root);
    assert_eq!(p, [format!("{rel}: missing file (listed in manifest)")]);
}

#[test]
fn verify_catches_a_missing_meta_field() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let t = kst("2026-01-14T09:30:00.000");
    w.append(Stream::Raw(SIM), t, &line(t, 1)).unwrap();
    let bad = String::from_utf8(line(t, 2)).unwrap().replace("\"quality_flag\"", "\"quality\"");
    w.append(Stream::Raw(SIM), t, bad.as_bytes()).unwrap();
    w.append(Stream::Raw(SIM), t, b"[1,2]").unwrap();
    w.close_all(t).unwrap();
    let p = problems(root);
    assert_eq!(
        p,
        [
            "raw/sim/20260114/09.jsonl:2: missing meta field(s) quality_flag",
            "raw/sim/20260114/09.jsonl:3: not a JSON object",
        ]
    );
}

#[test]
fn verify_reports_unclosed_files_unless_a_collector_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let t = kst("2026-01-14T09:30:00.000");
    w.append(Stream::Raw(SIM), t, &line(t, 1)).unwrap();
    w.sync().unwrap();
    // A partial line in flight is not a problem while the collector is running.
    OpenOptions::new()
        .append(true)
        .open(root.join("raw/sim/20260114/09.jsonl"))
        .unwrap()
        .write_all(b"{\"recei")
        .unwrap();
    let live = verify(root, None).unwrap();
    assert!(live.ok(), "{:?}", live.problems);
    assert_eq!(live.lines, 1);
    drop(w);
    let p = problems(root);
    assert!(p[0].starts_with("raw/sim/20260114/09.jsonl: unclosed file; a collector crashed here?"), "{p:?}");
}

#[test]
fn crash_recovery_cuts_the_torn_tail_and_closes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let start = kst("2026-01-14T09:00:00.000");
    let (mut w, rec) = open(root, start);
    assert!(!rec.crashed);
    let mut last = start;
    for i in 0..10u64 {
        last = kst("2026-01-14T09:30:00.000").plus_millis(i as i64);
        w.append(Stream::Swing(SIM, KR), last, &line(last, i)).unwrap();
    }
    w.sync().unwrap();
    drop(w); // crash: no close_all
    let rel = "swing/sim/kr_stocks/20260114/09_00.jsonl";
    let path = root.join(rel);
    let torn = &line(last.plus_millis(1), 10)[..40];
    OpenOptions::new().append(true).open(&path).unwrap().write_all(torn).unwrap();

    let now = kst("2026-01-14T09:45:00.000");
    let (w, rec) = ArchiveWriter::open(root, &cfg(), now, &SessionId::starting_at(now)).unwrap();
    assert!(rec.crashed);
    assert_eq!(rec.previous_session.as_deref(), Some("sess_20260114_090000"));
    assert_eq!(rec.last_good, Some(last));
    assert_eq!(rec.closed, [rel]);
    assert_eq!(rec.repaired.len(), 1);
    assert_eq!(rec.repaired[0].file, rel);
    assert_eq!(rec.repaired[0].cut_bytes, 40);
    assert_eq!(rec.repaired[0].kept_lines, 10);
    assert_eq!(count_lines(root, rel), 10);
    assert!(fs::read(&path).unwrap().ends_with(b"\n"));
    let e = &manifest(root, "20260114").files[rel];
    assert_eq!((e.lines, e.closed_at), (10, now));
    assert_manifests_match_files(root);
    assert!(verify(root, None).unwrap().ok());
    w.close_all(now).unwrap();
    let report = verify(root, None).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[test]
fn crash_without_data_reports_the_session_start_as_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let start = kst("2026-01-14T09:00:00.000");
    let (w, _) = open(root, start);
    drop(w);
    let (w, rec) = open(root, kst("2026-01-14T09:05:00.000"));
    assert!(rec.crashed);
    assert_eq!(rec.last_good, Some(start));
    assert!(rec.closed.is_empty());
    w.close_all(kst("2026-01-14T09:05:00.000")).unwrap();
    let (w, rec) = open(root, kst("2026-01-14T09:06:00.000"));
    assert!(!rec.crashed, "close_all removes the session marker");
    assert_eq!(rec.last_good, None);
    drop(w);
}

#[test]
fn restart_in_the_same_hour_continues_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rel = "raw/sim/20260114/09.jsonl";
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let t = kst("2026-01-14T09:10:00.000");
    w.append(Stream::Raw(SIM), t, &line(t, 1)).unwrap();
    w.close_all(t).unwrap();
    let first = manifest(root, "20260114").files[rel].clone();
    let first_bytes = fs::read(root.join(rel)).unwrap();
    assert_eq!(first.lines, 1);

    let (mut w, rec) = open(root, kst("2026-01-14T09:20:00.000"));
    assert!(!rec.crashed);
    let t2 = kst("2026-01-14T09:20:00.000");
    w.append(Stream::Raw(SIM), t2, &line(t2, 2)).unwrap();
    // While open again it is no longer listed as closed.
    assert!(!manifest(root, "20260114").files.contains_key(rel));
    w.close_all(t2).unwrap();

    let bytes = fs::read(root.join(rel)).unwrap();
    let e = &manifest(root, "20260114").files[rel];
    assert_eq!(e.lines, 2);
    assert_eq!(e.size, bytes.len() as u64);
    assert_eq!(e.sha256, sha256_hex(&bytes));
    assert_eq!(e.closed_at, t2);
    assert!(bytes.starts_with(&first_bytes));
    assert!(verify(root, None).unwrap().ok());
}

#[test]
fn a_clock_stepping_back_appends_to_the_current_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let s = Stream::Swing(SIM, KR);
    let t10 = kst("2026-01-14T10:00:01.000");
    w.append(s, kst("2026-01-14T09:59:00.000"), &line(t10, 0)).unwrap();
    w.append(s, t10, &line(t10, 1)).unwrap();
    w.append(s, kst("2026-01-14T09:59:59.000"), &line(t10, 2)).unwrap();
    // After the 10:00 file is closed, a late 10:xx record goes forward, not back into it.
    w.close_expired(kst("2026-01-14T11:00:00.000")).unwrap();
    w.append(s, kst("2026-01-14T10:59:00.000"), &line(t10, 3)).unwrap();
    w.close_all(kst("2026-01-14T11:00:01.000")).unwrap();
    assert_eq!(count_lines(root, "swing/sim/kr_stocks/20260114/09_00.jsonl"), 1);
    assert_eq!(count_lines(root, "swing/sim/kr_stocks/20260114/10_00.jsonl"), 2);
    assert_eq!(count_lines(root, "swing/sim/kr_stocks/20260114/11_00.jsonl"), 1);
    assert!(verify(root, None).unwrap().ok());
}

#[test]
fn a_second_writer_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let now = kst("2026-01-14T09:00:00.000");
    let (w, _) = open(root, now);
    let err = ArchiveWriter::open(root, &cfg(), now, &SessionId::starting_at(now)).err().unwrap();
    assert!(matches!(err, ArchiveError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("another collector is using data dir"), "{err}");
    assert!(err.to_string().contains(&root.display().to_string()), "{err}");
    w.close_all(now).unwrap();
    let (w, _) = open(root, now);
    drop(w);
}

#[test]
fn lines_with_newlines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let now = kst("2026-01-14T09:00:00.000");
    let (mut w, _) = open(root, now);
    let err = w.append(Stream::Raw(SIM), now, b"{\"a\":\n1}").unwrap_err();
    assert!(err.to_string().contains("raw/sim/20260114/09.jsonl"), "{err}");
    assert!(w.append(Stream::Raw(SIM), now, b"").is_err());
    assert_eq!(w.lines_written(), 0);
    w.close_all(now).unwrap();
}

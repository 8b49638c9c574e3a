//! Issue 14 part 2: random bytes and damaged lines in every kind of archive file a day has
//! (raw, scalp, swing, system events, overflow) make `etl` report bad lines, never panic
//! or fail the run, and the rest of the day still loads.
//!
//! Longer runs: `PROPTEST_CASES=2000 cargo test -p so-store --test etl_random_lines --release`.

use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use so_store::testing::fixture::{DaySpec, write_day};
use so_store::{Backend, EtlOptions, Store, StoreConfig, run_etl};

const DATE: &str = "20260114";

fn day_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.retain(|p| p.to_string_lossy().contains(DATE));
    out.sort();
    out
}

/// A damaged line: random bytes, or a real line of the file cut, spliced with junk, or with
/// a time or number replaced by an extreme one. Never contains a newline.
fn damaged(real: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let real = real.to_string();
    let real2 = real.clone();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0usize..2000, "[\\[\\]{}\",:0-9eE.+TZ-]{0,10}").prop_map(move |(cut, junk)| {
            let at = (0..=cut.min(real.len())).rev().find(|i| real.is_char_boundary(*i)).unwrap_or(0);
            format!("{}{junk}{}", &real[..at], &real[at..]).into_bytes()
        }),
        prop_oneof![
            Just("\"9999-12-31T20:00:00.000Z\""),
            Just("\"-79228162514264337593543950335\""),
            Just("\"79228162514264337593543950335\""),
            Just("18446744073709551615"),
            Just("-1"),
            Just("null"),
        ]
        .prop_map(move |v| {
            // Every string value in turn would be too many; replace the first time and the
            // first quoted number.
            let mut s = real2.replacen("\"2026-01-14T", &format!("{v}, \"x\":\"2026-01-14T"), 1);
            if let Some(i) = s.find("\":\"1") {
                s.replace_range(i + 2..i + 3, v);
            }
            s.into_bytes()
        }),
    ]
    .prop_map(|mut b: Vec<u8>| {
        b.retain(|&c| c != b'\n');
        b
    })
}

#[test]
fn random_lines_in_every_file_are_bad_lines_not_failures() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_day(root, &DaySpec::small(DATE)).unwrap();
    let store: Store = rt.block_on(async {
        let s = Store::open(&StoreConfig::default(), root).await.unwrap();
        s.migrate().await.unwrap();
        s
    });
    let files = day_files(root);
    assert!(files.len() >= 4, "{files:?}");
    let reals: Vec<String> =
        files.iter().map(|p| std::fs::read_to_string(p).unwrap().lines().next().unwrap_or("{}").to_string()).collect();
    let opts = EtlOptions { date: DATE.into(), batch_rows: 500, progress: false };
    let baseline = rt.block_on(run_etl(&store, root, &opts)).unwrap().bad_lines;

    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (0..files.len()).prop_flat_map(|i| (Just(i), proptest::collection::vec(damaged(&reals[i]), 1..4)));
    let appended = std::cell::Cell::new(0u64);
    runner
        .run(&strategy, |(i, lines)| {
            let mut f = std::fs::OpenOptions::new().append(true).open(&files[i]).unwrap();
            for l in &lines {
                f.write_all(l).unwrap();
                f.write_all(b"\n").unwrap();
            }
            appended.set(appended.get() + lines.len() as u64);
            let report = rt.block_on(run_etl(&store, root, &opts));
            let report = report.map_err(|e| TestCaseError::fail(format!("etl failed: {e}")))?;
            // A damaged line can still be a valid one (a junk insertion inside a string), so
            // bad lines grow by at most what was appended.
            prop_assert!(report.bad_lines <= baseline + appended.get(), "{report:?}");
            Ok(())
        })
        .unwrap();
    let last = rt.block_on(run_etl(&store, root, &opts)).unwrap();
    assert!(last.bad_lines > baseline, "random lines were reported: {last:?}");
}

//! Issue 14: a damaged archive line is a reported bad line in `verify`, `replay` and `etl`,
//! never a panic, and their exit codes still say what happened. The reproductions: a raw
//! line with `receive_time` 9999-12-31T20:00:00.000Z made `replay` and `etl` panic in
//! `UtcTime::kst()`; two Track B samples with cumulative volumes of ∓7.9e28 made `etl`
//! panic in the bars (`Subtraction overflowed`, exit 101).

mod common;

use std::io::Write;
use std::path::Path;

use common::*;

const PANIC_EXIT: i32 = 101;

fn append(path: &Path, lines: &[Vec<u8>]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for l in lines {
        f.write_all(l).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

fn first_line(path: &Path, containing: &str) -> String {
    std::fs::read_to_string(path).unwrap().lines().find(|l| l.contains(containing)).unwrap().to_string()
}

fn set(line: &str, key: &str, value: serde_json::Value) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    v[key] = value;
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn damaged_lines_are_bad_lines_in_verify_replay_and_etl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rec = run(cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--until", "10:02", "--data-dir"])
        .arg(&data));
    assert!(rec.status.success(), "{}", text(&rec));

    let raw = data.join("raw/kis/20260114/10.jsonl");
    let far = "9999-12-31T20:00:00.000Z";
    let opened = first_line(&raw, "\"kind\":\"open\"");
    let far_line = set(&String::from_utf8(set(&opened, "receive_time", far.into())).unwrap(), "event_time", far.into());
    let raw_lines = [
        far_line,
        // Random bytes, not even UTF-8.
        vec![0xff, 0xfe, b'{', 0x00, 0x9f, b'"', 0xc3],
        // JSON, but no raw archive line.
        br#"{"event_time":"2026-01-14T01:00:00.000Z","frame":1e400}"#.to_vec(),
    ];
    let raw_bad = raw_lines.len();
    append(&raw, &raw_lines);

    let scalp = data.join("scalp/kis/kr_stocks/20260114/10_00_00.jsonl");
    let sample = first_line(&scalp, "\"sample_interval_ms\"");
    let (lo, hi) = ("-79228162514264337593543950335", "79228162514264337593543950335");
    let at = |t: &str, v: &str| {
        let l = set(&sample, "event_time", t.into());
        let l = set(&String::from_utf8(l).unwrap(), "last_price", "71900".into());
        set(&String::from_utf8(l).unwrap(), "volume", v.into())
    };
    append(&scalp, &[at("2026-01-14T01:00:30.000Z", lo), at("2026-01-14T01:01:30.000Z", hi)]);

    let swing = data.join("swing/kis/kr_stocks/20260114/10_00.jsonl");
    let snap = first_line(&swing, "\"snapshot\"");
    append(&swing, &[set(&snap, "volume", "1e30".into()), set(&snap, "receive_time", far.into())]);

    // verify: each damaged line named with its number and reason; exit 1.
    let v = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    let out = text(&v);
    assert_eq!(v.status.code(), Some(1), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    assert!(out.contains(&format!("implausible receive_time {far}")), "{out}");
    assert!(out.contains("raw/kis/20260114/10.jsonl:") && out.contains("not JSON"), "{out}");

    // replay: the rest is replayed, the bad lines are listed, exit 1.
    let out_dir = dir.path().join("replayed");
    let r = run(cmd().args(["replay", "--raw"]).arg(&data).arg("--out").arg(&out_dir));
    let out = text(&r);
    assert_eq!(r.status.code(), Some(1), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    assert!(out.contains(&format!("replay FAILED: {raw_bad} bad archive line(s)")), "{out}");
    assert!(out.contains(&format!("implausible event_time {far}")), "{out}");
    assert!(out.contains("not UTF-8") && out.contains("not a raw archive line"), "{out}");
    assert!(count_lines_under(&out_dir.join("scalp")) > 0, "the good lines were replayed: {out}");

    // etl: loads the day, reports every damaged line, and never panics.
    let db = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let e = run(cmd().args(["etl", "--migrate", "--date", "20260114", "--url", &db, "--data-dir"]).arg(&data));
    let out = text(&e);
    assert_ne!(e.status.code(), Some(PANIC_EXIT), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&e.stdout)).expect("etl prints its JSON report");
    assert_eq!(report["bad_lines"], (raw_bad + 2 + 2) as u64, "{out}");
    let samples = report["bad_line_samples"].to_string();
    assert!(samples.contains("implausible receive_time") && samples.contains("implausible volume"), "{out}");
    assert!(samples.contains("not UTF-8"), "{out}");
    assert_eq!(report["ok"], true, "the rest reconciles: {out}");
    assert!(e.status.success(), "{out}");
}

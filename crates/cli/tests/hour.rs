//! One accelerated simulated hour through the binary, the real KIS adapter and the fake
//! server: every Track A cycle completes through the rate-limited REST client, Track B keeps
//! up with the 120x clock, samples carry the mapper that derived them, and every stage's
//! counters, the exit summary and `verify` agree with what is on disk.
//!
//! The schedules themselves (exact instants, files by five minutes, nothing due at the end)
//! are asserted exactly on virtual time in `crates/engine/tests/scripted.rs`.

mod common;

use common::*;

#[test]
fn one_simulated_hour_has_the_expected_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cmd()
        .args(["collect", "--speed", "120", "--start", "2026-01-14T10:00", "--until", "11:00", "--data-dir"])
        .arg(&data));
    assert!(out.status.success(), "{}", text(&out));

    let universe: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("universe/20260114_kr_stocks.json")).unwrap()).unwrap();
    let symbols = universe["count"].as_u64().unwrap() as usize;
    assert!(symbols > 500, "universe of {symbols}");

    // Track A: cycles at 10:00 (start), 10:10 … 10:50; 11:00 is the end of the run. Every
    // universe symbol of each is on disk, or the archive says it is not: a cycle the
    // rate-limited REST client could not finish before the next was due (a loaded machine
    // at 120x) leaves a swing gap marker with how many it left out, a failed request one
    // with how many failed. Nothing is missing silently.
    let swing = lines_under(&data.join("swing"));
    let events = lines_under(&data.join("system/events"));
    let missing: usize = events
        .iter()
        .filter(|e| e["event_type"] == "gap_marker" && e["scope"] == "swing")
        .map(|g| {
            let d = g["detail"].as_str().unwrap();
            let n = |s: &str| s.parse::<usize>().unwrap_or_else(|_| panic!("{s:?} in {g}"));
            match g["reason"].as_str().unwrap() {
                // "…; 131 not snapshotted (from …)"
                "cycle_overrun" => n(d.split(" not snapshotted").next().unwrap().rsplit(' ').next().unwrap()),
                // "cycle …: 3 of 1099 snapshots failed (…"
                "api_error" => n(d.split(": ").nth(1).unwrap().split(' ').next().unwrap()),
                other => panic!("unexpected swing gap {other}: {g}"),
            }
        })
        .sum();
    assert_eq!(swing.len() + missing, symbols * 6, "swing snapshots on disk and accounted for");

    // Track B: 41 slots × 2 Hz × 3600 s, within 1%: its timers keep up with the 120x clock
    // on this machine (a late timer still takes its sample; none may be lost).
    let samples = lines_under(&data.join("scalp"));
    let scalp = samples.len();
    let expected = 41.0 * 2.0 * 3600.0;
    let ratio = scalp as f64 / expected;
    assert!((0.99..=1.0).contains(&ratio), "scalp samples {scalp} vs {expected} ({ratio:.4})");
    let first = &samples[0];
    assert_eq!(first["mapper_version"], "kis/2", "samples carry the mapper that derived them: {first}");

    // Every stage's counters reconcile with each other and with what is on disk.
    let end = events.iter().find(|e| e["event_type"] == "session_end").expect("session_end event");
    assert_eq!(end["clean"], true);
    let c = &end["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("counter {k} missing"));
    assert_eq!(
        n("events_normalized"),
        n("events_passed") + n("rejected_validate") + n("rejected_guard") + n("rejected_unsubscribed")
    );
    assert_eq!(n("rejected_unsubscribed"), 0, "the fake sends only what was subscribed");
    assert_eq!(n("frames_received") as usize, count_lines_under(&data.join("raw")));
    assert_eq!(n("scalp_written") as usize, scalp);
    assert_eq!(n("swing_written") as usize, swing.len());
    assert_eq!(n("track_a_cycles"), 6);
    assert_eq!(n("lines_failed"), 0);
    assert_eq!(n("lines_lost"), 0);
    let summary = text(&out).split_whitespace().collect::<Vec<_>>().join(" ");
    let all_lines = count_lines_under(&data);
    assert!(
        summary.contains(&format!(
            "archive lines {all_lines} of {all_lines} published (0 failed, 0 lost in failed writes)"
        )),
        "summary disagrees with the {all_lines} lines on disk:\n{summary}"
    );

    let verify = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(verify.status.success(), "{}", text(&verify));
}

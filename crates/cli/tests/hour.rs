//! One accelerated simulated hour: the archive holds exactly the swing snapshots and scalp
//! samples the schedule calls for.

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

    // Track A: cycles at 10:00 (start), 10:10 … 10:50; 11:00 is the end of the run.
    let swing = lines_under(&data.join("swing"));
    assert_eq!(swing.len(), symbols * 6, "swing snapshots");
    let hours: std::collections::BTreeSet<_> =
        std::fs::read_dir(data.join("swing/kis/kr_stocks/20260114")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(hours.len(), 1, "{hours:?}");

    // Track B: 41 slots × 2 Hz × 3600 s, within 1%.
    let samples = lines_under(&data.join("scalp"));
    let scalp = samples.len();
    let expected = 41.0 * 2.0 * 3600.0;
    let ratio = scalp as f64 / expected;
    assert!((0.99..=1.0).contains(&ratio), "scalp samples {scalp} vs {expected} ({ratio:.4})");
    let first = &samples[0];
    assert_eq!(first["mapper_version"], "kis/2", "samples carry the mapper that derived them: {first}");
    // No sample is due outside the hour, and the schedule asks for none at 11:00 itself.
    let (open, until) = (kst_ms_on("2026-01-14", "10:00:00"), kst_ms_on("2026-01-14", "11:00:00"));
    for s in &samples {
        let due = ms(s, "event_time");
        assert!((open..until).contains(&due), "sample due outside the hour: {s}");
    }
    // 5-minute scalp files, by the instant the sample was taken: 10:00 … 10:55, and an 11:00
    // file only if a timer woke late (a busy machine) for samples due just before 11:00.
    let dir = data.join("scalp/kis/kr_stocks/20260114");
    let mut scalp_files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    scalp_files.sort();
    let mut windows: Vec<String> = (0..12).map(|i| format!("10_{:02}_00.jsonl", i * 5)).collect();
    if scalp_files.len() == 13 {
        windows.push("11_00_00.jsonl".into());
    }
    assert_eq!(scalp_files, windows);
    for (i, file) in scalp_files.iter().enumerate() {
        let from = open + i as i64 * 300_000;
        for s in lines_of(&dir.join(file)) {
            let taken = ms(&s, "receive_time");
            assert!((from..from + 300_000).contains(&taken), "{file} holds a sample taken outside it: {s}");
        }
    }

    // Every stage's counters reconcile with each other and with what is on disk.
    let events = lines_under(&data.join("system/events"));
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

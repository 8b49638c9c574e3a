//! Degrade mode with a stream that stays dead (seed 000 §3.3), end to end through the
//! binary: the `ws_silent` fault makes the fake KIS server withhold data on open sockets,
//! the watchdog degrades, Track B falls back to REST polls through the real adapter, the
//! polls are in the raw archive where they were used (so `replay` reproduces the samples),
//! the volume ranking's responses are archived raw, and `verify` accepts the archive.
//!
//! The logic and its instants (when degrade mode, polling and recovery come, the gap
//! marker, entrants polled within a round, the flags and ages of the samples) are asserted
//! exactly on virtual time in `crates/engine/tests/scripted.rs`; this test keeps what only
//! the wire shows and no timing bound.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{cmd, jsonl_files_under, kst_ms_on, lines_under, ms, run, text};

fn kst_ms(hhmmss: &str) -> i64 {
    kst_ms_on("2026-11-23", hhmmss)
}

/// Every scalp line of an archive in file order, as text.
fn scalp_lines(root: &Path) -> Vec<String> {
    jsonl_files_under(&root.join("scalp"))
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(String::from).collect::<Vec<_>>())
        .collect()
}

#[test]
fn a_dead_stream_in_degrade_mode_feeds_track_b_from_rest_polls() {
    let dir = tempfile::tempdir().unwrap();
    let (data, replayed) = (dir.path().join("data"), dir.path().join("replayed"));
    let out = run(cmd()
        .args(["collect", "--data-dir"])
        .arg(&data)
        .args(["--speed", "120", "--start", "2026-11-23T09:20", "--until", "09:46"])
        // Started before Track B's window (09:30) so the stream is up when watching starts.
        // A first silence restarts the session; the second, within 5 minutes, degrades,
        // and the stream then stays silent until 09:43.
        .args(["--fault", "ws_silent@09:32:00+70s"])
        .args(["--fault", "ws_silent@09:35:00+8m"])
        .env("STOCK_OBSERVER__SIM__SYMBOLS", "300"));
    assert!(out.status.success(), "collect failed:\n{}", text(&out));

    let ev = lines_under(&data.join("system/events/kis"));
    let healing = |action: &str| -> Vec<i64> {
        ev.iter()
            .filter(|e| e["event_type"] == "self_healing" && e["action"] == action)
            .map(|e| ms(e, "receive_time"))
            .collect()
    };
    let timeline: Vec<String> = ev
        .iter()
        .filter(|e| ["self_healing", "gap_marker", "reconnection_event"].contains(&e["event_type"].as_str().unwrap()))
        .map(|e| format!("{} {} {}", e["receive_time"], e["event_type"], e["action"]))
        .collect();
    // Degrade mode, then polling, which stops once the stream delivers again.
    let (degrade, start, stop) = (healing("degrade"), healing("rest_polling"), healing("rest_polling_stopped"));
    assert_eq!((degrade.len(), start.len(), stop.len()), (1, 1, 1), "{timeline:#?}");
    assert!(degrade[0] < start[0] && start[0] < stop[0] && stop[0] >= kst_ms("09:43:00"), "{timeline:#?}");

    // The real adapter's REST polls are in the raw archive, flagged degraded, and the
    // samples taken meanwhile say so.
    let raw = lines_under(&data.join("raw/kis"));
    let polls = raw
        .iter()
        .filter(|l| l["kind"] == "rest" && l["quality_flag"] == "degraded")
        .filter(|l| (start[0]..=stop[0]).contains(&ms(l, "receive_time")))
        .count();
    assert!(polls > 41, "only {polls} REST polls while polling");
    let scalp: Vec<Value> = lines_under(&data.join("scalp/kis"));
    let degraded = scalp
        .iter()
        .filter(|s| (start[0]..stop[0]).contains(&ms(s, "event_time")) && s["quality_flag"] == "degraded")
        .count();
    assert!(degraded > 0, "no degraded samples while polling");

    // The volume ranking the trigger engine reads is archived raw.
    let rankings = raw.iter().filter(|l| l["kind"] == "rest" && l["channel"] == "FHPST01710000").count();
    assert!(rankings > 0, "no ranking responses archived");

    let v = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(v.status.success(), "{}", text(&v));

    // Replay applies the polls where they were used and samples the same states.
    let rep = run(cmd().args(["replay", "--raw"]).arg(&data).arg("--out").arg(&replayed));
    assert!(rep.status.success(), "{}", text(&rep));
    let dropped = lines_under(&data.join("system/overflow"))
        .iter()
        .filter(|e| e["decision_reason"] == "sampled_down_queue_full")
        .count();
    let (a, b) = (scalp_lines(&data), scalp_lines(&replayed));
    if dropped == 0 {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y);
        }
    } else {
        // Under overload some live samples were sampled down (and ledgered); the rest match.
        let b: std::collections::HashSet<&String> = b.iter().collect();
        assert!(a.iter().all(|l| b.contains(l)));
    }
}

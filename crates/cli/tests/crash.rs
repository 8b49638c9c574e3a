//! Crash safety end to end: `collect` killed with SIGKILL mid-run, a torn line left behind,
//! a restart, and `verify` passing with the gap on record.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The latest `receive_time` among the last complete lines of the `.jsonl` files under `dir`:
/// where a crash restart must say its gap began.
fn last_complete_record_time(dir: &Path) -> Option<String> {
    let last_complete = |p: &std::path::PathBuf| {
        let body = std::fs::read_to_string(p).unwrap();
        let complete = &body[..body.rfind('\n').map_or(0, |i| i + 1)];
        let v: serde_json::Value = serde_json::from_str(complete.lines().last()?).unwrap();
        v["receive_time"].as_str().map(str::to_string)
    };
    jsonl_files_under(dir).iter().filter_map(last_complete).max()
}

#[test]
fn sigkill_then_restart_verifies_and_records_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, addr) =
        spawn_serving(cmd().args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--data-dir"]).arg(&data));

    // Wait for the health endpoint, then use it while data flows.
    let raw = data.join("raw/kis/20260114/10.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&raw).map(|m| m.len()).unwrap_or(0) < 200_000 {
        assert!(Instant::now() < deadline, "no raw data after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A host stall: the process frozen for 2 s (SIGSTOP), 2 minutes of market time at 60x
    // if the simulated clock counted it. The market pauses with the process instead, so the
    // stream's 1-minute idle timeout must not fire and nothing reconnects.
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
        assert!(ok.success(), "kill {sig} failed");
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(2));
    signal("-CONT");

    // What an operator checks first: slots used / capacity, Hz and mitigation level,
    // connection state, today's reconnects, gaps and recording rate.
    let health = http_get(&addr, "/health");
    let h: serde_json::Value = serde_json::from_str(health.split("\r\n\r\n").last().unwrap()).unwrap();
    assert!(h["status"] == "ok" && h["session_id"].as_str().is_some_and(|s| s.starts_with("sess_20260114_10")), "{h}");
    assert_eq!((h["connection"].as_str(), h["reconnects_today"].as_u64()), (Some("connected"), Some(0)), "{h}");
    assert_eq!((h["slots"].as_u64(), h["slot_capacity"].as_u64()), (Some(41), Some(41)), "{h}");
    assert_eq!((h["hz"].as_f64(), h["mitigation_level"].as_u64()), (Some(2.0), Some(0)), "{h}");
    for k in ["reconnects_today", "gaps_today", "recording_rate", "anomalies_today"] {
        assert!(!h[k].is_null(), "{k} missing: {h}");
    }
    // /metrics in Prometheus's conventions (promtool's lint is clean), the same state.
    let metrics = http_body(&addr, "/metrics");
    assert_promtool_accepts_metrics(&metrics);
    assert!(metric(&metrics, "stock_observer_frames_received_total").is_some_and(|n| n > 0.0), "{metrics}");
    let kis =
        |name: &str, labels: &str| metric(&metrics, &format!("stock_observer_{name}{{provider=\"kis\"{labels}}}"));
    assert_eq!(kis("connection_state", ",state=\"connected\""), Some(1.0), "{metrics}");
    assert_eq!(kis("stream_disconnected_seconds", ""), Some(0.0), "{metrics}");
    assert_eq!(kis("slots_assigned", ",market=\"kr_stocks\""), Some(41.0), "{metrics}");
    assert_eq!(kis("slot_capacity", ",market=\"kr_stocks\""), Some(41.0), "{metrics}");
    assert_eq!(metric(&metrics, "stock_observer_mitigation_level"), Some(0.0), "{metrics}");
    assert_eq!(metric(&metrics, "stock_observer_scalp_sample_rate_hertz"), Some(2.0), "{metrics}");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Without recovery the archive does not verify: files were left open.
    let before = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(!before.status.success(), "verify passed on a crashed archive:\n{}", text(&before));
    assert!(text(&before).contains("unclosed"), "{}", text(&before));

    let last_good = last_complete_record_time(&data).expect("nothing on disk after the kill");

    // Simulate the torn last line a power cut leaves.
    let torn = br#"{"provider":"sim","kind":"ws","channel":"trade","seq":99999999,"fra"#;
    std::fs::OpenOptions::new().append(true).open(&raw).unwrap().write_all(torn).unwrap();

    let restart = run(cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:20", "--duration", "3s", "--data-dir"])
        .arg(&data));
    assert!(restart.status.success(), "{}", text(&restart));
    assert!(text(&restart).contains("recovered from a previous crash"), "{}", text(&restart));

    let after = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(after.status.success(), "{}", text(&after));

    let events = lines_under(&data.join("system/events"));
    let gap = events
        .iter()
        .find(|e| e["event_type"] == "gap_marker" && e["reason"] == "crash_restart")
        .expect("no crash gap_marker");
    let (start, end) = (gap["gap_start_ts"].as_str().unwrap(), gap["gap_end_ts"].as_str().unwrap());
    assert_eq!(start, last_good, "gap starts at the last record the crash left on disk");
    assert!(end.starts_with("2026-01-14T01:20"), "gap ends at the restart, got {end}");
    assert!(gap["gap_seconds"].as_i64().unwrap() > 0);
    let repair = events.iter().find(|e| e["event_type"] == "archive_recovery").expect("no archive_recovery event");
    assert_eq!(repair["cut_bytes"].as_u64().unwrap(), torn.len() as u64);
    assert!(std::fs::read(&raw).unwrap().ends_with(b"\n"));
}

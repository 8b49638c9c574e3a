//! `stock-observer debug …` against a real `collect` and the archive it leaves.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The number after `label` in `out` (`published 8231 → saved 8231` → `saved` gives 8231).
fn after(out: &str, label: &str) -> f64 {
    let rest = out.split(label).nth(1).unwrap_or_else(|| panic!("no {label:?} in:\n{out}"));
    let n: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    n.parse().unwrap_or_else(|_| panic!("no number after {label:?} in:\n{out}"))
}

fn sum(body: &str, family: &str) -> f64 {
    body.lines()
        .filter(|l| l.strip_prefix(family).is_some_and(|r| r.starts_with(' ') || r.starts_with('{')))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn debug_reports_match_health_metrics_and_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, addr) = spawn_serving(
        cmd()
            .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--fault", "ws_disconnect@10:01:00+20s"])
            .arg("--data-dir")
            .arg(&data),
    );
    let url = format!("http://{addr}");
    // Until data flows: connected, slots assigned, samples due.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h: serde_json::Value = serde_json::from_str(&http_body(&addr, "/health")).unwrap();
        if h["connection"] == "connected" && h["slots"].as_u64() > Some(0) && h["scalp_samples_due"].as_u64() > Some(0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no data after 15 s: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // status: the figures /health reports (those that do not move between the two reads
    // exactly, the counters between a read before and one after).
    let h0: serde_json::Value = serde_json::from_str(&http_body(&addr, "/health")).unwrap();
    let st = run(cmd().args(["debug", "status", "--url", &url]));
    let h1: serde_json::Value = serde_json::from_str(&http_body(&addr, "/health")).unwrap();
    let out = text(&st);
    assert!(st.status.success(), "{out}");
    assert!(out.contains(h0["session_id"].as_str().unwrap()), "{out}");
    assert!(out.contains("kis/kr_stocks") && out.contains("kis              "), "{out}");
    let n = |h: &serde_json::Value, k: &str| h[k].as_u64().unwrap();
    if n(&h0, "slots") == n(&h1, "slots") {
        let line = format!("slots              {} of {} capacity", n(&h1, "slots"), n(&h1, "slot_capacity"));
        assert!(out.contains(&line), "{line}:\n{out}");
    }
    assert!(out.contains(&format!("{} Hz, mitigation level {}", h1["hz"], h1["mitigation_level"])), "{out}");
    let printed_due = out.split(" of ").find_map(|s| s.split(" samples").next()?.trim().parse::<f64>().ok()).unwrap();
    let (d0, d1) = (h0["scalp_samples_due"].as_f64().unwrap(), h1["scalp_samples_due"].as_f64().unwrap());
    assert!(d0 <= printed_due && printed_due <= d1, "{d0} <= {printed_due} <= {d1}:\n{out}");

    // pipeline: saved lines between two reads of the summed series, published likewise.
    let m0 = http_body(&addr, "/metrics");
    let pl = run(cmd().args(["debug", "pipeline", "--url", &url]));
    let m1 = http_body(&addr, "/metrics");
    let out = text(&pl);
    assert!(pl.status.success(), "{out}");
    for (label, family) in [
        ("saved ", "stock_observer_archive_lines_saved_total"),
        ("published ", "stock_observer_archive_lines_published_total"),
        ("frames received ", "stock_observer_frames_received_total"),
    ] {
        let (a, p, b) = (sum(&m0, family), after(&out, label), sum(&m1, family));
        assert!(a > 0.0 && a <= p && p <= b, "{family}: {a} <= {p} <= {b}:\n{out}");
    }
    assert!(out.contains("published − saved"), "{out}");

    // Wait for the fault's gap marker, then stop the collector as systemd would.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lines_under(&data.join("system/events")).iter().any(|e| e["event_type"] == "gap_marker") {
        assert!(Instant::now() < deadline, "no gap_marker after 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success());

    let gaps = run(cmd().args(["debug", "gaps", "--date", "20260114", "--data-dir"]).arg(&data));
    let out = text(&gaps);
    assert!(gaps.status.success(), "{out}");
    let markers: Vec<_> =
        lines_under(&data.join("system/events")).into_iter().filter(|e| e["event_type"] == "gap_marker").collect();
    for g in &markers {
        let start = g["gap_start_ts"].as_str().unwrap();
        let line = out.lines().find(|l| l.contains(start)).unwrap_or_else(|| panic!("{g} not listed:\n{out}"));
        assert!(line.contains(g["gap_end_ts"].as_str().unwrap()) && line.contains(g["reason"].as_str().unwrap()));
    }
    assert!(markers.iter().any(|g| g["reason"] == "ws_disconnect"), "{markers:?}");
    assert!(out.contains(&format!("total: {} gap marker(s)", markers.len())), "{out}");

    // Slots from the archive: the newest slot_decision.
    let sl = run(cmd().args(["debug", "slots", "--url", &url, "--date", "20260114", "--data-dir"]).arg(&data));
    assert!(sl.status.success() && text(&sl).contains("newest slot_decision"), "{}", text(&sl));

    // The collector is gone: status fails naming the URL (and shows the data dir).
    let down = run(cmd().args(["debug", "status", "--url", &url, "--data-dir"]).arg(&data));
    let out = text(&down);
    assert!(!down.status.success(), "{out}");
    assert!(out.contains(&format!("collector at {url} unreachable")), "{out}");
    assert!(out.contains("collector not running"), "{out}");
    let down = run(cmd().args(["debug", "status", "--url", &url]));
    assert!(!down.status.success() && text(&down).contains(&url), "{}", text(&down));
    let missing = run(cmd().args(["debug", "gaps", "--data-dir"]).arg(dir.path().join("nope")));
    assert!(!missing.status.success() && text(&missing).contains("nope does not exist"), "{}", text(&missing));

    let bus = run(cmd().args(["debug", "bus"]));
    assert!(bus.status.success());
    assert_eq!(String::from_utf8_lossy(&bus.stdout).lines().count(), 1, "{}", text(&bus));
    assert!(text(&bus).starts_with("no message bus"));
}

//! The live database sink with PostgreSQL going down mid-run: recording continues and the
//! archive is complete, the sink reports what it missed, and `etl` afterwards makes the
//! database match the archive.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use store::testing::PgServer;

#[test]
fn database_down_during_collect_then_etl_fills_the_hole() {
    let pg = PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL could not start: {e}"));
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let migrate = run(cmd().args(["db", "migrate", "--url", &url, "--data-dir"]).arg(&data));
    assert!(migrate.status.success(), "{}", text(&migrate));

    let mut child = cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--duration", "12s", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__STORE__URL", &url)
        .env("STOCK_OBSERVER__STORE__LIVE_SINK__ENABLED", "true")
        .env("STOCK_OBSERVER__STORE__LIVE_SINK__RETRY_AFTER", "500ms")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    pg.stop().expect("stop PostgreSQL mid-run");
    std::thread::sleep(Duration::from_secs(3));
    pg.restart().expect("restart PostgreSQL");

    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "collect did not finish");
        std::thread::sleep(Duration::from_millis(200));
    };
    let summary: Vec<String> = BufReader::new(child.stdout.take().unwrap()).lines().map(|l| l.unwrap()).collect();
    let summary = summary.join("\n");
    assert!(status.success(), "{summary}");
    assert!(summary.contains("live database sink:"), "{summary}");
    assert!(summary.contains("fill it from the archive"), "the sink did not report the outage:\n{summary}");
    assert!(
        summary.contains(&format!("stock-observer etl --data-dir {} --date 20260114", data.display())),
        "the summary names the day to load:\n{summary}"
    );

    // The archive is complete regardless of the database.
    let verify = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(verify.status.success(), "{}", text(&verify));

    // etl fills the hole: every table reconciles with the archive.
    let etl = run(cmd().args(["etl", "--date", "20260114", "--url", &url, "--data-dir"]).arg(&data));
    let out = text(&etl);
    assert!(etl.status.success(), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&etl.stdout)).expect("etl prints its JSON report");
    assert_eq!(report["ok"], true, "{out}");
    let ticks = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "market_ticks").unwrap();
    assert!(ticks["in_db"].as_u64().unwrap() > 0);
    assert_eq!(ticks["in_db"], ticks["expected"], "{out}");

    // The reconciliation is also an event in the day's archive, and the archive still verifies.
    assert!(out.contains("reconciliation recorded in system/events/"), "{out}");
    let recorded = reconcile_events(&data);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["date"], "20260114");
    assert_eq!(recorded[0]["tables"], report["tables"]);
    let verify = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(verify.status.success(), "{}", text(&verify));

    // collect ran the maintenance job at start-up on the market clock: today's partition and
    // store.partitions_ahead_days (7) ahead, up to the 21st (etl adds the 13th, the day
    // before the one it loads; it only covers the 13th to the 15th).
    let status = run(cmd().args(["db", "status", "--url", &url, "--data-dir"]).arg(&data));
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains("market_ticks 20260113..20260121 (9), scalp_ticks 20260113..20260121 (9)"),
        "{}",
        text(&status)
    );
}

/// `etl_reconcile` events in any provider's system/events file of 2026-01-14.
fn reconcile_events(data: &std::path::Path) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(data.join("system/events")).unwrap() {
        let file = dir.unwrap().path().join("20260114.jsonl");
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event_type"] == "etl_reconcile" {
                found.push(v);
            }
        }
    }
    found
}

//! Track B records every slot it claims, and says so truthfully (seed 001 §1.1, §2.4), end
//! to end through the binary and the fake servers: with trigger churn through the real
//! KIS adapter's registrations every symbol that holds a slot has data within seconds of
//! entering it, Upbit's slots too, the figures a person reads (exit summary, status line,
//! `/health`, `/metrics`) equal what is on disk, and a stalled socket, ended by the
//! adapter's idle timeout, leaves a gap marker that spans the hole the archive shows.
//!
//! The logic at exact instants (entrants seeded by REST, dark slots, no_data and stale
//! samples, the stall's marker and stale samples) is asserted on virtual time in
//! `crates/engine/tests/scripted.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use common::{assert_promtool_accepts_metrics, cmd, kst_ms_on, lines_under, metric, ms, run, spawn_serving, text};

/// Samples of one symbol's continuous stay in a slot (consecutive sampling times).
struct Stay<'a> {
    symbol: String,
    samples: Vec<&'a Value>,
}

impl Stay<'_> {
    fn entered(&self) -> i64 {
        ms(self.samples[0], "event_time")
    }
    fn seconds(&self) -> i64 {
        (ms(self.samples[self.samples.len() - 1], "event_time") - self.entered()) / 1000
    }
}

/// Splits each symbol's samples into stays: a pause longer than two sampling intervals
/// means the symbol left its slot in between.
fn stays(samples: &[Value]) -> Vec<Stay<'_>> {
    let mut by_symbol: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for s in samples {
        by_symbol.entry(s["symbol"].as_str().unwrap()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (symbol, mut list) in by_symbol {
        list.sort_by_key(|s| ms(s, "event_time"));
        let mut current: Vec<&Value> = Vec::new();
        for s in list {
            let interval = s["sample_interval_ms"].as_i64().unwrap();
            if current.last().is_some_and(|p| ms(s, "event_time") - ms(p, "event_time") > 2 * interval) {
                out.push(Stay { symbol: symbol.to_string(), samples: std::mem::take(&mut current) });
            }
            current.push(s);
        }
        out.push(Stay { symbol: symbol.to_string(), samples: current });
    }
    out
}

/// After each symbol's first 5 s in its slot, at least 99 % of its samples have data.
fn settled_samples_have_data(stays: &[Stay<'_>]) {
    let (mut due, mut with) = (0u64, 0u64);
    for stay in stays {
        let settled = stay.entered() + 5_000;
        for s in stay.samples.iter().filter(|s| ms(s, "event_time") >= settled) {
            due += 1;
            with += has_data(s) as u64;
        }
    }
    let share = with as f64 / due as f64;
    assert!(share >= 0.99, "{with} of {due} settled samples have data ({share:.4})");
}

fn has_data(s: &Value) -> bool {
    s["quality_flag"] != "no_data"
}

fn fresh(s: &Value) -> bool {
    !matches!(s["quality_flag"].as_str(), Some("no_data" | "stale"))
}

/// The last status line the run printed (stderr, one per `status.interval` off a terminal).
fn last_status(out: &str) -> &str {
    out.lines().rev().find(|l| l.contains(" KST x")).expect("a status line")
}

/// Checks what a run's person-facing figures say against the samples on disk.
/// `slots`, if given, is what the status line must show as assigned / capacity (`41/41`).
fn figures_equal_disk(data: &Path, samples: &[Value], out: &str, slots: Option<&str>) {
    let events = lines_under(&data.join("system/events"));
    let ends: Vec<_> = events.iter().filter(|e| e["event_type"] == "session_end").collect();
    let n = |k: &str| ends.iter().map(|e| e["counters"][k].as_u64().unwrap()).max().unwrap();
    let count = |flag: &str| samples.iter().filter(|s| s["quality_flag"] == flag).count() as u64;
    assert_eq!(n("scalp_written"), samples.len() as u64);
    assert_eq!(n("scalp_no_data"), count("no_data"), "empty samples counted as written on disk");
    assert_eq!(n("scalp_stale"), count("stale"), "stale samples counted as written on disk");
    let due = n("scalp_expected");
    let with_data = samples.len() as u64 - count("no_data");
    let rate = format!("{:.1}%", with_data as f64 * 100.0 / due as f64);
    let summary = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        summary.contains(&format!("of {due} due: {with_data} with data (recording rate {rate})")),
        "the exit summary must state the on-disk figures ({with_data} of {due}, {rate}):\n{out}"
    );
    if let Some(slots) = slots {
        let status = last_status(out);
        assert!(status.contains(&format!("slots {slots} streaming ")), "{status}");
    }
}

#[test]
fn every_slot_symbol_has_data_through_an_hour_of_churn() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cmd()
        .args(["collect", "--speed", "120", "--start", "2026-01-14T10:00", "--until", "11:00", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__STATUS__INTERVAL", "1s")
        // Sensitive triggers: many more symbols compete than there are slots, so the slot
        // list churns all hour.
        .env("STOCK_OBSERVER__SLOTS__MIN_SCORE", "0.05")
        .env("STOCK_OBSERVER__TRIGGERS__VOLUME_SURGE_RATIO", "1.2")
        .env("STOCK_OBSERVER__TRIGGERS__VOLATILITY_RATIO", "1.2")
        .env("STOCK_OBSERVER__TRIGGERS__PRICE_SPIKE_PCT", "1.0"));
    let out_text = text(&out);
    assert!(out.status.success(), "{out_text}");

    let events = lines_under(&data.join("system/events/kis"));
    let entrants: Vec<&str> = events
        .iter()
        .filter(|e| e["event_type"] == "slot_decision")
        .flat_map(|e| e["added"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()))
        .collect();
    assert!(entrants.len() >= 50, "only {} slot changes in the hour", entrants.len());

    let samples = lines_under(&data.join("scalp"));
    let stays = stays(&samples);
    settled_samples_have_data(&stays);
    // Every entrant got fresh data in its stay, and no stay of 30 s or more lacked it.
    for stay in &stays {
        if stay.seconds() >= 30 || entrants.contains(&stay.symbol.as_str()) {
            assert!(
                stay.samples.iter().any(|s| fresh(s)),
                "{} held a slot for {} s from {} without fresh data",
                stay.symbol,
                stay.seconds(),
                stay.samples[0]["event_time"]
            );
        }
    }
    figures_equal_disk(&data, &samples, &out_text, Some("41/41"));
}

#[test]
fn a_stalled_stream_is_marked_from_its_last_data_and_its_samples_say_stale() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--until", "10:05", "--data-dir"])
        .arg(&data)
        .args(["--fault", "ws_stall@10:01:00+90s"])
        .env("STOCK_OBSERVER__SIM__SYMBOLS", "300"));
    let out_text = text(&out);
    assert!(out.status.success(), "{out_text}");

    // The real hole: the longest pause between stream frames that carried data.
    let mut data_frames: Vec<i64> = lines_under(&data.join("raw/kis"))
        .iter()
        // Data records, not the JSON acks of (re)subscriptions on the same channel.
        .filter(|l| l["kind"] == "ws" && l["channel"] == "H0STCNT0" && l["frame"].as_str().unwrap().starts_with("0|"))
        .map(|l| ms(l, "receive_time"))
        .collect();
    data_frames.sort();
    let (hole_start, hole_end) = data_frames.windows(2).map(|w| (w[0], w[1])).max_by_key(|(a, b)| b - a).unwrap();
    // Past the adapter's idle timeout and the watchdog's silence (1 min each): the stalled
    // session was ended and replaced while the fault lasted.
    assert!(hole_end - hole_start > 60_000, "a 90 s stall left a hole of {} ms", hole_end - hole_start);

    let gaps: Vec<_> = lines_under(&data.join("system/events/kis"))
        .into_iter()
        .filter(|e| e["event_type"] == "gap_marker" && e["scope"] == "scalp")
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    let (start, end) = (ms(&gaps[0], "gap_start_ts"), ms(&gaps[0], "gap_end_ts"));
    let interval = 500;
    assert!((start - hole_start).abs() <= interval, "marker starts {start}, hole {hole_start}: {}", gaps[0]);
    assert!((end - hole_end).abs() <= interval, "marker ends {end}, hole {hole_end}: {}", gaps[0]);

    // Inside the hole, a sample whose data is older than stale_after (30 s) says so.
    let samples = lines_under(&data.join("scalp"));
    let in_hole: Vec<&serde_json::Value> =
        samples.iter().filter(|s| (hole_start + 31_000..hole_end).contains(&ms(s, "event_time"))).collect();
    assert!(!in_hole.is_empty());
    for s in in_hole {
        if s["data_age_ms"].as_i64().unwrap_or(i64::MAX) > 30_000 {
            assert_eq!(s["quality_flag"], "stale", "{s}");
        }
    }
    figures_equal_disk(&data, &samples, &out_text, Some("41/41"));
}

#[test]
fn upbit_slots_have_data_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cmd()
        .args(["collect", "--speed", "120", "--start", "2026-01-14T10:00", "--until", "10:20", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__PROVIDERS__KIS__ENABLED", "false")
        .env("STOCK_OBSERVER__PROVIDERS__UPBIT__ENABLED", "true"));
    let out_text = text(&out);
    assert!(out.status.success(), "{out_text}");
    let samples = lines_under(&data.join("scalp/upbit"));
    assert!(!samples.is_empty(), "no Upbit samples:\n{out_text}");
    settled_samples_have_data(&stays(&samples));
    figures_equal_disk(&data, &samples, &out_text, None);
}

/// Lines and bytes of the archive's `.jsonl` files under `data`, by owner: a provider's
/// streams (`raw/P`, `swing/P`, `scalp/P`, `system/events/P`, `system/overflow/P`) or
/// `lifecycle` (`system/lifecycle`).
fn archive_on_disk(data: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut by = BTreeMap::new();
    for f in common::jsonl_files_under(data) {
        let rel = f.strip_prefix(data).unwrap().to_str().unwrap().to_string();
        let parts: Vec<&str> = rel.split('/').collect();
        let owner = match parts.as_slice() {
            ["raw" | "swing" | "scalp", p, ..] | ["system", "events" | "overflow", p, ..] => p.to_string(),
            ["system", "lifecycle", ..] => "lifecycle".to_string(),
            _ => panic!("{rel}: not an archive stream"),
        };
        let bytes = std::fs::read(&f).unwrap();
        let e = by.entry(owner).or_insert((0, 0));
        e.0 += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        e.1 += bytes.len() as u64;
    }
    by
}

/// What `/metrics` says the sink appended, by the same owners as [`archive_on_disk`].
fn archive_on_metrics(body: &str, providers: &[&str]) -> BTreeMap<String, (u64, u64)> {
    let get = |series: &str| common::metric(body, series).unwrap_or_else(|| panic!("{series} missing:\n{body}")) as u64;
    let mut by = BTreeMap::new();
    for p in providers {
        let lines = get(&format!("stock_observer_archive_lines_saved_total{{provider=\"{p}\"}}"));
        let bytes = get(&format!("stock_observer_archive_saved_bytes_total{{provider=\"{p}\"}}"));
        by.insert(p.to_string(), (lines, bytes));
    }
    let lifecycle = (
        get("stock_observer_archive_lifecycle_lines_saved_total"),
        get("stock_observer_archive_lifecycle_saved_bytes_total"),
    );
    if lifecycle != (0, 0) {
        by.insert("lifecycle".into(), lifecycle);
    }
    by
}

#[test]
fn health_and_metrics_state_what_is_on_disk() {
    // Track B samples 14:58–15:00; the run goes on (Track A until 15:30), so once the window
    // has closed and more than the archive's 1 s (wall) fsync interval has passed (90 s of
    // market time at 60x), the counters and the files are still.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, addr) = spawn_serving(
        cmd()
            .args(["collect", "--speed", "60", "--start", "2026-01-14T14:58", "--data-dir"])
            .arg(&data)
            .env("STOCK_OBSERVER__SIM__SYMBOLS", "300"),
    );
    let body = |path: &str| common::http_body(&addr, path);
    let at = |hhmmss: &str| kst_ms_on("2026-01-14", hhmmss);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let h = loop {
        let h: Value = serde_json::from_str(&body("/health")).unwrap();
        if ms(&h, "market_time") >= at("15:01:30") {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "the market clock never reached 15:01:30: {h}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // No silent failure: what /metrics says the archive received is what its files hold, line
    // for line and byte for byte, per provider. Read between two identical /metrics bodies
    // (a late event, e.g. an anomaly-day verdict, may still be on its way to disk).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (metrics, on_disk) = loop {
        let before = body("/metrics");
        let on_disk = archive_on_disk(&data);
        let after = body("/metrics");
        let said = archive_on_metrics(&after, &["kis"]);
        if said == archive_on_metrics(&before, &["kis"]) && said == on_disk {
            break (after, on_disk);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/metrics (lines, bytes) {said:?} != the archive's files {on_disk:?}\n{after}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let samples = lines_under(&data.join("scalp"));
    let _ = child.kill();
    let _ = child.wait();
    assert_promtool_accepts_metrics(&metrics);

    let value = |series: &str| metric(&metrics, series).unwrap_or_else(|| panic!("{series} missing:\n{metrics}"));
    let (lines_on_disk, bytes_on_disk) = on_disk.values().fold((0, 0), |(l, b), (l2, b2)| (l + l2, b + b2));
    assert!(lines_on_disk > 41 * 200 && bytes_on_disk > 1_000_000, "{on_disk:?}");
    assert_eq!(value("stock_observer_archive_lines_published_total") as u64, lines_on_disk, "published = saved");
    assert_eq!(value("stock_observer_archive_lines_failed_total"), 0.0);
    assert_eq!(value("stock_observer_archive_lines_lost_total"), 0.0);

    let count = |flag: &str| samples.iter().filter(|s| s["quality_flag"] == flag).count() as u64;
    let written = samples.len() as u64;
    assert!(written > 41 * 200, "only {written} samples in two sampled minutes");
    let due = h["scalp_samples_due"].as_u64().unwrap();
    assert_eq!(h["scalp_samples_with_data"].as_u64(), Some(written - count("no_data")), "{h}");
    assert_eq!(h["scalp_samples_no_data"].as_u64(), Some(count("no_data")), "{h}");
    assert_eq!(h["scalp_samples_stale"].as_u64(), Some(count("stale")), "{h}");
    let rate = (written - count("no_data")) as f64 / due as f64;
    assert!((h["recording_rate"].as_f64().unwrap() - rate).abs() < 1e-9, "{h} vs {rate}");
    assert_eq!(value("stock_observer_scalp_samples_written_total") as u64, written);
    assert_eq!(value("stock_observer_scalp_samples_no_data_total") as u64, count("no_data"));
    assert_eq!(value("stock_observer_scalp_samples_stale_total") as u64, count("stale"));
    assert_eq!(value("stock_observer_scalp_samples_due_total") as u64, due);
    assert!((value("stock_observer_recording_ratio") - rate).abs() < 1e-9);
}

//! Degrade mode with a stream that stays dead (seed 000 §3.3): Track B falls back to REST
//! polls of the slot symbols, its samples say so, the polls are in the raw archive where
//! they were used (so `replay` reproduces the samples), and polling stops when the stream
//! delivers again. The volume ranking's responses are archived raw too.

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
        // 60x, not 120x: the first-poll bound below (5 s of market time) is then 83 ms of
        // real time for the fake's REST round trip on a loaded machine.
        .args(["--speed", "60", "--start", "2026-11-23T09:20", "--until", "09:46"])
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
    let degrade = healing("degrade");
    assert_eq!(degrade.len(), 1, "{timeline:#?}");
    // `watchdog.silence` (60 s) after the last data, which the fake pushed up to one push
    // interval (1 s) before the silence began at 09:35, seen at a 5 s check.
    assert!((kst_ms("09:35:59")..kst_ms("09:37:00")).contains(&degrade[0]), "{timeline:#?}");
    // The silence goes on after degrade mode's trades-only session: the watchdog keeps
    // restarting it (the session is connected, so the silence is the watchdog's to judge).
    assert!(healing("restart_session").iter().any(|t| *t > degrade[0]), "no restart after degrading");

    // Polling starts `poll_after` (30 s) into degrade mode and stops when data returns.
    let (start, stop) = (healing("rest_polling"), healing("rest_polling_stopped"));
    assert_eq!(start.len(), 1, "{start:?}");
    assert_eq!(stop.len(), 1, "{stop:?}");
    assert!((degrade[0] + 30_000..degrade[0] + 60_000).contains(&start[0]), "{timeline:#?}");
    // Data returns with the first session after 09:43: the watchdog's restarts of the silent
    // session count as failed attempts, so that may be one backoff step (up to 60 s) later.
    assert!((kst_ms("09:43:00")..kst_ms("09:44:40")).contains(&stop[0]), "{timeline:#?}");

    // The polls are in the raw archive, flagged degraded, only while polling.
    let raw = lines_under(&data.join("raw/kis"));
    let polls: Vec<i64> = raw
        .iter()
        .filter(|l| l["kind"] == "rest" && l["quality_flag"] == "degraded")
        .map(|l| ms(l, "receive_time"))
        .collect();
    assert!(polls.len() >= 41 * 60, "only {} polls in ~6 minutes of polling", polls.len());
    // Outside polling the only REST data fed to Track B is the one seed of each slot entrant
    // (`slot_watch`): the slots at the window's opening and every symbol added later.
    let entrants = 41
        + ev.iter()
            .filter(|e| e["event_type"] == "slot_decision")
            .map(|e| e["added"].as_array().unwrap().len())
            .sum::<usize>();
    let outside = polls.iter().filter(|t| !(start[0] - 5_000..=stop[0]).contains(t)).count();
    assert!(outside <= entrants, "{outside} REST frames fed Track B outside polling, for {entrants} slot entrants");

    // Track B keeps sampling all the while (scalp recording would otherwise pause five
    // minutes into the outage), marked degraded, with data no older than a few poll rounds.
    let scalp: Vec<Value> = lines_under(&data.join("scalp/kis"));
    let window = start[0] + 15_000..stop[0] - 5_000;
    let during: Vec<&Value> = scalp.iter().filter(|s| window.contains(&ms(s, "event_time"))).collect();
    let span = (stop[0] - 5_000 - start[0] - 15_000) / 500;
    assert!(during.len() as i64 >= span * 41 * 99 / 100, "{} samples while polling, {} due", during.len(), span * 41);
    // A symbol that enters the slots while polling has no data until its first poll, which
    // comes at once, not at the next round: well within one poll interval (5 s).
    let mut tenure: std::collections::HashMap<&str, (i64, i64)> = Default::default(); // last sample, first of its run
    for s in &scalp {
        let (symbol, t) = (s["symbol"].as_str().unwrap(), ms(s, "event_time"));
        let every = s["sample_interval_ms"].as_i64().unwrap();
        let since = match tenure.get(symbol) {
            Some(&(last, since)) if t - last <= every => since,
            _ => t,
        };
        tenure.insert(symbol, (t, since));
        if !window.contains(&t) {
            continue;
        }
        // Degraded while polling; an entrant before its first poll says it has nothing yet.
        let want = if s["data_age_ms"].is_null() { "no_data" } else { "degraded" };
        assert_eq!(s["quality_flag"], want, "{s}");
        match s["data_age_ms"].as_i64() {
            Some(age) => assert!(age <= 20_000, "sample data too old while polling: {s}"),
            None => assert!(t - since < 5_000, "no data {} ms after entering the slots: {s}", t - since),
        }
    }
    // The outage is still one gap marker: polls are not stream data.
    let gaps: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event_type"] == "gap_marker" && e["scope"] == "scalp")
        .filter(|g| ms(g, "gap_start_ts") >= kst_ms("09:34:30"))
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert!(ms(gaps[0], "gap_end_ts") >= kst_ms("09:43:00"), "{}", gaps[0]);
    // Stream data again: samples are normal again.
    assert!(scalp.iter().any(|s| ms(s, "event_time") > stop[0] + 5_000 && s["quality_flag"] == "normal"));

    // The volume ranking the trigger engine reads is archived raw.
    let rankings = raw.iter().filter(|l| l["kind"] == "rest" && l["channel"] == "FHPST01710000").count();
    assert!(rankings >= 50, "only {rankings} ranking responses archived");

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

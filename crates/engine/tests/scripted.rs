//! Engine behaviour on the scripted provider and tokio's virtual clock (issue 15): reconnect
//! with backoff and its gap marker, a stalled stream, the watchdog's restarts, degrade mode
//! and REST polling, slot churn (REST seeds, dark slots), mitigation under forced pressure,
//! Track B's schedule and files, and the subscription filter. Every instant asserted is
//! exact: the engine runs on virtual time (`start_paused`), so nothing here waits on a wall
//! clock and no bound is widened for a loaded machine.
//!
//! The scripted venue trades every subscribed symbol once a second at .250 past each second
//! (`market()`); the run starts at .100 past a second, so the engine's own periodic tasks
//! (watchdog, selector, health, poller) tick at .100 and Track B at .000/.500, and no two of
//! them meet the data at one instant. See `common::config` for the periods chosen so that
//! the tasks that decide an outcome never tick at the same instant either.
//!
//! These replace the timing-bound parts of the binary tests `crates/cli/tests/{degrade,
//! coverage,hour}.rs`, which keep what only the binary and the wire can show.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use common::*;
use model::{Symbol, UtcTime};
use so_engine::Live;
use so_engine::testing::Script;

/// The slot symbols at the open: the first universe symbols in code order.
const CODES: [&str; 3] = ["000660", "005930", "035720"];

fn market() -> Script {
    Script::new()
        .universe(&CODES, 50_000)
        .trades(Duration::from_secs(1), Duration::from_millis(250))
        .pings(Duration::from_secs(10))
}

fn symbols(codes: &[&str]) -> Vec<Symbol> {
    codes.iter().map(|c| Symbol::new(c).unwrap()).collect()
}

/// Gives `codes` a slot by manual override (at the selector's next evaluation).
fn include(codes: &'static [&'static str]) -> Action {
    Box::new(move |live: &Live| live.manual.send_modify(|m| m.include = symbols(codes)))
}

/// Instants `from..=to` every `step_ms`.
fn grid(from: &str, to: &str, step_ms: i64) -> Vec<UtcTime> {
    let (from, to) = (at(from), at(to));
    (0..).map(|k| from.plus_millis(k * step_ms)).take_while(|t| *t <= to).collect()
}

/// Receive times of the stream's trade frames (data, not acks or pings) in the raw archive.
fn data_frames(run: &Run) -> Vec<UtcTime> {
    run.raw()
        .iter()
        .filter(|l| l["kind"] == "ws" && l["channel"] == "H0STCNT0" && l["frame"].as_str().unwrap().starts_with("0|"))
        .map(|l| t(l, "receive_time"))
        .collect()
}

/// The longest pause between two data frames: the hole the archive shows.
fn hole(run: &Run) -> (UtcTime, UtcTime) {
    let frames = data_frames(run);
    frames.windows(2).map(|w| (w[0], w[1])).max_by_key(|(a, b)| b.millis_since(*a)).unwrap()
}

fn scalp_gaps(run: &Run) -> Vec<(UtcTime, UtcTime, String)> {
    run.events_of("gap_marker")
        .iter()
        .filter(|g| g["scope"] == "scalp")
        .map(|g| (t(g, "gap_start_ts"), t(g, "gap_end_ts"), g["reason"].as_str().unwrap().to_string()))
        .collect()
}

/// `(instant, attempt, backoff seconds, result)` of every reconnection event.
fn reconnections(run: &Run) -> Vec<(UtcTime, u64, u64, String)> {
    run.events_of("reconnection_event")
        .iter()
        .map(|e| {
            let n = |k: &str| e[k].as_u64().unwrap();
            (t(e, "timestamp"), n("attempt_no"), n("backoff_seconds"), e["result"].as_str().unwrap().to_string())
        })
        .collect()
}

fn of(run_samples: &[Value], code: &str) -> Vec<Value> {
    run_samples.iter().filter(|s| s["symbol"] == code).cloned().collect()
}

#[tokio::test(start_paused = true)]
async fn the_tokio_clock_is_virtual_and_exact() {
    let origin = at("09:00:00");
    let clock = model::Clock::on_tokio_time(origin);
    let wall = std::time::Instant::now();
    clock.sleep_until(at("15:30:00.001")).await;
    assert_eq!(clock.now(), at("15:30:00.001"));
    clock.sleep(Duration::from_millis(1)).await;
    assert_eq!(clock.now(), at("15:30:00.002"));
    assert!(wall.elapsed() < Duration::from_secs(1), "six and a half market hours took {:?}", wall.elapsed());
}

/// A dropped stream: attempts at the seed's backoff steps (1 s, 2 s, 5 s) while connects
/// are refused, one gap marker from the last data before the drop to the first after it,
/// REST evidence for every slot, and samples that age through the hole.
#[tokio::test(start_paused = true)]
async fn a_dropped_stream_reconnects_with_backoff_and_one_gap_marker_spans_the_hole() {
    let script = market().disconnect(at("09:31:00"), "reset by peer").refuse(at("09:31:00")..at("09:31:06"));
    let run = collect(config(3), script, at("09:29:00.100"), at("09:32:00"), vec![]).await;
    let asked = run.provider.asked();

    assert_eq!(asked.connects, vec![at("09:29:00.100"), at("09:31:01"), at("09:31:03"), at("09:31:08")]);
    let fail = |s: &str, n, b| (at(s), n, b, "FAIL".to_string());
    assert_eq!(
        reconnections(&run),
        vec![fail("09:31:01", 1, 1), fail("09:31:03", 2, 2), (at("09:31:08.250"), 3, 5, "SUCCESS".into())]
    );
    let success = run.events_of("reconnection_event").pop().unwrap();
    assert_eq!(success["recovered_slot_list"], serde_json::json!(CODES));

    // The marker is the hole in the archive: last data before, first data after.
    assert_eq!(hole(&run), (at("09:30:59.250"), at("09:31:08.250")));
    assert_eq!(scalp_gaps(&run), vec![(at("09:30:59.250"), at("09:31:08.250"), "ws_disconnect".into())]);
    // The session after the hole registers the slots again.
    assert_eq!(asked.subscriptions.last().unwrap(), &(at("09:31:08"), symbols(&CODES)));

    // Marked evidence: a REST snapshot of each slot symbol as the gap closes, in the raw
    // archive flagged `gap` and beside the marker as `gap_snapshot`.
    let evidence: Vec<_> = run.events_of("gap_snapshot");
    assert_eq!(evidence.len(), 3);
    for e in &evidence {
        assert_eq!((t(e, "gap_start_ts"), t(e, "gap_end_ts")), (at("09:30:59.250"), at("09:31:08.250")), "{e}");
    }
    let gap_rest = run.raw().iter().filter(|l| l["kind"] == "rest" && l["quality_flag"] == "gap").count();
    assert_eq!(gap_rest, 3);

    // Samples in the hole keep the last state, their age growing (under stale_after, 30 s).
    let samples = run.scalp();
    for s in of(&samples, "005930").iter().filter(|s| (at("09:31:00")..=at("09:31:08")).contains(&t(s, "event_time"))) {
        let age = t(s, "event_time").millis_since(at("09:30:59.250"));
        assert_eq!((s["data_age_ms"].as_i64(), s["quality_flag"].as_str()), (Some(age), Some("normal")), "{s}");
    }
    assert_eq!(run.summary.stats.scalp_written, 3 * 2 * 120);
    assert_eq!(run.summary.stats.reconnect_attempts, 3);
}

/// A stream that stays open but carries nothing (no PINGPONG either) for 90 s: the adapter's
/// idle timeout (60 s) ends the session, the gap marker spans the real hole, and every
/// sample whose data is older than `stale_after` (30 s) says `stale`.
#[tokio::test(start_paused = true)]
async fn a_stalled_stream_is_marked_from_its_last_data_and_its_samples_say_stale() {
    let script = market().stall(at("10:01:00")..at("10:02:30")).idle_timeout(Duration::from_secs(60));
    let run = collect(config(3), script, at("10:00:00.100"), at("10:03:00"), vec![]).await;

    assert_eq!(hole(&run), (at("10:00:59.250"), at("10:02:30.250")));
    assert_eq!(scalp_gaps(&run), vec![(at("10:00:59.250"), at("10:02:30.250"), "ws_disconnect".into())]);
    // The idle timeout ends the session 60 s after the last frame; the next one connects a
    // backoff step later.
    assert_eq!(run.provider.asked().connects[..2], [at("10:00:00.100"), at("10:02:00.250")]);
    assert_eq!(reconnections(&run).last().unwrap().0, at("10:02:30.250"));

    // Stale from 30 s after the last data (10:01:29.5 is the first sample past it) until data
    // returns: 122 sampling instants, 3 slots.
    let samples = run.scalp();
    let stale: Vec<UtcTime> =
        of(&samples, "005930").iter().filter(|s| s["quality_flag"] == "stale").map(|s| t(s, "event_time")).collect();
    assert_eq!(stale, grid("10:01:29.500", "10:02:30.000", 500));
    for s in samples.iter().filter(|s| s["quality_flag"] == "stale") {
        assert!(s["data_age_ms"].as_i64().unwrap() > 30_000, "{s}");
    }
    assert_eq!(run.summary.stats.scalp_stale, 122 * 3);
    // The watchdog names the slot symbols silent past their own rhythm (the floor, 30 s),
    // at its first look past it.
    let named = run.events_of("self_healing").into_iter().find(|e| e["action"] == "stale_symbols").unwrap();
    assert_eq!(t(&named, "receive_time"), at("10:01:31.100"));
    assert_eq!(named["detail"].as_array().unwrap().len(), 3);
}

/// Silence on a live socket (PINGPONG only): the watchdog restarts the session after
/// `silence` (60 s, level 1); a second silence within `degrade_within` (5 min) enters degrade
/// mode (level 2, trades only); 30 s into it Track B is fed by REST polls (samples and raw
/// polls flagged `degraded`, one gap marker still spanning the whole outage, an entrant
/// polled within the round); data returns, polling stops, and 5 min after the last restart
/// degrade mode is left. Replay reproduces every sample from the raw archive.
#[tokio::test(start_paused = true)]
async fn silence_restarts_then_degrades_then_polls_rest_then_recovers() {
    let script = market()
        .universe(&["111111"], 50_000)
        .silent(at("09:32:00")..at("09:33:10"))
        .silent(at("09:35:05")..at("09:43:00"))
        .rest_latency(Duration::from_millis(600));
    let config = config(3);
    let run = collect(
        config.clone(),
        script,
        at("09:29:00.100"),
        at("09:47:10"),
        vec![(at("09:38:02"), include(&["111111"]))],
    )
    .await;
    let timeline = run.timeline();

    // Level 1: the first silence is noticed at the watchdog's first look 60 s past the last
    // data (09:31:59.25), and the session restarted.
    assert_eq!(run.healing("restart_session")[0], at("09:33:05.100"), "{timeline:#?}");
    // Level 2: the second, within 5 minutes of that restart (last data 09:35:04.25).
    assert_eq!(run.healing("degrade"), vec![at("09:36:07.100")], "{timeline:#?}");
    assert_eq!(run.provider.asked().trades_only, vec![(at("09:36:07.100"), true), (at("09:47:05.100"), false)]);
    // The trades-only sessions stay silent; the watchdog keeps restarting them, each
    // restart a failed attempt, each wait one backoff step longer (1, 2, 5, 10, 20, 30 s),
    // each new session given the whole silence from its start: the first look 60 s past it.
    // (The session of 09:39:33.1 is 60 s old at the 09:40:33.1 look by the clock, but
    // silence runs to the observer's position, Track B's 09:40:33.0 clock frame: 59.9 s.)
    assert_eq!(
        run.healing("restart_session"),
        [
            at("09:33:05.100"),
            at("09:37:10.100"),
            at("09:38:13.100"),
            at("09:39:23.100"),
            at("09:40:40.100"),
            at("09:42:04.100")
        ],
        "{timeline:#?}"
    );
    // Polling: the poller's first look at degrade mode (09:36:09.1) plus poll_after (30 s);
    // it stops at its first look after data returns.
    assert_eq!(run.healing("rest_polling"), vec![at("09:36:39.100")], "{timeline:#?}");
    assert_eq!(run.healing("rest_polling_stopped"), vec![at("09:43:03.100")], "{timeline:#?}");
    // Recovery: recover_after (5 min) of data after the last restart, at the next look.
    assert_eq!(run.healing("recover"), vec![at("09:47:05.100")], "{timeline:#?}");

    // Polls are not stream data: one gap marker per silence, each from the last data to the
    // first data after it.
    assert_eq!(
        scalp_gaps(&run),
        vec![
            (at("09:31:59.250"), at("09:33:10.250"), "ws_stale".into()),
            (at("09:35:04.250"), at("09:43:00.250"), "ws_stale".into())
        ]
    );

    // The polls are in the raw archive, flagged degraded: a round every 3 s (poll_interval)
    // of every slot symbol while polling; outside it, only the seeds of the slots at the
    // open (slot entrants are seeded by REST through the same queue as the polls).
    let asked = run.provider.asked();
    let latency = 600;
    let polled: Vec<UtcTime> = run
        .raw()
        .iter()
        .filter(|l| l["kind"] == "rest" && l["quality_flag"] == "degraded" && l["channel"] == "FHKST01010100")
        .map(|l| t(l, "receive_time"))
        .collect();
    let rounds: Vec<UtcTime> = grid("09:36:39.100", "09:43:00.100", 3_000);
    for round in &rounds {
        assert!(asked.snapshots.iter().any(|(t, _)| t == round), "no poll round at {}", hms(*round));
    }
    let outside: Vec<UtcTime> =
        polled.iter().copied().filter(|t| !(rounds[0]..at("09:43:03.100")).contains(t)).collect();
    // (The seeder takes one snapshot at a time.)
    assert_eq!(outside, vec![at("09:30:00.600"), at("09:30:01.200"), at("09:30:01.800")]);
    // Every round's three polls, and the entrant's seed.
    assert_eq!(polled.len(), outside.len() + 3 * rounds.len() + 1);
    // The entrant (manual override, taking 035720's slot at 09:38:10.1, in the middle of the
    // 09:38:09.1 round) is seeded at once and polled next in that round, before the rest of
    // it; 035720, which left, is not polled again.
    let around: Vec<(String, String)> = asked
        .snapshots
        .iter()
        .filter(|(t, _)| (at("09:38:09.100")..at("09:38:12.100")).contains(t))
        .map(|(t, s)| (hms(*t), s.to_string()))
        .collect();
    let row = |t: &str, s: &str| (t.to_string(), s.to_string());
    assert_eq!(
        around,
        vec![
            row("09:38:09.100", "000660"),
            row("09:38:09.700", "005930"),
            row("09:38:10.100", "111111"),
            row("09:38:10.300", "111111")
        ]
    );

    // Track B keeps sampling throughout (scalp recording, paused five minutes into the
    // outage, goes on while REST feeds it), flagged degraded with data at most a round old
    // once the first round is in (09:36:40.9), until polling stops.
    let samples = run.scalp();
    assert_eq!(run.healing("scalp_paused"), vec![at("09:40:40.100")]);
    let polling = at("09:36:41.000")..at("09:43:03.100");
    // The entrant has nothing until its seed comes in (09:38:10.7): one sample says so.
    let nothing_yet = (at("09:38:10.500"), "111111");
    for s in samples.iter().filter(|s| polling.contains(&t(s, "event_time"))) {
        if (t(s, "event_time"), s["symbol"].as_str().unwrap()) == nothing_yet {
            assert_eq!(s["quality_flag"], "no_data", "{s}");
            continue;
        }
        assert_eq!(s["quality_flag"], "degraded", "{s}");
        assert!(s["data_age_ms"].as_i64().unwrap() <= 3_000 + 3 * latency, "{s}");
    }
    assert_eq!(run.summary.stats.scalp_no_data, 1);
    assert_eq!(run.summary.stats.scalp_written, run.summary.stats.scalp_expected);
    assert_eq!(run.summary.stats.scalp_expected, 3 * 2 * (17 * 60 + 10));
    // Stream data again and polling stopped: normal samples.
    let after = samples.iter().filter(|s| t(s, "event_time") >= at("09:43:03.500"));
    assert!(after.clone().count() > 0 && after.into_iter().all(|s| s["quality_flag"] == "normal"));

    // Replay applies the polls where they were used and samples the same states.
    let replayed = tempfile::tempdir().unwrap();
    let report = so_engine::replay::replay(run.data(), replayed.path(), &config).await.unwrap();
    assert_eq!(report.scalp, samples.len() as u64);
    let text = |root: &std::path::Path| -> Vec<String> {
        jsonl_files_under(&root.join("scalp"))
            .iter()
            .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(String::from).collect::<Vec<_>>())
            .collect()
    };
    assert!(text(run.data()) == text(replayed.path()), "replayed samples differ from the live ones");
}

/// Slot churn: two symbols enter by manual override. Each entrant is seeded with a REST
/// snapshot at once; one whose seed fails samples `no_data`; each that the stream never
/// carries is named `slot_dark` after `slot_dark_after` (5 s), and by the watchdog as stale
/// 30 s after entering. A symbol the stream does carry is not.
#[tokio::test(start_paused = true)]
async fn slot_entrants_are_seeded_by_rest_and_dark_ones_are_named() {
    // 111111 trades; 222222 and 333333 never appear on the stream; 333333's snapshots fail.
    let script = market()
        .universe(&["111111", "222222", "333333"], 50_000)
        .mute("222222")
        .mute("333333")
        .snapshots_fail(Some("333333"), at("09:00:00")..at("15:30:00"));
    let run = collect(
        config(4),
        script,
        at("09:29:00.100"),
        at("09:33:00"),
        vec![(at("09:31:02"), include(&["111111", "222222", "333333"]))],
    )
    .await;
    let asked = run.provider.asked();

    // At the open (09:30) the four placeholders are seeded; 111111 holds one already.
    let seeds_at = |t: UtcTime| -> Vec<String> {
        asked.snapshots.iter().filter(|(a, _)| *a == t).map(|(_, s)| s.to_string()).collect()
    };
    // The selector's evaluation after the override takes the two newcomers; the weakest
    // placeholders (latest in code order) leave.
    let decision = run.events_of("slot_decision").pop().unwrap();
    assert_eq!(t(&decision, "receive_time"), at("09:31:10.100"));
    assert_eq!(decision["added"], serde_json::json!(["222222", "333333"]));
    assert_eq!(decision["removed"], serde_json::json!(["035720", "005930"]));
    assert_eq!(seeds_at(at("09:31:10.100")), ["333333", "222222"]);
    assert_eq!(
        asked.subscriptions.last().unwrap(),
        &(at("09:31:10.100"), symbols(&["000660", "333333", "222222", "111111"]))
    );

    // Dark: 5 s after entering with no stream data; seeded or not.
    let dark: BTreeMap<String, (UtcTime, bool)> = run
        .events_of("slot_dark")
        .iter()
        .map(|e| (e["symbol"].as_str().unwrap().to_string(), (t(e, "receive_time"), e["seeded"].as_bool().unwrap())))
        .collect();
    let expect: BTreeMap<String, (UtcTime, bool)> =
        [("222222".to_string(), (at("09:31:15.100"), true)), ("333333".to_string(), (at("09:31:15.100"), false))]
            .into();
    assert_eq!(dark, expect);

    let samples = run.scalp();
    let from_entry = |code: &str| -> Vec<Value> {
        of(&samples, code).into_iter().filter(|s| t(s, "event_time") > at("09:31:10.100")).collect()
    };
    // The seeded entrant has the seed's state from its first sample: normal until the seed
    // is 30 s old, stale after.
    let seeded = from_entry("222222");
    assert_eq!(seeded.len(), 219);
    for s in &seeded {
        let age = t(s, "event_time").millis_since(at("09:31:10.100"));
        let flag = if age > 30_000 { "stale" } else { "normal" };
        assert_eq!((s["data_age_ms"].as_i64(), s["quality_flag"].as_str()), (Some(age), Some(flag)), "{s}");
        assert_eq!(s["last_price"], "50000", "{s}");
    }
    // The unseeded one has nothing at all, and says so.
    assert!(from_entry("333333").iter().all(|s| s["quality_flag"] == "no_data" && s["data_age_ms"].is_null()));
    assert_eq!(run.summary.stats.scalp_no_data, 219);
    // The entrant the stream carries is fresh from its first sample.
    assert!(from_entry("111111").iter().all(|s| s["quality_flag"] == "normal"));

    // The watchdog: the never-seen entrants are stale 30 s after entering, at its next look.
    let stale = run.events_of("self_healing").into_iter().find(|e| e["action"] == "stale_symbols").unwrap();
    assert_eq!(t(&stale, "receive_time"), at("09:31:41.100"));
    let named: Vec<&str> = stale["detail"].as_array().unwrap().iter().map(|d| d["symbol"].as_str().unwrap()).collect();
    assert_eq!(named, ["333333", "222222"]);
}

/// Forced CPU pressure (`Live::pressure`, the `cpu_pressure` fault) from 09:30 to 09:41: the
/// level steps up one level per sustained 5 minutes and back down the same way, Track B's
/// interval follows it (500 ms, 1 s, 2 s on one grid), and every sample carries the level
/// in force and says `degraded` above level 0.
#[tokio::test(start_paused = true)]
async fn forced_pressure_steps_the_mitigation_level_and_track_b_follows() {
    let pressure: Action = Box::new(|live: &Live| live.pressure.force_cpu(100.0, at("09:41:00")));
    let run = collect(config(1), market(), at("09:29:00.100"), at("09:53:00"), vec![(at("09:30:00"), pressure)]).await;

    // The health task reads every 10 s from the start (.100): pressure first read at 09:30:00.1.
    let steps: Vec<(UtcTime, u64, u64, u64)> = run
        .events_of("mitigation")
        .iter()
        .map(|e| {
            (
                t(e, "receive_time"),
                e["from"].as_u64().unwrap(),
                e["to"].as_u64().unwrap(),
                e["sample_interval_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (at("09:35:00.100"), 0, 1, 1000),
            (at("09:40:00.100"), 1, 2, 2000),
            (at("09:46:00.100"), 2, 1, 1000),
            (at("09:51:00.100"), 1, 0, 500)
        ]
    );
    let level_at = |t: UtcTime| -> u64 { steps.iter().take_while(|(at, ..)| *at <= t).last().map_or(0, |s| s.2) };

    // Track B takes each next sample on the interval in force when it schedules it: the
    // sample after a change still comes on the old interval.
    let mut due: Vec<(UtcTime, u64)> = Vec::new();
    for (from, to, step) in [
        ("09:30:00", "09:35:00.500", 500),
        ("09:35:01", "09:40:01", 1000),
        ("09:40:02", "09:46:02", 2000),
        ("09:46:03", "09:51:01", 1000),
        ("09:51:01.500", "09:52:59.500", 500),
    ] {
        due.extend(grid(from, to, step).into_iter().map(|t| (t, step as u64)));
    }
    let samples = run.scalp();
    let got: Vec<(UtcTime, u64)> = of(&samples, "000660")
        .iter()
        .map(|s| (t(s, "event_time"), s["sample_interval_ms"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, due);
    for s in &samples {
        let level = level_at(t(s, "event_time"));
        assert_eq!(s["mitigation_level"].as_u64(), Some(level), "{s}");
        assert_eq!(s["quality_flag"], if level > 0 { "degraded" } else { "normal" }, "{s}");
    }
    assert_eq!(run.summary.stats.scalp_written, due.len() as u64);
    assert_eq!(run.summary.stats.mitigation_changes, 4);
}

/// Track A and Track B over 13 minutes: exactly the snapshots and samples the schedules
/// call for, each scalp file holding the samples taken in its five minutes, the volume
/// ranking archived raw at every evaluation, and every stage's counters equal to what is on
/// disk.
#[tokio::test(start_paused = true)]
async fn the_archive_holds_exactly_what_the_schedules_call_for() {
    let script = market().universe(&["111111", "222222"], 50_000).ranking(&[("005930", 900), ("000660", 800)]);
    let run = collect(config(2), script, at("09:58:00.100"), at("10:11:00"), vec![]).await;
    let stats = &run.summary.stats;

    // Track A: a cycle at once (started between two grid instants), then at 10:00 and 10:10,
    // each of every universe symbol.
    let swing = lines_under(&run.data().join("swing"));
    let mut cycles: Vec<UtcTime> = swing.iter().map(|s| t(s, "receive_time")).collect();
    cycles.dedup();
    assert_eq!(cycles, [at("09:58:00.100"), at("10:00:00"), at("10:10:00")]);
    assert_eq!(swing.len(), 5 * 3);
    assert_eq!(stats.track_a_cycles, 3);

    // Track B: every 500 ms of the grid from the start to 10:10:59.5, each slot; none at the end.
    let samples = run.scalp();
    let due = grid("09:58:00.500", "10:10:59.500", 500);
    assert_eq!(of(&samples, "000660").iter().map(|s| t(s, "event_time")).collect::<Vec<_>>(), due);
    assert_eq!(samples.len(), 2 * due.len());
    // Five-minute files by the instant the sample was taken.
    let dir = run.data().join("scalp/kis/kr_stocks/20260114");
    let files: Vec<String> =
        jsonl_files_under(&dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files, ["09_55_00.jsonl", "10_00_00.jsonl", "10_05_00.jsonl", "10_10_00.jsonl"]);
    for (i, file) in files.iter().enumerate() {
        let from = at("09:55:00").plus_millis(i as i64 * 300_000);
        let lines = lines_of(&dir.join(file));
        assert_eq!(lines.len(), 2 * [239, 600, 600, 120][i], "{file}");
        assert!(lines.iter().all(|s| (from..from.plus_millis(300_000)).contains(&t(s, "receive_time"))), "{file}");
    }

    // The ranking response of every evaluation (every 10 s from the start) is archived raw.
    let raw = run.raw();
    let rankings: Vec<UtcTime> =
        raw.iter().filter(|l| l["channel"] == "FHPST01710000").map(|l| t(l, "receive_time")).collect();
    assert_eq!(rankings, grid("09:58:10.100", "10:10:50.100", 10_000));
    assert_eq!(run.provider.asked().rankings, rankings);

    // Counters reconcile with each other and with the files.
    assert_eq!(
        stats.events_normalized,
        stats.events_passed + stats.rejected_validate + stats.rejected_guard + stats.rejected_unsubscribed
    );
    assert_eq!(stats.frames_received as usize, raw.len());
    assert_eq!(stats.scalp_written as usize, samples.len());
    assert_eq!(stats.scalp_expected, stats.scalp_written);
    assert_eq!(stats.swing_written as usize, swing.len());
    assert_eq!((stats.lines_failed, stats.lines_lost, stats.scalp_late, stats.rejected_unsubscribed), (0, 0, 0, 0));
    let on_disk = jsonl_files_under(run.data()).iter().map(|p| lines_of(p).len() as u64).sum::<u64>();
    assert_eq!((stats.lines_published, stats.lines_saved), (on_disk, on_disk));
    let report = archive::verify(run.data(), None).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// Replay reads a day whose closed files were compressed at rest exactly as it read them
/// plain: the same records, from the same hours in the same order (the run crosses 10:00,
/// so raw has two hour files), with the session's skew allowance from its compressed events.
#[tokio::test(start_paused = true)]
async fn a_compressed_archive_replays_like_the_plain_one() {
    let run = collect(config(2), market(), at("09:59:00.100"), at("10:01:00"), vec![]).await;
    let plain = tempfile::tempdir().unwrap();
    let plain_report = so_engine::replay::replay(run.data(), plain.path(), &run.config).await.unwrap();
    assert!(plain_report.frames > 0 && plain_report.scalp > 0, "{plain_report:?}");

    for date in archive::Manifest::load_all(run.data()).unwrap().keys() {
        archive::compress_day(run.data(), date.parse().unwrap(), 3).unwrap();
    }
    assert!(jsonl_files_under(&run.data().join("raw")).is_empty(), "raw files left uncompressed");
    let report = archive::verify(run.data(), None).unwrap();
    assert!(report.ok(), "{:?}", report.problems);

    let compressed = tempfile::tempdir().unwrap();
    let compressed_report = so_engine::replay::replay(run.data(), compressed.path(), &run.config).await.unwrap();
    let json = |r| serde_json::to_value(r).unwrap();
    assert_eq!(json(&compressed_report), json(&plain_report));
    let files = |root: &std::path::Path| -> Vec<(PathBuf, Vec<u8>)> {
        ["swing", "scalp"]
            .iter()
            .flat_map(|d| jsonl_files_under(&root.join(d)))
            .map(|p| (p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let (a, b) = (files(plain.path()), files(compressed.path()));
    assert!(a.len() >= 3, "{a:?}");
    assert!(a == b, "replays of the plain and the compressed archive differ");
}

/// A run started exactly on a Track A cycle instant takes that cycle, once. (It used to be
/// lost: the immediate cycle is skipped as "on the grid" and the loop looked for the next
/// instant strictly after the start.)
#[tokio::test(start_paused = true)]
async fn a_run_started_on_a_cycle_instant_takes_that_cycle() {
    let run = collect(config(2), market(), at("10:00:00"), at("10:00:30"), vec![]).await;
    let swing = lines_under(&run.data().join("swing"));
    assert_eq!(swing.iter().map(|s| t(s, "receive_time")).collect::<Vec<_>>(), vec![at("10:00:00"); 3]);
}

/// A stream record for a symbol the stream never subscribed is refused (stage
/// `subscription`), as in production: the scripted venue archives its subscribe requests.
#[tokio::test(start_paused = true)]
async fn records_of_symbols_never_subscribed_are_refused() {
    let stray = so_engine::testing::scripted::trade_frame(
        &Symbol::new("999999").unwrap(),
        at("09:30:10.600"),
        model::Price::from_int(1_000),
        1,
        1,
    );
    let script = market().frame(at("09:30:10.600"), stray);
    let run = collect(config(3), script, at("09:29:00.100"), at("09:30:30"), vec![]).await;
    let refused = run.events_of("record_rejected");
    assert_eq!(refused.len(), 2, "a trade record yields a tick and its quote: {refused:#?}");
    assert!(refused.iter().all(|e| e["stage"] == "subscription" && e["symbol"] == "999999"));
    assert_eq!(run.summary.stats.rejected_unsubscribed, 2);
    assert!(run.scalp().iter().all(|s| s["symbol"] != "999999"));
}

/// A session that reconnects between two of the watchdog's looks gets the whole `silence`
/// (60 s) before the watchdog restarts it, as after any reconnect. (The watchdog used to
/// notice only a reconnect it saw the socket down for; here the idle timeout ends the stalled
/// session at 10:01:59.25 and the next connects at 10:02:00.25, between two looks, and the
/// watchdog restarted it at 10:02:06.1 for the old session's silence.)
#[tokio::test(start_paused = true)]
async fn a_session_reconnected_between_two_watchdog_looks_gets_the_whole_silence() {
    let script = market().stall(at("10:01:00")..at("10:02:30")).idle_timeout(Duration::from_secs(60));
    let run = collect(config(3), script, at("10:00:00.100"), at("10:03:00"), vec![]).await;
    assert_eq!(run.healing("restart_session"), vec![], "{:#?}", run.timeline());
}

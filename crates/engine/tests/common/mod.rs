//! Shared helpers of the engine's integration tests: the engine config from the embedded
//! defaults, a collector run on the scripted provider and tokio's virtual clock, and
//! readers of the archive it leaves.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Format, Yaml};
use serde_json::Value;
use tokio::sync::watch;

use model::{Clock, UtcTime};
use so_engine::testing::{Script, ScriptedProvider, queue_never_filled};
use so_engine::{Collector, EngineConfig, Live, Summary};

/// The defaults `collect` runs with (the `so-config` crate embeds the same file).
const OBSERVER_YAML: &str = include_str!("../../../../configs/observer.yaml");

fn section<T: serde::de::DeserializeOwned>(fig: &Figment, key: &str) -> T {
    fig.extract_inner(key).unwrap_or_else(|e| panic!("configs/observer.yaml {key}: {e}"))
}

/// The engine's config as `configs/observer.yaml` sets it, read the way the config crate
/// reads it.
pub fn default_config() -> EngineConfig {
    let fig = Figment::from(Yaml::string(OBSERVER_YAML));
    let mut c = EngineConfig {
        calendar: section(&fig, "calendar"),
        observer: section(&fig, "observer"),
        universe: section(&fig, "universe"),
        tracks: section(&fig, "tracks"),
        pipeline: section(&fig, "pipeline"),
        archive: section(&fig, "archive"),
        reconnect: section(&fig, "reconnect"),
        mitigation: section(&fig, "mitigation"),
        watchdog: section(&fig, "watchdog"),
        anomaly: section(&fig, "anomaly"),
        triggers: section(&fig, "triggers"),
        slots: section(&fig, "slots"),
    };
    // Not a key of its own (the config crate copies it the same way).
    c.slots.slots = c.tracks.scalp.slots;
    c
}

/// Room in the archive queue for every line a scripted run writes: no task ever waits for
/// the writer thread, so tokio's clock never jumps under a waiting write (checked after
/// each run with `queue_never_filled`).
pub const ARCHIVE_CAPACITY: usize = 1 << 20;

/// The defaults, made deterministic for a run on virtual time: `slots` slots; no machine
/// readings (forced pressure still counts) and no disk-fullness alarm, since this machine
/// says nothing about the engine; an archive queue that never fills; and fsync and
/// housekeeping (wall-clock periods, virtual here) once a minute rather than many times a
/// virtual second.
pub fn config(slots: usize) -> EngineConfig {
    let mut c = default_config();
    c.tracks.scalp.slots = slots;
    c.slots.slots = slots;
    c.mitigation.watch = vec![];
    c.anomaly.max_disk_percent = 100.0;
    c.pipeline.archive_capacity = ARCHIVE_CAPACITY;
    c.archive.fsync_interval = "1m".parse().unwrap();
    c.pipeline.housekeeping_interval = "1m".parse().unwrap();
    // Engine tasks tick on their own periods from the same start; where two fire at the same
    // instant their order is the runtime's (and `select!` picks at random among branches
    // ready together). The watchdog looks every 7 s and degrade mode polls every 3 s, so
    // neither meets the other, the 5 s and 10 s grids (selector, health) or a reconnect
    // after any backoff step at the instants the tests look at.
    c.watchdog.check_interval = "7s".parse().unwrap();
    c.watchdog.poll_interval = "3s".parse().unwrap();
    c
}

/// The test day: a Wednesday, a KRX trading day.
pub const DAY: &str = "2026-01-14";

/// `hh:mm:ss[.mmm]` Seoul time on [`DAY`].
pub fn at(hhmmss: &str) -> UtcTime {
    UtcTime::from_kst(format!("{DAY}T{hhmmss}").parse().unwrap_or_else(|e| panic!("{hhmmss}: {e}")))
}

/// Seoul time of day of `t`, `hh:mm:ss.mmm`, for messages and timelines.
pub fn hms(t: UtcTime) -> String {
    let k = t.kst();
    format!("{:02}:{:02}:{:02}.{:03}", k.hour(), k.minute(), k.second(), k.subsec_nanosecond() / 1_000_000)
}

/// Something done to the running collector at a market instant (a manual override, forced
/// CPU pressure).
pub type Action = Box<dyn FnOnce(&Live) + Send>;

/// A finished scripted run: its archive and what the engine asked of the provider.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub provider: Arc<ScriptedProvider>,
    pub summary: Summary,
    pub config: EngineConfig,
}

/// Runs the collector from `start` to `until` on tokio's virtual clock with `script` as its
/// only provider, doing each action at its instant. Call it from a
/// `#[tokio::test(start_paused = true)]`.
pub async fn collect(
    config: EngineConfig,
    script: Script,
    start: UtcTime,
    until: UtcTime,
    actions: Vec<(UtcTime, Action)>,
) -> Run {
    let clock = Clock::on_tokio_time(start);
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(ScriptedProvider::new(clock, script));
    let collector = Collector::new(
        config.clone(),
        vec![providers::AnyProvider::shared(provider.clone())],
        clock,
        dir.path().to_path_buf(),
        serde_json::json!({ "scripted": true }),
    );
    let live = collector.live.clone();
    let mut actions = actions;
    actions.sort_by_key(|(t, _)| *t);
    let acting: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        for (t, act) in actions {
            clock.sleep_until(t).await;
            act(&live);
        }
    });
    let actor = tokio::spawn(acting);
    // Kept alive for the whole run: a dropped sender reads as "stop".
    let (_stop_tx, stop) = watch::channel(false);
    let summary = collector.run(stop, Some(until)).await.expect("the scripted run failed");
    actor.abort();
    assert!(
        queue_never_filled(&summary.stats, config.pipeline.archive_capacity),
        "the archive queue may have filled (a write waited for the writer thread while time moved): {:?}",
        summary.stats
    );
    Run { dir, provider, summary, config }
}

impl Run {
    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// The KIS system events (`system/events/kis`), in order.
    pub fn events(&self) -> Vec<Value> {
        lines_under(&self.data().join("system/events/kis"))
    }

    /// System events of `event_type`.
    pub fn events_of(&self, event_type: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["event_type"] == event_type).collect()
    }

    /// `self_healing` events with `action`, by when they were recorded.
    pub fn healing(&self, action: &str) -> Vec<UtcTime> {
        self.events_of("self_healing").iter().filter(|e| e["action"] == action).map(|e| t(e, "receive_time")).collect()
    }

    /// Track B samples, in order.
    pub fn scalp(&self) -> Vec<Value> {
        lines_under(&self.data().join("scalp/kis"))
    }

    pub fn raw(&self) -> Vec<Value> {
        lines_under(&self.data().join("raw/kis"))
    }

    pub fn overflow(&self) -> Vec<Value> {
        lines_under(&self.data().join("system/overflow"))
    }

    /// The reconnect, gap and self-healing events as readable lines, for failure messages.
    pub fn timeline(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| {
                ["self_healing", "gap_marker", "reconnection_event", "slot_decision", "slot_dark", "mitigation"]
                    .contains(&e["event_type"].as_str().unwrap_or_default())
            })
            .map(|e| format!("{} {} {}", hms(t(e, "receive_time")), e["event_type"], e["action"]))
            .collect()
    }
}

/// Every `.jsonl` file under `dir`, recursively, in path order (none if `dir` is missing).
pub fn jsonl_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            out.extend(jsonl_files_under(&p));
        } else if p.extension().is_some_and(|e| e == "jsonl") {
            out.push(p);
        }
    }
    out
}

/// Every JSON line of every `.jsonl` file under `dir`.
pub fn lines_under(dir: &Path) -> Vec<Value> {
    jsonl_files_under(dir).iter().flat_map(|p| lines_of(p)).collect()
}

pub fn lines_of(p: &Path) -> Vec<Value> {
    let body = std::fs::read_to_string(p).unwrap();
    body.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", p.display())))
        .collect()
}

/// The instant at `key` of `v`.
pub fn t(v: &Value, key: &str) -> UtcTime {
    let s = v[key].as_str().unwrap_or_else(|| panic!("{key} missing in {v}"));
    UtcTime::parse(s).unwrap_or_else(|e| panic!("{key} of {v}: {e}"))
}

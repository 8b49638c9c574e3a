//! The mitigation controller (seed 001 §2.10): CPU, memory, disk write latency and event-queue
//! lag, each judged against two thresholds; a reading that stays at or over a level's
//! threshold for the configured sustain time moves the level up one step, and readings that
//! stay under the current level for as long move it down one step. Coverage comes before
//! frequency: a higher level only lowers Track B's Hz (2 → 1 → 0.5), never the slot count.
//!
//! Steps are one at a time and each needs its own sustain period, so a spike cannot jump
//! the level from 0 to 2, and the history of every change is a system event with the
//! readings that caused it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use serde_json::json;

use model::settings::{Checker, Interval, Validate};
use model::{Clock, SystemEvent, UtcTime};

use crate::stats::Stats;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MitigationConfig {
    /// How often the resources are read (market clock).
    pub sample_interval: Interval,
    /// How long a reading must hold before the level moves (seed: 5 minutes).
    pub sustain: Interval,
    /// Level 1 and level 2 thresholds (seed 001 §2.10).
    pub cpu_percent: [f64; 2],
    pub memory_percent: [f64; 2],
    pub disk_write_latency: [Interval; 2],
    pub queue_lag: [Interval; 2],
    /// Shortest wall-clock span the CPU share is measured over: /proc/stat counts in 10 ms
    /// ticks, so on an accelerated clock a reading per sample would be noise.
    pub cpu_window: Interval,
    /// The readings that may move the level. On a host shared with heavier work (or in
    /// tests that count samples) some machine readings say nothing about this recorder;
    /// fault scripts' forced readings count whatever this says.
    pub watch: Vec<Resource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Cpu,
    Memory,
    DiskWriteLatency,
    QueueLag,
}

impl Validate for MitigationConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(self.sample_interval.as_millis() >= 100, "sample_interval", "must be at least 100ms");
        c.check(
            self.sustain.as_millis() >= self.sample_interval.as_millis(),
            "sustain",
            format_args!("{} must be at least sample_interval", self.sustain),
        );
        for (name, [l1, l2]) in [("cpu_percent", self.cpu_percent), ("memory_percent", self.memory_percent)] {
            c.check(0.0 < l1 && l1 < l2 && l2 <= 100.0, name, format_args!("[{l1}, {l2}] must rise within 0..=100"));
        }
        for (name, [l1, l2]) in [("disk_write_latency", self.disk_write_latency), ("queue_lag", self.queue_lag)] {
            c.check(l1.as_millis() < l2.as_millis(), name, format_args!("[{l1}, {l2}] must rise"));
        }
    }
}

/// One reading of every resource the controller watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Readings {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub disk_write_latency_ms: u64,
    pub queue_lag_ms: u64,
}

/// Forced readings for fault scripts (`collect --fault cpu_pressure@…`): until the stored
/// market time, the CPU reads as the given percentage whatever the machine says.
#[derive(Debug, Default)]
pub struct Pressure {
    cpu_until_ms: AtomicI64,
    cpu_percent_x100: AtomicI64,
}

impl Pressure {
    pub fn force_cpu(&self, percent: f64, until: UtcTime) {
        self.cpu_percent_x100.store((percent * 100.0) as i64, Relaxed);
        self.cpu_until_ms.store(until.as_millis(), Relaxed);
    }

    fn cpu(&self, now: UtcTime) -> Option<f64> {
        (now.as_millis() < self.cpu_until_ms.load(Relaxed)).then(|| self.cpu_percent_x100.load(Relaxed) as f64 / 100.0)
    }
}

/// Reads the machine: `/proc/stat` and `/proc/meminfo` (Linux), and the engine's gauges.
#[derive(Debug)]
pub struct Probe {
    window: std::time::Duration,
    watch: Vec<Resource>,
    last_cpu: Option<(u64, u64, std::time::Instant)>,
    cpu: f64,
}

impl Probe {
    pub fn new(cfg: &MitigationConfig) -> Self {
        Probe { window: cfg.cpu_window.get(), watch: cfg.watch.clone(), last_cpu: None, cpu: 0.0 }
    }

    /// Unwatched resources read as idle.
    pub fn read(&mut self, stats: &Stats, pressure: &Pressure, now: UtcTime) -> Readings {
        let watch = self.watch.clone();
        let on = |r: Resource| watch.contains(&r);
        let (lag, latency) = (stats.gauges.take_queue_lag_ms(), stats.gauges.take_write_latency_ms());
        let cpu = if on(Resource::Cpu) { self.cpu_percent() } else { 0.0 };
        Readings {
            cpu_percent: pressure.cpu(now).unwrap_or(cpu),
            memory_percent: if on(Resource::Memory) { memory_percent().unwrap_or(0.0) } else { 0.0 },
            disk_write_latency_ms: if on(Resource::DiskWriteLatency) { latency } else { 0 },
            queue_lag_ms: if on(Resource::QueueLag) { lag } else { 0 },
        }
    }

    /// Busy share of all CPUs over the last window (0 until one has passed, or off Linux).
    fn cpu_percent(&mut self) -> f64 {
        let wall = std::time::Instant::now();
        if self.last_cpu.is_some_and(|(_, _, at)| wall.duration_since(at) < self.window) {
            return self.cpu;
        }
        let Some((busy, total)) = cpu_times() else { return 0.0 };
        if let Some((b0, t0, _)) = self.last_cpu
            && total > t0
        {
            self.cpu = busy.saturating_sub(b0) as f64 * 100.0 / (total - t0) as f64;
        }
        self.last_cpu = Some((busy, total, wall));
        self.cpu
    }
}

fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn memory_percent() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    (total > 0.0).then(|| (total - available) * 100.0 / total)
}

/// The level state machine, free of I/O so its timing can be tested exactly.
#[derive(Debug)]
pub struct Controller {
    cfg: MitigationConfig,
    level: u8,
    /// Since when the readings have continuously implied a level above / below the current one.
    above_since: Option<UtcTime>,
    below_since: Option<UtcTime>,
}

/// A level change and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub from: u8,
    pub to: u8,
    pub reason: String,
}

pub const MAX_LEVEL: u8 = 2;

impl Controller {
    pub fn new(cfg: MitigationConfig) -> Self {
        Controller { cfg, level: 0, above_since: None, below_since: None }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    /// The level these readings call for on their own, and the reading that decides it.
    pub fn implied(&self, r: &Readings) -> (u8, String) {
        let c = &self.cfg;
        let checks = [
            ("cpu_percent", r.cpu_percent, c.cpu_percent),
            ("memory_percent", r.memory_percent, c.memory_percent),
            (
                "disk_write_latency_ms",
                r.disk_write_latency_ms as f64,
                c.disk_write_latency.map(|i| i.as_millis() as f64),
            ),
            ("queue_lag_ms", r.queue_lag_ms as f64, c.queue_lag.map(|i| i.as_millis() as f64)),
        ];
        let mut best = (0u8, String::from("all readings under the level 1 thresholds"));
        for (name, value, [l1, l2]) in checks {
            let level = if value >= l2 {
                2
            } else if value >= l1 {
                1
            } else {
                0
            };
            if level > best.0 {
                let threshold = if level == 2 { l2 } else { l1 };
                best = (level, format!("{name} {value:.1} >= {threshold} (level {level} threshold)"));
            }
        }
        best
    }

    /// Feeds one reading taken at `now`; returns the change it caused, if any.
    pub fn observe(&mut self, now: UtcTime, r: &Readings) -> Option<Change> {
        let (implied, why) = self.implied(r);
        let sustain = self.cfg.sustain.as_millis() as i64;
        if implied > self.level {
            self.below_since = None;
            let since = *self.above_since.get_or_insert(now);
            if now.millis_since(since) >= sustain {
                return Some(self.step(self.level + 1, now, format!("{why}, sustained {}", self.cfg.sustain)));
            }
        } else if implied < self.level {
            self.above_since = None;
            let since = *self.below_since.get_or_insert(now);
            if now.millis_since(since) >= sustain {
                let reason = format!("readings under the level {} thresholds for {}", self.level, self.cfg.sustain);
                return Some(self.step(self.level - 1, now, reason));
            }
        } else {
            self.above_since = None;
            self.below_since = None;
        }
        None
    }

    fn step(&mut self, to: u8, now: UtcTime, reason: String) -> Change {
        let change = Change { from: self.level, to, reason };
        self.level = to;
        // The next step needs its own sustained period, measured from this change.
        self.above_since = Some(now).filter(|_| to < MAX_LEVEL);
        self.below_since = Some(now).filter(|_| to > 0);
        change
    }
}

/// Everything the running controller shares with the rest of the engine.
pub struct MitigationTask {
    pub controller: Controller,
    pub probe: Probe,
    pub pressure: Arc<Pressure>,
    pub stats: Arc<Stats>,
    pub level: Arc<AtomicU8>,
    pub clock: Clock,
}

impl MitigationTask {
    /// One reading: updates the shared level and returns the event to record, if it changed.
    pub fn tick(&mut self, sample_interval_ms: impl Fn(u8) -> u64) -> (Readings, Option<SystemEvent>) {
        let now = self.clock.now();
        let r = self.probe.read(&self.stats, &self.pressure, now);
        let Some(change) = self.controller.observe(now, &r) else { return (r, None) };
        self.level.store(change.to, Relaxed);
        crate::stats::inc(&self.stats.mitigation_changes);
        tracing::warn!(from = change.from, to = change.to, reason = %change.reason, "mitigation level changed");
        let event = SystemEvent::Mitigation {
            from: change.from,
            to: change.to,
            sample_interval_ms: sample_interval_ms(change.to),
            reason: change.reason,
            metrics: json!(r),
        };
        (r, Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MitigationConfig {
        MitigationConfig {
            sample_interval: "10s".parse().unwrap(),
            sustain: "5m".parse().unwrap(),
            cpu_percent: [80.0, 90.0],
            memory_percent: [85.0, 95.0],
            disk_write_latency: ["500ms".parse().unwrap(), "1s".parse().unwrap()],
            queue_lag: ["2s".parse().unwrap(), "5s".parse().unwrap()],
            cpu_window: "1s".parse().unwrap(),
            watch: vec![Resource::Cpu, Resource::Memory, Resource::DiskWriteLatency, Resource::QueueLag],
        }
    }

    fn at(min: i64, sec: i64) -> UtcTime {
        UtcTime::from_millis(1_800_000_000_000 + (min * 60 + sec) * 1000)
    }

    fn cpu(p: f64) -> Readings {
        Readings { cpu_percent: p, ..Readings::default() }
    }

    /// Feeds a reading every 10 s from `from` (inclusive) to `to` (exclusive) minutes.
    fn run(c: &mut Controller, from: i64, to: i64, r: Readings) -> Vec<(i64, u8)> {
        let mut changes = vec![];
        for s in (from * 60..to * 60).step_by(10) {
            if let Some(ch) = c.observe(at(0, s), &r) {
                changes.push((s, ch.to));
            }
        }
        changes
    }

    #[test]
    fn sustained_pressure_steps_up_one_level_at_a_time_and_back() {
        let mut c = Controller::new(cfg());
        // 95% CPU from minute 0 to 20: level 1 at 5:00, level 2 five minutes later.
        assert_eq!(run(&mut c, 0, 20, cpu(95.0)), vec![(300, 1), (600, 2)]);
        // Back to normal at 20:00: down to 1 at 25:00, to 0 at 30:00.
        assert_eq!(run(&mut c, 20, 40, cpu(10.0)), vec![(1500, 1), (1800, 0)]);
    }

    #[test]
    fn short_spikes_and_level_one_readings_do_not_reach_level_two() {
        let mut c = Controller::new(cfg());
        // A 4-minute spike, then calm, then another: never sustained.
        assert!(run(&mut c, 0, 4, cpu(99.0)).is_empty());
        assert!(run(&mut c, 4, 5, cpu(20.0)).is_empty());
        assert!(run(&mut c, 5, 9, cpu(99.0)).is_empty());
        // Then level-1 queue lag for 20 minutes: pressure has held since 5:00 without a
        // break, so level 1 comes at 10:00, and the level stops there.
        let lag = Readings { queue_lag_ms: 3000, ..Readings::default() };
        assert_eq!(run(&mut c, 9, 30, lag), vec![(600, 1)]);
        assert_eq!(c.level(), 1);
    }

    #[test]
    fn the_worst_reading_decides_and_is_named() {
        let c = Controller::new(cfg());
        let r = Readings { cpu_percent: 81.0, memory_percent: 10.0, disk_write_latency_ms: 1200, queue_lag_ms: 0 };
        let (level, why) = c.implied(&r);
        assert_eq!(level, 2);
        assert!(why.starts_with("disk_write_latency_ms 1200"), "{why}");
    }

    #[test]
    fn forced_cpu_pressure_ends_at_its_time() {
        let p = Pressure::default();
        p.force_cpu(95.0, at(10, 0));
        assert_eq!(p.cpu(at(9, 59)), Some(95.0));
        assert_eq!(p.cpu(at(10, 0)), None);
    }

    #[test]
    fn config_rejects_falling_thresholds() {
        let mut bad = cfg();
        bad.cpu_percent = [90.0, 80.0];
        let mut ch = Checker::default();
        bad.validate(&mut ch);
        assert!(!ch.problems.is_empty());
    }
}

//! Anomaly-day conditions (seed 001 §2.8), evaluated continuously: each trips at most once
//! per Seoul day and is written to `system/events` as it trips, so retention (a later issue)
//! can keep that day's raw logs longer. Free of I/O: the health task feeds it readings.

use serde::{Deserialize, Serialize};

use model::UtcTime;
use model::settings::{Checker, Interval, Validate};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    pub max_reconnects: u64,
    pub max_disconnected: Interval,
    /// A gap marker at least this long is a "log gap"; `max_long_gaps` of them trip.
    pub long_gap: Interval,
    pub max_long_gaps: u64,
    /// Scalp recording rate below this share for `recording_rate_for` trips.
    pub min_recording_rate: f64,
    pub recording_rate_for: Interval,
    pub max_cpu_percent: f64,
    pub cpu_for: Interval,
    pub max_disk_percent: f64,
}

impl Validate for AnomalyConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(
            (0.0..=1.0).contains(&self.min_recording_rate),
            "min_recording_rate",
            format_args!("{} must be within 0..=1", self.min_recording_rate),
        );
        c.check(
            0.0 < self.max_cpu_percent && self.max_cpu_percent <= 100.0,
            "max_cpu_percent",
            format_args!("{} must be within 0..=100", self.max_cpu_percent),
        );
        c.check(
            0.0 < self.max_disk_percent && self.max_disk_percent <= 100.0,
            "max_disk_percent",
            format_args!("{} must be within 0..=100", self.max_disk_percent),
        );
    }
}

/// What the health task measured over the last interval (`from` → `now`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Interim {
    pub reconnect_attempts: u64,
    /// Whether the stream was down during the interval.
    pub disconnected: bool,
    /// Gap markers written, and how many of them were at least `long_gap` long.
    pub gaps: u64,
    pub long_gaps: u64,
    pub scalp_written: u64,
    /// Of `scalp_written`, samples with no data at all, and with data older than `stale_after`.
    pub scalp_no_data: u64,
    pub scalp_stale: u64,
    pub scalp_expected: u64,
    pub cpu_percent: f64,
    pub disk_percent: Option<f64>,
}

/// A condition that tripped.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub condition: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub date: String,
}

/// The day so far, also shown by the status line and `/health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Day {
    pub date: String,
    pub reconnects: u64,
    pub disconnected_ms: i64,
    pub gaps: u64,
    pub long_gaps: u64,
    pub scalp_written: u64,
    pub scalp_no_data: u64,
    pub scalp_stale: u64,
    pub scalp_expected: u64,
    pub tripped: Vec<String>,
}

impl Day {
    /// Samples written with data over samples asked for (`None` while nothing was asked
    /// for: no figure rather than a 100 % over nothing).
    pub fn recording_rate(&self) -> Option<f64> {
        recording_rate(self.scalp_written, self.scalp_no_data, self.scalp_expected)
    }
}

/// Samples with data (written, not `no_data`) over samples due. A sample that was due but
/// not written (sampled down) or written empty counts against the rate.
pub fn recording_rate(written: u64, no_data: u64, expected: u64) -> Option<f64> {
    (expected > 0).then(|| written.saturating_sub(no_data) as f64 / expected as f64)
}

#[derive(Debug)]
pub struct AnomalyMonitor {
    cfg: AnomalyConfig,
    day: Day,
    last: Option<UtcTime>,
    low_rate_since: Option<UtcTime>,
    high_cpu_since: Option<UtcTime>,
}

impl AnomalyMonitor {
    pub fn new(cfg: AnomalyConfig) -> Self {
        AnomalyMonitor { cfg, day: Day::default(), last: None, low_rate_since: None, high_cpu_since: None }
    }

    pub fn day(&self) -> &Day {
        &self.day
    }

    pub fn observe(&mut self, now: UtcTime, m: Interim) -> Vec<Trip> {
        let date = now.kst_yyyymmdd();
        if self.day.date != date {
            self.day = Day { date: date.clone(), ..Day::default() };
            self.low_rate_since = None;
            self.high_cpu_since = None;
        }
        let step = self.last.map_or(0, |l| now.millis_since(l).max(0));
        self.last = Some(now);
        let d = &mut self.day;
        d.reconnects += m.reconnect_attempts;
        if m.disconnected {
            d.disconnected_ms += step;
        }
        d.gaps += m.gaps;
        d.long_gaps += m.long_gaps;
        d.scalp_written += m.scalp_written;
        d.scalp_no_data += m.scalp_no_data;
        d.scalp_stale += m.scalp_stale;
        d.scalp_expected += m.scalp_expected;

        let c = &self.cfg;
        let mut checks: Vec<(&'static str, f64, f64, bool)> = vec![
            ("reconnects", d.reconnects as f64, c.max_reconnects as f64, d.reconnects >= c.max_reconnects),
            (
                "disconnected_seconds",
                d.disconnected_ms as f64 / 1000.0,
                c.max_disconnected.get().as_secs_f64(),
                d.disconnected_ms >= c.max_disconnected.as_millis() as i64,
            ),
            ("long_log_gaps", d.long_gaps as f64, c.max_long_gaps as f64, d.long_gaps >= c.max_long_gaps),
        ];
        // Sustained conditions: the interval's own reading must hold for the whole period.
        let rate = recording_rate(m.scalp_written, m.scalp_no_data, m.scalp_expected);
        let low = rate.is_some_and(|r| r < c.min_recording_rate);
        let since = sustained(&mut self.low_rate_since, low, now);
        checks.push((
            "scalp_recording_rate",
            rate.unwrap_or(1.0),
            c.min_recording_rate,
            since.is_some_and(|s| now.millis_since(s) >= c.recording_rate_for.as_millis() as i64),
        ));
        let hot = m.cpu_percent >= c.max_cpu_percent;
        let since = sustained(&mut self.high_cpu_since, hot, now);
        checks.push((
            "cpu_percent",
            m.cpu_percent,
            c.max_cpu_percent,
            since.is_some_and(|s| now.millis_since(s) >= c.cpu_for.as_millis() as i64),
        ));
        if let Some(disk) = m.disk_percent {
            checks.push(("disk_percent", disk, c.max_disk_percent, disk > c.max_disk_percent));
        }
        let mut trips = Vec::new();
        for (condition, value, threshold, tripped) in checks {
            if tripped && !d.tripped.iter().any(|t| t == condition) {
                d.tripped.push(condition.to_string());
                trips.push(Trip { condition, value, threshold, date: date.clone() });
            }
        }
        trips
    }
}

fn sustained(since: &mut Option<UtcTime>, on: bool, now: UtcTime) -> Option<UtcTime> {
    if on {
        Some(*since.get_or_insert(now))
    } else {
        *since = None;
        None
    }
}

/// Share of the file system holding `path` that is used, like `df`.
pub fn disk_percent(path: &std::path::Path) -> Option<f64> {
    archive::disk_usage(path).map(archive::DiskUsage::percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AnomalyConfig {
        AnomalyConfig {
            max_reconnects: 20,
            max_disconnected: "10m".parse().unwrap(),
            long_gap: "60s".parse().unwrap(),
            max_long_gaps: 2,
            min_recording_rate: 0.97,
            recording_rate_for: "5m".parse().unwrap(),
            max_cpu_percent: 85.0,
            cpu_for: "10m".parse().unwrap(),
            max_disk_percent: 80.0,
        }
    }

    fn t(sec: i64) -> UtcTime {
        // 2027-01-15 10:00 KST, plus seconds.
        UtcTime::from_millis(1_800_000_000_000 + sec * 1000)
    }

    #[test]
    fn each_condition_trips_once_a_day_when_reached() {
        let mut m = AnomalyMonitor::new(cfg());
        let mut trips = vec![];
        // 10 s steps: a reconnect attempt every step, disconnected throughout.
        for i in 0..70 {
            let r = Interim { reconnect_attempts: 1, disconnected: true, ..Interim::default() };
            trips.extend(m.observe(t(i * 10), r).into_iter().map(|x| (i, x.condition)));
        }
        // 20 attempts at step 19; 600 s of disconnection at step 60 (the first step adds nothing).
        assert_eq!(trips, vec![(19, "reconnects"), (60, "disconnected_seconds")]);
        assert_eq!(m.day().reconnects, 70);
    }

    #[test]
    fn sustained_conditions_need_their_whole_period() {
        let mut m = AnomalyMonitor::new(cfg());
        let low = Interim { scalp_written: 90, scalp_expected: 100, cpu_percent: 90.0, ..Interim::default() };
        let ok = Interim { scalp_written: 100, scalp_expected: 100, cpu_percent: 10.0, ..Interim::default() };
        // 4 minutes low, one good reading, then low again: the rate trips 5 minutes after
        // the restart of the low period, the CPU 10 minutes after.
        for i in 0..24 {
            assert!(m.observe(t(i * 10), low).is_empty());
        }
        assert!(m.observe(t(240), ok).is_empty());
        let mut trips = vec![];
        for i in 25..=90 {
            trips.extend(m.observe(t(i * 10), low).into_iter().map(|x| (i, x.condition)));
        }
        assert_eq!(trips, vec![(55, "scalp_recording_rate"), (85, "cpu_percent")]);
        assert!((m.day().recording_rate().unwrap() - (100.0 + 90.0 * 90.0) / 9100.0).abs() < 1e-9);
    }

    #[test]
    fn empty_samples_count_against_the_recording_rate() {
        let mut m = AnomalyMonitor::new(cfg());
        assert_eq!(m.day().recording_rate(), None, "no figure before anything was due");
        // Every sample written, but half of them empty: the rate is 50 %, and it trips.
        let half_empty = Interim { scalp_written: 100, scalp_no_data: 50, scalp_expected: 100, ..Interim::default() };
        let mut trips = vec![];
        for i in 0..=30 {
            trips.extend(m.observe(t(i * 10), half_empty).into_iter().map(|x| (i, x.condition, x.value)));
        }
        assert_eq!(trips, vec![(30, "scalp_recording_rate", 0.5)]);
        assert_eq!(m.day().recording_rate(), Some(0.5));
        assert_eq!(m.day().scalp_no_data, 31 * 50);
    }

    #[test]
    fn disk_usage_reads_the_real_file_system() {
        let p = disk_percent(std::path::Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&p), "{p}");
    }
}

//! Alert sources. [`EventAlerts`] turns system events, as they are archived, into alerts;
//! [`Monitor`] reads the collector's state on a period for conditions no single event says
//! (a stream down for minutes, a filling disk, failing archive writes, a database sink that
//! drops rows) and raises each incident once, then once "resolved"; it also sends the
//! daily summary. Every key names the incident, so a repeat is deduplicated by the outbox.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use archive::DiskUsage;
use engine::live::Live;
use engine::tap::Tap;
use model::{Clock, MarketEvent, Provider, Record, ScalpSample, SystemEvent, UtcTime};
use store::outbox::Severity;

use crate::alert::Alert;
use crate::config::RulesConfig;
use crate::outbox::AlertTx;

/// An incident a later event resolves: whose, and which kind.
type Scope = (Option<Provider>, &'static str);

/// How an open incident was raised: key, severity and title, for its "resolved" message.
type Raised = (String, Severity, String);

/// System events → alerts, as they are written.
pub struct EventAlerts {
    tx: AlertTx,
    open: Mutex<HashMap<Scope, Raised>>,
}

impl EventAlerts {
    pub fn new(tx: AlertTx) -> EventAlerts {
        EventAlerts { tx, open: Mutex::new(HashMap::new()) }
    }

    fn open_incident(&self, scope: Scope, alert: Alert) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(scope, (alert.key.clone(), alert.severity, alert.title.clone()));
        drop(open);
        self.tx.raise(alert);
    }

    fn close_incident(&self, scope: Scope, message: String, at: UtcTime) {
        let closed = self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&scope);
        if let Some((key, severity, title)) = closed {
            self.tx.raise(Alert::resolved(severity, &key, title, message, at));
        }
    }

    /// The alert one event raises, if any.
    pub fn on_event(&self, provider: Option<Provider>, event: &SystemEvent, at: UtcTime) {
        // Keys in the archive's spelling (`kis`), text as people write it (`KIS`).
        let who = provider.map_or("lifecycle", |p| p.as_str());
        let name = who.to_uppercase();
        let day = at.kst_yyyymmdd();
        match event {
            SystemEvent::SelfHealing { action, level, reason, .. } => match action.as_str() {
                "restart_session" => self.tx.raise(Alert::new(
                    Severity::Warn,
                    format!("watchdog:{who}:restart:{}", at.as_millis()),
                    format!("{name}: watchdog level 1, session restarted"),
                    reason.clone(),
                    at,
                )),
                "degrade" => self.open_incident(
                    (provider, "degrade"),
                    Alert::new(
                        Severity::Critical,
                        format!("watchdog:{who}:degrade:{}", at.as_millis()),
                        format!("{name}: watchdog level {level}, degraded (trades only / REST polls)"),
                        reason.clone(),
                        at,
                    ),
                ),
                "recover" => self.close_incident((provider, "degrade"), reason.clone(), at),
                "scalp_paused" => self.open_incident(
                    (provider, "scalp_paused"),
                    Alert::new(
                        Severity::Warn,
                        format!("scalp_paused:{who}:{}", at.as_millis()),
                        format!("{name}: scalp recording paused"),
                        reason.clone(),
                        at,
                    ),
                ),
                "scalp_resumed" => self.close_incident((provider, "scalp_paused"), reason.clone(), at),
                _ => {}
            },
            SystemEvent::AnomalyDay { condition, value, threshold, date } => self.tx.raise(Alert::new(
                Severity::Warn,
                format!("anomaly:{date}:{condition}"),
                format!("Anomaly day {date}: {condition}"),
                format!("{condition} at {value} (threshold {threshold}); raw data of the day is kept longer"),
                at,
            )),
            SystemEvent::SlotDark { symbol, waited_ms, seeded, .. } => self.tx.raise(Alert::new(
                Severity::Warn,
                format!("slot_dark:{who}:{day}"),
                format!("{name}: slot symbol dark"),
                format!(
                    "{symbol} had no stream data {} s after entering a slot ({}); first of the day, the rest are in the archive's slot_dark events",
                    waited_ms / 1000,
                    if *seeded { "samples rest on its REST seed" } else { "no REST seed" }
                ),
                at,
            )),
            SystemEvent::GapMarker { reason, gap_start_ts, gap_end_ts, gap_seconds, detail, .. }
                if reason == "archive_write_failed" =>
            {
                self.tx.raise(Alert::new(
                    Severity::Critical,
                    format!("archive_gap:{}", gap_start_ts.as_millis()),
                    "Archive writes failed",
                    format!(
                        "nothing recorded from {gap_start_ts} to {gap_end_ts} ({gap_seconds} s): {}",
                        detail.as_deref().unwrap_or("")
                    ),
                    at,
                ))
            }
            SystemEvent::BackupFailed { date, stage, reason } => self.tx.raise(Alert::new(
                Severity::Critical,
                format!("backup_failed:{date}:{stage}"),
                format!("Backup of {date} failed ({stage})"),
                reason.clone(),
                at,
            )),
            SystemEvent::RetentionHeld { date, rule, reason } => self.tx.raise(Alert::new(
                Severity::Warn,
                format!("retention_held:{date}:{rule}"),
                format!("{date} kept past retention: no verified backup"),
                reason.clone(),
                at,
            )),
            SystemEvent::DiskPressure { used_percent, high_water_percent, freed_bytes, detail } => self.tx.raise(Alert::new(
                Severity::Critical,
                format!("disk_pressure:{day}"),
                format!("Disk {used_percent:.1} % used, above {high_water_percent} %"),
                format!("retention freed {freed_bytes} bytes; {detail}"),
                at,
            )),
            SystemEvent::EtlReconcile { date, ok: false, .. } => self.tx.raise(Alert::new(
                Severity::Warn,
                format!("etl:{date}"),
                format!("ETL of {date} does not reconcile"),
                format!("the database disagrees with the archive for {date}; run `stock-observer etl --date {date}`"),
                at,
            )),
            _ => {}
        }
    }
}

impl Tap for EventAlerts {
    fn market_event(&self, _rec: &Record<MarketEvent>) {}
    fn sample(&self, _rec: &Record<ScalpSample>) {}
    fn system_event(&self, provider: Option<Provider>, rec: &Record<SystemEvent>) {
        self.on_event(provider, &rec.body, rec.meta.event_time);
    }
}

/// What the monitor reads besides [`Live`].
pub struct Readings {
    pub disk: Arc<dyn Fn() -> Option<DiskUsage> + Send + Sync>,
    /// Rows the live database sink dropped or lost so far (`None`: no sink).
    pub sink_lost: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// One line on the backups, for the daily summary.
    pub backup_state: Arc<dyn Fn() -> String + Send + Sync>,
}

/// Open incidents the monitor raised: key and title, to resolve them by.
#[derive(Default)]
struct Open {
    outages: HashMap<Provider, (UtcTime, String)>,
    /// The open excursion's key, and since when the disk is back below the mark.
    disk: Option<(String, Option<UtcTime>)>,
    archive: Option<(i64, String)>,
    /// When the open episode last lost a row, and its key.
    sink: Option<(UtcTime, String)>,
    summary_day: Option<String>,
}

pub struct Monitor {
    live: Arc<Live>,
    tx: AlertTx,
    rules: RulesConfig,
    readings: Readings,
    open: Open,
    sink_seen: u64,
}

impl Monitor {
    pub fn new(live: Arc<Live>, tx: AlertTx, rules: RulesConfig, readings: Readings) -> Monitor {
        let sink_seen = readings.sink_lost.as_ref().map_or(0, |f| f());
        // Today's summary is due only once today's `summary_at` passes while running.
        let summary_day = (live.clock.now().kst().time() >= rules.summary_at).then(|| live.clock.now().kst_yyyymmdd());
        Monitor { live, tx, rules, readings, open: Open { summary_day, ..Open::default() }, sink_seen }
    }

    /// One look at `now` (market clock) and `wall_ms` (Unix ms, for the archive's wall-clock
    /// durability gauges).
    pub fn check(&mut self, now: UtcTime, wall_ms: i64) {
        self.outages(now);
        self.disk(now);
        self.archive(now, wall_ms);
        self.sink(now);
        self.summary(now);
    }

    fn outages(&mut self, now: UtcTime) {
        let after = self.rules.outage_after.as_millis() as i64;
        for feed in self.live.feeds() {
            let p = feed.provider;
            let name = p.as_str().to_uppercase();
            let down = feed.outage.down_since();
            if let Some((since, key)) = self.open.outages.get(&p).cloned()
                && down != Some(since)
            {
                self.open.outages.remove(&p);
                let mins = now.millis_since(since) as f64 / 60_000.0;
                self.tx.raise(Alert::resolved(
                    Severity::Critical,
                    &key,
                    format!("{name} stream down"),
                    format!(
                        "{name} stream back at {} KST after {mins:.1} min; the gap from {} is recorded as a gap marker",
                        now.kst(),
                        since.kst()
                    ),
                    now,
                ));
            }
            if let Some(since) = down
                && now.millis_since(since) >= after
                && !self.open.outages.contains_key(&p)
            {
                let key = format!("outage:{p}:{}", since.as_millis());
                self.tx.raise(Alert::new(
                    Severity::Critical,
                    key.clone(),
                    format!("{name} stream down"),
                    format!(
                        "no {name} stream data since {} KST ({:.1} min); reconnecting with backoff, the gap is being recorded",
                        since.kst(),
                        now.millis_since(since) as f64 / 60_000.0
                    ),
                    now,
                ));
                self.open.outages.insert(p, (since, key));
            }
        }
    }

    fn disk(&mut self, now: UtcTime) {
        let Some(usage) = (self.readings.disk)() else { return };
        let pct = usage.percent();
        let mark = self.rules.disk_percent;
        let quiet = self.rules.quiet_after.as_millis() as i64;
        match self.open.disk.take() {
            None if pct > mark => {
                let key = format!("disk:{}", now.as_millis());
                self.tx.raise(Alert::new(
                    Severity::Warn,
                    key.clone(),
                    format!("Archive disk above {mark} %"),
                    format!(
                        "{pct:.1} % used, {} MB free; retention frees backed-up days first",
                        usage.avail / 1_000_000
                    ),
                    now,
                ));
                self.open.disk = Some((key, None));
            }
            // Above again: the same excursion.
            Some((key, _)) if pct > mark => self.open.disk = Some((key, None)),
            // Below the mark for a quiet spell: over (a disk hovering at the mark is one
            // excursion, not a message per look).
            Some((key, Some(below))) if now.millis_since(below) >= quiet => self.tx.raise(Alert::resolved(
                Severity::Warn,
                &key,
                format!("Archive disk above {mark} %"),
                format!("{pct:.1} % used"),
                now,
            )),
            Some((key, below)) => self.open.disk = Some((key, below.or(Some(now)))),
            None => {}
        }
    }

    fn archive(&mut self, now: UtcTime, wall_ms: i64) {
        let g = &self.live.stats.gauges;
        let durable = g.durable_unix_ms.load(Relaxed);
        if durable == 0 {
            return;
        }
        let stale_ms = wall_ms - durable;
        match self.open.archive.take() {
            None if stale_ms >= self.rules.archive_failing_after.as_millis() as i64 => {
                let key = format!("archive_failing:{durable}");
                self.tx.raise(Alert::new(
                    Severity::Critical,
                    key.clone(),
                    "Archive writes failing",
                    format!(
                        "nothing has reached the disk for {} s ({} lines refused so far); recording is at risk",
                        stale_ms / 1000,
                        self.live.stats.lines_failed.load(Relaxed)
                    ),
                    now,
                ));
                self.open.archive = Some((durable, key));
            }
            Some((since, key)) if durable != since => self.tx.raise(Alert::resolved(
                Severity::Critical,
                &key,
                "Archive writes failing",
                "archive writes are durable again; the hole is a gap marker (archive_write_failed)",
                now,
            )),
            still => self.open.archive = still,
        }
    }

    fn sink(&mut self, now: UtcTime) {
        let Some(lost) = self.readings.sink_lost.as_ref().map(|f| f()) else { return };
        let new = lost.saturating_sub(self.sink_seen);
        self.sink_seen = lost;
        match self.open.sink.take() {
            None if new > 0 => {
                let key = format!("db_sink:{}", now.as_millis());
                self.tx.raise(Alert::new(
                    Severity::Warn,
                    key.clone(),
                    "Database sink behind its buffer",
                    format!("{new} rows not written to the database (queue full or database failing); the archive has them: fill the database with `stock-observer etl`"),
                    now,
                ));
                self.open.sink = Some((now, key));
            }
            // Still losing rows: the same episode, which lasts until a quiet spell.
            Some((_, key)) if new > 0 => self.open.sink = Some((now, key)),
            Some((last, key)) if now.millis_since(last) >= self.rules.quiet_after.as_millis() as i64 => {
                self.tx.raise(Alert::resolved(
                    Severity::Warn,
                    &key,
                    "Database sink behind its buffer",
                    format!("no row lost for {}; {lost} rows missed in all", self.rules.quiet_after),
                    now,
                ))
            }
            still => self.open.sink = still,
        }
    }

    fn summary(&mut self, now: UtcTime) {
        let day = now.kst_yyyymmdd();
        if now.kst().time() < self.rules.summary_at || self.open.summary_day.as_deref() == Some(day.as_str()) {
            return;
        }
        self.open.summary_day = Some(day.clone());
        let d = self.live.day();
        let stats = &self.live.stats;
        let rate = d.recording_rate().map_or("none due".to_string(), |r| format!("{:.1} %", r * 100.0));
        self.tx.raise(Alert::new(
            Severity::Info,
            format!("summary:{day}"),
            format!("Daily summary {day}"),
            format!(
                "recording rate {rate}\ngaps {} ({} long), reconnects {}, disconnected {} s\narchive {} lines, {} bytes\nanomaly conditions: {}\nbackups: {}",
                d.gaps,
                d.long_gaps,
                d.reconnects,
                d.disconnected_ms / 1000,
                stats.lines_saved.load(Relaxed),
                stats.bytes_saved.load(Relaxed),
                if d.tripped.is_empty() { "none".to_string() } else { d.tripped.join(", ") },
                (self.readings.backup_state)(),
            ),
            now,
        ));
    }

    /// Looks every `check_interval` until `stop`.
    pub async fn run(mut self, clock: Clock, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(clock.wall_duration(self.rules.check_interval.get())) => {}
                _ = model::stopped(&mut stop) => return,
            }
            self.check(clock.now(), unix_ms_now());
        }
    }
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests_support {
    use model::settings::Interval;

    use super::*;
    use crate::config::OutboxConfig;
    use crate::outbox;

    pub fn channel() -> (AlertTx, outbox::AlertRx) {
        let cfg = OutboxConfig {
            memory_queue: 16,
            db_retry: Interval::from_millis(1000),
            poll_interval: Interval::from_millis(1000),
            claim_batch: 1,
            lease: Interval::from_millis(2000),
            backoff: vec![Interval::from_millis(60_000)],
            max_failures: 5,
            per_chat_interval: Interval::from_millis(1000),
            group_per_minute: 20,
        };
        let (tx, rx, _) = outbox::channel(&cfg);
        (tx, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::channel;
    use super::*;

    fn t(s: &str) -> UtcTime {
        UtcTime::parse(s).unwrap()
    }

    fn healing(action: &str, level: u8) -> SystemEvent {
        SystemEvent::SelfHealing { action: action.into(), level, reason: format!("{action} because"), detail: None }
    }

    #[test]
    fn an_incident_is_raised_once_and_resolved_once_under_keys_that_name_it() {
        let (tx, mut rx) = channel();
        let ev = EventAlerts::new(tx);
        let kis = Some(Provider::Kis);
        let at = t("2026-01-14T01:06:09.410Z");
        ev.on_event(kis, &healing("scalp_resumed", 0), at);
        assert_eq!(rx.try_recv(), None, "nothing to resolve: no message");
        ev.on_event(kis, &healing("scalp_paused", 2), at);
        ev.on_event(kis, &healing("stale_symbols", 0), at);
        ev.on_event(kis, &healing("scalp_resumed", 0), at.plus_secs(60));
        ev.on_event(kis, &healing("scalp_resumed", 0), at.plus_secs(61));
        let paused = rx.try_recv().unwrap();
        assert_eq!((paused.severity, paused.title.as_str()), (Severity::Warn, "KIS: scalp recording paused"));
        assert_eq!(paused.key, format!("scalp_paused:kis:{}", at.as_millis()));
        let resumed = rx.try_recv().unwrap();
        assert_eq!(resumed.key, format!("{}:resolved", paused.key));
        assert_eq!(resumed.title, "RESOLVED: KIS: scalp recording paused");
        assert_eq!(rx.try_recv(), None, "a second resume resolves nothing; stale_symbols is not an alert");

        let anomaly = SystemEvent::AnomalyDay {
            condition: "reconnect_failing".into(),
            value: 309.0,
            threshold: 300.0,
            date: "20260114".into(),
        };
        ev.on_event(kis, &anomaly, at);
        ev.on_event(kis, &anomaly, at.plus_secs(5));
        assert_eq!(rx.try_recv().unwrap().key, "anomaly:20260114:reconnect_failing");
        assert_eq!(rx.try_recv(), None, "the same condition on the same day is one incident, raised once");
    }
}

#[cfg(test)]
mod monitor_tests {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use super::*;
    use crate::outbox::AlertRx;

    fn rules() -> RulesConfig {
        RulesConfig {
            check_interval: "10s".parse().unwrap(),
            outage_after: "5m".parse().unwrap(),
            disk_percent: 80.0,
            archive_failing_after: "30s".parse().unwrap(),
            quiet_after: "5m".parse().unwrap(),
            summary_at: jiff::civil::time(16, 0, 0, 0),
        }
    }

    fn t(s: &str) -> UtcTime {
        UtcTime::parse(s).unwrap()
    }

    struct Rig {
        monitor: Monitor,
        rx: AlertRx,
        live: Arc<Live>,
        used_percent: Arc<AtomicU64>,
        lost: Arc<AtomicU64>,
    }

    /// A monitor over a run started at 09:00 Seoul on 2026-01-14.
    fn rig() -> Rig {
        let (tx, rx) = super::tests_support::channel();
        let clock = Clock::simulated(t("2026-01-14T00:00:00.000Z"), 1.0, std::time::Duration::from_secs(1));
        let live = Arc::new(Live::detached(clock, std::env::temp_dir()));
        let used_percent = Arc::new(AtomicU64::new(50));
        let lost = Arc::new(AtomicU64::new(0));
        let (u, l) = (used_percent.clone(), lost.clone());
        let readings = Readings {
            disk: Arc::new(move || Some(DiskUsage { used: u.load(Relaxed), avail: 100 - u.load(Relaxed) })),
            sink_lost: Some(Arc::new(move || l.load(Relaxed))),
            backup_state: Arc::new(|| "newest package 20260113 (held by central)".to_string()),
        };
        Rig { monitor: Monitor::new(live.clone(), tx, rules(), readings), rx, live, used_percent, lost }
    }

    fn drain(rx: &mut AlertRx) -> Vec<Alert> {
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    #[test]
    fn disk_archive_and_sink_incidents_are_raised_once_and_resolved_once() {
        let mut r = rig();
        let mut now = t("2026-01-14T01:00:00.000Z");
        let wall = 1_000_000_000_000;
        r.live.stats.gauges.durable_unix_ms.store(wall, Relaxed);
        r.monitor.check(now, wall + 29_999);
        assert_eq!(drain(&mut r.rx), vec![], "all quiet, archive durable 29.999 s ago");

        r.used_percent.store(85, Relaxed);
        r.lost.store(12, Relaxed);
        for _ in 0..3 {
            now = now.plus_secs(10);
            r.monitor.check(now, wall + 30_000);
        }
        let got = drain(&mut r.rx);
        let titles: Vec<(&str, Severity)> = got.iter().map(|a| (a.title.as_str(), a.severity)).collect();
        assert_eq!(
            titles,
            [
                ("Archive disk above 80 %", Severity::Warn),
                ("Archive writes failing", Severity::Critical),
                ("Database sink behind its buffer", Severity::Warn)
            ],
            "each incident once, however many looks"
        );
        assert!(got[2].message.starts_with("12 rows not written"), "{}", got[2].message);

        // Still losing rows: still one incident. Then all recovers: one RESOLVED each.
        r.lost.store(20, Relaxed);
        r.monitor.check(now.plus_secs(10), wall + 40_000);
        assert_eq!(drain(&mut r.rx), vec![]);
        r.used_percent.store(79, Relaxed);
        r.live.stats.gauges.durable_unix_ms.store(wall + 45_000, Relaxed);
        r.monitor.check(now.plus_secs(20), wall + 45_500);
        let mut resolved: Vec<String> = drain(&mut r.rx).into_iter().map(|a| a.key).collect();
        assert_eq!(resolved.len(), 1, "disk and sink need a quiet spell: {resolved:?}");
        r.monitor.check(now.plus_secs(10 + 299), wall + 50_000);
        assert_eq!(drain(&mut r.rx), vec![], "4 min 59 s quiet");
        r.monitor.check(now.plus_secs(10 + 300), wall + 50_000);
        resolved.extend(drain(&mut r.rx).into_iter().map(|a| a.key));
        assert_eq!(resolved.len(), 2, "the sink, 5 min after its last loss: {resolved:?}");
        r.monitor.check(now.plus_secs(20 + 300), wall + 50_000);
        resolved.extend(drain(&mut r.rx).into_iter().map(|a| a.key));
        assert_eq!(resolved.len(), 3, "{resolved:?}");
        assert!(resolved.iter().all(|k| k.ends_with(":resolved")), "{resolved:?}");
        assert_eq!(resolved[0], format!("archive_failing:{wall}:resolved"));
        assert!(resolved[1].starts_with("db_sink:") && resolved[2].starts_with("disk:"), "{resolved:?}");
    }

    #[test]
    fn the_daily_summary_comes_once_a_day_after_the_close() {
        let mut r = rig();
        r.monitor.check(t("2026-01-14T06:59:59.999Z"), 0);
        assert_eq!(drain(&mut r.rx), vec![], "15:59:59 Seoul: not yet");
        r.monitor.check(t("2026-01-14T07:00:00.000Z"), 0);
        r.monitor.check(t("2026-01-14T09:00:00.000Z"), 0);
        let got = drain(&mut r.rx);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].severity, got[0].key.as_str()), (Severity::Info, "summary:20260114"));
        assert!(got[0].message.contains("recording rate none due"), "{}", got[0].message);
        assert!(got[0].message.contains("backups: newest package 20260113 (held by central)"), "{}", got[0].message);
        r.monitor.check(t("2026-01-15T07:00:00.000Z"), 0);
        assert_eq!(drain(&mut r.rx)[0].key, "summary:20260115");
    }
}

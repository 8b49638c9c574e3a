//! The doomsday watchdog (seed 000 §3.3): liveness and staleness are judged apart. The
//! supervisor handles a dead socket (liveness); the watchdog handles a live socket that
//! delivers no data (staleness) — a session that only answers PINGPONG is stale.
//!
//! No data for `silence` inside the stream's window (auction periods excepted) restarts the
//! provider session (level 1). Another silence within `degrade_within` of that restart
//! enters degrade mode (level 2); `recover_after` of healthy data leaves it. Per symbol,
//! staleness is judged against that symbol's own rhythm (a multiple of its mean gap between
//! updates, clamped), so thin symbols raise no false alarms. Every action is a system event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use model::settings::{Checker, Interval, Validate, Window};
use model::{Clock, Symbol, SystemEvent, UtcTime};

use crate::pipeline::Events;
use crate::reconnect::Outage;
use crate::schedule::Schedule;
use crate::sink::SinkError;
use crate::stats::inc;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// How often the watchdog looks (market clock).
    pub check_interval: Interval,
    /// No data this long in market hours restarts the session (seed 000 §3.3: 60 s).
    pub silence: Interval,
    /// A second silence this soon after a restart enters degrade mode (seed: 5 minutes).
    pub degrade_within: Interval,
    /// Healthy data this long leaves degrade mode.
    pub recover_after: Interval,
    /// In degrade mode, stream silence this long makes Track B fall back to REST polls…
    pub poll_after: Interval,
    /// …of every slot symbol once per this period (through the provider's rate limiter).
    pub poll_interval: Interval,
    /// A symbol is stale after this many of its own mean gaps between updates…
    pub stale_multiple: f64,
    /// …but never sooner than `stale_min` nor later than `stale_max`.
    pub stale_min: Interval,
    pub stale_max: Interval,
    /// Periods (Seoul time) in which silence is normal, such as the closing auction.
    pub quiet: Vec<Window>,
}

impl Validate for WatchdogConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(
            self.check_interval.as_millis() < self.silence.as_millis(),
            "check_interval",
            format_args!("{} must be shorter than silence", self.check_interval),
        );
        c.check(
            self.poll_interval.as_millis() > 0,
            "poll_interval",
            format_args!("{} must be longer than zero", self.poll_interval),
        );
        c.check(
            self.stale_multiple >= 1.0,
            "stale_multiple",
            format_args!("{} must be at least 1", self.stale_multiple),
        );
        c.check(
            self.stale_min.as_millis() <= self.stale_max.as_millis(),
            "stale_min",
            format_args!("{} must not exceed stale_max", self.stale_min),
        );
        for (i, w) in self.quiet.iter().enumerate() {
            c.window(&format!("quiet[{i}]"), w);
        }
    }
}

/// When each symbol last had data and its mean gap between updates, fed by the observer.
///
/// Silence is measured against the observer's position (the receive time of the newest frame
/// it has processed, Track B's clock frames included), not against the clock: a backlog in
/// the frame queue delays both equally, so a busy observer is never mistaken for a silent
/// stream, while a silent stream still shows as the clock frames move the position on.
#[derive(Debug, Default)]
pub struct Activity {
    pub last_data_ms: AtomicI64,
    position_ms: AtomicI64,
    symbols: Mutex<HashMap<Symbol, Rhythm>>,
    /// When each current slot symbol entered its slot (`SlotWatch`), so a symbol the stream
    /// never delivered is judged stale too, from its entry.
    entered: Mutex<HashMap<Symbol, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: UtcTime,
    /// Reported stale without ever having had data.
    stale: bool,
}

#[derive(Debug, Clone, Copy)]
struct Rhythm {
    last: UtcTime,
    mean_gap_ms: f64,
    stale: bool,
}

/// Weight of the newest gap in the running mean: about the last 20 updates count.
const RHYTHM_WEIGHT: f64 = 0.05;

impl Activity {
    /// Every frame the observer processes moves its position.
    pub fn on_frame(&self, at: UtcTime) {
        self.position_ms.fetch_max(at.as_millis(), Relaxed);
    }

    fn position(&self) -> Option<UtcTime> {
        match self.position_ms.load(Relaxed) {
            0 => None,
            ms => Some(UtcTime::from_millis(ms)),
        }
    }

    pub fn on_data(&self, at: UtcTime, symbol: &Symbol) {
        self.last_data_ms.fetch_max(at.as_millis(), Relaxed);
        let mut m = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(symbol) {
            Some(r) => {
                let gap = at.millis_since(r.last).max(0) as f64;
                r.mean_gap_ms += RHYTHM_WEIGHT * (gap - r.mean_gap_ms);
                r.last = at;
                r.stale = false;
            }
            None => {
                m.insert(symbol.clone(), Rhythm { last: at, mean_gap_ms: 0.0, stale: false });
            }
        }
    }

    /// The slot symbols now (inside Track B's window; empty outside it): entrants are
    /// stamped `now`, leavers forgotten.
    pub fn on_slots(&self, now: UtcTime, slots: &[Symbol]) {
        let mut m = self.entered.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|s, _| slots.contains(s));
        for s in slots {
            m.entry(s.clone()).or_insert(Entry { at: now, stale: false });
        }
    }

    /// Forgets the rhythm of every symbol `keep` refuses (at day roll).
    pub fn retain(&self, keep: impl Fn(&Symbol) -> bool) {
        self.symbols.lock().unwrap_or_else(|p| p.into_inner()).retain(|s, _| keep(s));
    }

    /// Whether stream data for `symbol` arrived at or after `since`.
    pub fn has_data_since(&self, symbol: &Symbol, since: UtcTime) -> bool {
        self.symbols.lock().unwrap_or_else(|p| p.into_inner()).get(symbol).is_some_and(|r| r.last >= since)
    }

    pub fn last_data(&self) -> Option<UtcTime> {
        match self.last_data_ms.load(Relaxed) {
            0 => None,
            ms => Some(UtcTime::from_millis(ms)),
        }
    }

    /// Slot symbols newly stale at `now`, each with its threshold (ms).
    fn newly_stale(&self, now: UtcTime, slots: &[Symbol], cfg: &WatchdogConfig) -> Vec<(Symbol, i64)> {
        let (lo, hi) = (cfg.stale_min.as_millis() as f64, cfg.stale_max.as_millis() as f64);
        let mut m = self.symbols.lock().unwrap_or_else(|p| p.into_inner());
        let mut entered = self.entered.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for s in slots {
            let Some(r) = m.get_mut(s) else {
                // Never seen: no rhythm of its own yet, so the floor applies from its entry.
                if let Some(e) = entered.get_mut(s)
                    && !e.stale
                    && now.millis_since(e.at) > lo as i64
                {
                    e.stale = true;
                    out.push((s.clone(), lo as i64));
                }
                continue;
            };
            let threshold = (cfg.stale_multiple * r.mean_gap_ms).clamp(lo, hi) as i64;
            if !r.stale && now.millis_since(r.last) > threshold {
                r.stale = true;
                out.push((s.clone(), threshold));
            }
        }
        out
    }
}

pub struct Watchdog {
    pub config: WatchdogConfig,
    pub clock: Clock,
    /// The stream's window (Track B's schedule): outside it silence is expected.
    pub schedule: Schedule,
    pub activity: Arc<Activity>,
    pub outage: Arc<Outage>,
    pub slots: watch::Receiver<Vec<Symbol>>,
    pub events: Events,
    pub degraded: Arc<AtomicBool>,
    /// Switches the provider's subscriptions to trades only (degrade mode) and back.
    pub trades_only: Arc<dyn Fn(bool) + Send + Sync>,
}

impl Watchdog {
    fn quiet(&self, now: UtcTime) -> bool {
        let t = now.kst().time();
        !self.schedule.in_window(now) || self.config.quiet.iter().any(|w| w.contains(t))
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let silence = self.config.silence.as_millis() as i64;
        let mut last_restart: Option<UtcTime> = None;
        let mut degraded_since: Option<UtcTime> = None;
        // Silence is measured from the later of the last data and the moment watching began
        // (start-up, the end of a quiet period, a reconnect): nobody is blamed for time
        // before there was anything to expect.
        let mut watching_since = self.clock.now();
        loop {
            tokio::select! {
                _ = self.clock.sleep(self.config.check_interval.get()) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
            let now = self.clock.now();
            let socket_down = self.outage.is_open() && !self.outage.connected.load(Relaxed);
            if self.quiet(now) || socket_down {
                // The supervisor owns a dead socket; quiet periods owe us nothing. A session
                // that reconnected but still delivers nothing is ours again.
                watching_since = now;
                continue;
            }
            let since = self.activity.last_data().map_or(watching_since, |d| d.max(watching_since));
            let position = self.activity.position().unwrap_or(now).min(now);
            let silent_ms = position.millis_since(since);
            if silent_ms >= silence {
                let again =
                    last_restart.is_some_and(|r| now.millis_since(r) <= self.config.degrade_within.as_millis() as i64);
                let (action, level) =
                    if again && degraded_since.is_none() { ("degrade", 2) } else { ("restart_session", 1) };
                tracing::error!(provider = %self.events.provider, silent_ms, action, "no data from a connected stream");
                let ev = SystemEvent::SelfHealing {
                    action: action.into(),
                    level,
                    reason: format!("no data for {}s in market hours", silent_ms / 1000),
                    detail: Some(json!({ "last_data": self.activity.last_data(), "watching_since": watching_since })),
                };
                self.events.system(now, ev).await?;
                inc(&self.events.stats.watchdog_actions);
                if action == "degrade" {
                    // The restart below brings the session back with trades only.
                    (self.trades_only)(true);
                    self.degraded.store(true, Relaxed);
                    degraded_since = Some(now);
                }
                self.outage.open_at(
                    since,
                    now,
                    "ws_stale",
                    format!("no data for {}s; session restarted", silent_ms / 1000),
                );
                self.outage.restart.notify_one();
                last_restart = Some(now);
                watching_since = now;
                continue;
            }
            if let Some(d) = degraded_since
                && now.millis_since(d) >= self.config.recover_after.as_millis() as i64
                && last_restart.is_none_or(|r| now.millis_since(r) >= self.config.recover_after.as_millis() as i64)
            {
                self.degraded.store(false, Relaxed);
                degraded_since = None;
                // Order books come back with the next session; the healthy one is not cut.
                (self.trades_only)(false);
                let ev = SystemEvent::SelfHealing {
                    action: "recover".into(),
                    level: 0,
                    reason: format!(
                        "data flowing for {}; order books return with the next session",
                        self.config.recover_after
                    ),
                    detail: None,
                };
                self.events.system(now, ev).await?;
            }
            let slots = self.slots.borrow().clone();
            let stale = self.activity.newly_stale(position, &slots, &self.config);
            if !stale.is_empty() {
                let list: Vec<_> = stale.iter().map(|(s, t)| json!({ "symbol": s, "threshold_ms": t })).collect();
                let ev = SystemEvent::SelfHealing {
                    action: "stale_symbols".into(),
                    level: 0,
                    reason: format!("{} slot symbol(s) silent past their own rhythm", stale.len()),
                    detail: Some(json!(list)),
                };
                self.events.system(now, ev).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WatchdogConfig {
        WatchdogConfig {
            check_interval: "5s".parse().unwrap(),
            silence: "60s".parse().unwrap(),
            degrade_within: "5m".parse().unwrap(),
            recover_after: "5m".parse().unwrap(),
            poll_after: "30s".parse().unwrap(),
            poll_interval: "5s".parse().unwrap(),
            stale_multiple: 10.0,
            stale_min: "30s".parse().unwrap(),
            stale_max: "10m".parse().unwrap(),
            quiet: vec![],
        }
    }

    #[test]
    fn staleness_follows_each_symbols_own_rhythm() {
        let a = Activity::default();
        let (busy, thin) = (Symbol::new("005930").unwrap(), Symbol::new("000020").unwrap());
        let t0 = UtcTime::from_millis(1_800_000_000_000);
        // Busy: an update every second. Thin: one every two minutes.
        for i in 0..100 {
            a.on_data(t0.plus_millis(i * 1000), &busy);
        }
        for i in 0..100 {
            a.on_data(t0.plus_millis(i * 120_000), &thin);
        }
        let slots = [busy.clone(), thin.clone()];
        let last_thin = t0.plus_millis(99 * 120_000);
        // 40 s after their last updates: the busy symbol is stale (floor 30 s), the thin one is not.
        let stale = a.newly_stale(last_thin.plus_millis(40_000), &slots, &cfg());
        assert_eq!(stale.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), vec![busy.clone()]);
        // Reported once per episode.
        assert!(a.newly_stale(last_thin.plus_millis(41_000), &slots, &cfg()).is_empty());
        // The thin one only past ten of its own gaps (capped at 10 minutes).
        let stale = a.newly_stale(last_thin.plus_millis(601_000), &slots, &cfg());
        assert_eq!(stale.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), vec![thin]);
    }

    #[test]
    fn a_slot_symbol_never_seen_goes_stale_from_its_entry() {
        let a = Activity::default();
        let (seen, never) = (Symbol::new("005930").unwrap(), Symbol::new("000660").unwrap());
        let t0 = UtcTime::from_millis(1_800_000_000_000);
        a.on_slots(t0, std::slice::from_ref(&seen));
        a.on_data(t0, &seen);
        // The second symbol enters 10 s later and never gets data.
        a.on_slots(t0.plus_millis(10_000), &[seen.clone(), never.clone()]);
        let slots = [seen.clone(), never.clone()];
        assert!(a.newly_stale(t0.plus_millis(39_000), &slots, &cfg()).iter().all(|(s, _)| *s != never));
        let stale = a.newly_stale(t0.plus_millis(41_000), &slots, &cfg());
        assert!(stale.contains(&(never.clone(), 30_000)), "{stale:?}");
        assert!(!a.has_data_since(&never, t0));
        // Leaving the slot forgets the entry; entering again starts the clock again.
        a.on_slots(t0.plus_millis(50_000), std::slice::from_ref(&seen));
        a.on_slots(t0.plus_millis(60_000), &slots);
        assert!(a.newly_stale(t0.plus_millis(80_000), &slots, &cfg()).iter().all(|(s, _)| *s != never));
    }

    #[test]
    fn config_needs_checks_shorter_than_silence() {
        let mut bad = cfg();
        bad.check_interval = "2m".parse().unwrap();
        let mut c = Checker::default();
        bad.validate(&mut c);
        assert_eq!(c.problems.len(), 1);
    }
}

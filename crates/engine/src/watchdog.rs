//! The doomsday watchdog (seed 000 §3.3): liveness and staleness are judged apart. The
//! supervisor handles a dead socket (liveness); the watchdog handles a live socket that
//! delivers no data (staleness) — a session that only answers PINGPONG is stale.
//!
//! No data for `silence` inside the stream's window (auction periods excepted) restarts the
//! provider session (level 1). Another silence within `degrade_within` of that restart
//! enters degrade mode (level 2); `recover_after` of healthy data leaves it. Per symbol,
//! staleness is judged against that symbol's own rhythm (a multiple of its mean gap between
//! updates, clamped), so thin symbols raise no false alarms. Every action is a system event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use model::settings::{Checker, Interval, Validate, Window};
use model::{Clock, Symbol, SystemEvent, UtcTime};

pub use crate::activity::Activity;
use crate::activity::Staleness;
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

impl WatchdogConfig {
    /// When a slot symbol counts as stale.
    pub fn staleness(&self) -> Staleness {
        Staleness { multiple: self.stale_multiple, min: self.stale_min, max: self.stale_max }
    }
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
        // Silence is measured from the latest of the last data, the moment watching began
        // (start-up, the end of a quiet period, a socket seen down) and the current session's
        // start (a reconnect between two looks): nobody is blamed for time before there was
        // anything to expect.
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
            let since = [self.activity.last_data(), self.outage.session_started()]
                .into_iter()
                .flatten()
                .fold(watching_since, UtcTime::max);
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
            let stale = self.activity.newly_stale(position, &slots, &self.config.staleness());
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
    fn config_needs_checks_shorter_than_silence() {
        let mut bad = cfg();
        bad.check_interval = "2m".parse().unwrap();
        let mut c = Checker::default();
        bad.validate(&mut c);
        assert_eq!(c.problems.len(), 1);
    }
}

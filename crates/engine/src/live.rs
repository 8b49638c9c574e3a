//! What a running collection exposes while it runs: the status line, `/health`, `/metrics`
//! and the exit summary read it; the tasks update it.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use model::{Clock, Market, Provider, SessionId, Symbol, UtcTime};

use crate::anomaly::Day;
use crate::mitigation::Pressure;
use crate::reconnect::Outage;
use crate::stats::Stats;
use crate::track_b::SlotGauge;

/// What the status line, `/health` and the exit summary read while a run is live.
#[derive(Debug)]
pub struct Live {
    pub session: SessionId,
    pub providers: Vec<(Provider, Market)>,
    pub clock: Clock,
    pub started: UtcTime,
    pub stats: Arc<Stats>,
    pub mitigation: Arc<AtomicU8>,
    /// Summed over providers.
    pub universe_size: AtomicU64,
    /// Slot capacity summed over providers (41 per market by default).
    pub slot_capacity: AtomicU64,
    /// Track B's sampling rate at each mitigation level.
    pub hz_by_level: [f64; 3],
    /// Forced readings from fault scripts.
    pub pressure: Arc<Pressure>,
    /// The day so far (reconnects, gaps, recording rate, tripped anomaly conditions).
    pub day: Mutex<Day>,
    /// Set by the watchdog while a provider runs in degrade mode.
    pub degraded: Arc<AtomicBool>,
    /// Manual override (seed 001 §2.5 trigger 4): symbols always / never given a slot.
    /// Sent by a config reload (SIGHUP) today, by a CLI/API command later.
    pub manual: watch::Sender<Manual>,
    pub(crate) outages: Mutex<Vec<Arc<Outage>>>,
    pub(crate) slot_gauges: Mutex<Vec<Arc<SlotGauge>>>,
}

/// The manual override lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manual {
    pub include: Vec<Symbol>,
    pub exclude: Vec<Symbol>,
}

impl Live {
    pub fn outages(&self) -> Vec<Arc<Outage>> {
        self.outages.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `rest_polling`, `reconnecting`, `degraded`, `connected` or `connecting`, over all providers.
    pub fn connection_state(&self) -> &'static str {
        let outages = self.outages();
        if outages.iter().any(|o| o.rest_polling.load(Relaxed)) {
            "rest_polling"
        } else if outages.iter().any(|o| o.is_open()) {
            "reconnecting"
        } else if self.degraded.load(Relaxed) {
            "degraded"
        } else if outages.iter().all(|o| o.connected.load(Relaxed)) {
            "connected"
        } else {
            "connecting"
        }
    }

    /// Slots Track B sampled last, summed over providers, and how many of them had data
    /// younger than `tracks.scalp.stale_after` (`slots 41/41 streaming 41`).
    pub fn slots(&self) -> (u64, u64) {
        let gauges = self.slot_gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges.iter().fold((0, 0), |(a, s), g| (a + g.assigned.load(Relaxed), s + g.streaming.load(Relaxed)))
    }

    /// Track B's sampling rate now.
    pub fn hz(&self) -> f64 {
        self.hz_by_level[self.mitigation.load(Relaxed).min(2) as usize]
    }

    pub fn day(&self) -> Day {
        self.day.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

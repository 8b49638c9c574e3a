//! The engine's config: [`EngineConfig`] gathers every section, and holds the sections no
//! single module owns (universe, tracks, pipeline). A section that one module configures is
//! defined in that module (`observer`, `reconnect`, `mitigation`, `watchdog`, `anomaly`,
//! `triggers`, `slots`), so this module only points at them and none of them depends on it.
//! Every interval, threshold and capacity the engine uses comes in through `EngineConfig`;
//! `configs/observer.yaml` documents each value.

use serde::{Deserialize, Serialize};

use model::Price;
use model::settings::{Checker, Interval, Validate, Window};

// Sections owned by the module they configure, gathered here under their old paths.
pub use crate::observer::{CalendarConfig, ObserverConfig, ObserverLimits};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniverseConfig {
    /// Seed 001 §2.2: KR stocks whose previous close is at least this many KRW.
    pub min_prev_close: Price,
    /// When (Seoul time) each trading day's universe is built, before the open.
    pub build_at: jiff::civil::Time,
    pub crypto: CryptoUniverseConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoUniverseConfig {
    /// Only pairs of this quote market.
    pub quote: String,
    /// Only pairs with at least this traded value (quote currency) over 24 hours.
    pub min_traded_value_24h: Price,
}

impl Validate for UniverseConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(
            self.min_prev_close.is_positive(),
            "min_prev_close",
            format_args!("{} must be positive", self.min_prev_close),
        );
        c.section("crypto", |c| {
            c.check(!self.crypto.quote.is_empty(), "quote", "must name a quote market, e.g. KRW");
            c.check(
                !self.crypto.min_traded_value_24h.is_negative(),
                "min_traded_value_24h",
                format_args!("{} must not be negative", self.crypto.min_traded_value_24h),
            );
        });
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwingConfig {
    /// Track A cycle: a REST snapshot of every universe symbol this often.
    pub interval: Interval,
    pub window: Window,
    /// REST snapshots in flight at once; the provider's rate limiter still spaces them.
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalpConfig {
    /// Track B sampling interval at mitigation level 0 (500ms = 2 Hz).
    pub sample_interval: Interval,
    /// Sampling intervals at mitigation levels 1 and 2 (seed 001 §2.10: 1 Hz, 0.5 Hz).
    pub mitigated_intervals: [Interval; 2],
    /// Concurrent slot symbols per market.
    pub slots: usize,
    pub window: Window,
    /// A sample whose newest data is older than this is flagged `stale`, and its symbol
    /// does not count as streaming.
    pub stale_after: Interval,
    /// A symbol entering a slot is seeded with a REST snapshot at once; without stream
    /// data this long after entering, a `slot_dark` event names it.
    pub slot_dark_after: Interval,
}

impl ScalpConfig {
    /// The sampling interval in force at a mitigation level (levels above 2 act as 2).
    pub fn interval_ms(&self, level: u8) -> u64 {
        match level {
            0 => self.sample_interval.as_millis(),
            1 => self.mitigated_intervals[0].as_millis(),
            _ => self.mitigated_intervals[1].as_millis(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracksConfig {
    pub swing: SwingConfig,
    pub scalp: ScalpConfig,
}

impl Validate for TracksConfig {
    fn validate(&self, c: &mut Checker) {
        c.section("swing", |c| {
            let ms = self.swing.interval.as_millis();
            c.check(
                ms >= 1000 && 86_400_000 % ms == 0,
                "interval",
                format_args!("{} must be at least 1s and divide a day evenly", self.swing.interval),
            );
            c.window("window", &self.swing.window);
            c.range("concurrency", self.swing.concurrency, 1, 64);
        });
        c.section("scalp", |c| {
            let ms = self.scalp.sample_interval.as_millis();
            c.check(
                (10..=60_000).contains(&ms) && 60_000 % ms == 0,
                "sample_interval",
                format_args!("{} must be within 10ms..=60s and divide a minute evenly", self.scalp.sample_interval),
            );
            let [l1, l2] = self.scalp.mitigated_intervals.map(|i| i.as_millis());
            c.check(
                ms < l1 && l1 < l2 && l1 % ms == 0 && l2 % l1 == 0 && 60_000 % l2 == 0,
                "mitigated_intervals",
                format_args!(
                    "[{}, {}] must grow from sample_interval, each a multiple of the one before, dividing a minute",
                    self.scalp.mitigated_intervals[0], self.scalp.mitigated_intervals[1]
                ),
            );
            c.range("slots", self.scalp.slots, 1, 1000);
            c.window("window", &self.scalp.window);
            c.check(
                self.scalp.stale_after.as_millis() >= ms,
                "stale_after",
                format_args!("{} must be at least sample_interval", self.scalp.stale_after),
            );
            c.check(
                self.scalp.slot_dark_after.as_millis() > 0,
                "slot_dark_after",
                format_args!("{} must be longer than zero", self.scalp.slot_dark_after),
            );
        });
    }
}

/// Capacities of the bounded channels between stages. Their policies when full are fixed
/// by what flows through them (see `pipeline`): market data blocks the source, scalp
/// samples are sampled down into the overflow ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub frames_capacity: usize,
    /// Bytes of stream frames queued for the observer at most (besides `frames_capacity`).
    pub frames_bytes: usize,
    pub archive_capacity: usize,
    /// Wall-clock period of archive housekeeping: closing files whose window ended.
    pub housekeeping_interval: Interval,
}

impl Validate for PipelineConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("frames_capacity", self.frames_capacity, 16, 1_048_576);
        c.range("frames_bytes", self.frames_bytes, 1 << 20, u32::MAX as usize);
        c.range("archive_capacity", self.archive_capacity, 16, 1_048_576);
    }
}

/// Everything the engine needs, assembled by the `config` crate.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub calendar: CalendarConfig,
    pub observer: ObserverConfig,
    pub universe: UniverseConfig,
    pub tracks: TracksConfig,
    pub pipeline: PipelineConfig,
    pub archive: archive::ArchiveConfig,
    pub reconnect: crate::reconnect::ReconnectConfig,
    pub mitigation: crate::mitigation::MitigationConfig,
    pub watchdog: crate::watchdog::WatchdogConfig,
    pub anomaly: crate::anomaly::AnomalyConfig,
    pub triggers: crate::triggers::TriggerConfig,
    pub slots: crate::slots::SlotConfig,
}

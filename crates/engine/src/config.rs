//! The engine's config sections. Every interval, threshold and capacity the engine uses
//! comes from here; `configs/observer.yaml` documents each value.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use model::settings::{Checker, Interval, Validate, Window};
use model::{KrxCalendar, Price, UtcTime};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// KRX closed days besides weekends.
    pub holidays: Vec<Date>,
    /// The regular session (Seoul time); the guard rejects KR stock data outside it.
    pub session: Window,
}

impl CalendarConfig {
    pub fn krx(&self) -> KrxCalendar {
        KrxCalendar::new(self.holidays.iter().copied())
    }
}

impl Validate for CalendarConfig {
    fn validate(&self, c: &mut Checker) {
        c.window("session", &self.session);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverConfig {
    /// Largest distance between a record's event time and its receive time before
    /// validation calls the timestamp wrong.
    pub max_clock_skew: Interval,
    /// How many recent trade ids per provider the duplicate guard remembers.
    pub dedupe_capacity: usize,
    /// Longest piece of a rejected record kept as evidence in its system event.
    pub evidence_bytes: usize,
    /// Plausible ranges of a provider's numbers and times; anything outside is rejected at
    /// validation like any other invalid record.
    #[serde(default)]
    pub limits: ObserverLimits,
}

/// Bounds on what a provider may send (issue 14: a frame on the wire, or a damaged archive
/// line in `replay`, must not be able to overflow the arithmetic behind it). They can narrow
/// the archive format's domain ([`model::num::PLAUSIBLE_ABS_MAX`],
/// [`model::time::PLAUSIBLE_TIMES`]), never widen it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverLimits {
    /// Largest |value| of any price, size or volume.
    pub max_abs_number: rust_decimal::Decimal,
    /// Event and receive times before this are refused.
    pub earliest_time: UtcTime,
    /// Event and receive times at or after this are refused.
    pub latest_time: UtcTime,
    /// Largest |event_time − receive_time| whatever the clock speed (`max_clock_skew` is
    /// scaled by the simulated clock's speed; this is not).
    pub max_receipt_distance: Interval,
}

impl Default for ObserverLimits {
    fn default() -> Self {
        ObserverLimits {
            max_abs_number: model::num::PLAUSIBLE_ABS_MAX,
            earliest_time: model::time::PLAUSIBLE_TIMES.start,
            latest_time: model::time::PLAUSIBLE_TIMES.end,
            max_receipt_distance: Interval::from_millis(MS_PER_DAY),
        }
    }
}

const MS_PER_DAY: u64 = 86_400_000;

impl Validate for ObserverConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(self.max_clock_skew.as_millis() <= 3_600_000, "max_clock_skew", "must be at most 1h");
        c.range("dedupe_capacity", self.dedupe_capacity, 16, 10_000_000);
        c.range("evidence_bytes", self.evidence_bytes, 64, 1_048_576);
        c.section("limits", |c| self.limits.validate(c));
    }
}

impl Validate for ObserverLimits {
    fn validate(&self, c: &mut Checker) {
        let max = model::num::PLAUSIBLE_ABS_MAX;
        c.check(
            self.max_abs_number.is_sign_positive() && !self.max_abs_number.is_zero() && self.max_abs_number <= max,
            "max_abs_number",
            format_args!("{} must be positive and at most {max}", self.max_abs_number),
        );
        let domain = model::time::PLAUSIBLE_TIMES;
        c.check(
            domain.start <= self.earliest_time
                && self.earliest_time < self.latest_time
                && self.latest_time <= domain.end,
            "earliest_time",
            format_args!(
                "{}..{} must be a non-empty span within {}..{}",
                self.earliest_time, self.latest_time, domain.start, domain.end
            ),
        );
        let d = self.max_receipt_distance.as_millis();
        c.check(
            d > 0 && d <= MS_PER_DAY,
            "max_receipt_distance",
            format_args!("{} must be longer than zero and at most 1d", self.max_receipt_distance),
        );
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(l: &ObserverLimits) -> Vec<String> {
        let mut c = Checker::default();
        c.section("observer", |c| c.section("limits", |c| l.validate(c)));
        c.problems.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn limits_narrow_the_archive_domain_and_never_widen_it() {
        assert!(problems(&ObserverLimits::default()).is_empty());
        let narrower = ObserverLimits {
            max_abs_number: rust_decimal::Decimal::from(1_000_000_000_000i64),
            earliest_time: UtcTime::parse("2020-01-01T00:00:00Z").unwrap(),
            latest_time: UtcTime::parse("2050-01-01T00:00:00Z").unwrap(),
            max_receipt_distance: "1h".parse().unwrap(),
        };
        assert!(problems(&narrower).is_empty());
        let wider = ObserverLimits {
            max_abs_number: rust_decimal::Decimal::MAX,
            earliest_time: UtcTime::parse("1990-01-01T00:00:00Z").unwrap(),
            latest_time: UtcTime::parse("2200-01-01T00:00:00Z").unwrap(),
            max_receipt_distance: "2d".parse().unwrap(),
        };
        let p = problems(&wider);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("observer.limits.max_abs_number:"), "{p:?}");
        assert!(p[1].starts_with("observer.limits.earliest_time:"), "{p:?}");
        assert!(p[2].starts_with("observer.limits.max_receipt_distance:"), "{p:?}");
        let empty = ObserverLimits { latest_time: ObserverLimits::default().earliest_time, ..Default::default() };
        assert_eq!(problems(&empty).len(), 1);
        let zero = ObserverLimits { max_abs_number: rust_decimal::Decimal::ZERO, ..Default::default() };
        assert_eq!(problems(&zero).len(), 1);
    }
}

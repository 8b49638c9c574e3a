//! The `engine.triggers` config section: thresholds, windows, weights and the manual lists.

use serde::{Deserialize, Serialize};

use model::Symbol;
use model::settings::{Checker, Interval, Validate};

use super::PERCENT;

/// How much each fired signal can contribute to the score (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerWeights {
    pub volume_surge: f64,
    pub trade_velocity: f64,
    pub volatility_spike: f64,
    /// Price spike is monitoring, not one of the four prioritized triggers, so its weight is
    /// free within 0..=1.
    pub price_spike: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// How often the collector evaluates candidates and asks the slot manager to decide.
    pub evaluate_interval: Interval,
    /// How far back the volume and volatility baselines reach (e.g. 1h = six Track A cycles).
    pub baseline_window: Interval,
    /// Fewest baseline intervals before a volume or volatility ratio is given.
    pub min_baseline_samples: usize,
    /// Volume points closer than this to the previous one are skipped, so a rate is never
    /// taken over a few seconds (a snapshot and a ranking row arriving together).
    pub min_volume_interval: Interval,
    /// A measurement older than this no longer fires anything. Must cover the Track A
    /// interval, or snapshot-based signals would blink between cycles.
    pub max_signal_age: Interval,
    /// A symbol with no data for this long is forgotten, which bounds memory.
    pub forget_after: Interval,
    /// Volume surge fires at newest rate / baseline rate ≥ this.
    pub volume_surge_ratio: f64,
    /// Recent window for trades per minute.
    pub velocity_window: Interval,
    /// The window before `velocity_window` that forms the trade-rate baseline.
    pub velocity_baseline: Interval,
    /// Trades are counted in buckets this wide, so memory per symbol is bounded by the window
    /// length rather than the trade rate. Must divide both velocity windows.
    pub velocity_bucket: Interval,
    /// Trade velocity fires at recent trades/min ÷ baseline trades/min ≥ this.
    pub trade_velocity_ratio: f64,
    /// Volatility spike fires at newest interval range ÷ baseline mean range ≥ this.
    pub volatility_ratio: f64,
    /// Price spike at |last − prev_close| / prev_close ≥ this many percent.
    pub price_spike_pct: f64,
    /// A signal at this multiple of its threshold scores its full weight.
    pub saturation: f64,
    pub weights: TriggerWeights,
    /// Symbols that always hold a slot (operator override).
    #[serde(default)]
    pub manual_include: Vec<Symbol>,
    /// Symbols that never get a slot.
    #[serde(default)]
    pub manual_exclude: Vec<Symbol>,
}

impl Validate for TriggerConfig {
    fn validate(&self, c: &mut Checker) {
        for (name, v) in [
            ("volume_surge_ratio", self.volume_surge_ratio),
            ("trade_velocity_ratio", self.trade_velocity_ratio),
            ("volatility_ratio", self.volatility_ratio),
        ] {
            // A ratio of 1 or less would fire on ordinary activity.
            c.check(v.is_finite() && v > 1.0, name, format_args!("{v} must be a finite ratio above 1"));
        }
        let p = self.price_spike_pct;
        // Above 100% a fall could never reach the threshold.
        c.check(p.is_finite() && p > 0.0 && p <= PERCENT, "price_spike_pct", format_args!("{p} is outside (0, 100]"));
        let s = self.saturation;
        c.check(s.is_finite() && s >= 1.0, "saturation", format_args!("{s} must be a finite multiple of at least 1"));
        c.section("weights", |c| {
            let w = &self.weights;
            for (name, v) in [
                ("volume_surge", w.volume_surge),
                ("trade_velocity", w.trade_velocity),
                ("volatility_spike", w.volatility_spike),
                ("price_spike", w.price_spike),
            ] {
                c.check((0.0..=1.0).contains(&v), name, format_args!("{v} is outside 0..=1"));
            }
            c.check(
                w.trade_velocity <= w.volume_surge,
                "trade_velocity",
                format_args!("{} exceeds volume_surge {} (seed priority order)", w.trade_velocity, w.volume_surge),
            );
            c.check(
                w.volatility_spike <= w.trade_velocity,
                "volatility_spike",
                format_args!(
                    "{} exceeds trade_velocity {} (seed priority order)",
                    w.volatility_spike, w.trade_velocity
                ),
            );
        });
        c.check(self.min_baseline_samples >= 1, "min_baseline_samples", "must be at least 1");
        c.check(
            self.baseline_window.as_millis() / self.min_volume_interval.as_millis() >= self.min_baseline_samples as u64,
            "min_baseline_samples",
            format_args!(
                "{} intervals of at least {} never fit in baseline_window {}",
                self.min_baseline_samples, self.min_volume_interval, self.baseline_window
            ),
        );
        let bucket = self.velocity_bucket.as_millis();
        for (name, w) in [("velocity_window", self.velocity_window), ("velocity_baseline", self.velocity_baseline)] {
            c.check(
                w.as_millis() % bucket == 0,
                name,
                format_args!("{w} is not a whole number of velocity_bucket {}", self.velocity_bucket),
            );
        }
        c.check(
            self.forget_after >= self.max_signal_age,
            "forget_after",
            format_args!("{} is shorter than max_signal_age {}", self.forget_after, self.max_signal_age),
        );
        let overlap: Vec<&str> =
            self.manual_include.iter().filter(|s| self.manual_exclude.contains(s)).map(Symbol::as_str).collect();
        c.check(overlap.is_empty(), "manual_exclude", format_args!("{overlap:?} also in manual_include"));
    }
}

//! What the monitor reports: candidates, the measurements behind their scores, and the points
//! it could not compute.

use serde::{Deserialize, Serialize};

use model::{Price, Qty, Symbol};

/// The seed's triggers in priority order (the derived `Ord` is that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    VolumeSurge,
    TradeVelocity,
    VolatilitySpike,
    ManualOverride,
}

impl TriggerKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            TriggerKind::VolumeSurge => "volume_surge",
            TriggerKind::TradeVelocity => "trade_velocity",
            TriggerKind::VolatilitySpike => "volatility_spike",
            TriggerKind::ManualOverride => "manual_override",
        }
    }
}

/// Where the numbers behind a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Snapshot,
    Ranking,
    Ticks,
}

/// The measurements behind a score, kept with the candidate so a decision can be explained.
/// `None` means not measurable now (no baseline yet, stale data, no data source).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreInputs {
    /// Exact volume of the newest interval.
    pub interval_volume: Option<Qty>,
    pub volume_per_min: Option<f64>,
    pub baseline_volume_per_min: Option<f64>,
    pub volume_ratio: Option<f64>,
    pub trades_per_min: Option<f64>,
    pub baseline_trades_per_min: Option<f64>,
    pub velocity_ratio: Option<f64>,
    /// Newest interval's high-low range, percent of the interval's opening price.
    pub range_pct: Option<f64>,
    pub baseline_range_pct: Option<f64>,
    pub volatility_ratio: Option<f64>,
    pub last_price: Option<Price>,
    pub prev_close: Option<Price>,
    /// (last − prev_close) / prev_close in percent, signed.
    pub change_pct: Option<f64>,
    /// 1-based position in the provider's newest volume ranking.
    pub ranking_position: Option<u32>,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub symbol: Symbol,
    /// 0..=1, see the module docs.
    pub score: f64,
    /// The highest-priority trigger that fired.
    pub trigger: Option<TriggerKind>,
    /// Every trigger that fired, in priority order.
    pub fired: Vec<TriggerKind>,
    pub price_spike: bool,
    /// In `manual_include` (and not excluded): the slot manager gives it a slot regardless
    /// of score.
    pub manual: bool,
    pub inputs: ScoreInputs,
}

impl Candidate {
    /// Anything worth reporting: a fired trigger, a price spike or a manual override.
    pub fn has_signal(&self) -> bool {
        self.trigger.is_some() || self.price_spike || self.manual
    }
}

/// Measurements the monitor could not compute (a difference, sum or quotient outside
/// `Decimal`'s range, which only numbers no market produces can cause) and skipped, by
/// reason. The observer core refuses such numbers first; this is the second line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SkippedPoints {
    /// A volume point whose difference from the previous one overflows.
    pub volume_difference: u64,
    /// A baseline whose summed volume overflows (its ratio is not given).
    pub volume_sum: u64,
    /// A price interval whose range over the opening price overflows.
    pub price_range: u64,
    /// A change over the previous close that overflows (a tiny previous close).
    pub price_change: u64,
}

impl SkippedPoints {
    pub fn total(&self) -> u64 {
        self.volume_difference + self.volume_sum + self.price_range + self.price_change
    }
}

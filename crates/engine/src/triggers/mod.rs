//! The candidate monitor and scalp trigger engine (seed 001 §2.5, §3.2): it watches every
//! universe symbol through Track A snapshots, the provider's volume ranking and the slot
//! symbols' trades, and says which symbols deserve a Track B slot, how strongly, and why.
//!
//! Pure logic: no clock, no I/O. Every input carries the time it was received and
//! `evaluate` is told what time it is, so a replay or an accelerated-clock test gets exactly
//! the candidates the live run got.
//!
//! # Triggers, in the seed's priority order
//!
//! 1. **Volume surge.** Each symbol keeps a series of *volume points* (time, day's cumulative
//!    volume) fed by snapshots, ranking rows and the `cum_volume` of trades. Two points at
//!    least `min_volume_interval` apart give an interval rate (volume per minute; the
//!    difference of the cumulative volumes is taken exactly). The newest interval's rate is
//!    compared with the time-weighted rate of the intervals that ended within
//!    `baseline_window` before it began. Rates, not raw differences, so points from sources
//!    with different spacing (10-minute snapshots, minute-by-minute trades) are comparable.
//!    A drop of the cumulative volume means a new trading day (or a source that restarted
//!    its count); the baseline is then thrown away rather than trusted.
//! 2. **Trade velocity.** Trades per minute in the last `velocity_window`, from `on_tick`
//!    (only slot symbols stream trades), against the rate of the `velocity_baseline` before
//!    it. A ratio is only given once the symbol has been watched for both windows. A baseline
//!    with no trades counts as one trade, because a rate cannot be measured below one event
//!    per window and this keeps the ratio finite and conservative.
//! 3. **Volatility spike.** Between two snapshots the price visited at least both last
//!    prices, the new day high if the high rose and the new day low if the low fell; the
//!    spread of those prices over the earlier last price is a lower bound of the interval's
//!    high-low range (exact decimals until the final percentage). The newest range is
//!    compared with the mean range of earlier intervals within `baseline_window`. Snapshots
//!    come at a regular Track A cadence, so ranges are compared without time scaling.
//! 4. **Manual override.** `manual_include` symbols are always candidates (and the slot
//!    manager always gives them a slot); `manual_exclude` wins over `manual_include`, since
//!    an explicit "never" is the safer reading of a contradiction.
//!
//! **Price spike** (kept by default, not a trigger): |last − prev_close| / prev_close, in
//! percent, at least `price_spike_pct`. It adds to the score and flags the candidate.
//!
//! A trigger *fires* when its ratio reaches its threshold. Ratios are not given (and nothing
//! fires) without `min_baseline_samples` baseline intervals, with a zero baseline volume or
//! range (nothing to compare with), or when the newest measurement is older than
//! `max_signal_age` (a stalled Track A must not keep yesterday's surge alive).
//!
//! # Score
//!
//! For each fired signal k (the three measured triggers and the price spike) with measured
//! ratio r_k and threshold θ_k, its strength is `g_k = min(1, (r_k / θ_k) / saturation)`;
//! signals that did not fire have `g_k = 0`. With the configured weights w_k,
//!
//! ```text
//! score = 1 − Π_k (1 − w_k · g_k)
//! ```
//!
//! Why this shape: each factor is in [0, 1], so the score is in [0, 1] without renormalizing;
//! a signal at `saturation` times its threshold contributes its full weight and stronger
//! ones cannot run away; the weights descend in trigger priority (validated), so of two
//! equally strong single signals the higher-priority one scores higher; and corroborating
//! signals raise the score (like independent evidence in a noisy-OR) while never exceeding 1.
//! Manual override adds nothing to the score: the score stays a record of measured evidence,
//! and the override acts through `Candidate::manual` instead.
//!
//! # Layout
//!
//! - `config`: [`TriggerConfig`] (the `engine.triggers` section) and its validation;
//! - `candidate`: what the monitor reports ([`Candidate`], [`ScoreInputs`], [`TriggerKind`],
//!   [`Source`], [`SkippedPoints`]);
//! - `signals`: one symbol's volume, price and trade series and the measurements taken from
//!   them (the triggers' ratios and the price change);
//! - `score`: the score and the fired triggers from those measurements;
//! - `monitor`: [`CandidateMonitor`], which feeds the series and ranks the candidates.

mod candidate;
mod config;
mod monitor;
mod score;
mod signals;
#[cfg(test)]
pub(crate) mod tests;

pub use candidate::{Candidate, ScoreInputs, SkippedPoints, Source, TriggerKind};
pub use config::{TriggerConfig, TriggerWeights};
pub use monitor::CandidateMonitor;

/// Unit conversion for per-minute rates.
const MS_PER_MINUTE: f64 = 60_000.0;
/// Percent per unit fraction.
const PERCENT: f64 = 100.0;

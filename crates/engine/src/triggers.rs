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

use std::collections::{HashMap, HashSet, VecDeque};

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use model::settings::{Checker, Interval, Validate};
use model::{Price, Qty, Snapshot, Symbol, Tick, UtcTime};

/// Unit conversion for per-minute rates.
const MS_PER_MINUTE: f64 = 60_000.0;
/// Percent per unit fraction.
const PERCENT: f64 = 100.0;

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

#[derive(Debug, Clone, Copy)]
struct VolumePoint {
    at: UtcTime,
    cum: Qty,
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    start: UtcTime,
    end: UtcTime,
    volume: Qty,
}

impl Rate {
    fn minutes(&self) -> f64 {
        self.end.millis_since(self.start) as f64 / MS_PER_MINUTE
    }
}

#[derive(Debug, Clone, Copy)]
struct PricePoint {
    at: UtcTime,
    last: Price,
    high: Price,
    low: Price,
}

#[derive(Debug, Clone, Copy)]
struct Move {
    start: UtcTime,
    end: UtcTime,
    range_pct: f64,
}

#[derive(Debug, Default)]
struct SymbolState {
    last_seen: UtcTime,
    volume_point: Option<VolumePoint>,
    /// Oldest first; the last one is the newest interval.
    rates: VecDeque<Rate>,
    volume_sources: Vec<Source>,
    price_point: Option<PricePoint>,
    moves: VecDeque<Move>,
    prev_close: Option<Price>,
    snapshot_at: Option<UtcTime>,
    last_price: Option<(UtcTime, Price)>,
    /// Since when the symbol's trade stream has been watched (slot membership).
    watch_since: Option<UtcTime>,
    /// (bucket index, trades), ascending by index.
    buckets: VecDeque<(i64, u32)>,
}

impl SymbolState {
    fn note_source(&mut self, s: Source) {
        if !self.volume_sources.contains(&s) {
            self.volume_sources.push(s);
        }
    }

    fn on_volume(&mut self, cfg: &TriggerConfig, at: UtcTime, cum: Qty, source: Source, skipped: &mut SkippedPoints) {
        self.note_source(source);
        let Some(p) = self.volume_point else {
            self.volume_point = Some(VolumePoint { at, cum });
            return;
        };
        if at <= p.at {
            return; // late or duplicate: the newer point already covers it
        }
        if cum < p.cum {
            // A new day's count, or a source that restarted it: the old baseline is void.
            self.rates.clear();
            self.volume_sources.clear();
            self.note_source(source);
            self.volume_point = Some(VolumePoint { at, cum });
            return;
        }
        if at.millis_since(p.at) < cfg.min_volume_interval.as_millis() as i64 {
            return;
        }
        self.volume_point = Some(VolumePoint { at, cum });
        let Some(volume) = cum.0.checked_sub(p.cum.0) else {
            skipped.volume_difference += 1;
            return;
        };
        self.rates.push_back(Rate { start: p.at, end: at, volume: Qty(volume) });
        let horizon = p.at.plus_millis(-(cfg.baseline_window.as_millis() as i64));
        while self.rates.front().is_some_and(|r| r.end <= horizon) {
            self.rates.pop_front();
        }
    }

    fn on_price(&mut self, cfg: &TriggerConfig, at: UtcTime, s: &Snapshot, skipped: &mut SkippedPoints) {
        if self.prev_close.is_some_and(|pc| pc != s.prev_close) {
            // A new trading day: yesterday's intervals are not today's baseline.
            self.moves.clear();
            self.price_point = None;
        }
        self.prev_close = Some(s.prev_close);
        self.snapshot_at = Some(at);
        if self.last_price.is_none_or(|(t, _)| t <= at) {
            self.last_price = Some((at, s.last_price));
        }
        let new = PricePoint { at, last: s.last_price, high: s.high, low: s.low };
        let Some(old) = self.price_point else {
            self.price_point = Some(new);
            return;
        };
        if at <= old.at {
            return;
        }
        self.price_point = Some(new);
        if !old.last.is_positive() || !new.last.is_positive() {
            return; // no trade yet: no price to measure a range from
        }
        let (mut hi, mut lo) = (old.last.0.max(new.last.0), old.last.0.min(new.last.0));
        if new.high.is_positive() && new.high > old.high {
            hi = hi.max(new.high.0);
        }
        if new.low.is_positive() && (new.low < old.low || !old.low.is_positive()) {
            lo = lo.min(new.low.0);
        }
        let Some(range_pct) = hi.checked_sub(lo).and_then(|r| r.checked_div(old.last.0)).and_then(|f| f.to_f64())
        else {
            skipped.price_range += 1;
            return;
        };
        let range_pct = range_pct * PERCENT;
        self.moves.push_back(Move { start: old.at, end: at, range_pct });
        let horizon = old.at.plus_millis(-(cfg.baseline_window.as_millis() as i64));
        while self.moves.front().is_some_and(|m| m.end <= horizon) {
            self.moves.pop_front();
        }
    }

    fn on_trade(&mut self, cfg: &TriggerConfig, at: UtcTime, price: Price) {
        if self.last_price.is_none_or(|(t, _)| t <= at) {
            self.last_price = Some((at, price));
        }
        if self.watch_since.is_none() {
            self.watch_since = Some(at);
        }
        let bucket_ms = cfg.velocity_bucket.as_millis() as i64;
        let idx = at.as_millis().div_euclid(bucket_ms);
        // Trades arrive in order almost always; a late one is filed where it belongs.
        match self.buckets.iter().rposition(|&(i, _)| i <= idx) {
            Some(pos) if self.buckets[pos].0 == idx => self.buckets[pos].1 = self.buckets[pos].1.saturating_add(1),
            Some(pos) => self.buckets.insert(pos + 1, (idx, 1)),
            None => self.buckets.push_front((idx, 1)),
        }
        self.prune_buckets(cfg, self.buckets.back().map_or(idx, |b| b.0));
    }

    fn prune_buckets(&mut self, cfg: &TriggerConfig, newest_idx: i64) {
        let keep = velocity_span_buckets(cfg);
        while self.buckets.front().is_some_and(|&(i, _)| i <= newest_idx - keep) {
            self.buckets.pop_front();
        }
    }

    fn stop_watching(&mut self) {
        self.watch_since = None;
        self.buckets.clear();
    }

    /// Fills the volume fields; returns nothing if the newest interval is stale.
    fn measure_volume(&self, cfg: &TriggerConfig, now: UtcTime, inp: &mut ScoreInputs, skipped: &mut SkippedPoints) {
        let Some(newest) = self.rates.back() else { return };
        let baseline: Vec<&Rate> =
            self.rates.iter().take(self.rates.len() - 1).filter(|r| r.end <= newest.start).collect();
        if now.millis_since(newest.end) > cfg.max_signal_age.as_millis() as i64 {
            return;
        }
        inp.sources.extend(self.volume_sources.iter().copied());
        let per_min = newest.volume.0.to_f64().map(|v| v / newest.minutes());
        inp.interval_volume = Some(newest.volume);
        inp.volume_per_min = per_min;
        if baseline.len() < cfg.min_baseline_samples {
            return;
        }
        let Some(volume) = baseline.iter().try_fold(Decimal::ZERO, |acc, r| acc.checked_add(r.volume.0)) else {
            skipped.volume_sum += 1;
            return;
        };
        let minutes: f64 = baseline.iter().map(|r| r.minutes()).sum();
        let base = volume.to_f64().map(|v| v / minutes);
        inp.baseline_volume_per_min = base;
        inp.volume_ratio = per_min.zip(base.filter(|b| *b > 0.0)).map(|(v, b)| v / b);
    }

    fn measure_volatility(&self, cfg: &TriggerConfig, now: UtcTime, inp: &mut ScoreInputs) {
        let Some(newest) = self.moves.back() else { return };
        if now.millis_since(newest.end) > cfg.max_signal_age.as_millis() as i64 {
            return;
        }
        inp.range_pct = Some(newest.range_pct);
        let base: Vec<f64> = self
            .moves
            .iter()
            .take(self.moves.len() - 1)
            .filter(|m| m.end <= newest.start)
            .map(|m| m.range_pct)
            .collect();
        if base.len() < cfg.min_baseline_samples {
            return;
        }
        let mean = base.iter().sum::<f64>() / base.len() as f64;
        inp.baseline_range_pct = Some(mean);
        if mean > 0.0 {
            inp.volatility_ratio = Some(newest.range_pct / mean);
        }
    }

    fn measure_velocity(&self, cfg: &TriggerConfig, now: UtcTime, inp: &mut ScoreInputs) {
        let Some(since) = self.watch_since else { return };
        let bucket_ms = cfg.velocity_bucket.as_millis() as i64;
        let (window_ms, baseline_ms) =
            (cfg.velocity_window.as_millis() as i64, cfg.velocity_baseline.as_millis() as i64);
        let watched = now.millis_since(since);
        if watched < window_ms {
            return;
        }
        inp.sources.push(Source::Ticks);
        let now_idx = now.as_millis().div_euclid(bucket_ms);
        let (wb, bb) = (window_ms / bucket_ms, baseline_ms / bucket_ms);
        let count = |lo: i64, hi: i64| -> u64 {
            self.buckets.iter().filter(|&&(i, _)| i > lo && i <= hi).map(|&(_, n)| u64::from(n)).sum()
        };
        let recent = count(now_idx - wb, now_idx);
        let tpm = recent as f64 / (window_ms as f64 / MS_PER_MINUTE);
        inp.trades_per_min = Some(tpm);
        if watched < window_ms + baseline_ms {
            return;
        }
        let base = count(now_idx - wb - bb, now_idx - wb).max(1);
        let btpm = base as f64 / (baseline_ms as f64 / MS_PER_MINUTE);
        inp.baseline_trades_per_min = Some(btpm);
        inp.velocity_ratio = Some(tpm / btpm);
    }

    fn measure_price(&self, cfg: &TriggerConfig, now: UtcTime, inp: &mut ScoreInputs, skipped: &mut SkippedPoints) {
        let Some((at, last)) = self.last_price else { return };
        if now.millis_since(at) > cfg.max_signal_age.as_millis() as i64 {
            return;
        }
        inp.last_price = Some(last);
        inp.prev_close = self.prev_close;
        if self.snapshot_at.is_some_and(|t| now.millis_since(t) <= cfg.max_signal_age.as_millis() as i64) {
            inp.sources.push(Source::Snapshot);
        }
        if let Some(pc) = self.prev_close.filter(Price::is_positive) {
            let change = last.0.checked_sub(pc.0).and_then(|d| d.checked_div(pc.0));
            inp.change_pct = change.and_then(|f| f.to_f64()).map(|f| f * PERCENT);
            if inp.change_pct.is_none() {
                skipped.price_change += 1;
            }
        }
    }
}

/// The symbol's state, created on first sight, marked as seen at `at`.
fn seen<'a>(states: &'a mut HashMap<Symbol, SymbolState>, at: UtcTime, symbol: &Symbol) -> &'a mut SymbolState {
    let st = states.entry(symbol.clone()).or_default();
    st.last_seen = st.last_seen.max(at);
    st
}

fn velocity_span_buckets(cfg: &TriggerConfig) -> i64 {
    ((cfg.velocity_window.as_millis() + cfg.velocity_baseline.as_millis()) / cfg.velocity_bucket.as_millis()) as i64
}

/// Strength of one signal: 0 if it did not fire, else its ratio over the threshold as a
/// fraction of `saturation`, capped at 1.
fn strength(ratio: Option<f64>, threshold: f64, saturation: f64) -> Option<f64> {
    ratio.filter(|r| r.is_finite() && *r >= threshold).map(|r| (r / threshold / saturation).min(1.0))
}

pub struct CandidateMonitor {
    cfg: TriggerConfig,
    states: HashMap<Symbol, SymbolState>,
    /// Newest ranking: symbol → 1-based position, and when it arrived.
    ranking: HashMap<Symbol, u32>,
    ranking_at: Option<UtcTime>,
    skipped: SkippedPoints,
}

impl CandidateMonitor {
    pub fn new(cfg: TriggerConfig) -> Self {
        CandidateMonitor {
            cfg,
            states: HashMap::new(),
            ranking: HashMap::new(),
            ranking_at: None,
            skipped: SkippedPoints::default(),
        }
    }

    /// Points skipped because they could not be computed, by reason, since the start.
    pub fn skipped(&self) -> SkippedPoints {
        self.skipped
    }

    pub fn config(&self) -> &TriggerConfig {
        &self.cfg
    }

    /// The symbols that never get a slot, to pass to `SlotManager::decide`.
    pub fn manual_exclude(&self) -> &[Symbol] {
        &self.cfg.manual_exclude
    }

    /// How many symbols the monitor holds state for (memory bound check).
    pub fn tracked(&self) -> usize {
        self.states.len()
    }

    /// A Track A snapshot: cumulative day volume, OHLC and previous close.
    pub fn on_snapshot(&mut self, at: UtcTime, s: &Snapshot) {
        let st = seen(&mut self.states, at, &s.symbol);
        st.on_volume(&self.cfg, at, s.volume, Source::Snapshot, &mut self.skipped);
        st.on_price(&self.cfg, at, s, &mut self.skipped);
    }

    /// The provider's volume ranking, in rank order, with each symbol's day volume. It
    /// replaces the previous ranking.
    pub fn on_ranking(&mut self, at: UtcTime, ranking: &[(Symbol, Qty)]) {
        self.ranking.clear();
        for (pos, (symbol, volume)) in ranking.iter().enumerate() {
            self.ranking.entry(symbol.clone()).or_insert(pos as u32 + 1);
            seen(&mut self.states, at, symbol).on_volume(&self.cfg, at, *volume, Source::Ranking, &mut self.skipped);
        }
        self.ranking_at = Some(at);
    }

    /// A trade of a slot symbol.
    pub fn on_tick(&mut self, at: UtcTime, t: &Tick) {
        let st = seen(&mut self.states, at, &t.symbol);
        st.on_trade(&self.cfg, at, t.price);
        if let Some(cum) = t.cum_volume {
            st.on_volume(&self.cfg, at, cum, Source::Ticks, &mut self.skipped);
        }
    }

    /// The slot list now in force. Trade velocity needs to know since when a symbol's trades
    /// have been streamed: without it, a freshly subscribed symbol would compare its trades
    /// with an empty baseline. Symbols that left the slots stop being watched. Optional: a
    /// symbol's first trade starts its watch otherwise.
    pub fn on_slots(&mut self, at: UtcTime, slots: &[Symbol]) {
        let slots: HashSet<&Symbol> = slots.iter().collect();
        for (symbol, st) in self.states.iter_mut() {
            if st.watch_since.is_some() && !slots.contains(symbol) {
                st.stop_watching();
            }
        }
        for symbol in slots {
            let st = seen(&mut self.states, at, symbol);
            if st.watch_since.is_none() {
                st.watch_since = Some(at);
            }
        }
    }

    /// Replaces the manual lists (config reload, operator command).
    pub fn set_manual(&mut self, include: Vec<Symbol>, exclude: Vec<Symbol>) {
        self.cfg.manual_include = include;
        self.cfg.manual_exclude = exclude;
    }

    /// Every symbol with a signal, best first (score descending, then symbol).
    pub fn evaluate(&mut self, now: UtcTime) -> Vec<Candidate> {
        self.prune(now);
        let ranking_fresh =
            self.ranking_at.is_some_and(|t| now.millis_since(t) <= self.cfg.max_signal_age.as_millis() as i64);
        let mut out = Vec::new();
        let mut skipped = self.skipped;
        for (symbol, st) in &self.states {
            let mut inp = ScoreInputs::default();
            st.measure_volume(&self.cfg, now, &mut inp, &mut skipped);
            st.measure_velocity(&self.cfg, now, &mut inp);
            st.measure_volatility(&self.cfg, now, &mut inp);
            st.measure_price(&self.cfg, now, &mut inp, &mut skipped);
            if ranking_fresh {
                inp.ranking_position = self.ranking.get(symbol).copied();
                if inp.ranking_position.is_some() {
                    inp.sources.push(Source::Ranking);
                }
            }
            let c = self.judge(symbol.clone(), inp);
            if c.has_signal() {
                out.push(c);
            }
        }
        for symbol in &self.cfg.manual_include {
            if !self.states.contains_key(symbol) && !self.cfg.manual_exclude.contains(symbol) {
                out.push(self.judge(symbol.clone(), ScoreInputs::default()));
            }
        }
        self.skipped = skipped;
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.symbol.cmp(&b.symbol)));
        out.dedup_by(|a, b| a.symbol == b.symbol);
        out
    }

    fn judge(&self, symbol: Symbol, mut inputs: ScoreInputs) -> Candidate {
        let cfg = &self.cfg;
        let w = &cfg.weights;
        let change_ratio = inputs.change_pct.map(f64::abs);
        let signals = [
            (
                Some(TriggerKind::VolumeSurge),
                strength(inputs.volume_ratio, cfg.volume_surge_ratio, cfg.saturation),
                w.volume_surge,
            ),
            (
                Some(TriggerKind::TradeVelocity),
                strength(inputs.velocity_ratio, cfg.trade_velocity_ratio, cfg.saturation),
                w.trade_velocity,
            ),
            (
                Some(TriggerKind::VolatilitySpike),
                strength(inputs.volatility_ratio, cfg.volatility_ratio, cfg.saturation),
                w.volatility_spike,
            ),
            (None, strength(change_ratio, cfg.price_spike_pct, cfg.saturation), w.price_spike),
        ];
        let mut miss = 1.0;
        let mut fired = Vec::new();
        let mut price_spike = false;
        for (kind, g, weight) in signals {
            let Some(g) = g else { continue };
            miss *= 1.0 - weight * g;
            match kind {
                Some(k) => fired.push(k),
                None => price_spike = true,
            }
        }
        let manual = cfg.manual_include.contains(&symbol) && !cfg.manual_exclude.contains(&symbol);
        if manual {
            fired.push(TriggerKind::ManualOverride);
        }
        inputs.sources.sort();
        inputs.sources.dedup();
        Candidate {
            symbol,
            score: (1.0 - miss).clamp(0.0, 1.0),
            trigger: fired.first().copied(),
            fired,
            price_spike,
            manual,
            inputs,
        }
    }

    fn prune(&mut self, now: UtcTime) {
        let forget = self.cfg.forget_after.as_millis() as i64;
        self.states.retain(|_, st| now.millis_since(st.last_seen) <= forget);
        let bucket_ms = self.cfg.velocity_bucket.as_millis() as i64;
        let cfg = &self.cfg;
        for st in self.states.values_mut() {
            st.prune_buckets(cfg, now.as_millis().div_euclid(bucket_ms));
        }
        if self.ranking_at.is_some_and(|t| now.millis_since(t) > forget) {
            self.ranking.clear();
            self.ranking_at = None;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use model::{Market, Provider};

    const SEC: i64 = 1000;
    const MIN: i64 = 60 * SEC;
    const EPS: f64 = 1e-9;

    pub(crate) fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    /// Minutes after a fixed, whole-second instant (09:00 KST on 2026-01-14).
    pub(crate) fn at(minutes: i64) -> UtcTime {
        UtcTime::from_millis(1_768_348_800_000 + minutes * MIN)
    }

    fn iv(ms: i64) -> Interval {
        Interval::from_millis(ms as u64)
    }

    pub(crate) fn config() -> TriggerConfig {
        TriggerConfig {
            evaluate_interval: iv(10 * SEC),
            baseline_window: iv(60 * MIN),
            min_baseline_samples: 2,
            min_volume_interval: iv(MIN),
            max_signal_age: iv(15 * MIN),
            forget_after: iv(120 * MIN),
            volume_surge_ratio: 3.0,
            velocity_window: iv(MIN),
            velocity_baseline: iv(10 * MIN),
            velocity_bucket: iv(SEC),
            trade_velocity_ratio: 3.0,
            volatility_ratio: 2.5,
            price_spike_pct: 5.0,
            saturation: 3.0,
            weights: TriggerWeights {
                volume_surge: 1.0,
                trade_velocity: 0.85,
                volatility_spike: 0.7,
                price_spike: 0.5,
            },
            manual_include: vec![],
            manual_exclude: vec![],
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn snap(symbol: &str, last: &str, high: &str, low: &str, prev_close: &str, volume: i64) -> Snapshot {
        Snapshot {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: sym(symbol),
            last_price: Price(d(last)),
            open: Price(d(prev_close)),
            high: Price(d(high)),
            low: Price(d(low)),
            prev_close: Price(d(prev_close)),
            volume: Qty::from_int(volume),
            bid_price: None,
            ask_price: None,
        }
    }

    /// A flat-priced snapshot: only volume moves.
    pub(crate) fn flat(symbol: &str, volume: i64) -> Snapshot {
        snap(symbol, "100", "100", "100", "100", volume)
    }

    fn tick(symbol: &str, price: &str, cum: Option<i64>) -> Tick {
        Tick {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: sym(symbol),
            price: Price(d(price)),
            size: Qty::from_int(1),
            side: None,
            cum_volume: cum.map(Qty::from_int),
            trade_id: None,
        }
    }

    /// Issue 14: two cumulative volumes at the ends of `Decimal`'s range, and a price change
    /// over a tiny previous close, used to panic (`Subtraction overflowed`) and end
    /// `collect`. They are skipped with a counted reason instead.
    #[test]
    fn overflowing_points_are_skipped_and_counted() {
        let mut m = CandidateMonitor::new(config());
        let (min, max) = (Decimal::MIN.to_string(), Decimal::MAX.to_string());
        m.on_tick(at(0), &Tick { cum_volume: Some(Qty(d(&min))), ..tick("005930", "100", None) });
        m.on_tick(at(2), &Tick { cum_volume: Some(Qty(d(&max))), ..tick("005930", "100", None) });
        assert_eq!(m.skipped().volume_difference, 1);
        // A baseline of two intervals whose volumes each fit but whose sum does not.
        let mut m2 = CandidateMonitor::new(config());
        let k = (Decimal::MAX / Decimal::from(10)).trunc() * Decimal::from(6);
        for (i, v) in [-k, Decimal::ZERO, k, k + Decimal::ONE].into_iter().enumerate() {
            m2.on_tick(at(i as i64 * 2), &Tick { cum_volume: Some(Qty(v)), ..tick("000660", "100", None) });
        }
        m2.evaluate(at(7));
        assert_eq!(m2.skipped(), SkippedPoints { volume_sum: 1, ..Default::default() });
        // A tiny previous close and a huge last price.
        let tiny = "0.0000000000000000000000000001";
        m.on_snapshot(at(3), &snap("035720", tiny, tiny, tiny, tiny, 1));
        m.on_snapshot(at(5), &snap("035720", &max, &max, tiny, tiny, 2));
        m.evaluate(at(6));
        let s = m.skipped();
        assert!(s.price_change >= 1 && s.price_range >= 1, "{s:?}");
    }

    fn find<'a>(cands: &'a [Candidate], symbol: &str) -> Option<&'a Candidate> {
        cands.iter().find(|c| c.symbol.as_str() == symbol)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < EPS
    }

    fn problems(cfg: &TriggerConfig) -> Vec<String> {
        let mut c = Checker::default();
        c.section("triggers", |c| cfg.validate(c));
        c.problems.iter().map(|p| p.key.clone()).collect()
    }

    #[test]
    fn volume_surge_fires_on_snapshot_delta_against_baseline() {
        let mut m = CandidateMonitor::new(config());
        // Four quiet 10-minute intervals of 1000 each, then one of 5000 for A.
        for (i, cum) in [0, 1000, 2000, 3000, 4000].into_iter().enumerate() {
            m.on_snapshot(at(10 * i as i64), &flat("A", cum));
            m.on_snapshot(at(10 * i as i64), &flat("B", cum));
        }
        assert!(m.evaluate(at(40)).is_empty(), "steady volume is no signal");
        m.on_snapshot(at(50), &flat("A", 9000));
        m.on_snapshot(at(50), &flat("B", 5000));
        let cands = m.evaluate(at(50));
        assert_eq!(cands.len(), 1, "{cands:?}");
        let a = &cands[0];
        assert_eq!(a.symbol.as_str(), "A");
        assert_eq!(a.trigger, Some(TriggerKind::VolumeSurge));
        assert_eq!(a.fired, vec![TriggerKind::VolumeSurge]);
        assert!(!a.price_spike && !a.manual);
        assert_eq!(a.inputs.interval_volume, Some(Qty::from_int(5000)));
        assert!(close(a.inputs.volume_per_min.unwrap(), 500.0));
        assert!(close(a.inputs.baseline_volume_per_min.unwrap(), 100.0));
        assert!(close(a.inputs.volume_ratio.unwrap(), 5.0));
        // g = min(1, (5 / 3) / 3) = 5/9, weight 1.
        assert!(close(a.score, 5.0 / 9.0), "{}", a.score);
        assert_eq!(a.inputs.sources, vec![Source::Snapshot]);
    }

    #[test]
    fn surge_needs_a_baseline_fresh_data_and_the_same_day() {
        let mut m = CandidateMonitor::new(config());
        m.on_snapshot(at(0), &flat("A", 0));
        m.on_snapshot(at(10), &flat("A", 1000));
        m.on_snapshot(at(20), &flat("A", 9000));
        // One baseline interval is fewer than min_baseline_samples (2).
        assert!(m.evaluate(at(20)).is_empty());
        assert_eq!(m.states[&sym("A")].rates.len(), 2);
        m.on_snapshot(at(30), &flat("A", 10_000));
        m.on_snapshot(at(40), &flat("A", 30_000));
        // Baseline (1000 + 8000 + 1000) / 30 min = 333.3/min, newest 2000/min: ratio 6.
        let a = m.evaluate(at(40));
        assert!(close(a[0].inputs.volume_ratio.unwrap(), 6.0));
        // Fifteen minutes later the newest interval is still fresh; a minute more and it is not.
        assert_eq!(m.evaluate(at(55)).len(), 1);
        assert!(m.evaluate(at(56)).is_empty(), "a stale surge must not fire");
        // Next morning the cumulative volume restarts: yesterday is no baseline.
        m.on_snapshot(at(60), &flat("A", 500));
        m.on_snapshot(at(70), &flat("A", 50_000));
        assert!(m.evaluate(at(70)).is_empty());
        assert_eq!(m.states[&sym("A")].rates.len(), 1);
    }

    #[test]
    fn ranking_volumes_feed_surge_and_position() {
        let mut m = CandidateMonitor::new(config());
        let rank = |a: i64, b: i64| vec![(sym("B"), Qty::from_int(b)), (sym("A"), Qty::from_int(a))];
        // Every 2 minutes: A trades 200, B 1000 (B ranks first).
        for i in 0..4 {
            m.on_ranking(at(2 * i), &rank(200 * i, 1000 * i));
        }
        // A snapshot 30 s after a ranking is closer than min_volume_interval and is skipped.
        m.on_snapshot(at(6).plus_millis(30 * SEC), &flat("A", 700));
        assert_eq!(m.states[&sym("A")].rates.len(), 3);
        m.on_ranking(at(8), &rank(600 + 1200, 4000));
        let cands = m.evaluate(at(8));
        assert_eq!(cands.len(), 1, "{cands:?}");
        let a = &cands[0];
        assert_eq!(a.symbol.as_str(), "A");
        assert_eq!(a.trigger, Some(TriggerKind::VolumeSurge));
        assert!(close(a.inputs.volume_ratio.unwrap(), 6.0), "{:?}", a.inputs);
        assert_eq!(a.inputs.ranking_position, Some(2));
        assert_eq!(a.inputs.sources, vec![Source::Snapshot, Source::Ranking]);
    }

    /// Ticks at `per_min` a minute, evenly, in (from, to].
    fn ticks(m: &mut CandidateMonitor, symbol: &str, from: i64, to: i64, per_min: i64) {
        let gap = MIN / per_min;
        let mut t = at(from).plus_millis(gap);
        while t <= at(to) {
            m.on_tick(t, &tick(symbol, "100", None));
            t = t.plus_millis(gap);
        }
    }

    #[test]
    fn trade_velocity_from_ticks_against_own_baseline() {
        let mut m = CandidateMonitor::new(config());
        m.on_slots(at(0), &[sym("A"), sym("B"), sym("D")]);
        ticks(&mut m, "A", 0, 10, 10);
        ticks(&mut m, "A", 10, 11, 50);
        ticks(&mut m, "B", 0, 11, 10);
        // D was silent for ten minutes: its baseline counts as one trade.
        ticks(&mut m, "D", 10, 11, 2);
        // C joined the slots late: its baseline is not yet watched.
        m.on_slots(at(5), &[sym("A"), sym("B"), sym("C"), sym("D")]);
        ticks(&mut m, "C", 5, 10, 10);
        ticks(&mut m, "C", 10, 11, 50);

        let cands = m.evaluate(at(11));
        let a = find(&cands, "A").expect("A fires");
        assert_eq!(a.trigger, Some(TriggerKind::TradeVelocity));
        assert!(close(a.inputs.trades_per_min.unwrap(), 50.0));
        assert!(close(a.inputs.baseline_trades_per_min.unwrap(), 10.0));
        assert!(close(a.inputs.velocity_ratio.unwrap(), 5.0));
        assert!(close(a.score, 0.85 * 5.0 / 9.0), "{}", a.score);
        assert_eq!(a.inputs.sources, vec![Source::Ticks]);
        assert!(find(&cands, "B").is_none(), "steady trading is no signal");
        assert!(find(&cands, "C").is_none(), "no ratio before both windows were watched");
        let dd = find(&cands, "D").expect("D fires against the one-trade floor");
        assert!(close(dd.inputs.velocity_ratio.unwrap(), 20.0));
        assert!(close(dd.score, 0.85), "saturated: {}", dd.score);
        assert_eq!(cands[0].symbol.as_str(), "D");

        // Leaving the slots forgets the trade history.
        m.on_slots(at(11), &[sym("B")]);
        assert!(m.states[&sym("A")].buckets.is_empty());
        assert!(m.evaluate(at(11)).is_empty());
        // Buckets stay within both windows however long trading goes on.
        ticks(&mut m, "B", 11, 60, 10);
        let span = velocity_span_buckets(&m.cfg) as usize;
        assert!(m.states[&sym("B")].buckets.len() <= span);
    }

    #[test]
    fn tick_cumulative_volume_counts_for_surge() {
        let mut m = CandidateMonitor::new(config());
        for i in 0..=3 {
            m.on_tick(at(i), &tick("A", "100", Some(100 * i)));
        }
        m.on_tick(at(4), &tick("A", "100", Some(300 + 1000)));
        let a = m.evaluate(at(4));
        assert_eq!(a[0].trigger, Some(TriggerKind::VolumeSurge));
        assert!(close(a[0].inputs.volume_ratio.unwrap(), 10.0));
    }

    #[test]
    fn volatility_spike_from_snapshot_ranges() {
        let mut m = CandidateMonitor::new(config());
        // Three 1% intervals (each rises 1% to a new day high), then one reaching 5% above
        // its opening price before settling; volume grows evenly throughout.
        let steps = [
            ("100", "100", "100"),
            ("101", "101", "100"),
            ("102.01", "102.01", "100"),
            ("103.0301", "103.0301", "100"),
            ("104", "108.181605", "100"),
        ];
        for (i, (last, high, low)) in steps.into_iter().enumerate() {
            m.on_snapshot(at(10 * i as i64), &snap("A", last, high, low, "100", 1000 * i as i64));
        }
        let cands = m.evaluate(at(40));
        assert_eq!(cands.len(), 1);
        let a = &cands[0];
        assert_eq!(a.trigger, Some(TriggerKind::VolatilitySpike));
        assert!(close(a.inputs.range_pct.unwrap(), 5.0));
        assert!(close(a.inputs.baseline_range_pct.unwrap(), 1.0));
        assert!(close(a.inputs.volatility_ratio.unwrap(), 5.0));
        assert!(close(a.inputs.change_pct.unwrap(), 4.0));
        assert!(!a.price_spike, "4% is under price_spike_pct");
        // g = min(1, (5 / 2.5) / 3) = 2/3, weight 0.7.
        assert!(close(a.score, 0.7 * 2.0 / 3.0));
    }

    #[test]
    fn a_new_day_low_widens_the_range() {
        let mut m = CandidateMonitor::new(config());
        m.on_snapshot(at(0), &snap("A", "100", "100", "100", "100", 0));
        m.on_snapshot(at(10), &snap("A", "100", "100", "97", "100", 0));
        let st = &m.states[&sym("A")];
        assert!(close(st.moves[0].range_pct, 3.0));
    }

    #[test]
    fn price_spike_is_flagged_without_a_trigger() {
        let mut m = CandidateMonitor::new(config());
        m.on_snapshot(at(0), &snap("UP", "110", "110", "100", "100", 10));
        m.on_snapshot(at(0), &snap("DOWN", "94", "100", "94", "100", 10));
        m.on_snapshot(at(0), &snap("EDGE", "104.99", "105", "100", "100", 10));
        let cands = m.evaluate(at(1));
        assert_eq!(cands.iter().map(|c| c.symbol.as_str()).collect::<Vec<_>>(), ["UP", "DOWN"]);
        let up = &cands[0];
        assert!(up.price_spike && up.trigger.is_none() && up.fired.is_empty());
        assert!(close(up.inputs.change_pct.unwrap(), 10.0));
        // g = min(1, (10 / 5) / 3) = 2/3, weight 0.5.
        assert!(close(up.score, 0.5 * 2.0 / 3.0));
        assert!(close(cands[1].inputs.change_pct.unwrap(), -6.0));
        // A newer trade price moves the change.
        m.on_tick(at(2), &tick("EDGE", "105", None));
        assert!(find(&m.evaluate(at(2)), "EDGE").is_some_and(|c| c.price_spike));
    }

    fn inputs(volume: Option<f64>, velocity: Option<f64>, volatility: Option<f64>, change: Option<f64>) -> ScoreInputs {
        ScoreInputs {
            volume_ratio: volume,
            velocity_ratio: velocity,
            volatility_ratio: volatility,
            change_pct: change,
            ..ScoreInputs::default()
        }
    }

    #[test]
    fn score_follows_priority_corroboration_and_stays_in_bounds() {
        let m = CandidateMonitor::new(config());
        // Equally strong single signals (twice their threshold) rank by trigger priority.
        let vol = m.judge(sym("V"), inputs(Some(6.0), None, None, None));
        let vel = m.judge(sym("T"), inputs(None, Some(6.0), None, None));
        let vola = m.judge(sym("X"), inputs(None, None, Some(5.0), None));
        assert!(vol.score > vel.score && vel.score > vola.score, "{} {} {}", vol.score, vel.score, vola.score);
        // Corroboration: volume at 1.5× threshold (g 0.5) plus volatility at 2× (g 2/3).
        let both = m.judge(sym("B"), inputs(Some(4.5), None, Some(5.0), Some(-7.5)));
        assert_eq!(both.trigger, Some(TriggerKind::VolumeSurge));
        assert_eq!(both.fired, vec![TriggerKind::VolumeSurge, TriggerKind::VolatilitySpike]);
        assert!(both.price_spike);
        let expected = 1.0 - (1.0 - 0.5) * (1.0 - 0.7 * 2.0 / 3.0) * (1.0 - 0.5 * 0.5);
        assert!(close(both.score, expected), "{} vs {expected}", both.score);
        // Just under a threshold nothing fires.
        let under = m.judge(sym("U"), inputs(Some(2.999), Some(2.999), Some(2.499), Some(4.999)));
        assert!(!under.has_signal() && under.score == 0.0);
        // Huge ratios saturate at 1.
        let huge = m.judge(sym("H"), inputs(Some(1e9), Some(1e9), Some(1e9), Some(1e9)));
        assert!(close(huge.score, 1.0) && huge.score <= 1.0);
        let inf = m.judge(sym("I"), inputs(Some(f64::INFINITY), Some(f64::NAN), None, None));
        assert!(inf.score == 0.0 && inf.trigger.is_none());
    }

    #[test]
    fn manual_include_is_always_a_candidate_and_exclude_wins() {
        let mut cfg = config();
        cfg.manual_include = vec![sym("M"), sym("UP")];
        let mut m = CandidateMonitor::new(cfg);
        m.on_snapshot(at(0), &snap("UP", "110", "110", "100", "100", 10));
        let cands = m.evaluate(at(0));
        assert_eq!(cands.len(), 2);
        let up = find(&cands, "UP").unwrap();
        assert!(up.manual && up.price_spike);
        assert_eq!(up.trigger, Some(TriggerKind::ManualOverride));
        let mm = find(&cands, "M").unwrap();
        assert!(mm.manual && mm.score == 0.0);
        assert_eq!(mm.fired, vec![TriggerKind::ManualOverride]);

        m.set_manual(vec![sym("M"), sym("UP")], vec![sym("M"), sym("UP")]);
        assert_eq!(m.manual_exclude(), [sym("M"), sym("UP")]);
        let cands = m.evaluate(at(0));
        assert_eq!(cands.len(), 1, "an excluded symbol is reported only for its own signals");
        assert!(!cands[0].manual && cands[0].trigger.is_none() && cands[0].price_spike);
    }

    #[test]
    fn quiet_symbols_are_forgotten() {
        let mut m = CandidateMonitor::new(config());
        for i in 0..100 {
            m.on_snapshot(at(0), &flat(&format!("S{i}"), 10));
        }
        m.on_ranking(at(0), &[(sym("S1"), Qty::from_int(10))]);
        m.on_snapshot(at(100), &flat("S7", 20));
        assert_eq!(m.tracked(), 100);
        m.evaluate(at(120));
        assert_eq!(m.tracked(), 100, "exactly forget_after is still remembered");
        m.evaluate(at(121));
        assert_eq!(m.tracked(), 1);
        assert!(m.states.contains_key(&sym("S7")));
        assert!(m.ranking.is_empty());
    }

    #[test]
    fn candidates_sort_by_score_then_symbol() {
        let mut m = CandidateMonitor::new(config());
        for s in ["C", "A", "B"] {
            m.on_snapshot(at(0), &snap(s, "110", "110", "100", "100", 10));
        }
        m.on_snapshot(at(0), &snap("Z", "120", "120", "100", "100", 10));
        let order: Vec<String> = m.evaluate(at(0)).iter().map(|c| c.symbol.to_string()).collect();
        assert_eq!(order, ["Z", "A", "B", "C"]);
    }

    #[test]
    fn config_rejects_nonsense() {
        assert!(problems(&config()).is_empty(), "{:?}", problems(&config()));
        let mut bad = config();
        bad.volume_surge_ratio = 1.0;
        bad.trade_velocity_ratio = f64::NAN;
        bad.volatility_ratio = 0.5;
        bad.price_spike_pct = 0.0;
        bad.saturation = 0.9;
        bad.weights.volume_surge = 0.5;
        bad.weights.price_spike = 1.5;
        bad.min_baseline_samples = 61;
        bad.velocity_bucket = iv(7 * SEC);
        bad.forget_after = iv(MIN);
        bad.manual_include = vec![sym("X")];
        bad.manual_exclude = vec![sym("X")];
        assert_eq!(
            problems(&bad),
            [
                "triggers.volume_surge_ratio",
                "triggers.trade_velocity_ratio",
                "triggers.volatility_ratio",
                "triggers.price_spike_pct",
                "triggers.saturation",
                "triggers.weights.price_spike",
                "triggers.weights.trade_velocity",
                "triggers.min_baseline_samples",
                "triggers.velocity_window",
                "triggers.velocity_baseline",
                "triggers.forget_after",
                "triggers.manual_exclude",
            ]
        );
    }

    #[test]
    fn config_reads_friendly_values_and_rejects_unknown_keys() {
        let text = r#"{
            "evaluate_interval": "10s", "baseline_window": "1h", "min_baseline_samples": 3,
            "min_volume_interval": "1m", "max_signal_age": "15m", "forget_after": "2h",
            "volume_surge_ratio": 3.0, "velocity_window": "1m", "velocity_baseline": "10m",
            "velocity_bucket": "1s", "trade_velocity_ratio": 3.0, "volatility_ratio": 2.5,
            "price_spike_pct": 5.0, "saturation": 3.0,
            "weights": { "volume_surge": 1.0, "trade_velocity": 0.85, "volatility_spike": 0.7, "price_spike": 0.5 }
        }"#;
        let cfg: TriggerConfig = serde_json::from_str(text).unwrap();
        assert_eq!(cfg.baseline_window.as_millis(), 3_600_000);
        assert!(cfg.manual_include.is_empty());
        assert!(problems(&cfg).is_empty());
        let typo = text.replace("\"saturation\"", "\"saturaton\"");
        assert!(serde_json::from_str::<TriggerConfig>(&typo).unwrap_err().to_string().contains("saturaton"));
        assert_eq!(serde_json::to_string(&TriggerKind::TradeVelocity).unwrap(), "\"trade_velocity\"");
    }
}

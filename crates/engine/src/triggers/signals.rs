//! One symbol's series (volume points, price intervals, trade buckets) and the measurements
//! taken from them: the volume surge, trade velocity and volatility ratios and the price change.

use std::collections::{HashMap, VecDeque};

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use model::{Price, Qty, Snapshot, Symbol, UtcTime};

use super::candidate::{ScoreInputs, SkippedPoints, Source};
use super::config::TriggerConfig;
use super::{MS_PER_MINUTE, PERCENT};

#[derive(Debug, Clone, Copy)]
pub(super) struct VolumePoint {
    at: UtcTime,
    cum: Qty,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Rate {
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
pub(super) struct PricePoint {
    at: UtcTime,
    last: Price,
    high: Price,
    low: Price,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Move {
    start: UtcTime,
    end: UtcTime,
    pub(super) range_pct: f64,
}

#[derive(Debug, Default)]
pub(super) struct SymbolState {
    pub(super) last_seen: UtcTime,
    volume_point: Option<VolumePoint>,
    /// Oldest first; the last one is the newest interval.
    pub(super) rates: VecDeque<Rate>,
    volume_sources: Vec<Source>,
    price_point: Option<PricePoint>,
    pub(super) moves: VecDeque<Move>,
    prev_close: Option<Price>,
    snapshot_at: Option<UtcTime>,
    last_price: Option<(UtcTime, Price)>,
    /// Since when the symbol's trade stream has been watched (slot membership).
    pub(super) watch_since: Option<UtcTime>,
    /// (bucket index, trades), ascending by index.
    pub(super) buckets: VecDeque<(i64, u32)>,
}

impl SymbolState {
    fn note_source(&mut self, s: Source) {
        if !self.volume_sources.contains(&s) {
            self.volume_sources.push(s);
        }
    }

    pub(super) fn on_volume(
        &mut self,
        cfg: &TriggerConfig,
        at: UtcTime,
        cum: Qty,
        source: Source,
        skipped: &mut SkippedPoints,
    ) {
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

    pub(super) fn on_price(&mut self, cfg: &TriggerConfig, at: UtcTime, s: &Snapshot, skipped: &mut SkippedPoints) {
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

    pub(super) fn on_trade(&mut self, cfg: &TriggerConfig, at: UtcTime, price: Price) {
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

    pub(super) fn prune_buckets(&mut self, cfg: &TriggerConfig, newest_idx: i64) {
        let keep = velocity_span_buckets(cfg);
        while self.buckets.front().is_some_and(|&(i, _)| i <= newest_idx - keep) {
            self.buckets.pop_front();
        }
    }

    pub(super) fn stop_watching(&mut self) {
        self.watch_since = None;
        self.buckets.clear();
    }

    /// Fills the volume fields; returns nothing if the newest interval is stale.
    pub(super) fn measure_volume(
        &self,
        cfg: &TriggerConfig,
        now: UtcTime,
        inp: &mut ScoreInputs,
        skipped: &mut SkippedPoints,
    ) {
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

    pub(super) fn measure_volatility(&self, cfg: &TriggerConfig, now: UtcTime, inp: &mut ScoreInputs) {
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

    pub(super) fn measure_velocity(&self, cfg: &TriggerConfig, now: UtcTime, inp: &mut ScoreInputs) {
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

    pub(super) fn measure_price(
        &self,
        cfg: &TriggerConfig,
        now: UtcTime,
        inp: &mut ScoreInputs,
        skipped: &mut SkippedPoints,
    ) {
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
pub(super) fn seen<'a>(
    states: &'a mut HashMap<Symbol, SymbolState>,
    at: UtcTime,
    symbol: &Symbol,
) -> &'a mut SymbolState {
    let st = states.entry(symbol.clone()).or_default();
    st.last_seen = st.last_seen.max(at);
    st
}

pub(super) fn velocity_span_buckets(cfg: &TriggerConfig) -> i64 {
    ((cfg.velocity_window.as_millis() + cfg.velocity_baseline.as_millis()) / cfg.velocity_bucket.as_millis()) as i64
}

//! The candidate monitor: feeds every symbol's series from snapshots, rankings, trades and
//! the slot list, and ranks the symbols with a signal.

use std::collections::{HashMap, HashSet};

use model::{Qty, Snapshot, Symbol, Tick, UtcTime};

use super::candidate::{Candidate, ScoreInputs, SkippedPoints, Source};
use super::config::TriggerConfig;
use super::score;
use super::signals::{SymbolState, seen};

pub struct CandidateMonitor {
    pub(super) cfg: TriggerConfig,
    pub(super) states: HashMap<Symbol, SymbolState>,
    /// Newest ranking: symbol → 1-based position, and when it arrived.
    pub(super) ranking: HashMap<Symbol, u32>,
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

    pub(super) fn judge(&self, symbol: Symbol, inputs: ScoreInputs) -> Candidate {
        score::judge(&self.cfg, symbol, inputs)
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

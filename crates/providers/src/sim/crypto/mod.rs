//! A deterministic, seeded 24-hour crypto market of `KRW-…` pairs: the exchange behind the
//! Upbit fake.
//!
//! Determinism follows `sim::SimMarket`: step `k` of pair `i` on UTC day `d` draws from an
//! RNG seeded by a hash of `(seed, d, i, k)`, and the state after step `k` is a function of
//! the state after step `k-1` and that RNG. Pairs therefore evolve lazily and
//! independently: a query runs only the steps a pair has not reached yet, and the path
//! never depends on who asked, when, or in how many pieces. Events are collected only for
//! pairs someone `watch`es, so a REST query that advances a pair never swallows the
//! WebSocket feed's events.
//!
//! The trading day is the UTC day (Upbit resets `prev_closing_price` and the day counters
//! at 00:00 UTC). Prices live on Upbit's KRW tick grid, in integer units of 10^-8; sizes are
//! fractional coin amounts with 8 decimals.
//!
//! Rooms: this module holds the public views and the queries; `config` the pairs, Upbit's
//! tick table and the drawn numbers; `steps` the step function; `history` past candles.

mod config;
mod history;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use jiff::civil::Date;
use model::settings::{Checker, Problem, Validate};
use model::{Price, Qty, Side, Symbol, UtcTime};
use rust_decimal::Decimal;

use crate::sim::random::{normal, rng_for};
use steps::{PairConst, PairState};

pub use config::{CryptoSimConfig, PairSpec, upbit_krw_tick_table};

pub use crate::sim::TickBand;

/// Prices, sizes and values are integers of 10^-SCALE.
pub const SCALE: u32 = 8;
const UNIT: f64 = 100_000_000.0;
const DAY_MS: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------
// Deterministic hashing (`sim::random`, with this market's own salts).

const SALT_STEP: u64 = 0x5550_5354;
const SALT_BOOK: u64 = 0x5550_424b;
const SALT_DAY: u64 = 0x5550_4459;
const SALT_PAST_RETURN: u64 = 0x5550_5052;
const SALT_PAST_MINUTES: u64 = 0x5550_504d;
const MINUTE_MS: i64 = 60_000;

fn units(d: Decimal) -> i64 {
    let mut v = d;
    v.rescale(SCALE);
    v.mantissa().clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

fn to_dec(u: i128) -> Decimal {
    Decimal::from_i128_with_scale(u, SCALE)
}

#[derive(Debug, Clone)]
struct Grid {
    bands: Vec<(i64, i64)>,
}

impl Grid {
    fn tick(&self, p: i64) -> i64 {
        self.bands.iter().find(|b| p < b.0).or(self.bands.last()).map_or(1, |b| b.1)
    }
    fn up(&self, p: i64) -> i64 {
        p + self.tick(p)
    }
    fn down(&self, p: i64) -> i64 {
        p - self.tick(p - 1)
    }
    fn nearest(&self, x: i64) -> i64 {
        let t = self.tick(x);
        let f = x - x.rem_euclid(t);
        if x - f <= t / 2 { f } else { f + t }
    }
}

// ---------------------------------------------------------------------------------------
// Public views.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairListing {
    pub symbol: Symbol,
    pub korean_name: String,
    pub english_name: String,
    pub prev_close: Price,
}

/// A pair's day so far: everything a ticker message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairStats {
    pub symbol: Symbol,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    /// Last trade price, or the previous close before the first trade.
    pub last: Price,
    pub prev_close: Price,
    pub acc_volume: Qty,
    pub acc_value: Decimal,
    pub acc_ask_volume: Qty,
    pub acc_bid_volume: Qty,
    /// Rolling 24 h: today's so far plus the expected remainder of yesterday's (the sim
    /// does not replay yesterday's path, so this part is its expected value).
    pub volume_24h: Qty,
    pub value_24h: Decimal,
    pub last_trade: Option<CryptoTrade>,
    /// Time of the state (the end of the last step run).
    pub time: UtcTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoTrade {
    pub time: UtcTime,
    pub symbol: Symbol,
    pub price: Price,
    pub size: Qty,
    /// The aggressor (`Buy` = Upbit `BID`).
    pub side: Side,
    /// Upbit-style `sequential_id`: trade ms × 10^4 + a per-pair counter.
    pub sequential_id: u64,
    pub best_bid: (Price, Qty),
    pub best_ask: (Price, Qty),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoBook {
    pub time: UtcTime,
    pub symbol: Symbol,
    /// Best first.
    pub bids: Vec<(Price, Qty)>,
    pub asks: Vec<(Price, Qty)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCandle {
    /// Minute of the UTC day.
    pub minute: u32,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Qty,
    pub value: Decimal,
    pub last_time: UtcTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoEvent {
    /// A trade, with the pair's day after it (one ticker message each).
    Trade(Box<(CryptoTrade, PairStats)>),
    Book(CryptoBook),
}

impl CryptoEvent {
    pub fn time(&self) -> UtcTime {
        match self {
            CryptoEvent::Trade(t) => t.0.time,
            CryptoEvent::Book(b) => b.time,
        }
    }
    pub fn symbol(&self) -> &Symbol {
        match self {
            CryptoEvent::Trade(t) => &t.0.symbol,
            CryptoEvent::Book(b) => &b.symbol,
        }
    }
}

/// The crypto market of one UTC day. See the module docs.
#[derive(Debug, Clone)]
pub struct CryptoMarket {
    cfg: CryptoSimConfig,
    day: Date,
    day_key: u64,
    day_start: i64,
    step_ms: i64,
    n_steps: u32,
    grid: Grid,
    listings: Vec<PairListing>,
    consts: Vec<PairConst>,
    states: Vec<PairState>,
    /// Past day candles already summed from their minutes (the day chart asks for 200).
    past_days: HashMap<(usize, Date), MinuteCandle>,
}

impl CryptoMarket {
    pub fn try_new(cfg: &CryptoSimConfig, day: Date) -> Result<CryptoMarket, Vec<Problem>> {
        let mut checker = Checker::default();
        cfg.validate(&mut checker);
        if !checker.problems.is_empty() {
            return Err(checker.problems);
        }
        let grid = Grid {
            bands: cfg.tick_sizes.iter().map(|b| (b.below.map_or(i64::MAX, units), units(b.tick).max(1))).collect(),
        };
        let day_key = day_key(day);
        let day_start = UtcTime::from_timestamp(
            day.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        )
        .as_millis();
        let step_ms = cfg.step.as_millis() as i64;
        let n_steps = (DAY_MS / step_ms) as u32;
        let mut order: Vec<usize> = (0..cfg.pairs.len()).collect();
        order.sort_by(|a, b| cfg.pairs[*a].market.cmp(&cfg.pairs[*b].market));
        let mut listings = Vec::new();
        let mut consts = Vec::new();
        for (i, &pi) in order.iter().enumerate() {
            let p = &cfg.pairs[pi];
            let symbol = Symbol::new(&p.market)
                .map_err(|e| vec![Problem { key: format!("pairs[{pi}]"), message: e.to_string() }])?;
            let mut r = rng_for(cfg.seed, day_key, i as u64, 0, SALT_DAY);
            let base = units(p.price) as f64;
            let pc = grid.nearest((base * (cfg.prev_close_sigma * normal(&mut r)).exp()).round() as i64);
            let pc = pc.max(grid.tick(1));
            let sd_rel_step = p.daily_volatility * (step_ms as f64 / DAY_MS as f64).sqrt();
            let median_value = p.median_trade_value.to_string().parse::<f64>().unwrap_or(100_000.0);
            let mean_value = median_value * (cfg.trade_value_sigma.powi(2) / 2.0).exp();
            listings.push(PairListing {
                symbol: symbol.clone(),
                korean_name: p.korean_name.clone(),
                english_name: p.english_name.clone(),
                prev_close: Price(to_dec(pc as i128)),
            });
            consts.push(PairConst {
                symbol,
                prev_close: pc,
                daily_volatility: p.daily_volatility,
                sd_rel_step,
                rate_per_step: p.trades_per_second * step_ms as f64 / 1000.0,
                median_value,
                expected_day_value: p.trades_per_second * 86_400.0 * mean_value,
            });
        }
        let states = consts
            .iter()
            .map(|c| PairState {
                step: 0,
                bid: grid.down(c.prev_close),
                last: c.prev_close,
                open: c.prev_close,
                high: c.prev_close,
                low: c.prev_close,
                traded: false,
                volume: 0,
                value: 0,
                ask_volume: 0,
                bid_volume: 0,
                seq: 0,
                last_trade: None,
                recent: VecDeque::new(),
                candles: Vec::new(),
                pending: Vec::new(),
                watched: false,
            })
            .collect();
        Ok(CryptoMarket {
            cfg: cfg.clone(),
            day,
            day_key,
            day_start,
            step_ms,
            n_steps,
            grid,
            listings,
            consts,
            states,
            past_days: HashMap::new(),
        })
    }

    /// The UTC day `at` falls in.
    pub fn day_of(at: UtcTime) -> Date {
        at.to_timestamp().to_zoned(jiff::tz::TimeZone::UTC).date()
    }

    pub fn config(&self) -> &CryptoSimConfig {
        &self.cfg
    }
    pub fn day(&self) -> Date {
        self.day
    }
    pub fn day_start(&self) -> UtcTime {
        UtcTime::from_millis(self.day_start)
    }
    /// Sorted by market code.
    pub fn listings(&self) -> &[PairListing] {
        &self.listings
    }
    pub fn index_of(&self, s: &str) -> Option<usize> {
        self.listings.binary_search_by(|l| l.symbol.as_str().cmp(s)).ok()
    }

    pub fn tick_size(&self, p: Price) -> Decimal {
        to_dec(self.grid.tick(units(p.0)) as i128)
    }

    /// Start or stop collecting events for pair `idx` (dropping any undrained ones on stop).
    /// Starting runs the pair to `at` first, so the watcher gets events after `at` only.
    pub fn watch(&mut self, idx: usize, on: bool, at: UtcTime) {
        if on && self.states.get(idx).is_some_and(|s| !s.watched) {
            self.advance(idx, at);
        }
        if let Some(s) = self.states.get_mut(idx) {
            s.watched = on;
            if !on {
                s.pending.clear();
            }
        }
    }

    /// Runs pair `idx` to `at` and moves its collected events (time order) into `out`.
    pub fn drain(&mut self, idx: usize, at: UtcTime, out: &mut Vec<CryptoEvent>) {
        self.advance(idx, at);
        if let Some(s) = self.states.get_mut(idx) {
            out.append(&mut s.pending);
        }
    }

    /// Runs every whole step of pair `idx` that ends at or before `at`.
    pub fn advance(&mut self, idx: usize, at: UtcTime) {
        if idx >= self.states.len() {
            return;
        }
        let target = ((at.as_millis() - self.day_start) / self.step_ms).clamp(0, self.n_steps as i64) as u32;
        while self.states[idx].step < target {
            let k = self.states[idx].step;
            self.run_step(idx, k);
        }
    }

    pub fn stats(&mut self, idx: usize, at: UtcTime) -> Option<PairStats> {
        self.advance(idx, at);
        self.states.get(idx).map(|_| self.stats_now(idx))
    }

    /// The book as of `at`, `depth` levels a side.
    pub fn book(&mut self, idx: usize, at: UtcTime, depth: usize) -> Option<CryptoBook> {
        self.advance(idx, at);
        let s = self.states.get(idx)?;
        let k = s.step.saturating_sub(1);
        let mut b = self.make_book(idx, k, s.bid);
        b.bids.truncate(depth);
        b.asks.truncate(depth);
        Some(b)
    }

    /// Most recent first.
    pub fn recent_trades(&mut self, idx: usize, at: UtcTime) -> Vec<CryptoTrade> {
        self.advance(idx, at);
        self.states.get(idx).map(|s| s.recent.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// The day's one-minute candles so far (only minutes with trades), oldest first.
    pub fn minute_candles(&mut self, idx: usize, at: UtcTime) -> Vec<MinuteCandle> {
        self.advance(idx, at);
        self.states.get(idx).map(|s| s.candles.clone()).unwrap_or_default()
    }
}

/// The UTC day as a number (`20260114`), the day coordinate of random draws.
fn day_key(d: Date) -> u64 {
    (d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64) as u64
}

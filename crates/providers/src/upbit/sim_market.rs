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

use std::collections::{HashMap, VecDeque};

use jiff::civil::Date;

use crate::sim::random::{normal, rng_for};
use model::settings::{Checker, Interval, Problem, Validate};
use model::{Price, Qty, Side, Symbol, UtcTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use crate::sim::TickBand;

/// Prices, sizes and values are integers of 10^-SCALE.
pub const SCALE: u32 = 8;
const UNIT: f64 = 100_000_000.0;
const DAY_MS: i64 = 86_400_000;

/// One listed pair and its character.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSpec {
    /// `KRW-BTC`.
    pub market: String,
    pub korean_name: String,
    pub english_name: String,
    /// Reference price; each day's previous close varies around it.
    pub price: Decimal,
    /// Standard deviation of the day's log return.
    pub daily_volatility: f64,
    pub trades_per_second: f64,
    /// Median value of one trade in KRW; trade values are log-normal around it.
    pub median_trade_value: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoSimConfig {
    pub seed: u64,
    /// The simulation grid.
    pub step: Interval,
    /// Day-to-day spread of the previous close around the reference price (log sd).
    pub prev_close_sigma: f64,
    /// Log sd of trade values.
    pub trade_value_sigma: f64,
    /// Book depth on each side (Upbit sends up to 30 since 2025-05-07).
    pub book_levels: u8,
    /// Median KRW value resting on one book level; log-normal with `book_value_sigma`.
    pub book_level_value: Decimal,
    pub book_value_sigma: f64,
    /// Recent trades kept per pair for `/trades/ticks`.
    pub recent_trades: u32,
    /// KRW-market tick table, ascending by `below`, last row unbounded.
    pub tick_sizes: Vec<TickBand>,
    pub pairs: Vec<PairSpec>,
    /// UTC days of candles (day and minute) before the current day.
    pub history_days: u32,
    /// Log sd of a past minute's traded value around the pair's mean.
    pub history_volume_sigma: f64,
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// Upbit's KRW-market tick table (spec §6, 2025 revision); below 100 KRW the older table.
pub fn upbit_krw_tick_table() -> Vec<TickBand> {
    [
        (Some("0.1"), "0.00001"),
        (Some("1"), "0.0001"),
        (Some("10"), "0.001"),
        (Some("100"), "0.01"),
        (Some("1000"), "1"),
        (Some("5000"), "1"),
        (Some("10000"), "5"),
        (Some("50000"), "10"),
        (Some("100000"), "50"),
        (Some("500000"), "100"),
        (Some("1000000"), "500"),
        (None, "1000"),
    ]
    .into_iter()
    .map(|(below, tick)| TickBand { below: below.map(dec), tick: dec(tick) })
    .collect()
}

impl CryptoSimConfig {
    /// Realistic KRW-market values (2025–2026 price levels).
    pub fn upbit_default() -> Self {
        let p = |m: &str, ko: &str, en: &str, price: &str, vol: f64, tps: f64, val: i64| PairSpec {
            market: m.into(),
            korean_name: ko.into(),
            english_name: en.into(),
            price: dec(price),
            daily_volatility: vol,
            trades_per_second: tps,
            median_trade_value: Decimal::from(val),
        };
        CryptoSimConfig {
            seed: 1,
            step: Interval::from_millis(1000),
            prev_close_sigma: 0.03,
            trade_value_sigma: 1.3,
            book_levels: 30,
            book_level_value: Decimal::from(3_000_000),
            book_value_sigma: 1.0,
            recent_trades: 500,
            tick_sizes: upbit_krw_tick_table(),
            pairs: vec![
                p("KRW-BTC", "비트코인", "Bitcoin", "140000000", 0.025, 6.0, 400_000),
                p("KRW-ETH", "이더리움", "Ethereum", "5200000", 0.035, 4.0, 300_000),
                p("KRW-XRP", "리플", "XRP", "3100", 0.05, 5.0, 200_000),
                p("KRW-SOL", "솔라나", "Solana", "260000", 0.045, 2.0, 200_000),
                p("KRW-DOGE", "도지코인", "Dogecoin", "330", 0.06, 2.0, 100_000),
                p("KRW-ADA", "에이다", "Cardano", "1050", 0.05, 1.0, 100_000),
                p("KRW-TRX", "트론", "TRON", "350", 0.03, 0.5, 80_000),
                p("KRW-LINK", "체인링크", "Chainlink", "24000", 0.05, 0.6, 100_000),
                p("KRW-AVAX", "아발란체", "Avalanche", "38000", 0.05, 0.5, 100_000),
                p("KRW-DOT", "폴카닷", "Polkadot", "7500", 0.05, 0.4, 80_000),
                p("KRW-BCH", "비트코인캐시", "Bitcoin Cash", "650000", 0.04, 0.3, 150_000),
                p("KRW-ETC", "이더리움클래식", "Ethereum Classic", "30000", 0.045, 0.3, 80_000),
                p("KRW-SHIB", "시바이누", "Shiba Inu", "0.0245", 0.06, 0.8, 80_000),
                p("KRW-SUI", "수이", "Sui", "5000", 0.06, 0.8, 100_000),
                p("KRW-NEAR", "니어프로토콜", "NEAR Protocol", "4000", 0.055, 0.4, 80_000),
                p("KRW-HBAR", "헤데라", "Hedera", "300", 0.055, 0.4, 60_000),
                p("KRW-SAND", "샌드박스", "The Sandbox", "450", 0.06, 0.3, 60_000),
                p("KRW-ARB", "아비트럼", "Arbitrum", "650", 0.06, 0.3, 60_000),
            ],
            history_days: 400,
            history_volume_sigma: 0.8,
        }
    }
}

impl Validate for CryptoSimConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("step", self.step, Interval::from_millis(10), Interval::from_millis(60_000));
        c.check(DAY_MS % self.step.as_millis().max(1) as i64 == 0, "step", "must divide 24h evenly");
        c.range("prev_close_sigma", self.prev_close_sigma, 0.0, 1.0);
        c.range("trade_value_sigma", self.trade_value_sigma, 0.0, 4.0);
        c.range("book_levels", self.book_levels, 1, 30);
        c.check(self.book_level_value > Decimal::ZERO, "book_level_value", "must be positive");
        c.range("book_value_sigma", self.book_value_sigma, 0.0, 4.0);
        c.range("recent_trades", self.recent_trades, 1, 10_000);
        c.check(!self.pairs.is_empty(), "pairs", "must list at least one pair");
        c.range("history_days", self.history_days, 1, 5_000);
        c.range("history_volume_sigma", self.history_volume_sigma, 0.0, 4.0);
        let mut prev: Option<Decimal> = None;
        for (i, b) in self.tick_sizes.iter().enumerate() {
            let last = i + 1 == self.tick_sizes.len();
            c.check(b.tick > Decimal::ZERO && b.tick.normalize().scale() <= SCALE, "tick_sizes", "bad tick");
            match b.below {
                None => c.check(last, "tick_sizes", format_args!("row {i}: only the last row may omit `below`")),
                Some(below) => {
                    c.check(!last, "tick_sizes", "the last row must omit `below`");
                    c.check(
                        below > prev.unwrap_or(Decimal::ZERO),
                        "tick_sizes",
                        format_args!("row {i}: not ascending"),
                    );
                    c.check(
                        b.tick > Decimal::ZERO && (below % b.tick).is_zero(),
                        "tick_sizes",
                        format_args!("row {i}: below {below} is not a multiple of tick {}", b.tick),
                    );
                    prev = Some(below);
                }
            }
        }
        c.check(!self.tick_sizes.is_empty(), "tick_sizes", "must have at least one row");
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.pairs.iter().enumerate() {
            let key = format!("pairs[{i}]");
            c.check(
                Symbol::new(&p.market).is_ok() && p.market.contains('-'),
                &key,
                format_args!("market {:?}", p.market),
            );
            c.check(seen.insert(p.market.clone()), &key, format_args!("duplicate market {}", p.market));
            c.check(
                p.price > Decimal::ZERO && p.price < Decimal::from(10_000_000_000i64),
                &key,
                format_args!("price {} must be in (0, 1e10)", p.price),
            );
            c.check((0.0..=1.0).contains(&p.daily_volatility), &key, "daily_volatility outside 0..=1");
            c.check((0.0..=1000.0).contains(&p.trades_per_second), &key, "trades_per_second outside 0..=1000");
            c.check(p.median_trade_value > Decimal::ZERO, &key, "median_trade_value must be positive");
        }
    }
}

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

// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct PairState {
    step: u32,
    bid: i64,
    last: i64,
    open: i64,
    high: i64,
    low: i64,
    traded: bool,
    volume: i128,
    value: i128,
    ask_volume: i128,
    bid_volume: i128,
    seq: u64,
    last_trade: Option<CryptoTrade>,
    recent: VecDeque<CryptoTrade>,
    candles: Vec<MinuteCandle>,
    /// Events since the last drain, collected while someone watches the pair.
    pending: Vec<CryptoEvent>,
    watched: bool,
}

#[derive(Debug, Clone)]
struct PairConst {
    symbol: Symbol,
    prev_close: i64,
    daily_volatility: f64,
    sd_rel_step: f64,
    rate_per_step: f64,
    median_value: f64,
    /// Expected value traded per day (for the 24 h approximation).
    expected_day_value: f64,
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

    /// The oldest UTC day with history candles.
    pub fn first_history_day(&self) -> Date {
        self.day.checked_sub(jiff::Span::new().days(self.cfg.history_days as i64)).unwrap_or(self.day)
    }

    /// Pair `idx`'s one-minute candles of the past UTC `day` (oldest first, every minute),
    /// or `None` outside the history (today included: that is the live simulation's).
    ///
    /// The past is not simulated tick by tick (a day of BTC ticks is half a million
    /// trades): each past day closes where a walk back from today's previous close puts it
    /// (one return per day, keyed by (seed, day, pair)), opens at the day before's close,
    /// and its minutes are a Brownian bridge between the two drawn from one RNG keyed by
    /// (seed, day, pair). So yesterday's last minute closes at today's previous close, a
    /// day's candle is the sum of its minutes, and any day costs its walk back plus 1,440
    /// minute draws.
    pub fn past_minutes(&self, idx: usize, day: Date) -> Option<Vec<MinuteCandle>> {
        if idx >= self.consts.len() || day >= self.day || day < self.first_history_day() {
            return None;
        }
        let c = &self.consts[idx];
        let g = &self.grid;
        // Walk back from yesterday's close (today's previous close) to `day`'s close.
        let mut close = c.prev_close as f64;
        let mut d = self.day.yesterday().ok()?;
        while d > day {
            close /= self.past_return(idx, d).exp();
            d = d.yesterday().ok()?;
        }
        let open = close / self.past_return(idx, day).exp();
        let minutes = (DAY_MS / MINUTE_MS) as usize;
        let sd = c.daily_volatility / (minutes as f64).sqrt();
        let mut r = rng_for(self.cfg.seed, day_key(day), idx as u64, 0, SALT_PAST_MINUTES);
        // Pass 1: the free walk W and each minute's wicks, value and last-trade offset.
        let mut walk = Vec::with_capacity(minutes + 1);
        let mut draws = Vec::with_capacity(minutes);
        walk.push(0.0f64);
        for m in 0..minutes {
            walk.push(walk[m] + sd * normal(&mut r));
            let (up, down, v) = (normal(&mut r).abs(), normal(&mut r).abs(), normal(&mut r));
            draws.push((up, down, v, r.i64(0..MINUTE_MS)));
        }
        // Pass 2: pin the walk's end to the day's close (the bridge) and price the minutes.
        let (lo, lc) = (open.ln(), close.ln());
        let drift = walk[minutes] - (lc - lo);
        let at = |m: usize| (lo + walk[m] - drift * m as f64 / minutes as f64).exp();
        let nearest = |x: f64| g.nearest(x.round() as i64).max(g.tick(1));
        let sigma_v = self.cfg.history_volume_sigma;
        // Mean-preserving log-normal: E[exp(sN - s^2/2)] = 1.
        let mean_value = c.expected_day_value / minutes as f64;
        let day_start = UtcTime::from_timestamp(
            day.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        )
        .as_millis();
        let mut out = Vec::with_capacity(minutes);
        for (m, &(up, down, v, last)) in draws.iter().enumerate() {
            let (o_f, c_f) = (at(m), at(m + 1));
            let (o, cl) = (nearest(o_f), nearest(c_f));
            let high = nearest(o_f.max(c_f) * (sd * up).exp()).max(o).max(cl);
            let low = nearest(o_f.min(c_f) * (-sd * down).exp()).min(o).min(cl).max(g.tick(1));
            let value = mean_value * (sigma_v * v - sigma_v * sigma_v / 2.0).exp();
            let size = ((value / (cl as f64 / UNIT)) * UNIT).round().max(1.0) as i128;
            let price = |u: i64| Price(to_dec(u as i128));
            out.push(MinuteCandle {
                minute: m as u32,
                open: price(o),
                high: price(high),
                low: price(low),
                close: price(cl),
                volume: Qty(to_dec(size)),
                // Rounded to 8 decimals, as Upbit's candle_acc_trade_price shows.
                value: to_dec((cl as i128 * size + 50_000_000) / 100_000_000),
                last_time: UtcTime::from_millis(day_start + m as i64 * MINUTE_MS + last),
            });
        }
        Some(out)
    }

    /// Pair `idx`'s candle of the past UTC `day`, summed from its minutes (cached), with
    /// `minute` 0; `None` outside the history.
    pub fn past_day(&mut self, idx: usize, day: Date) -> Option<MinuteCandle> {
        if let Some(c) = self.past_days.get(&(idx, day)) {
            return Some(c.clone());
        }
        let mins = self.past_minutes(idx, day)?;
        let first = mins.first()?.clone();
        let day_candle = mins.iter().skip(1).fold(first, |mut acc, m| {
            acc.high = acc.high.max(m.high);
            acc.low = acc.low.min(m.low);
            acc.close = m.close;
            acc.volume = Qty(acc.volume.0 + m.volume.0);
            acc.value += m.value;
            acc.last_time = m.last_time;
            acc
        });
        self.past_days.insert((idx, day), day_candle.clone());
        Some(day_candle)
    }

    /// The log return of pair `idx` over the past UTC `day` (its close over the day
    /// before's close).
    fn past_return(&self, idx: usize, day: Date) -> f64 {
        let mut r = rng_for(self.cfg.seed, day_key(day), idx as u64, 0, SALT_PAST_RETURN);
        self.consts[idx].daily_volatility * normal(&mut r)
    }

    fn stats_now(&self, idx: usize) -> PairStats {
        let s = &self.states[idx];
        let t = UtcTime::from_millis(self.day_start + s.step as i64 * self.step_ms);
        stats_of(s, &self.consts[idx], self.day_start, t)
    }

    fn make_book(&self, idx: usize, k: u32, bid: i64) -> CryptoBook {
        make_book(&self.cfg, &self.grid, self.day_key, idx, &self.consts[idx].symbol, k, bid, self.book_time(k))
    }

    fn book_time(&self, k: u32) -> UtcTime {
        UtcTime::from_millis(self.day_start + k as i64 * self.step_ms + self.step_ms - 1)
    }

    fn run_step(&mut self, idx: usize, k: u32) {
        let start = self.day_start + k as i64 * self.step_ms;
        let book_time = self.book_time(k);
        let (cfg, g, c, day_key, day_start) = (&self.cfg, &self.grid, &self.consts[idx], self.day_key, self.day_start);
        let s = &mut self.states[idx];
        let mut rng = rng_for(cfg.seed, day_key, idx as u64, k as u64, SALT_STEP);
        let before = s.bid;

        // 1. The quotes move, in whole ticks.
        let tick = g.tick(s.bid) as f64;
        let sd = c.sd_rel_step * s.bid as f64 / tick;
        let moves: i64 = if sd < 1.0 {
            let p = (sd * sd / 2.0).min(0.5);
            let u = rng.f64();
            if u < p {
                1
            } else if u < 2.0 * p {
                -1
            } else {
                0
            }
        } else {
            (sd * normal(&mut rng)).round().clamp(-1000.0, 1000.0) as i64
        };
        for _ in 0..moves.abs() {
            let next = if moves > 0 { g.up(s.bid) } else { g.down(s.bid) };
            if next <= 0 {
                break;
            }
            s.bid = next;
        }
        let ask = g.up(s.bid);
        let book =
            (s.watched || s.bid != before).then(|| make_book(cfg, g, day_key, idx, &c.symbol, k, s.bid, book_time));

        // 2. Trades: Poisson arrivals at distinct ms offsets inside the step.
        let span = (self.step_ms - 2).max(1) as f64;
        let mut offsets = Vec::new();
        if c.rate_per_step > 0.0 {
            let per_ms = c.rate_per_step / span;
            let mut x = 0.0f64;
            loop {
                x += -(1.0 - rng.f64()).ln() / per_ms;
                if x >= span {
                    break;
                }
                let off = 1 + x as i64;
                if offsets.last() != Some(&off) {
                    offsets.push(off);
                }
            }
        }
        let best = |b: &Option<CryptoBook>, bid: bool| -> (Price, Qty) {
            let side = b.as_ref().map(|b| if bid { &b.bids } else { &b.asks });
            side.and_then(|v| v.first().copied()).unwrap_or((Price::ZERO, Qty::ZERO))
        };
        let (best_bid, best_ask) = (best(&book, true), best(&book, false));
        for off in offsets {
            let buy = rng.bool();
            let px = if buy { ask } else { s.bid };
            let value = c.median_value * (cfg.trade_value_sigma * normal(&mut rng)).exp();
            let size = ((value / (px as f64 / UNIT)) * UNIT).round().max(1.0) as i128;
            // Value rounded to 8 decimals, as Upbit's acc_trade_price shows.
            let v = (px as i128 * size + 50_000_000) / 100_000_000;
            if !s.traded {
                s.traded = true;
                s.open = px;
                s.high = px;
                s.low = px;
            }
            s.last = px;
            s.high = s.high.max(px);
            s.low = s.low.min(px);
            s.volume += size;
            s.value += v;
            if buy {
                s.bid_volume += size;
            } else {
                s.ask_volume += size;
            }
            s.seq += 1;
            let t = start + off;
            let trade = CryptoTrade {
                time: UtcTime::from_millis(t),
                symbol: c.symbol.clone(),
                price: Price(to_dec(px as i128)),
                size: Qty(to_dec(size)),
                side: if buy { Side::Buy } else { Side::Sell },
                sequential_id: t as u64 * 10_000 + s.seq % 10_000,
                best_bid,
                best_ask,
            };
            let minute = ((t - day_start) / 60_000) as u32;
            let pxp = trade.price;
            match s.candles.last_mut() {
                Some(m) if m.minute == minute => {
                    m.high = m.high.max(pxp);
                    m.low = m.low.min(pxp);
                    m.close = pxp;
                    m.volume = Qty(m.volume.0 + trade.size.0);
                    m.value += to_dec(v);
                    m.last_time = trade.time;
                }
                _ => s.candles.push(MinuteCandle {
                    minute,
                    open: pxp,
                    high: pxp,
                    low: pxp,
                    close: pxp,
                    volume: trade.size,
                    value: to_dec(v),
                    last_time: trade.time,
                }),
            }
            if s.recent.len() >= cfg.recent_trades as usize {
                s.recent.pop_front();
            }
            s.recent.push_back(trade.clone());
            s.last_trade = Some(trade.clone());
            if s.watched {
                let stats = stats_of(s, c, day_start, trade.time);
                s.pending.push(CryptoEvent::Trade(Box::new((trade, stats))));
            }
        }
        s.step = k + 1;
        // Upbit sends a book only when it changed; a quiet book sends nothing.
        if s.watched
            && s.bid != before
            && let Some(b) = book
        {
            s.pending.push(CryptoEvent::Book(b));
        }
    }
}

/// The UTC day as a number (`20260114`), the day coordinate of random draws.
fn day_key(d: Date) -> u64 {
    (d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64) as u64
}

fn stats_of(s: &PairState, c: &PairConst, day_start: i64, time: UtcTime) -> PairStats {
    let elapsed = (time.millis_since(UtcTime::from_millis(day_start)) as f64 / DAY_MS as f64).clamp(0.0, 1.0);
    let rest_value = c.expected_day_value * (1.0 - elapsed);
    let rest_volume = rest_value / (c.prev_close as f64 / UNIT);
    let approx = |v: f64| Decimal::from_i128_with_scale((v * UNIT) as i128, SCALE);
    PairStats {
        symbol: c.symbol.clone(),
        open: Price(to_dec(s.open as i128)),
        high: Price(to_dec(s.high as i128)),
        low: Price(to_dec(s.low as i128)),
        last: Price(to_dec(s.last as i128)),
        prev_close: Price(to_dec(c.prev_close as i128)),
        acc_volume: Qty(to_dec(s.volume)),
        acc_value: to_dec(s.value),
        acc_ask_volume: Qty(to_dec(s.ask_volume)),
        acc_bid_volume: Qty(to_dec(s.bid_volume)),
        volume_24h: Qty(to_dec(s.volume) + approx(rest_volume)),
        value_24h: to_dec(s.value) + approx(rest_value),
        last_trade: s.last_trade.clone(),
        time,
    }
}

#[allow(clippy::too_many_arguments)]
fn make_book(
    cfg: &CryptoSimConfig,
    g: &Grid,
    day_key: u64,
    idx: usize,
    symbol: &Symbol,
    k: u32,
    bid: i64,
    time: UtcTime,
) -> CryptoBook {
    let mut r = rng_for(cfg.seed, day_key, idx as u64, k as u64, SALT_BOOK);
    let median = cfg.book_level_value.to_string().parse::<f64>().unwrap_or(1e6);
    let mut size = |p: i64| -> Qty {
        let v = median * (cfg.book_value_sigma * normal(&mut r)).exp();
        Qty(to_dec(((v / (p as f64 / UNIT)) * UNIT).round().max(1.0) as i128))
    };
    let n = cfg.book_levels as usize;
    let mut bids = Vec::with_capacity(n);
    let mut p = bid;
    while bids.len() < n && p > 0 {
        bids.push((Price(to_dec(p as i128)), size(p)));
        p = g.down(p);
    }
    let mut asks = Vec::with_capacity(n);
    let mut p = g.up(bid);
    while asks.len() < n {
        asks.push((Price(to_dec(p as i128)), size(p)));
        p = g.up(p);
    }
    CryptoBook { time, symbol: symbol.clone(), bids, asks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> Date {
        jiff::civil::date(2026, 1, 14)
    }

    #[test]
    fn default_config_is_valid() {
        let mut c = Checker::default();
        CryptoSimConfig::upbit_default().validate(&mut c);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn path_is_independent_of_query_pattern() {
        let cfg = CryptoSimConfig::upbit_default();
        let mut a = CryptoMarket::try_new(&cfg, day()).unwrap();
        let mut b = CryptoMarket::try_new(&cfg, day()).unwrap();
        let t0 = a.day_start();
        let btc = a.index_of("KRW-BTC").unwrap();
        for m in 1..=30 {
            a.advance(btc, t0.plus_millis(m * 60_000));
        }
        let end = t0.plus_millis(30 * 60_000);
        assert_eq!(a.stats(btc, end), b.stats(btc, end));
        assert_eq!(a.book(btc, end, 30), b.book(btc, end, 30));
        let other = CryptoMarket::try_new(&CryptoSimConfig { seed: 2, ..cfg }, day()).unwrap().listings()[0].clone();
        assert_ne!(other.prev_close, a.listings()[0].prev_close);
    }

    #[test]
    fn prices_sit_on_the_tick_grid_and_sizes_are_fractional() {
        let cfg = CryptoSimConfig::upbit_default();
        let mut m = CryptoMarket::try_new(&cfg, day()).unwrap();
        let t = m.day_start().plus_millis(3_600_000);
        let mut fractional = false;
        for idx in 0..m.listings().len() {
            m.watch(idx, true, m.day_start());
            let mut ev = Vec::new();
            m.drain(idx, t, &mut ev);
            for e in &ev {
                if let CryptoEvent::Trade(tr) = e {
                    let tick = m.tick_size(tr.0.price);
                    assert!((tr.0.price.0 % tick).is_zero(), "{} off grid {}", tr.0.price, tick);
                    fractional |= !tr.0.size.0.fract().is_zero();
                }
            }
            let b = m.book(idx, t, 30).unwrap();
            assert_eq!(b.asks.len(), 30);
            assert!(b.bids[0].0 < b.asks[0].0);
        }
        assert!(fractional);
        let btc = m.index_of("KRW-BTC").unwrap();
        let pc = m.listings()[btc].prev_close.0;
        assert!(pc > Decimal::from(100_000_000) && pc < Decimal::from(200_000_000), "{pc}");
        assert_eq!(m.tick_size(Price(pc)), Decimal::from(1000));
    }

    #[test]
    fn events_are_collected_only_while_watched() {
        let cfg = CryptoSimConfig::upbit_default();
        let mut m = CryptoMarket::try_new(&cfg, day()).unwrap();
        let btc = m.index_of("KRW-BTC").unwrap();
        let t0 = m.day_start();
        let mut ev = Vec::new();
        m.drain(btc, t0.plus_millis(60_000), &mut ev);
        assert!(ev.is_empty());
        m.watch(btc, true, t0.plus_millis(90_000));
        m.drain(btc, t0.plus_millis(120_000), &mut ev);
        assert!(!ev.is_empty() && ev.iter().all(|e| e.time() >= t0.plus_millis(89_000)));
        assert!(ev.iter().any(|e| matches!(e, CryptoEvent::Trade(_))));
        assert!(ev.windows(2).all(|w| w[0].time() <= w[1].time() || matches!(w[1], CryptoEvent::Book(_))));
    }
}

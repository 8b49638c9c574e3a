//! The simulated exchange itself.
//!
//! Every symbol's day is a pure function of `(seed, trading day, symbol index, step index)`:
//! step `k` gets its own RNG seeded from a hash of those four values, and the state after
//! step `k` is a function of the state after step `k-1` and that RNG. Symbols therefore
//! evolve lazily and independently: a query runs only the steps that symbol has not reached
//! yet, and the answer never depends on which symbols were asked about, in what order, or
//! in how many pieces.
//!
//! Each symbol keeps two cursors: the event feed (`events`) and the latest state reached by
//! anyone (`snapshot`, `day_stats`). So snapshots never swallow events the feed has not
//! delivered yet. A query for a time earlier than the relevant cursor has reached answers
//! from that cursor: `snapshot` returns the state as of the latest step reached, and
//! `events` does not deliver again events it already delivered.

use std::collections::{HashMap, HashSet};

use fastrand::Rng;
use jiff::civil::{Date, Weekday};
use model::settings::{Checker, Problem, Validate};
use model::{Market, Price, Provider, Qty, Side, Snapshot, Symbol, UtcTime};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::config::{LargeCap, SimConfig};
use super::random::{normal, rng_for};

/// The KRX board a symbol is listed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Board {
    Kospi,
    Kosdaq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub symbol: Symbol,
    pub name: String,
    pub board: Board,
    /// On the tick grid.
    pub prev_close: Price,
    /// Listed shares.
    pub shares: u64,
    /// Listed by its real KRX code and name (a configured large cap), not generated.
    pub real: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTrade {
    pub time: UtcTime,
    pub symbol: Symbol,
    pub price: Price,
    pub size: Qty,
    /// The aggressor: `Buy` lifted the ask, `Sell` hit the bid.
    pub side: Side,
    /// Per symbol and day, starting at 1, increasing by one per trade.
    pub seq: u64,
    /// Day's volume including this trade.
    pub cum_volume: Qty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBook {
    pub time: UtcTime,
    pub symbol: Symbol,
    /// Best first.
    pub bids: Vec<(Price, Qty)>,
    /// Best first.
    pub asks: Vec<(Price, Qty)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    Trade(SimTrade),
    Book(SimBook),
}

impl SimEvent {
    pub fn time(&self) -> UtcTime {
        match self {
            SimEvent::Trade(t) => t.time,
            SimEvent::Book(b) => b.time,
        }
    }
    pub fn symbol(&self) -> &Symbol {
        match self {
            SimEvent::Trade(t) => &t.symbol,
            SimEvent::Book(b) => &b.symbol,
        }
    }
    /// The normalized event the sim wire frame of this event parses to.
    pub fn to_market_event(&self) -> model::MarketEvent {
        match self {
            SimEvent::Trade(t) => model::MarketEvent::Tick(model::Tick {
                provider: Provider::Sim,
                market: Market::KrStocks,
                symbol: t.symbol.clone(),
                price: t.price,
                size: t.size,
                side: Some(t.side),
                cum_volume: Some(t.cum_volume),
                trade_id: Some(t.seq.to_string()),
            }),
            SimEvent::Book(b) => {
                let level = |&(price, size): &(Price, Qty)| model::Level { price, size };
                let (bid, ask) = (b.bids[0], b.asks[0]);
                model::MarketEvent::Quote(model::Quote {
                    provider: Provider::Sim,
                    market: Market::KrStocks,
                    symbol: b.symbol.clone(),
                    bid_price: bid.0,
                    bid_size: bid.1,
                    ask_price: ask.0,
                    ask_size: ask.1,
                    bids: b.bids.iter().map(level).collect(),
                    asks: b.asks.iter().map(level).collect(),
                })
            }
        }
    }
}

/// A symbol's day so far, including what `Snapshot` has no field for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStats {
    /// `None` until the first trade.
    pub open: Option<Price>,
    pub high: Option<Price>,
    pub low: Option<Price>,
    /// Last trade price, or the previous close before the first trade.
    pub last: Price,
    pub volume: Qty,
    /// Sum of price × size over the day's trades.
    pub traded_value: Decimal,
    pub trades: u64,
    pub bid: Price,
    pub ask: Price,
    /// Lower and upper daily price limits (on the grid).
    pub limit_low: Price,
    pub limit_high: Price,
}

// ---------------------------------------------------------------------------------------
// Deterministic hashing.

const SALT_STEP: u64 = 0x5354_4550;
const SALT_BOOK: u64 = 0x424f_4f4b;
const SALT_BURST: u64 = 0x4255_5253;
const SALT_UNIVERSE: u64 = 0x554e_4956;
const SALT_LISTING: u64 = 0x4c49_5354;
const SALT_DAY: u64 = 0x4441_5921;
const SALT_HISTORY: u64 = 0x4849_5354;

// ---------------------------------------------------------------------------------------
// The price grid, in integer units of 10^-scale.

#[derive(Debug, Clone)]
struct Grid {
    /// (exclusive upper bound, tick); the last bound is `i64::MAX`.
    bands: Vec<(i64, i64)>,
    scale: u32,
}

fn to_units(v: Decimal, scale: u32) -> i64 {
    let mut v = v;
    v.rescale(scale);
    v.mantissa().clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl Grid {
    fn new(cfg: &SimConfig) -> Grid {
        let scale = cfg
            .tick_sizes
            .iter()
            .flat_map(|b| [Some(b.tick), b.below].into_iter().flatten())
            .chain([cfg.prev_close_min, cfg.prev_close_max, cfg.prev_close_median])
            .map(|d| d.normalize().scale())
            .max()
            .unwrap_or(0)
            .min(super::config::MAX_PRICE_SCALE);
        let bands = cfg
            .tick_sizes
            .iter()
            .map(|b| (b.below.map_or(i64::MAX, |x| to_units(x, scale)), to_units(b.tick, scale).max(1)))
            .collect();
        Grid { bands, scale }
    }

    fn tick(&self, p: i64) -> i64 {
        for &(below, tick) in &self.bands {
            if p < below {
                return tick;
            }
        }
        self.bands.last().map_or(1, |b| b.1)
    }
    fn up(&self, p: i64) -> i64 {
        p + self.tick(p)
    }
    fn down(&self, p: i64) -> i64 {
        p - self.tick(p - 1)
    }
    fn floor(&self, x: i64) -> i64 {
        x - x.rem_euclid(self.tick(x))
    }
    fn ceil(&self, x: i64) -> i64 {
        let t = self.tick(x);
        let r = x.rem_euclid(t);
        if r == 0 { x } else { x + t - r }
    }
    fn nearest(&self, x: i64) -> i64 {
        let (f, c) = (self.floor(x), self.ceil(x));
        if x - f <= c - x { f } else { c }
    }
    fn price(&self, units: i64) -> Price {
        Price(Decimal::new(units, self.scale))
    }
}

// ---------------------------------------------------------------------------------------

/// Per-symbol constants for the day.
#[derive(Debug, Clone, Copy)]
struct SymConst {
    /// The symbol's coordinate in every random draw: fixed by its identity (a generated
    /// symbol's rank among the generated codes, a real one's code), never by its position
    /// in the listing, so adding real listings does not reshuffle the generated paths.
    key: u64,
    prev_close: i64,
    open_px: i64,
    lo: i64,
    hi: i64,
}

/// A symbol's state after `step` steps.
#[derive(Debug, Clone, Copy)]
struct SymState {
    step: u32,
    bid: i64,
    ask: i64,
    last: i64,
    open: i64,
    high: i64,
    low: i64,
    traded: bool,
    volume: u64,
    value: i128,
    seq: u64,
    /// Cache of the burst state for `burst_minute` (a pure function of the minute).
    burst_minute: i64,
    burst_dir: i8,
}

#[derive(Debug, Clone, Copy)]
struct Cursors {
    /// The event feed's position.
    feed: SymState,
    /// The latest state anyone reached.
    lead: SymState,
}

/// Everything the step function needs, immutable for the day.
#[derive(Debug, Clone)]
struct Params {
    seed: u64,
    day: u64,
    grid: Grid,
    open_ms: i64,
    step_ms: i64,
    n_steps: u32,
    rate_per_step: f64,
    sd_rel_step: f64,
    burst_p: f64,
    burst_min: u32,
    burst_max: u32,
    burst_volume: f64,
    burst_volatility: f64,
    burst_drift: f64,
    levels: u8,
    lot_max: u32,
    size_skew: f64,
    burst_size_skew: f64,
    book_max: u32,
    auction_max: u32,
}

struct Emit<'a> {
    from: i64,
    symbol: &'a Symbol,
    out: &'a mut Vec<SimEvent>,
}

impl Params {
    /// +1 / -1 for an up / down burst active in `minute`, 0 for none.
    fn burst_at(&self, key: u64, minute: i64) -> i8 {
        if self.burst_p <= 0.0 || minute < 0 {
            return 0;
        }
        let first = (minute - self.burst_max as i64 + 1).max(0);
        for j in (first..=minute).rev() {
            let mut r = rng_for(self.seed, self.day, key, j as u64, SALT_BURST);
            if r.f64() < self.burst_p {
                let dur = r.u32(self.burst_min..=self.burst_max) as i64;
                if j + dur > minute {
                    return if r.bool() { 1 } else { -1 };
                }
            }
        }
        0
    }

    /// Steps whose every event time is at or before `t`.
    fn complete_steps(&self, t: UtcTime) -> u32 {
        let since = t.as_millis() - self.open_ms;
        if since < 0 {
            return 0;
        }
        ((since + 1) / self.step_ms).min(self.n_steps as i64) as u32
    }

    /// The volume a session trades on average outside bursts: trades per session times the
    /// mean lot (`1 + lot_max * E[u^skew]`, and `E[u^s] = 1/(s+1)` for uniform `u`), plus
    /// the mean opening-auction print.
    fn expected_day_volume(&self) -> f64 {
        let mean_lot = 1.0 + self.lot_max as f64 / (self.size_skew + 1.0);
        let auction = (1.0 + self.auction_max as f64) / 2.0;
        self.rate_per_step * self.n_steps as f64 * mean_lot + auction
    }

    fn trade_size(&self, rng: &mut Rng, bursting: bool) -> u64 {
        let skew = if bursting { self.burst_size_skew } else { self.size_skew };
        let extra = (self.lot_max as f64 * rng.f64().powf(skew)) as u64;
        (1 + extra).min(self.lot_max as u64)
    }

    fn initial(&self, c: &SymConst) -> SymState {
        let (bid, ask) = self.quotes_at(c, c.open_px);
        SymState {
            step: 0,
            bid,
            ask,
            last: c.prev_close,
            open: c.prev_close,
            high: c.prev_close,
            low: c.prev_close,
            traded: false,
            volume: 0,
            value: 0,
            seq: 0,
            burst_minute: -1,
            burst_dir: 0,
        }
    }

    /// Bid at `bid` (clamped to the limits), ask one tick above.
    fn quotes_at(&self, c: &SymConst, bid: i64) -> (i64, i64) {
        let g = &self.grid;
        let bid = bid.clamp(c.lo, g.down(c.hi).max(c.lo));
        (bid, g.up(bid).max(bid + 1))
    }

    fn apply_trade(s: &mut SymState, price: i64, size: u64) {
        if !s.traded {
            s.traded = true;
            s.open = price;
            s.high = price;
            s.low = price;
        }
        s.last = price;
        s.high = s.high.max(price);
        s.low = s.low.min(price);
        s.volume += size;
        s.value += price as i128 * size as i128;
        s.seq += 1;
    }

    /// Runs step `k` on `s`, applying only events at or before `cutoff` (ms). Returns whether
    /// the whole step ran (then `s.step` is `k + 1`).
    fn run_step(&self, c: &SymConst, s: &mut SymState, k: u32, cutoff: i64, mut emit: Option<&mut Emit<'_>>) -> bool {
        let g = &self.grid;
        let start = self.open_ms + k as i64 * self.step_ms;
        let minute = (k as i64 * self.step_ms) / 60_000;
        if minute != s.burst_minute {
            s.burst_minute = minute;
            s.burst_dir = self.burst_at(c.key, minute);
        }
        let bursting = s.burst_dir != 0;
        let mut rng = rng_for(self.seed, self.day, c.key, k as u64, SALT_STEP);

        // 1. The quotes move (not in the opening step: the auction prints the open first).
        if k > 0 {
            let tick = g.tick(s.bid) as f64;
            let mut sd = self.sd_rel_step * s.bid as f64 / tick;
            if bursting {
                sd *= self.burst_volatility;
            }
            let mu = s.burst_dir as f64 * self.burst_drift * sd;
            let moves: i64 = if sd < 1.0 {
                let var = sd * sd;
                let up = ((var + mu) / 2.0).clamp(0.0, 0.5);
                let down = ((var - mu) / 2.0).clamp(0.0, 0.5);
                let u = rng.f64();
                if u < up {
                    1
                } else if u < up + down {
                    -1
                } else {
                    0
                }
            } else {
                (mu + sd * normal(&mut rng)).round().clamp(-1000.0, 1000.0) as i64
            };
            if moves != 0 {
                let mut bid = s.bid;
                for _ in 0..moves.abs() {
                    let next = if moves > 0 { g.up(bid) } else { g.down(bid) };
                    if next < c.lo || g.up(next) > c.hi {
                        break;
                    }
                    bid = next;
                }
                (s.bid, s.ask) = self.quotes_at(c, bid);
            }
        }

        // 2. Trades: a Poisson process over offsets 1..=step_ms-2 ms, strictly increasing.
        let last_off = self.step_ms - 2;
        let mut prev_off = 0i64;
        let mut trade = |s: &mut SymState, off: i64, price: i64, size: u64, side: Side| -> bool {
            let t = start + off;
            if t > cutoff {
                return false;
            }
            Params::apply_trade(s, price, size);
            if let Some(e) = emit.as_deref_mut()
                && t > e.from
            {
                e.out.push(SimEvent::Trade(SimTrade {
                    time: UtcTime::from_millis(t),
                    symbol: e.symbol.clone(),
                    price: g.price(price),
                    size: Qty::from_int(size as i64),
                    side,
                    seq: s.seq,
                    cum_volume: Qty::from_int(s.volume as i64),
                }));
            }
            true
        };
        if k == 0 {
            prev_off = 1;
            let size = 1 + rng.u32(0..self.auction_max) as u64;
            let side = if rng.bool() { Side::Buy } else { Side::Sell };
            if !trade(s, prev_off, c.open_px, size, side) {
                return false;
            }
        }
        let rate = if bursting { self.rate_per_step * self.burst_volume } else { self.rate_per_step };
        let span = (last_off - 1).max(1) as f64;
        if rate > 0.0 {
            let per_ms = rate / span;
            let buy_p = 0.5 + 0.5 * self.burst_drift * s.burst_dir as f64;
            let mut x = 0.0f64;
            loop {
                x += -(1.0 - rng.f64()).ln() / per_ms;
                if x >= span {
                    break;
                }
                let off = (1 + x as i64).max(prev_off + 1);
                if off > last_off {
                    break;
                }
                prev_off = off;
                let side = if rng.f64() < buy_p { Side::Buy } else { Side::Sell };
                let size = self.trade_size(&mut rng, bursting);
                let price = match side {
                    Side::Buy => s.ask,
                    Side::Sell => s.bid,
                };
                if !trade(s, off, price, size, side) {
                    return false;
                }
            }
        }

        // 3. One book update at the end of the step.
        let tb = start + self.step_ms - 1;
        if tb > cutoff {
            return false;
        }
        if let Some(e) = emit
            && tb > e.from
        {
            let mut r = rng_for(self.seed, self.day, c.key, k as u64, SALT_BOOK);
            let mut size = || Qty::from_int(1 + r.u32(0..self.book_max) as i64);
            let mut bids = Vec::with_capacity(self.levels as usize);
            let mut asks = Vec::with_capacity(self.levels as usize);
            let mut p = s.bid;
            for _ in 0..self.levels {
                if p < c.lo {
                    break;
                }
                bids.push((g.price(p), size()));
                p = g.down(p);
            }
            let mut p = s.ask;
            for _ in 0..self.levels {
                if p > c.hi {
                    break;
                }
                asks.push((g.price(p), size()));
                p = g.up(p);
            }
            e.out.push(SimEvent::Book(SimBook {
                time: UtcTime::from_millis(tb),
                symbol: e.symbol.clone(),
                bids,
                asks,
            }));
        }
        s.step = k + 1;
        true
    }

    /// Runs `s` forward to `t`: whole steps are committed to `s`; a step in progress at `t`
    /// runs on a copy, which is returned.
    fn advance(&self, c: &SymConst, s: &mut SymState, t: UtcTime, mut emit: Option<&mut Emit<'_>>) -> SymState {
        let target = self.complete_steps(t);
        while s.step < target {
            let k = s.step;
            self.run_step(c, s, k, i64::MAX, emit.as_deref_mut());
        }
        let mut partial = *s;
        if s.step < self.n_steps && s.step == target {
            let k = s.step;
            if t.as_millis() > self.open_ms + k as i64 * self.step_ms {
                self.run_step(c, &mut partial, k, t.as_millis(), emit);
            }
        }
        partial
    }
}

/// A deterministic simulated KRX market for one trading day. See the module docs.
#[derive(Debug, Clone)]
pub struct SimMarket {
    cfg: SimConfig,
    trading_day: Date,
    params: Params,
    listings: Vec<Listing>,
    consts: Vec<SymConst>,
    cursors: Vec<Cursors>,
    /// The trading days before `trading_day` that have daily bars, newest first.
    history_dates: Vec<Date>,
    /// 52-week ranges already computed (a quote asks for one every time).
    year_ranges: HashMap<usize, YearRange>,
    /// Today's minute bars of the symbols someone charted, each with its own cursor.
    minute_bars: HashMap<usize, MinuteCursor>,
}

const NAME_HEADS: &[&str] = &[
    "한빛",
    "세진",
    "동림",
    "미래",
    "새한",
    "태성",
    "금강",
    "청담",
    "해솔",
    "누리",
    "대양",
    "신성",
    "가람",
    "보람",
    "서원",
    "영진",
    "우성",
    "진흥",
    "한결",
    "코리아",
];
const NAME_TAILS: &[&str] = &[
    "전자",
    "화학",
    "바이오",
    "제약",
    "건설",
    "금융지주",
    "테크",
    "반도체",
    "에너지",
    "산업",
    "물산",
    "식품",
    "중공업",
    "소재",
    "통신",
    "엔터",
    "로보틱스",
    "정밀",
    "홀딩스",
    "게임즈",
];

impl SimMarket {
    /// Builds the market. Panics if `cfg` does not pass `Validate` (the config layer checks
    /// it first); use [`SimMarket::try_new`] to get the problems instead.
    pub fn new(cfg: &SimConfig, trading_day: Date) -> SimMarket {
        match SimMarket::try_new(cfg, trading_day) {
            Ok(m) => m,
            Err(problems) => {
                let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                panic!("invalid sim config: {}", text.join("; "))
            }
        }
    }

    pub fn try_new(cfg: &SimConfig, trading_day: Date) -> Result<SimMarket, Vec<Problem>> {
        let mut checker = Checker::default();
        cfg.validate(&mut checker);
        if !checker.problems.is_empty() {
            return Err(checker.problems);
        }
        let grid = Grid::new(cfg);
        let open = UtcTime::from_kst(trading_day.to_datetime(cfg.session.start));
        let close = UtcTime::from_kst(trading_day.to_datetime(cfg.session.end));
        let session_ms = close.millis_since(open);
        let step_ms = cfg.step.as_millis() as i64;
        let n_steps = (session_ms / step_ms) as u32;
        let day = day_key(trading_day);
        let params = Params {
            seed: cfg.seed,
            day,
            grid,
            open_ms: open.as_millis(),
            step_ms,
            n_steps,
            rate_per_step: cfg.trades_per_second * step_ms as f64 / 1000.0,
            sd_rel_step: cfg.daily_volatility * (step_ms as f64 / session_ms as f64).sqrt(),
            burst_p: cfg.burst_probability_per_minute,
            burst_min: cfg.burst_minutes_min,
            burst_max: cfg.burst_minutes_max,
            burst_volume: cfg.burst_volume_multiplier,
            burst_volatility: cfg.burst_volatility_multiplier,
            burst_drift: cfg.burst_drift,
            levels: cfg.quote_levels,
            lot_max: cfg.lot_size_max,
            size_skew: cfg.size_skew,
            burst_size_skew: cfg.burst_size_skew,
            book_max: cfg.book_size_max,
            auction_max: cfg.open_auction_size_max,
        };

        let real_codes: HashSet<&str> = cfg.large_caps.iter().map(|c| c.code.as_str()).collect();
        let generated = make_codes(cfg, &real_codes);
        // (code, board, key, the large cap it is, if real)
        let mut entries: Vec<(String, Board, u64, Option<&LargeCap>)> =
            generated.into_iter().enumerate().map(|(i, (code, board))| (code, board, i as u64, None)).collect();
        entries.extend(cfg.large_caps.iter().map(|c| (c.code.clone(), c.board, real_key(&c.code), Some(c))));
        entries.sort_by(|a, b| a.0.cmp(&b.0));

        let mut listings = Vec::with_capacity(entries.len());
        let mut consts = Vec::with_capacity(entries.len());
        // Real names first: a generated name never copies one.
        let mut names: HashSet<String> = cfg.large_caps.iter().map(|c| c.name.clone()).collect();
        let g = &params.grid;
        let scale = g.scale;
        let units = |d: Decimal| to_units(d, scale);
        let (min_u, max_u) = (units(cfg.prev_close_min), units(cfg.prev_close_max));
        let median = units(cfg.prev_close_median) as f64;
        for (code, board, key, real) in entries {
            // The universe (codes, names, price level) depends on the seed only; the day
            // moves each previous close a little.
            let (base, name, shares, clamp) = match real {
                Some(cap) => (units(cap.price) as f64, cap.name.clone(), cap.shares, (g.tick(1), i64::MAX)),
                None => {
                    let mut r = rng_for(cfg.seed, 0, key, 0, SALT_LISTING);
                    let base = median * (cfg.prev_close_sigma * normal(&mut r)).exp();
                    let head = NAME_HEADS[r.usize(0..NAME_HEADS.len())];
                    let tail = NAME_TAILS[r.usize(0..NAME_TAILS.len())];
                    let mut name = format!("{head}{tail}");
                    let mut n = 1;
                    while names.contains(&name) {
                        n += 1;
                        name = format!("{head}{tail}{n}");
                    }
                    let shares = cfg.listed_shares_median as f64 * (cfg.listed_shares_sigma * normal(&mut r)).exp();
                    (base, name, (shares.round() as u64).max(1), (g.ceil(min_u), g.floor(max_u)))
                }
            };
            names.insert(name.clone());
            let mut rd = rng_for(cfg.seed, day, key, 0, SALT_DAY);
            let pc = base * (cfg.daily_volatility * normal(&mut rd)).exp();
            let pc = (pc.round() as i64).clamp(min_u.min(clamp.0), max_u.max(clamp.1));
            let pc = g.nearest(pc).clamp(clamp.0, clamp.1).max(g.tick(1));
            let (lo, hi) = limits(g, pc, cfg.daily_limit);
            let gap = cfg.open_gap_sigma * normal(&mut rd);
            let open_px = g.nearest((pc as f64 * gap.exp()).round() as i64).clamp(lo, g.down(hi));
            let c = SymConst { key, prev_close: pc, open_px, lo, hi };
            let symbol = Symbol::new(&code).expect("generated and validated codes are valid symbols");
            listings.push(Listing { symbol, name, board, prev_close: g.price(pc), shares, real: real.is_some() });
            consts.push(c);
        }
        let cursors = consts
            .iter()
            .map(|c| {
                let s = params.initial(c);
                Cursors { feed: s, lead: s }
            })
            .collect();
        let history_dates = trading_days_before(trading_day, cfg.history_days as usize, &[]);
        Ok(SimMarket {
            cfg: cfg.clone(),
            trading_day,
            params,
            listings,
            consts,
            cursors,
            history_dates,
            year_ranges: HashMap::new(),
            minute_bars: HashMap::new(),
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
    pub fn trading_day(&self) -> Date {
        self.trading_day
    }
    /// Start of the regular session (step 0 begins here).
    pub fn session_open(&self) -> UtcTime {
        UtcTime::from_millis(self.params.open_ms)
    }
    /// End of the last whole step of the session.
    pub fn session_close(&self) -> UtcTime {
        UtcTime::from_millis(self.params.open_ms + self.params.n_steps as i64 * self.params.step_ms)
    }
    pub fn len(&self) -> usize {
        self.listings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.listings.is_empty()
    }
    /// Sorted by code.
    pub fn listings(&self) -> &[Listing] {
        &self.listings
    }
    pub fn index_of(&self, symbol: &Symbol) -> Option<usize> {
        self.listings.binary_search_by(|l| l.symbol.cmp(symbol)).ok()
    }

    /// The tick size for `price` under the configured table.
    pub fn tick_size(&self, price: Price) -> Decimal {
        for b in &self.cfg.tick_sizes {
            match b.below {
                Some(below) if price.0 >= below => continue,
                _ => return b.tick,
            }
        }
        self.cfg.tick_sizes.last().map_or(Decimal::ONE, |b| b.tick)
    }

    /// Whether symbol `idx` is in a burst at `at` (the ground truth the trigger engine is
    /// meant to find). A pure function; advances nothing.
    pub fn is_bursting(&self, idx: usize, at: UtcTime) -> bool {
        let since = at.millis_since(self.session_open());
        since >= 0 && at < self.session_close() && self.params.burst_at(self.consts[idx].key, since / 60_000) != 0
    }

    fn state_at(&mut self, idx: usize, at: UtcTime) -> SymState {
        let cur = &mut self.cursors[idx];
        let mut base = if cur.feed.step > cur.lead.step { cur.feed } else { cur.lead };
        let partial = self.params.advance(&self.consts[idx], &mut base, at, None);
        cur.lead = base;
        partial
    }

    /// Advances every symbol to `at`. A market opened mid-session otherwise generates the
    /// session so far on its first whole-market request (a volume ranking), under the lock
    /// every server task needs: in a debug build an hour of 2,000 symbols takes about a
    /// second, which a fast clock turns into a minute of silent market. Call it before the
    /// clock starts.
    pub fn advance_all(&mut self, at: UtcTime) {
        for idx in 0..self.len() {
            self.state_at(idx, at);
        }
    }

    /// Symbol `idx` as of `at`, advancing it there. Panics if `idx` is out of range.
    pub fn snapshot(&mut self, idx: usize, at: UtcTime) -> Snapshot {
        let s = self.state_at(idx, at);
        let g = &self.params.grid;
        Snapshot {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: self.listings[idx].symbol.clone(),
            last_price: g.price(s.last),
            open: g.price(s.open),
            high: g.price(s.high),
            low: g.price(s.low),
            prev_close: self.listings[idx].prev_close,
            volume: Qty::from_int(s.volume as i64),
            bid_price: Some(g.price(s.bid)),
            ask_price: Some(g.price(s.ask)),
        }
    }

    /// Like `snapshot`, with the fields `Snapshot` lacks.
    pub fn day_stats(&mut self, idx: usize, at: UtcTime) -> DayStats {
        let s = self.state_at(idx, at);
        let c = self.consts[idx];
        let g = &self.params.grid;
        DayStats {
            open: s.traded.then(|| g.price(s.open)),
            high: s.traded.then(|| g.price(s.high)),
            low: s.traded.then(|| g.price(s.low)),
            last: g.price(s.last),
            volume: Qty::from_int(s.volume as i64),
            traded_value: Decimal::from_i128_with_scale(s.value, g.scale),
            trades: s.seq,
            bid: g.price(s.bid),
            ask: g.price(s.ask),
            limit_low: g.price(c.lo),
            limit_high: g.price(c.hi),
        }
    }

    /// Appends to `out`, in time order, every trade and the one book update per step of
    /// symbol `idx` whose event time is in `(from, to]`, advancing the symbol's feed to `to`.
    /// Events the feed already delivered are not delivered again. Panics if `idx` is out of
    /// range.
    pub fn events(&mut self, idx: usize, from: UtcTime, to: UtcTime, out: &mut Vec<SimEvent>) {
        if to <= from {
            return;
        }
        let k_from = self.params.complete_steps(from);
        let cur = &mut self.cursors[idx];
        let (a, b) = (cur.feed, cur.lead);
        // Start from the most advanced cursor that has not passed `from`'s step, so nothing
        // in (from, to] is skipped; if both passed it, the feed (it delivered those events).
        let mut base = match (a.step <= k_from, b.step <= k_from) {
            (true, true) if b.step > a.step => b,
            (true, _) => a,
            (false, true) => b,
            (false, false) => a,
        };
        let mut emit = Emit { from: from.as_millis(), symbol: &self.listings[idx].symbol, out };
        self.params.advance(&self.consts[idx], &mut base, to, Some(&mut emit));
        cur.feed = base;
        if base.step > cur.lead.step {
            cur.lead = base;
        }
    }

    /// The trading days with daily bars before the trading day, newest first.
    pub fn history_dates(&self) -> &[Date] {
        &self.history_dates
    }

    /// Skips `holidays` (besides weekends) when dating the past trading days. The sim knows
    /// no calendar of its own; the server that has one tells it.
    pub fn set_holidays(&mut self, holidays: &[Date]) {
        self.history_dates = trading_days_before(self.trading_day, self.cfg.history_days as usize, holidays);
        self.year_ranges.clear();
    }

    /// Symbol `idx`'s daily bars before the trading day, newest first, one per
    /// [`history_dates`](Self::history_dates) entry.
    ///
    /// A past day is not simulated tick by tick (months of ticks for 2,000 symbols would
    /// cost more than the whole live day): its bar is drawn from an RNG keyed by (seed, that
    /// day, symbol), walking back from today's previous close, so the newest bar closes at
    /// it and each bar opens near the previous one's close. A pure function: nothing is
    /// stored, any symbol and range costs one walk of `history_days` draws.
    pub fn daily_history(&self, idx: usize) -> Vec<DailyBar> {
        let c = &self.consts[idx];
        let g = &self.params.grid;
        let cfg = &self.cfg;
        let vol = cfg.daily_volatility;
        let limit = cfg.daily_limit.to_f64().unwrap_or(0.0);
        // A day's return stays inside the daily limits, as the exchange enforces.
        let (r_lo, r_hi) = ((1.0 - limit).ln(), (1.0 + limit).ln());
        let mean_volume = self.params.expected_day_volume();
        let nearest = |x: f64| g.nearest(x.round() as i64).max(g.tick(1));
        let mut close_f = c.prev_close as f64;
        let mut out = Vec::with_capacity(self.history_dates.len());
        for &d in &self.history_dates {
            let mut r = rng_for(self.params.seed, day_key(d), c.key, 0, SALT_HISTORY);
            let ret = (vol * normal(&mut r)).clamp(r_lo, r_hi);
            let prev_f = close_f / ret.exp();
            let open_f = prev_f * (cfg.open_gap_sigma * normal(&mut r)).exp();
            // The day's range reaches past the open and close by about a day's volatility.
            let high_f = open_f.max(close_f) * (vol * normal(&mut r).abs()).exp();
            let low_f = open_f.min(close_f) * (-vol * normal(&mut r).abs()).exp();
            let volume = (mean_volume * (cfg.history_volume_sigma * normal(&mut r)).exp()).round().max(1.0) as i64;
            let prev = nearest(prev_f);
            let (lo_lim, hi_lim) = limits(g, prev, cfg.daily_limit);
            // Not clamped: it is the next bar's previous close, exactly.
            let close = nearest(close_f);
            let open = nearest(open_f).clamp(lo_lim, hi_lim);
            let high = g.ceil(high_f.round() as i64).clamp(lo_lim, hi_lim).max(open).max(close);
            let low = g.floor(low_f.round() as i64).clamp(lo_lim, hi_lim).min(open).min(close).max(g.tick(1));
            // Traded value at the bar's typical price (the mean of its four prices).
            let typical = Decimal::new(open + high + low + close, g.scale) / Decimal::from(4);
            out.push(DailyBar {
                date: d,
                open: g.price(open),
                high: g.price(high),
                low: g.price(low),
                close: g.price(close),
                prev_close: g.price(prev),
                volume: Qty::from_int(volume),
                traded_value: (typical * Decimal::from(volume)).round(),
            });
            close_f = prev_f;
        }
        out
    }

    /// Highest and lowest prices of the 52 weeks before the trading day (from the daily
    /// bars), and the previous day's volume. Cached: every quote carries them.
    pub fn year_range(&mut self, idx: usize) -> YearRange {
        if let Some(r) = self.year_ranges.get(&idx) {
            return r.clone();
        }
        let bars = self.daily_history(idx);
        let since = self.trading_day.checked_sub(jiff::Span::new().weeks(52)).unwrap_or(self.trading_day);
        let pc = self.listings[idx].prev_close;
        let mut r = YearRange {
            high: pc,
            high_date: self.trading_day,
            low: pc,
            low_date: self.trading_day,
            prev_volume: bars.first().map_or(Qty::ZERO, |b| b.volume),
        };
        for b in bars.iter().filter(|b| b.date >= since) {
            if b.high.0 > r.high.0 || r.high_date == self.trading_day {
                (r.high, r.high_date) = (b.high, b.date);
            }
            if b.low.0 < r.low.0 || r.low_date == self.trading_day {
                (r.low, r.low_date) = (b.low, b.date);
            }
        }
        self.year_ranges.insert(idx, r.clone());
        r
    }

    /// Symbol `idx`'s one-minute bars of the session from the open to `at`, oldest first,
    /// one per minute: a minute without trades repeats the last price with no volume (the
    /// previous close before the first trade). The bars replay the same steps the event
    /// feed delivers, on a cursor of their own kept per charted symbol, so a chart costs the
    /// steps since the last chart of that symbol.
    pub fn minute_bars(&mut self, idx: usize, at: UtcTime) -> Vec<MinuteBar> {
        let p = &self.params;
        let c = &self.consts[idx];
        let cur = self.minute_bars.entry(idx).or_insert_with(|| MinuteCursor { state: p.initial(c), bars: Vec::new() });
        let mut events = Vec::new();
        let mut emit = Emit { from: i64::MIN, symbol: &self.listings[idx].symbol, out: &mut events };
        p.advance(c, &mut cur.state, at, Some(&mut emit));
        // Events up to the committed cursor are kept; a step in progress is folded into a
        // copy, since it runs again (further) next time.
        let committed_ms = p.open_ms + cur.state.step as i64 * p.step_ms;
        let mut raw = cur.bars.clone();
        for ev in &events {
            if let SimEvent::Trade(t) = ev {
                let ms = t.time.as_millis();
                let minute = (ms - p.open_ms) / MINUTE_MS;
                let units = to_units(t.price.0, p.grid.scale);
                let size = t.size.0.to_u64().unwrap_or(0);
                if ms < committed_ms {
                    fold_minute(&mut cur.bars, minute, units, size);
                }
                fold_minute(&mut raw, minute, units, size);
            }
        }
        let end_ms = at.as_millis().min(p.open_ms + p.n_steps as i64 * p.step_ms - 1);
        if end_ms < p.open_ms {
            return Vec::new();
        }
        let g = &p.grid;
        let mut last = c.prev_close;
        let (mut cum_volume, mut cum_value) = (0u64, 0i128);
        let mut raw = raw.into_iter().peekable();
        let mut out = Vec::new();
        for minute in 0..=(end_ms - p.open_ms) / MINUTE_MS {
            let m = match raw.next_if(|m| m.minute == minute) {
                Some(m) => m,
                None => RawMinute { minute, open: last, high: last, low: last, close: last, volume: 0, value: 0 },
            };
            last = m.close;
            cum_volume += m.volume;
            cum_value += m.value;
            out.push(MinuteBar {
                start: UtcTime::from_millis(p.open_ms + minute * MINUTE_MS),
                open: g.price(m.open),
                high: g.price(m.high),
                low: g.price(m.low),
                close: g.price(m.close),
                volume: Qty::from_int(m.volume as i64),
                traded_value: Decimal::from_i128_with_scale(m.value, g.scale),
                cum_volume: Qty::from_int(cum_volume as i64),
                cum_value: Decimal::from_i128_with_scale(cum_value, g.scale),
            });
        }
        out
    }
}

const MINUTE_MS: i64 = 60_000;

/// One past trading day of a symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyBar {
    pub date: Date,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    /// The day before's close.
    pub prev_close: Price,
    pub volume: Qty,
    /// KRW, rounded to the won.
    pub traded_value: Decimal,
}

/// The 52-week range before the trading day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearRange {
    pub high: Price,
    pub high_date: Date,
    pub low: Price,
    pub low_date: Date,
    /// The previous trading day's volume.
    pub prev_volume: Qty,
}

/// One minute of a symbol's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteBar {
    /// Start of the minute.
    pub start: UtcTime,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Qty,
    pub traded_value: Decimal,
    /// The day's volume and traded value through this minute.
    pub cum_volume: Qty,
    pub cum_value: Decimal,
}

#[derive(Debug, Clone)]
struct MinuteCursor {
    state: SymState,
    /// Minutes with trades in the committed steps, in order.
    bars: Vec<RawMinute>,
}

/// A minute in grid units.
#[derive(Debug, Clone, Copy)]
struct RawMinute {
    minute: i64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: u64,
    value: i128,
}

fn fold_minute(bars: &mut Vec<RawMinute>, minute: i64, price: i64, size: u64) {
    match bars.last_mut() {
        Some(m) if m.minute == minute => {
            m.high = m.high.max(price);
            m.low = m.low.min(price);
            m.close = price;
            m.volume += size;
            m.value += price as i128 * size as i128;
        }
        _ => bars.push(RawMinute {
            minute,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            value: price as i128 * size as i128,
        }),
    }
}

/// Unique 6-character codes, sorted: KOSPI `0dddd0`, KOSDAQ `1dddd0`/`2dddd0`, a few with a
/// letter (`0dddJ0`-style, or a trailing letter like `00088K`). None is in `reserved` (the
/// real listings' codes): a draw that lands on one is skipped.
fn make_codes(cfg: &SimConfig, reserved: &HashSet<&str>) -> Vec<(String, Board)> {
    let n = cfg.symbols as usize;
    let n_kospi = ((n as f64 * cfg.kospi_share).round() as usize).min(n);
    let mut r = rng_for(cfg.seed, 0, 0, 0, SALT_UNIVERSE);
    let kospi_code = |m: usize| format!("0{m:04}0");
    let kosdaq_code = |m: usize| format!("{}{:04}0", 1 + m / 10_000, m % 10_000);
    let mut pick = |space: usize, take: usize, code: &dyn Fn(usize) -> String| -> Vec<String> {
        // A partial Fisher-Yates shuffle that passes over reserved codes.
        let mut all: Vec<usize> = (0..space).collect();
        let mut out = Vec::with_capacity(take);
        let mut i = 0;
        while out.len() < take && i < space {
            let j = r.usize(i..space);
            all.swap(i, j);
            let c = code(all[i]);
            if !reserved.contains(c.as_str()) {
                out.push(c);
            }
            i += 1;
        }
        out
    };
    let kospi = pick(10_000, n_kospi, &kospi_code);
    let kosdaq = pick(20_000, n - n_kospi, &kosdaq_code);
    let mut seen: HashSet<String> = reserved.iter().map(|c| c.to_string()).collect();
    let mut out = Vec::with_capacity(n);
    let letters = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut push = |mut code: String, board: Board, r: &mut Rng| {
        if r.f64() < cfg.letter_code_share {
            let letter = letters[r.usize(0..letters.len())] as char;
            let pos = if r.bool() { 4 } else { 5 };
            let mut lettered = code.clone();
            lettered.replace_range(pos..pos + 1, &letter.to_string());
            // Keep the plain code if the lettered one is taken.
            if !seen.contains(&lettered) {
                code = lettered;
            }
        }
        seen.insert(code.clone());
        out.push((code, board));
    };
    let mut r2 = rng_for(cfg.seed, 0, 1, 0, SALT_UNIVERSE);
    for code in kospi {
        push(code, Board::Kospi, &mut r2);
    }
    for code in kosdaq {
        push(code, Board::Kosdaq, &mut r2);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A real listing's random coordinate: its code's bytes, far above any generated rank.
fn real_key(code: &str) -> u64 {
    code.bytes().fold(0u64, |k, b| (k << 8) | b as u64)
}

/// The trading day as a number (`20260114`), the day coordinate of random draws.
fn day_key(d: Date) -> u64 {
    (d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64) as u64
}

/// Lower and upper daily price limits around `pc`, on the grid.
fn limits(g: &Grid, pc: i64, limit: Decimal) -> (i64, i64) {
    let scale = g.scale;
    let pc_d = Decimal::new(pc, scale);
    let lo = g.ceil(to_units((pc_d * (Decimal::ONE - limit)).ceil_to(scale), scale)).max(g.tick(1));
    let mut hi = g.floor(to_units((pc_d * (Decimal::ONE + limit)).floor_to(scale), scale));
    if g.up(g.up(lo)) > hi {
        hi = g.up(g.up(lo));
    }
    (lo, hi)
}

/// The `n` weekdays before `day` that are not in `holidays`, newest first.
fn trading_days_before(day: Date, n: usize, holidays: &[Date]) -> Vec<Date> {
    let mut out = Vec::with_capacity(n);
    let mut d = day;
    while out.len() < n {
        let Ok(prev) = d.yesterday() else { break };
        d = prev;
        let weekend = matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday);
        if !weekend && !holidays.contains(&d) {
            out.push(d);
        }
    }
    out
}

trait DecimalRound {
    fn ceil_to(self, scale: u32) -> Decimal;
    fn floor_to(self, scale: u32) -> Decimal;
}

impl DecimalRound for Decimal {
    fn ceil_to(self, scale: u32) -> Decimal {
        self.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::ToPositiveInfinity)
    }
    fn floor_to(self, scale: u32) -> Decimal {
        self.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::ToNegativeInfinity)
    }
}

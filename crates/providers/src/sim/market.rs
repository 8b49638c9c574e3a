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

use std::collections::HashSet;

use fastrand::Rng;
use jiff::civil::Date;
use model::settings::{Checker, Problem, Validate};
use model::{Market, Price, Provider, Qty, Side, Snapshot, Symbol, UtcTime};
use rust_decimal::Decimal;

use super::config::SimConfig;
use super::random::{normal, rng_for};

/// The KRX board a symbol is listed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    fn burst_at(&self, sym: usize, minute: i64) -> i8 {
        if self.burst_p <= 0.0 || minute < 0 {
            return 0;
        }
        let first = (minute - self.burst_max as i64 + 1).max(0);
        for j in (first..=minute).rev() {
            let mut r = rng_for(self.seed, self.day, sym as u64, j as u64, SALT_BURST);
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
    fn run_step(
        &self,
        sym: usize,
        c: &SymConst,
        s: &mut SymState,
        k: u32,
        cutoff: i64,
        mut emit: Option<&mut Emit<'_>>,
    ) -> bool {
        let g = &self.grid;
        let start = self.open_ms + k as i64 * self.step_ms;
        let minute = (k as i64 * self.step_ms) / 60_000;
        if minute != s.burst_minute {
            s.burst_minute = minute;
            s.burst_dir = self.burst_at(sym, minute);
        }
        let bursting = s.burst_dir != 0;
        let mut rng = rng_for(self.seed, self.day, sym as u64, k as u64, SALT_STEP);

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
            let mut r = rng_for(self.seed, self.day, sym as u64, k as u64, SALT_BOOK);
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
    fn advance(
        &self,
        sym: usize,
        c: &SymConst,
        s: &mut SymState,
        t: UtcTime,
        mut emit: Option<&mut Emit<'_>>,
    ) -> SymState {
        let target = self.complete_steps(t);
        while s.step < target {
            let k = s.step;
            self.run_step(sym, c, s, k, i64::MAX, emit.as_deref_mut());
        }
        let mut partial = *s;
        if s.step < self.n_steps && s.step == target {
            let k = s.step;
            if t.as_millis() > self.open_ms + k as i64 * self.step_ms {
                self.run_step(sym, c, &mut partial, k, t.as_millis(), emit);
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
        let day =
            (trading_day.year() as i64 * 10_000 + trading_day.month() as i64 * 100 + trading_day.day() as i64) as u64;
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

        let codes = make_codes(cfg);
        let mut listings = Vec::with_capacity(codes.len());
        let mut consts = Vec::with_capacity(codes.len());
        let mut names = HashSet::new();
        let g = &params.grid;
        let scale = g.scale;
        let units = |d: Decimal| to_units(d, scale);
        let (min_u, max_u) = (units(cfg.prev_close_min), units(cfg.prev_close_max));
        let median = units(cfg.prev_close_median) as f64;
        let limit = cfg.daily_limit;
        for (i, (code, board)) in codes.into_iter().enumerate() {
            // The universe (codes, names, price level) depends on the seed only; the day
            // moves each previous close a little.
            let mut r = rng_for(cfg.seed, 0, i as u64, 0, SALT_LISTING);
            let base = median * (cfg.prev_close_sigma * normal(&mut r)).exp();
            let head = NAME_HEADS[r.usize(0..NAME_HEADS.len())];
            let tail = NAME_TAILS[r.usize(0..NAME_TAILS.len())];
            let mut name = format!("{head}{tail}");
            let mut n = 1;
            while !names.insert(name.clone()) {
                n += 1;
                name = format!("{head}{tail}{n}");
            }
            let mut rd = rng_for(cfg.seed, day, i as u64, 0, SALT_DAY);
            let pc = base * (cfg.daily_volatility * normal(&mut rd)).exp();
            let pc = (pc.round() as i64).clamp(min_u, max_u);
            let pc = g.nearest(pc).clamp(g.ceil(min_u), g.floor(max_u)).max(g.tick(1));
            let pc_d = Decimal::new(pc, scale);
            let lo = g.ceil(units((pc_d * (Decimal::ONE - limit)).ceil_to(scale))).max(g.tick(1));
            let mut hi = g.floor(units((pc_d * (Decimal::ONE + limit)).floor_to(scale)));
            if g.up(g.up(lo)) > hi {
                hi = g.up(g.up(lo));
            }
            let gap = cfg.open_gap_sigma * normal(&mut rd);
            let open_px = g.nearest((pc as f64 * gap.exp()).round() as i64).clamp(lo, g.down(hi));
            let c = SymConst { prev_close: pc, open_px, lo, hi };
            let symbol = Symbol::new(&code).expect("generated codes are valid symbols");
            listings.push(Listing { symbol, name, board, prev_close: g.price(pc) });
            consts.push(c);
        }
        let cursors = consts
            .iter()
            .map(|c| {
                let s = params.initial(c);
                Cursors { feed: s, lead: s }
            })
            .collect();
        Ok(SimMarket { cfg: cfg.clone(), trading_day, params, listings, consts, cursors })
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
        since >= 0 && at < self.session_close() && self.params.burst_at(idx, since / 60_000) != 0
    }

    fn state_at(&mut self, idx: usize, at: UtcTime) -> SymState {
        let cur = &mut self.cursors[idx];
        let mut base = if cur.feed.step > cur.lead.step { cur.feed } else { cur.lead };
        let partial = self.params.advance(idx, &self.consts[idx], &mut base, at, None);
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
        self.params.advance(idx, &self.consts[idx], &mut base, to, Some(&mut emit));
        cur.feed = base;
        if base.step > cur.lead.step {
            cur.lead = base;
        }
    }
}

/// Unique 6-character codes, sorted: KOSPI `0dddd0`, KOSDAQ `1dddd0`/`2dddd0`, a few with a
/// letter (`0dddJ0`-style, or a trailing letter like `00088K`).
fn make_codes(cfg: &SimConfig) -> Vec<(String, Board)> {
    let n = cfg.symbols as usize;
    let n_kospi = ((n as f64 * cfg.kospi_share).round() as usize).min(n);
    let mut r = rng_for(cfg.seed, 0, 0, 0, SALT_UNIVERSE);
    let mut pick = |space: usize, take: usize| -> Vec<usize> {
        let mut all: Vec<usize> = (0..space).collect();
        for i in 0..take.min(space) {
            let j = r.usize(i..space);
            all.swap(i, j);
        }
        all.truncate(take);
        all
    };
    let kospi = pick(10_000, n_kospi);
    let kosdaq = pick(20_000, n - n_kospi);
    let mut seen = HashSet::with_capacity(n);
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
    for m in kospi {
        push(format!("0{m:04}0"), Board::Kospi, &mut r2);
    }
    for m in kosdaq {
        push(format!("{}{:04}0", 1 + m / 10_000, m % 10_000), Board::Kosdaq, &mut r2);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
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

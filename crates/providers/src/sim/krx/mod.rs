//! The seeded simulated KRX market: the exchange behind the KIS fake and the `sim` provider.
//!
//! Rooms: this module holds the public types and the queries (snapshot, day stats, event
//! feed); `listings` builds the day's listings; `steps` is the step function (trades,
//! quotes, book); `grid` the tick grid and price limits; `charts` the daily, 52-week and
//! minute charts.
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

mod charts;
mod grid;
mod listings;
mod steps;

use std::collections::HashMap;

use jiff::civil::Date;
use model::{Market, Price, Provider, Qty, Side, Snapshot, Symbol, UtcTime};
use rust_decimal::Decimal;

use super::config::SimConfig;
use charts::MinuteCursor;
use steps::{Cursors, Emit, Params, SymConst, SymState};

pub use charts::{DailyBar, MinuteBar, YearRange};

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

impl SimMarket {
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
}

/// The trading day as a number (`20260114`), the day coordinate of random draws.
fn day_key(d: Date) -> u64 {
    (d.year() as i64 * 10_000 + d.month() as i64 * 100 + d.day() as i64) as u64
}

//! The step function: trades, the book and the day's counters of one pair, step by step,
//! each step drawn from its own RNG keyed by (seed, day, pair, step).

use std::collections::VecDeque;

use model::{Price, Qty, Side, Symbol, UtcTime};
use rust_decimal::Decimal;

use super::{
    CryptoBook, CryptoEvent, CryptoMarket, CryptoSimConfig, CryptoTrade, DAY_MS, Grid, MinuteCandle, PairStats,
    SALT_BOOK, SALT_STEP, SCALE, UNIT, to_dec,
};
use crate::sim::random::{normal, rng_for};

#[derive(Debug, Clone)]
pub(super) struct PairState {
    pub(super) step: u32,
    pub(super) bid: i64,
    pub(super) last: i64,
    pub(super) open: i64,
    pub(super) high: i64,
    pub(super) low: i64,
    pub(super) traded: bool,
    pub(super) volume: i128,
    pub(super) value: i128,
    pub(super) ask_volume: i128,
    pub(super) bid_volume: i128,
    pub(super) seq: u64,
    pub(super) last_trade: Option<CryptoTrade>,
    pub(super) recent: VecDeque<CryptoTrade>,
    pub(super) candles: Vec<MinuteCandle>,
    /// Events since the last drain, collected while someone watches the pair.
    pub(super) pending: Vec<CryptoEvent>,
    pub(super) watched: bool,
}

#[derive(Debug, Clone)]
pub(super) struct PairConst {
    pub(super) symbol: Symbol,
    pub(super) prev_close: i64,
    pub(super) daily_volatility: f64,
    pub(super) sd_rel_step: f64,
    pub(super) rate_per_step: f64,
    pub(super) median_value: f64,
    /// Expected value traded per day (for the 24 h approximation).
    pub(super) expected_day_value: f64,
}

impl CryptoMarket {
    pub(super) fn stats_now(&self, idx: usize) -> PairStats {
        let s = &self.states[idx];
        let t = UtcTime::from_millis(self.day_start + s.step as i64 * self.step_ms);
        stats_of(s, &self.consts[idx], self.day_start, t)
    }

    pub(super) fn make_book(&self, idx: usize, k: u32, bid: i64) -> CryptoBook {
        make_book(&self.cfg, &self.grid, self.day_key, idx, &self.consts[idx].symbol, k, bid, self.book_time(k))
    }

    pub(super) fn book_time(&self, k: u32) -> UtcTime {
        UtcTime::from_millis(self.day_start + k as i64 * self.step_ms + self.step_ms - 1)
    }

    pub(super) fn run_step(&mut self, idx: usize, k: u32) {
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

pub(super) fn stats_of(s: &PairState, c: &PairConst, day_start: i64, time: UtcTime) -> PairStats {
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

//! The step function: trades, quotes and the book of one symbol, step by step, each step
//! drawn from its own RNG so a symbol's day is a pure function of (seed, day, symbol, step).

use fastrand::Rng;
use model::{Qty, Side, Symbol, UtcTime};

use super::grid::Grid;
use super::{SALT_BOOK, SALT_BURST, SALT_STEP, SimBook, SimEvent, SimTrade};
use crate::sim::random::{normal, rng_for};

/// Per-symbol constants for the day.
#[derive(Debug, Clone, Copy)]
pub(super) struct SymConst {
    /// The symbol's coordinate in every random draw: fixed by its identity (a generated
    /// symbol's rank among the generated codes, a real one's code), never by its position
    /// in the listing, so adding real listings does not reshuffle the generated paths.
    pub(super) key: u64,
    pub(super) prev_close: i64,
    pub(super) open_px: i64,
    pub(super) lo: i64,
    pub(super) hi: i64,
}

/// A symbol's state after `step` steps.
#[derive(Debug, Clone, Copy)]
pub(super) struct SymState {
    pub(super) step: u32,
    pub(super) bid: i64,
    pub(super) ask: i64,
    pub(super) last: i64,
    pub(super) open: i64,
    pub(super) high: i64,
    pub(super) low: i64,
    pub(super) traded: bool,
    pub(super) volume: u64,
    pub(super) value: i128,
    pub(super) seq: u64,
    /// Cache of the burst state for `burst_minute` (a pure function of the minute).
    pub(super) burst_minute: i64,
    pub(super) burst_dir: i8,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Cursors {
    /// The event feed's position.
    pub(super) feed: SymState,
    /// The latest state anyone reached.
    pub(super) lead: SymState,
}

/// Everything the step function needs, immutable for the day.
#[derive(Debug, Clone)]
pub(super) struct Params {
    pub(super) seed: u64,
    pub(super) day: u64,
    pub(super) grid: Grid,
    pub(super) open_ms: i64,
    pub(super) step_ms: i64,
    pub(super) n_steps: u32,
    pub(super) rate_per_step: f64,
    pub(super) sd_rel_step: f64,
    pub(super) burst_p: f64,
    pub(super) burst_min: u32,
    pub(super) burst_max: u32,
    pub(super) burst_volume: f64,
    pub(super) burst_volatility: f64,
    pub(super) burst_drift: f64,
    pub(super) levels: u8,
    pub(super) lot_max: u32,
    pub(super) size_skew: f64,
    pub(super) burst_size_skew: f64,
    pub(super) book_max: u32,
    pub(super) auction_max: u32,
}

pub(super) struct Emit<'a> {
    pub(super) from: i64,
    pub(super) symbol: &'a Symbol,
    pub(super) out: &'a mut Vec<SimEvent>,
}

impl Params {
    /// +1 / -1 for an up / down burst active in `minute`, 0 for none.
    pub(super) fn burst_at(&self, key: u64, minute: i64) -> i8 {
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
    pub(super) fn complete_steps(&self, t: UtcTime) -> u32 {
        let since = t.as_millis() - self.open_ms;
        if since < 0 {
            return 0;
        }
        ((since + 1) / self.step_ms).min(self.n_steps as i64) as u32
    }

    /// The volume a session trades on average outside bursts: trades per session times the
    /// mean lot (`1 + lot_max * E[u^skew]`, and `E[u^s] = 1/(s+1)` for uniform `u`), plus
    /// the mean opening-auction print.
    pub(super) fn expected_day_volume(&self) -> f64 {
        let mean_lot = 1.0 + self.lot_max as f64 / (self.size_skew + 1.0);
        let auction = (1.0 + self.auction_max as f64) / 2.0;
        self.rate_per_step * self.n_steps as f64 * mean_lot + auction
    }

    pub(super) fn trade_size(&self, rng: &mut Rng, bursting: bool) -> u64 {
        let skew = if bursting { self.burst_size_skew } else { self.size_skew };
        let extra = (self.lot_max as f64 * rng.f64().powf(skew)) as u64;
        (1 + extra).min(self.lot_max as u64)
    }

    pub(super) fn initial(&self, c: &SymConst) -> SymState {
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
    pub(super) fn quotes_at(&self, c: &SymConst, bid: i64) -> (i64, i64) {
        let g = &self.grid;
        let bid = bid.clamp(c.lo, g.down(c.hi).max(c.lo));
        (bid, g.up(bid).max(bid + 1))
    }

    pub(super) fn apply_trade(s: &mut SymState, price: i64, size: u64) {
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
    pub(super) fn run_step(
        &self,
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
    pub(super) fn advance(
        &self,
        c: &SymConst,
        s: &mut SymState,
        t: UtcTime,
        mut emit: Option<&mut Emit<'_>>,
    ) -> SymState {
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

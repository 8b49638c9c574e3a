//! Charts: past daily bars, the 52-week range and today's one-minute bars.

use jiff::civil::{Date, Weekday};
use model::{Price, Qty, UtcTime};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::grid::{limits, to_units};
use super::steps::{Emit, SymState};
use super::{SALT_HISTORY, SimEvent, SimMarket, day_key};
use crate::sim::random::{normal, rng_for};

impl SimMarket {
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
pub(super) struct MinuteCursor {
    pub(super) state: SymState,
    /// Minutes with trades in the committed steps, in order.
    pub(super) bars: Vec<RawMinute>,
}

/// A minute in grid units.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawMinute {
    pub(super) minute: i64,
    pub(super) open: i64,
    pub(super) high: i64,
    pub(super) low: i64,
    pub(super) close: i64,
    pub(super) volume: u64,
    pub(super) value: i128,
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

/// The `n` weekdays before `day` that are not in `holidays`, newest first.
pub(super) fn trading_days_before(day: Date, n: usize, holidays: &[Date]) -> Vec<Date> {
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

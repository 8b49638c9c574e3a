//! History: past days' one-minute and day candles, drawn without a tick-by-tick run.

use jiff::civil::Date;
use model::{Price, Qty, UtcTime};

use super::{
    CryptoMarket, DAY_MS, MINUTE_MS, MinuteCandle, SALT_PAST_MINUTES, SALT_PAST_RETURN, UNIT, day_key, to_dec,
};
use crate::sim::random::{normal, rng_for};

impl CryptoMarket {
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
    pub(super) fn past_return(&self, idx: usize, day: Date) -> f64 {
        let mut r = rng_for(self.cfg.seed, day_key(day), idx as u64, 0, SALT_PAST_RETURN);
        self.consts[idx].daily_volatility * normal(&mut r)
    }
}

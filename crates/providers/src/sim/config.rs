//! The simulated market's configuration. Every number the simulation uses comes from here;
//! `SimConfig::krx_default()` holds realistic KRX values and the YAML config restates them.

use jiff::civil::time;
use model::settings::{Checker, Interval, Validate, Window};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Largest decimal scale a price bound or tick may have (prices are simulated as integers
/// of `10^-scale`).
pub const MAX_PRICE_SCALE: u32 = 8;

/// One row of the tick-size table: prices below `below` (or all remaining prices when
/// `None`, which only the last row may be) move in steps of `tick`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TickBand {
    #[serde(default)]
    pub below: Option<Decimal>,
    pub tick: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Seeds everything; with the trading day it fixes the whole market.
    pub seed: u64,
    /// Number of listed symbols.
    pub symbols: u32,
    /// The simulation grid: prices, trades and books advance one step at a time.
    pub step: Interval,
    /// Regular session in Seoul wall-clock time; trades happen only inside it.
    pub session: Window,
    /// A host stall (the process frozen) longer than this much wall time does not advance
    /// the simulated market: at 60x, one frozen second would otherwise be a minute of market
    /// time with nothing received, an outage the simulated market never had.
    pub clock_stall_grace: Interval,

    /// Median previous close; previous closes are log-normal around it.
    pub prev_close_median: Decimal,
    /// Standard deviation of the log of the previous close.
    pub prev_close_sigma: f64,
    pub prev_close_min: Decimal,
    pub prev_close_max: Decimal,
    /// Daily price limit as a fraction of the previous close (KRX: 0.30).
    pub daily_limit: Decimal,

    /// Fraction of symbols listed on KOSPI; the rest are KOSDAQ.
    pub kospi_share: f64,
    /// Fraction of codes that carry a letter, like KRX's `0000J0`.
    pub letter_code_share: f64,

    /// Mean trade rate per symbol outside bursts.
    pub trades_per_second: f64,
    /// Standard deviation of the day's return from price moves (e.g. 0.02).
    pub daily_volatility: f64,
    /// Standard deviation of the opening gap as a fraction of the previous close.
    pub open_gap_sigma: f64,

    /// Chance per symbol and minute that a burst starts.
    pub burst_probability_per_minute: f64,
    pub burst_minutes_min: u32,
    pub burst_minutes_max: u32,
    /// Trade-rate multiplier during a burst.
    pub burst_volume_multiplier: f64,
    /// Volatility multiplier during a burst.
    pub burst_volatility_multiplier: f64,
    /// Drift during a burst in units of the (burst) step standard deviation; each burst
    /// picks up or down. Also tilts the buy/sell mix the same way.
    pub burst_drift: f64,

    /// Order-book depth on each side.
    pub quote_levels: u8,
    /// Largest size of one trade.
    pub lot_size_max: u32,
    /// Skew of trade sizes toward small ones: size = 1 + lot_size_max * u^skew.
    pub size_skew: f64,
    /// The same skew during bursts (smaller = heavier trades).
    pub burst_size_skew: f64,
    /// Largest resting size at one book level.
    pub book_size_max: u32,
    /// Largest size of the opening-auction print.
    pub open_auction_size_max: u32,

    /// Tick-size table, ascending by `below`, last row unbounded.
    pub tick_sizes: Vec<TickBand>,
}

fn d(v: i64) -> Decimal {
    Decimal::from(v)
}

impl SimConfig {
    /// Realistic KRX values: 2000 symbols, 1 s grid, 09:00–15:30, the tick table in force
    /// since 2023-01-25.
    pub fn krx_default() -> Self {
        SimConfig {
            seed: 1,
            symbols: 2000,
            step: Interval::from_millis(1000),
            session: Window { start: time(9, 0, 0, 0), end: time(15, 30, 0, 0) },
            clock_stall_grace: Interval::from_millis(50),
            prev_close_median: d(4000),
            prev_close_sigma: 1.2,
            prev_close_min: d(500),
            prev_close_max: d(1_000_000),
            daily_limit: Decimal::new(30, 2),
            kospi_share: 0.35,
            letter_code_share: 0.01,
            trades_per_second: 0.3,
            daily_volatility: 0.02,
            open_gap_sigma: 0.005,
            burst_probability_per_minute: 0.0015,
            burst_minutes_min: 3,
            burst_minutes_max: 10,
            burst_volume_multiplier: 8.0,
            burst_volatility_multiplier: 4.0,
            burst_drift: 0.2,
            quote_levels: 5,
            lot_size_max: 500,
            size_skew: 3.0,
            burst_size_skew: 1.5,
            book_size_max: 5000,
            open_auction_size_max: 20_000,
            tick_sizes: krx_tick_table(),
        }
    }
}

/// The KRX tick-size table (2023-01-25 onward), all boards.
pub fn krx_tick_table() -> Vec<TickBand> {
    [
        (Some(2_000), 1),
        (Some(5_000), 5),
        (Some(20_000), 10),
        (Some(50_000), 50),
        (Some(200_000), 100),
        (Some(500_000), 500),
        (None, 1_000),
    ]
    .into_iter()
    .map(|(below, tick)| TickBand { below: below.map(d), tick: d(tick) })
    .collect()
}

impl Validate for SimConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("symbols", self.symbols, 1, 10_000);
        c.range("step", self.step, Interval::from_millis(10), Interval::from_millis(60_000));
        c.window("session", &self.session);
        // Its watcher looks every quarter of it, so below ~20 ms it would mostly spin.
        c.range("clock_stall_grace", self.clock_stall_grace, Interval::from_millis(20), Interval::from_millis(10_000));
        if self.session.start < self.session.end {
            let len = self.session.end.duration_since(self.session.start);
            let len_ms = len.as_millis();
            c.check(
                len_ms >= self.step.as_millis() as i128,
                "session",
                format_args!("shorter than one step ({})", self.step),
            );
        }

        let pos = |c: &mut Checker, name: &str, v: Decimal| {
            c.check(v > Decimal::ZERO, name, format_args!("{v} must be positive"));
            c.check(
                v.normalize().scale() <= MAX_PRICE_SCALE,
                name,
                format_args!("{v} has more than {MAX_PRICE_SCALE} decimal places"),
            );
        };
        pos(c, "prev_close_min", self.prev_close_min);
        pos(c, "prev_close_max", self.prev_close_max);
        pos(c, "prev_close_median", self.prev_close_median);
        c.range("prev_close_max", self.prev_close_max, self.prev_close_min, Decimal::from(1_000_000_000i64));
        c.range("prev_close_median", self.prev_close_median, self.prev_close_min, self.prev_close_max);
        c.range("prev_close_sigma", self.prev_close_sigma, 0.0, 5.0);
        c.range("daily_limit", self.daily_limit, Decimal::new(1, 2), Decimal::new(90, 2));
        c.range("kospi_share", self.kospi_share, 0.0, 1.0);
        c.range("letter_code_share", self.letter_code_share, 0.0, 1.0);
        c.range("trades_per_second", self.trades_per_second, 0.0, 1_000.0);
        c.range("daily_volatility", self.daily_volatility, 0.0, 1.0);
        c.range("open_gap_sigma", self.open_gap_sigma, 0.0, 0.3);
        c.range("burst_probability_per_minute", self.burst_probability_per_minute, 0.0, 1.0);
        c.range("burst_minutes_min", self.burst_minutes_min, 1, 240);
        c.range("burst_minutes_max", self.burst_minutes_max, self.burst_minutes_min.max(1), 240);
        c.range("burst_volume_multiplier", self.burst_volume_multiplier, 1.0, 1_000.0);
        c.range("burst_volatility_multiplier", self.burst_volatility_multiplier, 1.0, 100.0);
        c.range("burst_drift", self.burst_drift, 0.0, 1.0);
        c.range("quote_levels", self.quote_levels, 1, 20);
        c.range("lot_size_max", self.lot_size_max, 1, 10_000_000);
        c.range("size_skew", self.size_skew, 0.1, 20.0);
        c.range("burst_size_skew", self.burst_size_skew, 0.1, 20.0);
        c.range("book_size_max", self.book_size_max, 1, 100_000_000);
        c.range("open_auction_size_max", self.open_auction_size_max, 1, 100_000_000);
        check_tick_table(c, &self.tick_sizes);
    }
}

/// Ascending, positive, only the last row unbounded, and every boundary a multiple of the
/// ticks on both sides so stepping one tick across it stays on the grid.
fn check_tick_table(c: &mut Checker, bands: &[TickBand]) {
    const KEY: &str = "tick_sizes";
    c.check(!bands.is_empty(), KEY, "must have at least one row");
    let mut prev: Option<Decimal> = None;
    for (i, b) in bands.iter().enumerate() {
        let last = i + 1 == bands.len();
        c.check(b.tick > Decimal::ZERO, KEY, format_args!("row {i}: tick {} must be positive", b.tick));
        c.check(
            b.tick.normalize().scale() <= MAX_PRICE_SCALE,
            KEY,
            format_args!("row {i}: tick {} has too many decimal places", b.tick),
        );
        match b.below {
            None => c.check(last, KEY, format_args!("row {i}: only the last row may omit `below`")),
            Some(below) => {
                c.check(!last, KEY, "the last row must omit `below` (it covers all higher prices)");
                c.check(
                    below > prev.unwrap_or(Decimal::ZERO),
                    KEY,
                    format_args!("row {i}: below {below} must be positive and ascending"),
                );
                let multiple = |t: Decimal| t > Decimal::ZERO && (below % t).is_zero();
                c.check(
                    multiple(b.tick),
                    KEY,
                    format_args!("row {i}: below {below} is not a multiple of tick {}", b.tick),
                );
                if let Some(next) = bands.get(i + 1) {
                    c.check(
                        multiple(next.tick),
                        KEY,
                        format_args!("row {i}: below {below} is not a multiple of the next tick {}", next.tick),
                    );
                }
                prev = Some(below);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &SimConfig) -> Vec<String> {
        let mut c = Checker::default();
        cfg.validate(&mut c);
        c.problems.iter().map(|p| p.key.clone()).collect()
    }

    #[test]
    fn default_is_valid() {
        assert_eq!(problems(&SimConfig::krx_default()), Vec::<String>::new());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let mut cfg = SimConfig::krx_default();
        cfg.symbols = 0;
        cfg.kospi_share = 1.5;
        cfg.trades_per_second = f64::NAN;
        cfg.burst_minutes_max = 1;
        cfg.prev_close_min = Decimal::ZERO;
        let keys = problems(&cfg);
        for k in ["symbols", "kospi_share", "trades_per_second", "burst_minutes_max", "prev_close_min"] {
            assert!(keys.iter().any(|x| x == k), "{k} not reported in {keys:?}");
        }
    }

    #[test]
    fn tick_table_checks() {
        let mut cfg = SimConfig::krx_default();
        cfg.tick_sizes.swap(1, 2);
        assert!(problems(&cfg).contains(&"tick_sizes".to_string()));
        let mut cfg = SimConfig::krx_default();
        cfg.tick_sizes[0].below = Some(Decimal::from(2_003));
        assert!(problems(&cfg).contains(&"tick_sizes".to_string()));
        let mut cfg = SimConfig::krx_default();
        cfg.tick_sizes.pop();
        assert!(problems(&cfg).contains(&"tick_sizes".to_string()));
        let mut cfg = SimConfig::krx_default();
        cfg.tick_sizes[3].tick = Decimal::ZERO;
        assert!(problems(&cfg).contains(&"tick_sizes".to_string()));
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let cfg = SimConfig::krx_default();
        let text = serde_json::to_string(&cfg).unwrap();
        let back: SimConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["bogus"] = serde_json::json!(1);
        assert!(serde_json::from_value::<SimConfig>(v).is_err());
    }
}

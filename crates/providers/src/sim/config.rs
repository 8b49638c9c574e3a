//! The simulated market's configuration. Every number the simulation uses comes from here;
//! `SimConfig::krx_default()` holds realistic KRX values and the YAML config restates them.

use jiff::civil::time;
use model::settings::{Checker, Interval, Validate, Window};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::krx::Board;

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

/// A real KRX listing the sim lists by its real code and name, so a client's first
/// request (a Samsung Electronics quote) finds what it expects. The price path is simulated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LargeCap {
    /// The 6-character KRX short code (`005930`).
    pub code: String,
    /// The Korean name as the master files spell it (`삼성전자`).
    pub name: String,
    pub board: Board,
    /// Reference price level; each day's previous close varies around it.
    pub price: Decimal,
    /// Listed shares (for `lstn_stcn` and the market cap); approximate.
    pub shares: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Seeds everything; with the trading day it fixes the whole market.
    pub seed: u64,
    /// Number of generated symbols; the `large_caps` are listed on top of them.
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

    /// Real large caps listed beside the `symbols` generated ones; a generated symbol never
    /// takes one of their codes or names.
    pub large_caps: Vec<LargeCap>,
    /// Listed shares of a generated symbol: log-normal around this median.
    pub listed_shares_median: u64,
    pub listed_shares_sigma: f64,
    /// Trading days of daily bars before the trading day (daily charts, 52-week range).
    pub history_days: u32,
    /// Log sd of a past day's volume around the volume the simulated session trades on
    /// average.
    pub history_volume_sigma: f64,
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
            large_caps: krx_large_caps(),
            listed_shares_median: 20_000_000,
            listed_shares_sigma: 1.0,
            history_days: 300,
            history_volume_sigma: 0.4,
        }
    }
}

/// The KOSPI and KOSDAQ large caps by market value (2025), with price levels and share
/// counts of that time, rounded: plausible numbers, not quotes.
pub fn krx_large_caps() -> Vec<LargeCap> {
    const KOSPI: &[(&str, &str, i64, u64)] = &[
        ("005930", "삼성전자", 100_000, 5_919_637_922),
        ("000660", "SK하이닉스", 580_000, 728_002_365),
        ("373220", "LG에너지솔루션", 400_000, 234_000_000),
        ("207940", "삼성바이오로직스", 1_100_000, 71_174_000),
        ("005380", "현대차", 250_000, 204_757_766),
        ("005935", "삼성전자우", 80_000, 815_974_664),
        ("012450", "한화에어로스페이스", 900_000, 51_600_000),
        ("105560", "KB금융", 115_000, 381_000_000),
        ("000270", "기아", 110_000, 393_000_000),
        ("034020", "두산에너빌리티", 75_000, 640_561_146),
        ("068270", "셀트리온", 180_000, 217_000_000),
        ("329180", "HD현대중공업", 550_000, 88_773_116),
        ("035420", "NAVER", 250_000, 158_437_008),
        ("055550", "신한지주", 65_000, 490_000_000),
        ("012330", "현대모비스", 300_000, 90_000_000),
        ("028260", "삼성물산", 200_000, 170_000_000),
        ("042660", "한화오션", 110_000, 306_413_394),
        ("009540", "HD한국조선해양", 400_000, 70_773_116),
        ("032830", "삼성생명", 130_000, 200_000_000),
        ("011200", "HMM", 21_000, 1_025_039_496),
        ("086790", "하나금융지주", 85_000, 285_000_000),
        ("035720", "카카오", 60_000, 442_000_000),
        ("006400", "삼성SDI", 250_000, 80_000_000),
        ("005490", "POSCO홀딩스", 300_000, 84_571_230),
        ("064350", "현대로템", 200_000, 109_142_293),
        ("015760", "한국전력", 40_000, 641_964_077),
        ("138040", "메리츠금융지주", 110_000, 190_000_000),
        ("010130", "고려아연", 900_000, 20_000_000),
        ("402340", "SK스퀘어", 250_000, 132_000_000),
        ("000810", "삼성화재", 450_000, 47_000_000),
        ("034730", "SK", 220_000, 72_000_000),
        ("051910", "LG화학", 300_000, 70_592_343),
        ("010140", "삼성중공업", 20_000, 880_000_000),
        ("267260", "HD현대일렉트릭", 500_000, 36_047_135),
        ("316140", "우리금융지주", 25_000, 742_000_000),
        ("033780", "KT&G", 140_000, 120_000_000),
        ("009150", "삼성전기", 200_000, 74_693_696),
        ("066570", "LG전자", 80_000, 163_647_814),
        ("096770", "SK이노베이션", 110_000, 150_000_000),
        ("003550", "LG", 80_000, 157_000_000),
        ("017670", "SK텔레콤", 55_000, 215_000_000),
        ("030200", "KT", 55_000, 250_000_000),
        ("018260", "삼성에스디에스", 170_000, 77_377_800),
        ("047810", "한국항공우주", 90_000, 97_475_889),
        ("024110", "기업은행", 20_000, 797_000_000),
        ("086280", "현대글로비스", 150_000, 75_000_000),
        ("323410", "카카오뱅크", 25_000, 477_000_000),
        ("259960", "크래프톤", 300_000, 48_000_000),
        ("010950", "S-Oil", 70_000, 112_582_792),
        ("003670", "포스코퓨처엠", 150_000, 77_463_220),
        ("352820", "하이브", 250_000, 41_650_000),
        ("000100", "유한양행", 110_000, 80_000_000),
    ];
    const KOSDAQ: &[(&str, &str, i64, u64)] = &[
        ("247540", "에코프로비엠", 130_000, 97_800_000),
        ("086520", "에코프로", 70_000, 133_000_000),
        ("196170", "알테오젠", 450_000, 53_000_000),
        ("028300", "HLB", 50_000, 131_000_000),
        ("000250", "삼천당제약", 200_000, 23_000_000),
        ("277810", "레인보우로보틱스", 300_000, 19_400_000),
        ("141080", "리가켐바이오", 150_000, 36_000_000),
        ("298380", "에이비엘바이오", 100_000, 54_000_000),
        ("145020", "휴젤", 300_000, 12_000_000),
        ("214150", "클래시스", 50_000, 65_000_000),
        ("263750", "펄어비스", 35_000, 64_000_000),
        ("293490", "카카오게임즈", 18_000, 83_000_000),
        ("035900", "JYP Ent.", 70_000, 35_500_000),
        ("041510", "에스엠", 100_000, 24_000_000),
        ("240810", "원익IPS", 35_000, 49_000_000),
        ("357780", "솔브레인", 250_000, 7_780_000),
        ("039030", "이오테크닉스", 150_000, 12_300_000),
    ];
    let row = |board: Board| {
        move |&(code, name, price, shares): &(&str, &str, i64, u64)| LargeCap {
            code: code.into(),
            name: name.into(),
            board,
            price: d(price),
            shares,
        }
    };
    KOSPI.iter().map(row(Board::Kospi)).chain(KOSDAQ.iter().map(row(Board::Kosdaq))).collect()
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
        check_large_caps(c, &self.large_caps);
        c.range("listed_shares_median", self.listed_shares_median, 1, 100_000_000_000);
        c.range("listed_shares_sigma", self.listed_shares_sigma, 0.0, 5.0);
        c.range("history_days", self.history_days, 1, 5_000);
        c.range("history_volume_sigma", self.history_volume_sigma, 0.0, 4.0);
    }
}

/// Real KRX codes (6 characters of `[0-9A-Z]`), each code and name once, positive prices
/// the price grid can hold.
fn check_large_caps(c: &mut Checker, caps: &[LargeCap]) {
    const KEY: &str = "large_caps";
    let mut codes = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for (i, cap) in caps.iter().enumerate() {
        let code_ok = cap.code.len() == 6 && cap.code.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
        c.check(code_ok, KEY, format_args!("row {i}: code {:?} is not 6 characters of 0-9/A-Z", cap.code));
        c.check(codes.insert(cap.code.as_str()), KEY, format_args!("row {i}: code {} listed twice", cap.code));
        c.check(!cap.name.trim().is_empty(), KEY, format_args!("row {i}: empty name"));
        c.check(names.insert(cap.name.as_str()), KEY, format_args!("row {i}: name {} listed twice", cap.name));
        c.check(
            cap.price > Decimal::ZERO && cap.price <= Decimal::from(1_000_000_000i64),
            KEY,
            format_args!("row {i}: price {} must be in (0, 1e9]", cap.price),
        );
        c.check(
            cap.price.normalize().scale() <= MAX_PRICE_SCALE,
            KEY,
            format_args!("row {i}: price {} has more than {MAX_PRICE_SCALE} decimal places", cap.price),
        );
        c.check(cap.shares > 0, KEY, format_args!("row {i}: shares must be positive"));
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

//! The crypto market's configuration: the listed pairs, Upbit's KRW tick table and the
//! numbers the simulation draws from.

use model::Symbol;
use model::settings::{Checker, Interval, Validate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{DAY_MS, SCALE};
use crate::sim::TickBand;

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

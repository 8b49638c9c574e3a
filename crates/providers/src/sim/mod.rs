//! A deterministic, seeded simulated Korean stock market: the built-in exchange that
//! `collect` records when no broker credentials are configured.
//!
//! - [`SimConfig`]: every number the simulation uses ([`SimConfig::krx_default`] for
//!   realistic KRX values).
//! - [`SimMarket`]: listings, lazily evolved per-symbol paths, snapshots and event feeds for
//!   one trading day; a pure function of (seed, trading day).
//! - [`wire`]: the sim's compact JSON frames and their parser.

mod config;
pub mod krx;
pub(crate) mod random;
pub mod wire;

#[cfg(test)]
mod tests;

pub use config::{LargeCap, MAX_PRICE_SCALE, SimConfig, TickBand, krx_large_caps, krx_tick_table};
pub use krx::{Board, DailyBar, DayStats, Listing, MinuteBar, SimBook, SimEvent, SimMarket, SimTrade, YearRange};

//! The simulated exchanges, apart from the adapters and the fake servers that speak their
//! venues' protocols over them (`kis::fake`, `upbit::fake`).
//!
//! - [`krx`]: a deterministic, seeded Korean stock market ([`SimMarket`]): the built-in
//!   exchange that `collect` records when no broker credentials are configured, served by
//!   the KIS fake; listings, lazily evolved per-symbol paths, snapshots, event feeds and
//!   charts for one trading day, a pure function of (seed, trading day).
//! - [`crypto`]: a deterministic 24-hour crypto market of `KRW-…` pairs, served by the
//!   Upbit fake.
//! - [`SimConfig`]: every number the KRX simulation uses ([`SimConfig::krx_default`] for
//!   realistic KRX values).
//! - [`wire`]: the sim's compact JSON frames and their parser.

mod config;
pub mod crypto;
pub mod krx;
pub(crate) mod random;
pub mod wire;

#[cfg(test)]
mod tests;

pub use config::{LargeCap, MAX_PRICE_SCALE, SimConfig, TickBand, krx_large_caps, krx_tick_table};
pub use krx::{Board, DailyBar, DayStats, Listing, MinuteBar, SimBook, SimEvent, SimMarket, SimTrade, YearRange};

//! Upbit (업비트) quotation API adapter and its protocol-faithful fake server
//! (the wire facts, and the `spec §x` sections cited in this module, are in
//! `docs/providers.md`, "Upbit protocol").
//!
//! - [`UpbitConfig`]: the adapter's config section (REST/WS endpoints, rate limits, keep-alive).
//! - [`wire`]: parsing of Upbit frames (DEFAULT and SIMPLE WS messages, REST bodies) into
//!   exact decimals straight from the number text, and the encoders the fake uses.
//! - [`UpbitProvider`]: the `MarketProvider` over REST + WebSocket.
//! - [`fake`]: REST (axum) and WebSocket servers on loopback speaking Upbit's protocol,
//!   driven by the crypto sim ([`crate::sim::crypto`]), with fault injection and request counters.

mod adapter;
mod config;
mod entry;
pub mod fake;
mod rest;
mod stream;
pub mod wire;

pub use adapter::UpbitProvider;
pub use config::{UpbitConfig, WsFormat};
pub use entry::Upbit;
pub use stream::SubState;
pub use wire::{MarketInfo, Ticker};

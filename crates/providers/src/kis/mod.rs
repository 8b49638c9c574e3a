//! KIS (한국투자증권) Open API adapter and its protocol-faithful fake server.
//!
//! - [`KisProvider`]: REST quotations, symbol master files and the realtime WebSocket
//!   (`H0STCNT0` trades, `H0STASP0` books) behind `MarketProvider`.
//! - [`wire`]: the frame parser (pure; width derived from each frame).
//! - [`master`]: the fixed-width `.mst` symbol master files.
//! - [`fake`]: a loopback server speaking the same protocol, driven by the sim market, with
//!   fault injection.
//!
//! The protocol facts, and the `spec §x` sections cited in this module, are in
//! `docs/providers.md` ("KIS protocol").

mod adapter;
mod config;
mod entry;
pub mod fake;
pub mod master;
mod rest;
mod stream;
mod token_cache;
pub mod wire;

pub use adapter::{KisProvider, parse_frame};
pub use config::{ENV_APP_KEY, ENV_APP_SECRET, KisConfig, KisCredentials, KisEnv, PerEnv};
pub use entry::{Kis, KisFake};
pub use rest::{RankRow, endpoint};
pub use stream::{RegState, Registration, request_json, wanted};

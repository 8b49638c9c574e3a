#![forbid(unsafe_code)]
pub mod erased;
pub mod kis;
pub mod limits;
pub mod module;
pub mod provider;
pub mod ratelimit;
pub mod registry;
pub mod sim;
pub mod transport;
pub mod upbit;
mod ws_session;

pub use erased::AnyProvider;
pub use provider::{MarketProvider, ProviderError, SlotBudget, UniverseEntry, VolumeRanking, evidence};

use model::{MarketEvent, RawFrame, UtcTime};

/// Normalized events of one frame, each with its exchange event time.
pub type Parsed = Vec<(UtcTime, MarketEvent)>;

/// A provider's frame → model mapping, usable without a connection (replay, ETL, benches).
#[derive(Clone, Copy)]
pub struct Mapper {
    pub version: &'static str,
    pub market: model::Market,
    pub parse: fn(&RawFrame) -> Result<Parsed, ProviderError>,
    /// The symbols a sent stream message subscribes (empty for anything else); `None` for a
    /// source that streams without subscribing (the simulator), whose records all pass.
    pub subscribes: Option<fn(&str) -> Vec<model::Symbol>>,
}

pub use registry::mapper;

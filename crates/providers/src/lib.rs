#![forbid(unsafe_code)]
pub mod kis;
pub mod limits;
pub mod provider;
pub mod ratelimit;
pub mod sim;
pub mod transport;
pub mod upbit;
mod ws_session;

pub use provider::{MarketProvider, ProviderError, SlotBudget, UniverseEntry, VolumeRanking, evidence};

use model::{MarketEvent, Provider, RawFrame, UtcTime};

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

fn parse_sim(frame: &RawFrame) -> Result<Parsed, ProviderError> {
    if !matches!(frame.kind, model::RawFrameKind::Ws | model::RawFrameKind::Rest) {
        return Ok(Vec::new());
    }
    sim::wire::parse(&frame.frame).map(|e| vec![e]).map_err(|e| ProviderError::Malformed {
        provider: Provider::Sim,
        why: e.problem.to_string(),
        frame: evidence(&frame.frame),
    })
}

/// The current mapper of `provider`, if this build has one.
pub fn mapper(provider: Provider) -> Option<Mapper> {
    match provider {
        Provider::Kis => Some(Mapper {
            version: kis::wire::MAPPER_VERSION,
            market: model::Market::KrStocks,
            parse: kis::parse_frame,
            subscribes: Some(kis::wire::subscribed_codes),
        }),
        Provider::Upbit => Some(Mapper {
            version: upbit::wire::MAPPER_VERSION,
            market: model::Market::Crypto,
            parse: upbit::wire::parse,
            subscribes: Some(upbit::wire::subscribed_codes),
        }),
        Provider::Sim => Some(Mapper {
            version: sim::wire::MAPPER_VERSION,
            market: model::Market::KrStocks,
            parse: parse_sim,
            subscribes: None,
        }),
        Provider::Kiwoom | Provider::Alpaca => None,
    }
}

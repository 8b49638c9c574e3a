//! The narrow seam between a provider adapter and the engine (barter's split): a pure frame
//! parser, REST calls that return raw frames, and a stream task that pushes raw frames.
//! The engine archives every raw frame before it calls `parse`, so nothing a provider sent
//! is lost even when our parser is wrong.

use std::future::Future;

use jiff::civil::Date;
use tokio::sync::{mpsc, watch};

use model::{Market, MarketEvent, Price, Provider, Qty, RawFrame, Symbol, UtcTime};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The frame could not be understood; `frame` is the evidence (truncated).
    #[error("malformed {provider} frame ({why}): {frame}")]
    Malformed { provider: Provider, why: String, frame: String },
    #[error("{provider} request {what} failed: {why}")]
    Request { provider: Provider, what: String, why: String },
    /// The stream ended without being asked to: always a failure to report and retry.
    #[error("{provider} stream ended unexpectedly: {why}")]
    StreamEnded { provider: Provider, why: String },
    #[error("unknown symbol {0}")]
    UnknownSymbol(Symbol),
}

/// Longest piece of an offending frame quoted in an error; the full frame is in the raw archive.
pub const EVIDENCE_MAX: usize = 512;

pub fn evidence(frame: &str) -> String {
    if frame.len() <= EVIDENCE_MAX {
        return frame.to_string();
    }
    let mut end = EVIDENCE_MAX;
    while !frame.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &frame[..end])
}

/// One instrument of the day's universe as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UniverseEntry {
    pub symbol: Symbol,
    pub name: String,
    pub prev_close: Price,
    /// Traded value over the last 24 hours in the quote currency, where the provider
    /// reports it (crypto): the crypto universe filter reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traded_value_24h: Option<Price>,
}

/// A provider's volume ranking (symbols by day volume, best first) and the response it was
/// read from, which the engine archives raw like every other frame.
#[derive(Debug, Clone, Default)]
pub struct VolumeRanking {
    pub raw: Option<RawFrame>,
    pub rows: Vec<(Symbol, Qty)>,
}

pub trait MarketProvider: Send + Sync + 'static {
    fn id(&self) -> Provider;
    fn market(&self) -> Market;
    /// Version of the frame → model mapping; every derived record carries it so a future
    /// format change never silently rewrites history on replay.
    fn mapper_version(&self) -> &'static str;

    /// Parses one raw frame into normalized events with their exchange event times.
    fn parse(&self, frame: &RawFrame) -> Result<Vec<(UtcTime, MarketEvent)>, ProviderError>;

    /// Every listed instrument for `day`, with its previous close.
    fn universe(&self, day: Date) -> impl Future<Output = Result<Vec<UniverseEntry>, ProviderError>> + Send;

    /// A REST snapshot of one symbol, as the raw response frame.
    fn snapshot(&self, symbol: &Symbol) -> impl Future<Output = Result<RawFrame, ProviderError>> + Send;

    /// Streams frames for the symbols in `subscriptions` (changes take effect as they
    /// arrive) into `out` until `stop` turns true. `out` is bounded: a full channel blocks
    /// the stream, which is the pipeline's back-pressure policy for market data.
    /// Proves the credentials work (KIS: an access token and a WebSocket approval key), so a
    /// wrong key fails at start-up rather than when the market opens.
    fn check_credentials(&self) -> impl Future<Output = Result<(), ProviderError>> + Send {
        std::future::ready(Ok(()))
    }

    /// Degrade mode (seed 000 §3.3): from the next session on, subscribe to trades only,
    /// the lightest feed that still shows the market moving. Providers without a lighter
    /// feed ignore it.
    fn set_trades_only(&self, _on: bool) {}

    /// The provider's volume ranking (symbols by day volume, best first), where it has one:
    /// one of the trigger engine's inputs.
    fn volume_ranking(&self) -> impl Future<Output = Result<VolumeRanking, ProviderError>> + Send {
        std::future::ready(Ok(VolumeRanking::default()))
    }

    fn stream(
        &self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

//! The narrow seam between a provider adapter and the engine (barter's split): a pure frame
//! parser, REST calls that return raw frames, and a stream task that pushes raw frames.
//! The engine archives every raw frame before it calls `parse`, so nothing a provider sent
//! is lost even when our parser is wrong.

use std::future::Future;

use jiff::civil::Date;
use tokio::sync::{mpsc, watch};

use model::{Market, MarketEvent, Provider, Qty, RawFrame, Symbol, UtcTime};

use crate::Mapper;

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

pub use model::UniverseEntry;

/// A provider's volume ranking (symbols by day volume, best first) and the response it was
/// read from, which the engine archives raw like every other frame.
#[derive(Debug, Clone, Default)]
pub struct VolumeRanking {
    pub raw: Option<RawFrame>,
    pub rows: Vec<(Symbol, Qty)>,
}

/// What a provider's stream can carry for Track B, which the slot count is planned against
/// at start-up (seed 001 §2.4: 41 symbols guaranteed at once). A slot the stream cannot
/// register would be sampled as empty all day; a configuration that asks for more than
/// fits is refused before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotBudget {
    /// Registrations one stream session holds (KIS: 41 per approval key); `None`: the
    /// venue sets no limit a slot count could reach (Upbit lists codes in one request).
    pub capacity: Option<u32>,
    /// Registrations one slot costs (KIS: 1, `H0STCNT0`, which carries level-1 quotes).
    pub per_slot: u32,
    /// Registrations spent beside the slots (KIS: `H0STASP0` for `orderbook_slots` slots).
    pub reserved: u32,
    /// How the reserve is configured, for the refusal message (`orderbook_slots: 5`).
    pub reserved_by: &'static str,
}

impl SlotBudget {
    pub const UNLIMITED: SlotBudget = SlotBudget { capacity: None, per_slot: 1, reserved: 0, reserved_by: "" };

    /// Slots the budget holds, if it is limited.
    pub fn slots_that_fit(&self) -> Option<u32> {
        self.capacity.map(|c| c.saturating_sub(self.reserved) / self.per_slot.max(1))
    }

    /// Refuses `slots` if they do not fit, saying what does.
    pub fn check(&self, provider: Provider, slots: usize) -> Result<(), String> {
        let (Some(capacity), Some(fit)) = (self.capacity, self.slots_that_fit()) else { return Ok(()) };
        if slots as u64 <= fit as u64 {
            return Ok(());
        }
        let need = slots as u64 * self.per_slot as u64 + self.reserved as u64;
        let reserve = if self.reserved > 0 {
            format!(" + {} for {} = {need}", self.reserved, self.reserved_by)
        } else {
            String::new()
        };
        Err(format!(
            "tracks.scalp.slots {slots} does not fit {provider}'s stream: {slots} slot(s) × {} registration(s){reserve}, \
             but one session holds {capacity}; at most {fit} slot(s) fit{}",
            self.per_slot,
            if self.reserved > 0 { format!(" with {}", self.reserved_by) } else { String::new() },
        ))
    }
}

pub trait MarketProvider: Send + Sync + 'static {
    fn id(&self) -> Provider;
    /// The frame → model mapping (its version, market, parser and subscription reader):
    /// the registry's, so live and replay parse alike.
    fn mapper(&self) -> Mapper;

    fn market(&self) -> Market {
        self.mapper().market
    }

    /// What the stream can carry; the engine refuses a slot count beyond it at start-up.
    fn slot_budget(&self) -> SlotBudget {
        SlotBudget::UNLIMITED
    }

    /// Parses one raw frame into normalized events with their exchange event times.
    fn parse(&self, frame: &RawFrame) -> Result<Vec<(UtcTime, MarketEvent)>, ProviderError> {
        (self.mapper().parse)(frame)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn kis(books: u32) -> SlotBudget {
        SlotBudget { capacity: Some(41), per_slot: 1, reserved: books, reserved_by: "providers.kis.orderbook_slots" }
    }

    #[test]
    fn slots_are_planned_against_the_session_budget() {
        assert_eq!(kis(0).slots_that_fit(), Some(41));
        assert!(kis(0).check(Provider::Kis, 41).is_ok());
        assert!(kis(5).check(Provider::Kis, 36).is_ok());
        let e = kis(5).check(Provider::Kis, 41).unwrap_err();
        assert!(e.contains("5 for providers.kis.orderbook_slots = 46") && e.contains("at most 36 slot(s) fit"), "{e}");
        let e = kis(0).check(Provider::Kis, 42).unwrap_err();
        assert!(e.contains("holds 41; at most 41 slot(s) fit"), "{e}");
        assert!(SlotBudget::UNLIMITED.check(Provider::Upbit, 1000).is_ok());
    }
}

//! `KisProvider`: the KIS adapter behind the `MarketProvider` seam.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use tokio::sync::{mpsc, watch};

use model::{Clock, MarketEvent, Provider, RawFrame, RawFrameKind, Snapshot, Symbol, UtcTime};

use super::config::{KisConfig, KisCredentials};
use super::master::{self, Board};
use super::rest::{RankRow, RestClient};
use super::stream::{KisVenue, RegState, Registration, Registry};
use super::wire;
use crate::provider::{MarketProvider, ProviderError, SlotBudget, UniverseEntry, evidence};

pub struct KisProvider {
    clock: Clock,
    rest: RestClient,
    registry: Registry,
    /// KIS allows one WebSocket per app key; a second `stream` call is refused here rather
    /// than left to the server (which would kick a session with OPSP8996).
    streaming: AtomicBool,
    /// Degrade mode: register trades only (no order books) from the next session on.
    trades_only: AtomicBool,
}

impl std::fmt::Debug for KisProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KisProvider").field("config", self.rest.config()).field("credentials", &"***").finish()
    }
}

struct StreamingGuard<'a>(&'a AtomicBool);
impl Drop for StreamingGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The KIS frame → model mapping, free of any connection, so `replay` can use it.
pub fn parse_frame(frame: &RawFrame) -> Result<Vec<(UtcTime, MarketEvent)>, ProviderError> {
    match frame.kind {
        RawFrameKind::Ws => wire::parse_ws(&frame.frame, frame.receive_time).map_err(|e| malformed(frame, e)),
        // A REST snapshot has no exchange time; it is as of its receipt.
        RawFrameKind::Rest if frame.channel == wire::TR_PRICE => wire::snapshot_body(&frame.frame)
            .map(|s| vec![(frame.receive_time, MarketEvent::Snapshot(s))])
            .map_err(|e| malformed(frame, e)),
        _ => Ok(Vec::new()),
    }
}

fn malformed(frame: &RawFrame, why: String) -> ProviderError {
    ProviderError::Malformed { provider: Provider::Kis, why, frame: evidence(&frame.frame) }
}

impl KisProvider {
    /// `cfg` must pass `Validate` (the config layer checks it first).
    pub fn new(cfg: KisConfig, credentials: KisCredentials, clock: Clock) -> Result<Self, ProviderError> {
        Ok(KisProvider {
            clock,
            rest: RestClient::new(cfg, credentials, clock)?,
            registry: Arc::new(Mutex::new(BTreeMap::new())),
            streaming: AtomicBool::new(false),
            trades_only: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &KisConfig {
        self.rest.config()
    }

    /// The registrations of the current (or last) WebSocket session and their states.
    pub fn registrations(&self) -> Vec<(Registration, RegState)> {
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        reg.iter().map(|(r, s)| (r.clone(), s.clone())).collect()
    }

    pub async fn inquire_price(&self, symbol: &Symbol) -> Result<(RawFrame, Snapshot), ProviderError> {
        self.rest.inquire_price(symbol).await
    }
    /// Real domain only.
    pub async fn volume_rank(&self) -> Result<(RawFrame, Vec<RankRow>), ProviderError> {
        self.rest.volume_rank().await
    }
    /// Both boards' master records.
    pub async fn master(&self) -> Result<Vec<(Board, master::MasterRecord)>, ProviderError> {
        let mut out = Vec::new();
        for board in [Board::Kospi, Board::Kosdaq] {
            let zip = self.rest.master_zip(board.file_name()).await?;
            let bad = |why: String| ProviderError::Malformed {
                provider: Provider::Kis,
                why: format!("{}: {why}", board.file_name()),
                frame: String::new(),
            };
            let mst = master::unzip_mst(&zip, self.rest.config().max_master_bytes).map_err(bad)?;
            out.extend(master::parse_mst(&mst, board).map_err(bad)?.into_iter().map(|r| (board, r)));
        }
        Ok(out)
    }
}

impl MarketProvider for KisProvider {
    async fn check_credentials(&self) -> Result<(), ProviderError> {
        self.rest.token().await?;
        self.rest.approval_key().await.map(|_| ())
    }

    fn set_trades_only(&self, on: bool) {
        self.trades_only.store(on, Ordering::Release);
    }

    async fn volume_ranking(&self) -> Result<crate::VolumeRanking, ProviderError> {
        let (raw, rows) = self.rest.volume_rank().await?;
        Ok(crate::VolumeRanking { raw: Some(raw), rows: rows.into_iter().map(|r| (r.symbol, r.volume)).collect() })
    }

    fn id(&self) -> Provider {
        Provider::Kis
    }

    fn mapper(&self) -> crate::Mapper {
        <super::Kis as crate::module::ProviderModule>::mapper()
    }

    fn slot_budget(&self) -> SlotBudget {
        let cfg = self.rest.config();
        SlotBudget {
            capacity: Some(cfg.max_registrations),
            per_slot: 1,
            reserved: cfg.orderbook_slots,
            reserved_by: "providers.kis.orderbook_slots",
        }
    }

    /// Today's master files; KIS publishes no historical masters, so `day` only labels the call.
    async fn universe(&self, _day: Date) -> Result<Vec<UniverseEntry>, ProviderError> {
        let records: Vec<_> = self.master().await?.into_iter().map(|(_, r)| r).collect();
        Ok(master::to_universe(&records, &self.rest.config().universe_groups))
    }

    async fn snapshot(&self, symbol: &Symbol) -> Result<RawFrame, ProviderError> {
        self.rest.inquire_price(symbol).await.map(|(f, _)| f)
    }

    async fn stream(
        &self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), ProviderError> {
        if self.streaming.swap(true, Ordering::AcqRel) {
            return Err(ProviderError::Request {
                provider: Provider::Kis,
                what: "stream".into(),
                why: "a WebSocket session is already open for this app key (KIS allows one)".into(),
            });
        }
        let _guard = StreamingGuard(&self.streaming);
        let book_slots =
            if self.trades_only.load(Ordering::Acquire) { 0 } else { self.rest.config().orderbook_slots as usize };
        let mut venue = KisVenue::new(&self.rest, self.registry.clone(), book_slots);
        crate::ws_session::run(&mut venue, self.clock, subscriptions, out, stop).await
    }
}

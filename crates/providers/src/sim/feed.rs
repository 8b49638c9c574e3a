//! `SimProvider`: the simulated market behind the same `MarketProvider` seam as a broker,
//! on the simulated clock. Frames are the sim's compact JSON (`wire`); the WebSocket-like
//! stream carries trades and book updates of the subscribed symbols only, as a broker's
//! would, and REST snapshots answer for any listed symbol.

use std::sync::{Mutex, MutexGuard};

use jiff::civil::Date;
use tokio::sync::{mpsc, watch};

use model::{Clock, Market, MarketEvent, Provider, RawFrame, RawFrameKind, Symbol, UtcTime};

use super::{SimConfig, SimEvent, SimMarket, wire};
use crate::provider::{MarketProvider, ProviderError, UniverseEntry, evidence};

pub struct SimProvider {
    cfg: SimConfig,
    clock: Clock,
    market: Mutex<SimMarket>,
}

impl SimProvider {
    /// Builds the market of `day` (the expensive part) before any clock runs, so a fast
    /// simulated clock does not race ahead while the market is generated.
    pub fn market(cfg: &SimConfig, day: Date) -> Result<SimMarket, String> {
        SimMarket::try_new(cfg, day)
            .map_err(|problems| problems.iter().map(|p| format!("sim.{p}")).collect::<Vec<_>>().join("; "))
    }

    pub fn new(market: SimMarket, clock: Clock) -> Self {
        SimProvider { cfg: market.config().clone(), clock, market: Mutex::new(market) }
    }

    /// The market of `at`'s Seoul date: a run that crosses midnight gets the next day's market.
    fn market_at(&self, at: UtcTime) -> MutexGuard<'_, SimMarket> {
        let mut m = self.market.lock().unwrap_or_else(|p| p.into_inner());
        let day = at.kst().date();
        if m.trading_day() != day {
            *m = SimMarket::new(&self.cfg, day);
        }
        m
    }

    fn frame(&self, kind: RawFrameKind, channel: &str, frame: String) -> RawFrame {
        RawFrame { provider: Provider::Sim, kind, channel: channel.to_string(), frame, receive_time: self.clock.now() }
    }
}

impl MarketProvider for SimProvider {
    fn id(&self) -> Provider {
        Provider::Sim
    }

    fn market(&self) -> Market {
        Market::KrStocks
    }

    fn mapper_version(&self) -> &'static str {
        wire::MAPPER_VERSION
    }

    fn parse(&self, frame: &RawFrame) -> Result<Vec<(UtcTime, MarketEvent)>, ProviderError> {
        wire::parse(&frame.frame).map(|e| vec![e]).map_err(|e| ProviderError::Malformed {
            provider: Provider::Sim,
            why: e.problem.to_string(),
            frame: evidence(&frame.frame),
        })
    }

    async fn universe(&self, day: Date) -> Result<Vec<UniverseEntry>, ProviderError> {
        let mut m = self.market.lock().unwrap_or_else(|p| p.into_inner());
        if m.trading_day() != day {
            *m = SimMarket::new(&self.cfg, day);
        }
        Ok(m.listings()
            .iter()
            .map(|l| UniverseEntry { symbol: l.symbol.clone(), name: l.name.clone(), prev_close: l.prev_close })
            .collect())
    }

    async fn snapshot(&self, symbol: &Symbol) -> Result<RawFrame, ProviderError> {
        let now = self.clock.now();
        let text = {
            let mut m = self.market_at(now);
            let idx = m.index_of(symbol).ok_or_else(|| ProviderError::UnknownSymbol(symbol.clone()))?;
            let snap = m.snapshot(idx, now);
            wire::encode_snapshot(now, &snap)
        };
        Ok(self.frame(RawFrameKind::Rest, "snapshot", text))
    }

    async fn stream(
        &self,
        mut subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ProviderError> {
        let ended = |why: &str| ProviderError::StreamEnded { provider: Provider::Sim, why: why.to_string() };
        let send = |f: RawFrame| async { out.send(f).await.map_err(|_| ended("the pipeline stopped reading")) };
        let step = self.cfg.step.as_millis() as i64;
        send(self.frame(RawFrameKind::Open, "ws", "{\"connected\":true}".into())).await?;
        let mut symbols = subscriptions.borrow_and_update().clone();
        send(self.frame(RawFrameKind::Sent, "ws", subscribe_message(&symbols))).await?;
        let mut events: Vec<SimEvent> = Vec::new();
        let mut last = self.clock.now();
        loop {
            let next = UtcTime::from_millis((last.as_millis().div_euclid(step) + 1) * step);
            tokio::select! {
                _ = self.clock.sleep_until(next) => {}
                _ = model::stopped(&mut stop) => break,
            }
            if subscriptions.has_changed().unwrap_or(false) {
                symbols = subscriptions.borrow_and_update().clone();
                send(self.frame(RawFrameKind::Sent, "ws", subscribe_message(&symbols))).await?;
            }
            let now = self.clock.now();
            events.clear();
            {
                let mut m = self.market_at(now);
                for s in &symbols {
                    if let Some(idx) = m.index_of(s) {
                        m.events(idx, last, now, &mut events);
                    }
                }
            }
            // A broker's feed interleaves symbols in time order.
            events.sort_by_key(|e| e.time());
            for e in &events {
                let channel = match e {
                    SimEvent::Trade(_) => "trade",
                    SimEvent::Book(_) => "book",
                };
                let mut f = self.frame(RawFrameKind::Ws, channel, wire::encode(e));
                f.receive_time = now;
                send(f).await?;
            }
            last = now;
        }
        send(self.frame(RawFrameKind::Close, "ws", "{\"closed\":\"requested\"}".into())).await
    }
}

fn subscribe_message(symbols: &[Symbol]) -> String {
    serde_json::json!({ "subscribe": symbols.iter().map(Symbol::as_str).collect::<Vec<_>>() }).to_string()
}

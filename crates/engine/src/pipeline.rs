//! Shared steps of every track: archive the raw frame first, parse it, run each event through
//! the observer core, and write every refusal as a system event with its evidence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use archive::Stream;
use model::{
    Market, MarketEvent, Meta, OverflowEntry, Provider, RawFrame, RawFrameKind, Record, SessionId, SystemEvent, UtcTime,
};
use providers::{MarketProvider, evidence};

use crate::observer::{ObserverCore, Rejection};
use crate::sink::{SinkError, SinkHandle};
use crate::stats::{Stats, inc};

/// One raw-archive line: the frame exactly as received, numbered for `raw_ref` and replay.
#[derive(Serialize)]
pub struct RawLine<'a> {
    pub provider: Provider,
    pub kind: RawFrameKind,
    pub channel: &'a str,
    pub seq: u64,
    pub frame: &'a str,
}

/// Writes system events and overflow entries for one provider. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    pub sink: SinkHandle,
    pub provider: Provider,
    pub session: SessionId,
    pub stats: Arc<Stats>,
    pub mitigation: Arc<std::sync::atomic::AtomicU8>,
}

impl Events {
    pub fn meta(&self, event_time: UtcTime, receive_time: UtcTime) -> Meta {
        let mut m = Meta::new(event_time, receive_time, self.session.clone());
        m.mitigation_level = self.mitigation.load(Relaxed);
        m
    }

    pub async fn system(&self, at: UtcTime, event: SystemEvent) -> Result<(), SinkError> {
        if matches!(event, SystemEvent::GapMarker { .. }) {
            inc(&self.stats.gaps);
        }
        inc(&self.stats.system_events);
        let rec = Record { body: event, meta: self.meta(at, at) };
        self.sink.write(Stream::Events(self.provider), at, &rec).await
    }

    pub async fn overflow(&self, at: UtcTime, entry: OverflowEntry) -> Result<(), SinkError> {
        inc(&self.stats.overflow_entries);
        let rec = Record { body: entry, meta: self.meta(at, at) };
        self.sink.write(Stream::Overflow(self.provider), at, &rec).await
    }

    pub async fn rejected(
        &self,
        at: UtcTime,
        stage: &str,
        reason: String,
        symbol: Option<String>,
        frame: &str,
    ) -> Result<(), SinkError> {
        let event = SystemEvent::RecordRejected { stage: stage.to_string(), reason, symbol, evidence: evidence(frame) };
        self.system(at, event).await
    }
}

/// Turns raw frames into accepted records for one provider and one track.
pub struct FrameProcessor<P> {
    pub provider: Arc<P>,
    pub core: ObserverCore,
    pub events: Events,
    pub seq: Arc<AtomicU64>,
}

impl<P: MarketProvider> FrameProcessor<P> {
    pub fn market(&self) -> Market {
        self.provider.market()
    }

    /// Archives `frame`, then returns the records that passed validation and the guard.
    pub async fn process(&mut self, frame: &RawFrame, passed: &mut Vec<Record<MarketEvent>>) -> Result<(), SinkError> {
        passed.clear();
        let rt = frame.receive_time;
        let seq = self.seq.fetch_add(1, Relaxed) + 1;
        inc(&self.events.stats.frames_received);
        let line = Record {
            body: RawLine {
                provider: frame.provider,
                kind: frame.kind,
                channel: &frame.channel,
                seq,
                frame: &frame.frame,
            },
            meta: self.events.meta(rt, rt),
        };
        self.events.sink.write(Stream::Raw(frame.provider), rt, &line).await?;
        if !matches!(frame.kind, RawFrameKind::Ws | RawFrameKind::Rest) {
            return Ok(());
        }
        let parsed = match self.provider.parse(frame) {
            Ok(p) => p,
            Err(e) => {
                inc(&self.events.stats.frames_malformed);
                return self.events.rejected(rt, "normalize", e.to_string(), None, &frame.frame).await;
            }
        };
        let raw_ref = raw_ref(frame.provider, rt, seq);
        for (event_time, event) in parsed {
            let symbol = event.symbol().to_string();
            match self.core.observe(event_time, rt, event, Some(raw_ref.clone())) {
                Ok(rec) => passed.push(rec),
                Err(Rejection { stage, reason }) => {
                    self.events.rejected(rt, stage, reason, Some(symbol), &frame.frame).await?
                }
            }
        }
        Ok(())
    }
}

/// `raw/{provider}/YYYYMMDD/HH.jsonl#seq`: where the frame behind a record is archived.
pub fn raw_ref(provider: Provider, receive_time: UtcTime, seq: u64) -> String {
    let k = receive_time.kst();
    format!("raw/{provider}/{}/{:02}.jsonl#{seq}", receive_time.kst_yyyymmdd(), k.hour())
}

//! Shared steps of every track: archive the raw frame first, parse it, run each event through
//! the observer core, and write every refusal as a system event with its evidence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use archive::Stream;
use archive::raw::{RAW_LINE_OVERHEAD, RawRefs};
use model::{MarketEvent, Meta, OverflowEntry, Provider, RawFrame, Record, SessionId, SystemEvent, UtcTime};
use providers::{MarketProvider, evidence};

use crate::router::{Refusal, Route, RoutedFrame, Router, STAGE_NORMALIZE, STAGE_SUBSCRIPTION};
use crate::sink::{SinkError, SinkHandle};
use crate::stats::{Stats, inc};
use crate::tap::Tap;

/// Writes system events and overflow entries for one provider. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    pub sink: SinkHandle,
    pub provider: Provider,
    pub session: SessionId,
    pub stats: Arc<Stats>,
    pub mitigation: Arc<std::sync::atomic::AtomicU8>,
    /// Told of each event once it is written (alert sources).
    pub tap: Option<Arc<dyn Tap>>,
}

impl Events {
    pub fn meta(&self, event_time: UtcTime, receive_time: UtcTime) -> Meta {
        let mut m = Meta::new(event_time, receive_time, self.session.clone());
        m.mitigation_level = self.mitigation.load(Relaxed);
        m
    }

    pub async fn system(&self, at: UtcTime, event: SystemEvent) -> Result<(), SinkError> {
        if let SystemEvent::GapMarker { gap_seconds, .. } = &event {
            inc(&self.stats.gaps);
            self.stats.gauges.push_gap(*gap_seconds);
        }
        inc(&self.stats.system_events);
        let rec = Record { body: event, meta: self.meta(at, at) };
        self.sink.write(Stream::Events(self.provider), at, &rec).await?;
        if let Some(tap) = &self.tap {
            tap.system_event(Some(self.provider), &rec);
        }
        Ok(())
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

/// The bytes of stream frames waiting for the observer, bounded like their count: a burst
/// of large messages (each within the provider's WebSocket limit) blocks the stream once
/// `pipeline.frames_bytes` are queued, instead of holding `frames_capacity` × 1 MiB.
#[derive(Debug)]
pub struct FrameBytes {
    queued: tokio::sync::Semaphore,
    limit: usize,
}

impl FrameBytes {
    pub fn new(limit: usize) -> Self {
        FrameBytes { queued: tokio::sync::Semaphore::new(limit), limit }
    }

    /// A frame larger than the whole budget takes all of it (and so waits for an empty queue).
    fn cost(&self, f: &RawFrame) -> u32 {
        f.frame.len().clamp(1, self.limit).min(u32::MAX as usize) as u32
    }

    /// Waits until `f` fits.
    pub async fn reserve(&self, f: &RawFrame) {
        if let Ok(permit) = self.queued.acquire_many(self.cost(f)).await {
            permit.forget();
        }
    }

    /// `f` left the queue.
    pub fn release(&self, f: &RawFrame) {
        self.queued.add_permits(self.cost(f) as usize);
    }

    pub fn available(&self) -> usize {
        self.queued.available_permits()
    }

    /// Bytes of frames in the queue now.
    pub fn queued(&self) -> usize {
        self.limit.saturating_sub(self.available())
    }
}

/// Passes the stream's frames into the observer's queue through the byte budget (the
/// observer gives the bytes back), so a burst of large messages blocks the stream.
pub struct StreamIntake {
    pub budget: Arc<FrameBytes>,
    pub from: tokio::sync::mpsc::Receiver<RawFrame>,
    pub to: tokio::sync::mpsc::Sender<RoutedFrame>,
}

impl StreamIntake {
    pub async fn run(mut self) {
        while let Some(frame) = self.from.recv().await {
            self.budget.reserve(&frame).await;
            if self.to.send((Route::Stream, frame)).await.is_err() {
                break; // the observer has stopped: the run is ending
            }
        }
    }
}

/// Archives raw frames, then normalizes them through the [`Router`], for one provider and
/// one task (each task keeps its own guard state, as it always has).
pub struct FrameProcessor<P> {
    pub provider: Arc<P>,
    pub router: Router,
    pub events: Events,
    pub seq: Arc<AtomicU64>,
    pub refs: RawRefs,
    /// Mitigation level recorded with the last raw frame, for records derived in band from it.
    pub last_level: u8,
    refused: Vec<Refusal>,
}

impl<P: MarketProvider> FrameProcessor<P> {
    pub fn new(provider: Arc<P>, router: Router, events: Events, seq: Arc<AtomicU64>) -> Self {
        FrameProcessor { provider, router, events, seq, refs: RawRefs::default(), last_level: 0, refused: Vec::new() }
    }

    /// Archives `frame` (with the quality flag of `route`), then returns the records that
    /// passed the subscription filter, validation and the guard; every refusal is written
    /// as a system event with its evidence.
    pub async fn process(
        &mut self,
        route: Route,
        frame: &RawFrame,
        passed: &mut Vec<Record<MarketEvent>>,
    ) -> Result<(), SinkError> {
        passed.clear();
        let rt = frame.receive_time;
        let seq = self.seq.fetch_add(1, Relaxed) + 1;
        inc(&self.events.stats.frames_received);
        let mut line = Vec::with_capacity(frame.frame.len() + RAW_LINE_OVERHEAD);
        let mut meta = self.events.meta(rt, rt);
        meta.quality_flag = route.quality();
        self.last_level = meta.mitigation_level;
        archive::raw::encode(&mut line, frame, seq, &meta);
        self.events.sink.write_line(Stream::Raw(frame.provider), rt, line).await?;
        let mut refused = std::mem::take(&mut self.refused);
        let normalized = self.router.normalize(route, frame, seq, &mut self.refs, passed, &mut refused);
        if let Err(e) = normalized {
            inc(&self.events.stats.frames_malformed);
            self.refused = refused;
            return self.events.rejected(rt, STAGE_NORMALIZE, e.to_string(), None, &frame.frame).await;
        }
        for Refusal { stage, reason, symbol } in refused.drain(..) {
            if stage == STAGE_SUBSCRIPTION {
                inc(&self.events.stats.events_normalized);
                inc(&self.events.stats.rejected_unsubscribed);
            }
            self.events.rejected(rt, stage, reason, symbol.map(|s| s.to_string()), &frame.frame).await?
        }
        self.refused = refused;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::RawFrameKind;

    #[tokio::test]
    async fn queued_stream_bytes_are_bounded() {
        use std::future::Future;
        let budget = std::sync::Arc::new(FrameBytes::new(1000));
        let frame = |n: usize| RawFrame {
            provider: Provider::Kis,
            kind: RawFrameKind::Ws,
            channel: "H0STCNT0".into(),
            frame: "x".repeat(n),
            receive_time: UtcTime::from_millis(0),
        };
        budget.reserve(&frame(600)).await;
        assert_eq!(budget.available(), 400);
        // 600 more bytes do not fit until the first frame leaves the queue: the reservation
        // stays pending when polled (no clock involved), and completes after the release.
        let second = frame(600);
        let mut waiting = Box::pin(budget.reserve(&second));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        budget.release(&frame(600));
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        assert_eq!(budget.available(), 400);
        // A frame larger than the budget takes all of it rather than waiting forever.
        budget.release(&frame(600));
        budget.reserve(&frame(5000)).await;
        assert_eq!(budget.available(), 0);
    }
}

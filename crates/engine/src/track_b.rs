//! Track B (seed 001 §2.4): every sample interval inside its window, the latest state of
//! each slot symbol goes to `scalp/{provider}/{market}/YYYYMMDD/HH_MM_SS.jsonl`, with the
//! age of its newest data.
//!
//! Sampling is in band: the timer (`TrackBClock`) does not read the book; it puts a clock
//! frame into the provider's frame queue, and the observer takes the samples (`Sampler`)
//! when it reaches that frame, after every frame queued before it. The clock frame is
//! archived with the raw frames, so `replay` samples exactly the same states.
//!
//! Samples are the one kind of data with a sample-down policy: if the archive queue is full
//! a sample is not waited for; it is counted and its symbol written to the overflow ledger.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use archive::Stream;
use model::{
    Clock, Market, Meta, OverflowEntry, Provider, QualityFlag, RawFrame, RawFrameKind, Record, ScalpSample, Symbol,
    UtcTime,
};

use crate::book::{LatestBook, SymbolState};
use crate::pipeline::Events;
use crate::reconnect::Outage;
use crate::router::{Route, RoutedFrame};
use crate::schedule::Schedule;
use crate::sink::SinkError;
use crate::stats::{add, inc};
use crate::tap::Tap;

pub const SAMPLED_DOWN: &str = "sampled_down_queue_full";
pub const CLOCK_CHANNEL: &str = "track_b";

/// The text of a Track B clock frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    pub due: UtcTime,
    pub interval_ms: u64,
    /// The slot symbols to sample, in order.
    pub slots: Vec<Symbol>,
    /// The book is fed by REST polls (degrade mode with a dead stream): samples are marked
    /// degraded. Absent from the frames of ordinary ticks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub polled: bool,
}

/// Puts a clock frame into the frame queue at every due sampling time.
pub struct TrackBClock {
    pub provider: Provider,
    /// The slot symbols, as the slot manager last chose them.
    pub slots: watch::Receiver<Vec<Symbol>>,
    /// The schedule at level 0; its interval is replaced by the one the level calls for.
    pub schedule: Schedule,
    /// Sampling interval per mitigation level (ms).
    pub intervals: [u64; 3],
    pub mitigation: Arc<AtomicU8>,
    /// While set (the stream has failed past the configured time) no samples are asked for.
    pub paused: Arc<Outage>,
    pub clock: Clock,
    pub frames: mpsc::Sender<RoutedFrame>,
    pub events: Events,
}

impl TrackBClock {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let mut from = self.clock.now();
        loop {
            let level = self.mitigation.load(Relaxed).min(2);
            // Lower Hz keeps the same grid: 1 s and 2 s ticks are a subset of the 500 ms ones.
            self.schedule.interval_ms = self.intervals[level as usize] as i64;
            let Some(due) = self.schedule.next_at_or_after(from) else { return Ok(()) };
            tokio::select! {
                _ = self.clock.sleep_until(due) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
            from = due.plus_millis(1);
            let polled = self.paused.rest_polling.load(Relaxed);
            if self.paused.scalp_paused.load(Relaxed) && !polled {
                continue;
            }
            let interval = self.schedule.interval_ms;
            let now = self.clock.now();
            // A timer that wakes late still asks for the due sample (stamped with its due
            // time); lateness past a whole interval is counted, not hidden.
            if now.millis_since(due) >= interval {
                inc(&self.events.stats.scalp_late);
            }
            let slots = self.slots.borrow().clone();
            add(&self.events.stats.scalp_expected, slots.len() as u64);
            let tick = Tick { due, interval_ms: interval as u64, slots, polled };
            let frame = RawFrame {
                provider: self.provider,
                kind: RawFrameKind::Clock,
                channel: CLOCK_CHANNEL.into(),
                frame: serde_json::to_string(&tick).unwrap_or_default(),
                receive_time: now,
            };
            if self.frames.send((Route::Clock, frame)).await.is_err() {
                return Ok(()); // the observer has stopped: the run is ending
            }
        }
    }
}

/// What one provider's Track B holds right now, for the status line and `/health`: the
/// slots of the newest sample and how many of them had data younger than `stale_after`.
#[derive(Debug, Default)]
pub struct SlotGauge {
    pub assigned: AtomicU64,
    pub streaming: AtomicU64,
}

/// A sample's quality from the age of its newest data (`None`: nothing yet) and how the
/// book was fed: no data and stale data are named as such, never passed off as normal.
pub fn sample_quality(data_age_ms: Option<i64>, stale_after_ms: i64, level: u8, polled: bool) -> QualityFlag {
    match data_age_ms {
        None => QualityFlag::NoData,
        Some(age) if age > stale_after_ms => QualityFlag::Stale,
        Some(_) if level > 0 || polled => QualityFlag::Degraded,
        Some(_) => QualityFlag::Normal,
    }
}

/// Takes the samples a clock frame asks for, from the book the observer keeps.
pub struct Sampler {
    pub provider: Provider,
    pub market: Market,
    pub book: Arc<LatestBook>,
    pub events: Events,
    /// Replay writes every sample (waiting for room); a live run samples down when full.
    pub wait_for_room: bool,
    pub tap: Option<Arc<dyn Tap>>,
    /// Data older than this makes a sample `stale` (`tracks.scalp.stale_after`).
    pub stale_after_ms: i64,
    pub gauge: Arc<SlotGauge>,
    states: Vec<SymbolState>,
}

impl Sampler {
    pub fn new(
        provider: Provider,
        market: Market,
        book: Arc<LatestBook>,
        events: Events,
        wait_for_room: bool,
        stale_after_ms: i64,
    ) -> Self {
        Sampler {
            provider,
            market,
            book,
            events,
            wait_for_room,
            tap: None,
            stale_after_ms,
            gauge: Arc::default(),
            states: Vec::new(),
        }
    }

    /// Samples for the clock frame `text` received at `received`; `level` is the mitigation
    /// level recorded with that frame.
    pub async fn sample(&mut self, text: &str, received: UtcTime, level: u8) -> Result<(), SinkError> {
        let Ok(tick) = serde_json::from_str::<Tick>(text) else {
            // Our own frame: unreadable only if the archive was edited; keep going.
            tracing::warn!(frame = text, "unreadable Track B clock frame");
            return Ok(());
        };
        self.book.read(&tick.slots, &mut self.states);
        let mut dropped = Vec::new();
        let mut streaming = 0;
        for (symbol, st) in tick.slots.iter().zip(&self.states) {
            // A frame stamped a moment after the clock frame may already be applied.
            let data_age_ms = st.updated.map(|u| received.millis_since(u).max(0));
            let quality = sample_quality(data_age_ms, self.stale_after_ms, level, tick.polled);
            let sample = ScalpSample {
                provider: self.provider,
                market: self.market,
                symbol: symbol.clone(),
                bid_price: st.bid_price,
                ask_price: st.ask_price,
                bid_size: st.bid_size,
                ask_size: st.ask_size,
                last_price: st.last_price,
                volume: st.volume,
                data_age_ms,
                sample_interval_ms: tick.interval_ms,
            };
            let mut meta = Meta::new(tick.due, received, self.events.session.clone());
            meta.mitigation_level = level;
            // Samples are derived from the provider's frames: they carry its mapper version.
            meta.mapper_version = providers::mapper(self.provider).map(|m| std::borrow::Cow::Borrowed(m.version));
            meta.quality_flag = quality;
            let rec = Record { body: sample, meta };
            let stream = Stream::Scalp(self.provider, self.market);
            let kept = if self.wait_for_room {
                self.events.sink.write(stream, received, &rec).await?;
                true
            } else {
                self.events.sink.try_write(stream, received, &rec).is_ok()
            };
            let stats = &self.events.stats;
            if !matches!(quality, QualityFlag::NoData | QualityFlag::Stale) {
                streaming += 1;
            }
            if kept {
                inc(&stats.scalp_written);
                match quality {
                    QualityFlag::NoData => inc(&stats.scalp_no_data),
                    QualityFlag::Stale => inc(&stats.scalp_stale),
                    _ => {}
                }
                if let Some(tap) = &self.tap {
                    tap.sample(&rec);
                }
            } else {
                inc(&self.events.stats.scalp_sampled_down);
                dropped.push(symbol.clone());
            }
        }
        self.gauge.assigned.store(tick.slots.len() as u64, Relaxed);
        self.gauge.streaming.store(streaming, Relaxed);
        for symbol in dropped {
            let entry = OverflowEntry {
                timestamp: tick.due,
                provider: self.provider,
                symbol,
                // The symbol held a slot; the sample itself could not be kept.
                candidate_score: 1.0,
                cutoff_rank: tick.slots.len() as u32,
                decision_reason: SAMPLED_DOWN.to_string(),
            };
            self.events.overflow(received, entry).await?;
        }
        Ok(())
    }
}

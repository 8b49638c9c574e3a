//! Track B (seed 001 §2.4): every sample interval inside its window, the latest state of
//! each slot symbol goes to `scalp/{provider}/{market}/YYYYMMDD/HH_MM_SS.jsonl`, with the
//! age of its newest data.
//!
//! Samples are the one kind of data with a sample-down policy: if the archive queue is full
//! a sample is not waited for; it is counted and its symbol written to the overflow ledger.

use std::sync::Arc;

use tokio::sync::watch;

use archive::Stream;
use model::{Clock, Market, OverflowEntry, Provider, QualityFlag, Record, ScalpSample, Symbol};

use crate::book::{LatestBook, SymbolState};
use crate::pipeline::Events;
use crate::schedule::Schedule;
use crate::sink::SinkError;
use crate::stats::inc;

pub struct TrackB {
    pub provider: Provider,
    pub market: Market,
    /// The slot symbols. Fixed in this version; the slot manager will change them.
    pub slots: Arc<Vec<Symbol>>,
    pub schedule: Schedule,
    pub clock: Clock,
    pub book: Arc<LatestBook>,
    pub events: Events,
}

pub const SAMPLED_DOWN: &str = "sampled_down_queue_full";

impl TrackB {
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let mut states: Vec<SymbolState> = Vec::with_capacity(self.slots.len());
        let mut dropped: Vec<Symbol> = Vec::new();
        let interval = self.schedule.interval_ms;
        let mut from = self.clock.now();
        while let Some(due) = self.schedule.next_at_or_after(from) {
            tokio::select! {
                _ = self.clock.sleep_until(due) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
            let now = self.clock.now();
            // A sampler that wakes late still takes the due sample (stamped with its due
            // time, received now); lateness past a whole interval is counted, not hidden.
            if now.millis_since(due) >= interval {
                inc(&self.events.stats.scalp_late);
            }
            self.book.read(&self.slots, &mut states);
            for (symbol, st) in self.slots.iter().zip(&states) {
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
                    data_age_ms: st.updated.map(|u| now.millis_since(u)),
                    sample_interval_ms: interval as u64,
                };
                let mut meta = self.events.meta(due, now);
                if meta.mitigation_level > 0 {
                    meta.quality_flag = QualityFlag::Degraded;
                }
                let rec = Record { body: sample, meta };
                match self.events.sink.try_write(Stream::Scalp(self.provider, self.market), now, &rec) {
                    Ok(()) => inc(&self.events.stats.scalp_written),
                    Err(_) => {
                        inc(&self.events.stats.scalp_sampled_down);
                        dropped.push(symbol.clone());
                    }
                }
            }
            for symbol in dropped.drain(..) {
                let entry = OverflowEntry {
                    timestamp: due,
                    provider: self.provider,
                    symbol,
                    // The symbol held a slot; the sample itself could not be kept.
                    candidate_score: 1.0,
                    cutoff_rank: self.slots.len() as u32,
                    decision_reason: SAMPLED_DOWN.to_string(),
                };
                self.events.overflow(now, entry).await?;
            }
            from = due.plus_millis(1);
        }
        Ok(())
    }
}

//! Track A (seed 001 §2.3): a REST snapshot of every universe symbol each interval, written
//! to `swing/{provider}/{market}/YYYYMMDD/HH_00.jsonl`.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::watch;

use archive::Stream;
use model::{Clock, MarketEvent, Record, Symbol, SystemEvent, UtcTime};
use providers::MarketProvider;

use crate::pipeline::FrameProcessor;
use crate::router::Route;
use crate::schedule::Schedule;
use crate::sink::SinkError;
use crate::stats::inc;

pub struct TrackA<P> {
    pub processor: FrameProcessor<P>,
    /// The day's universe; a new trading day's arrives here before the open.
    pub universe: watch::Receiver<Arc<Vec<Symbol>>>,
    pub schedule: Schedule,
    pub clock: Clock,
    pub tap: Option<Arc<dyn crate::tap::Tap>>,
    /// The trigger engine reads every snapshot (volume surge, volatility).
    pub monitor: Arc<std::sync::Mutex<crate::triggers::CandidateMonitor>>,
    /// REST snapshots in flight at once (`tracks.swing.concurrency`).
    pub concurrency: usize,
}

impl<P: MarketProvider> TrackA<P> {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let mut passed = Vec::new();
        let now = self.clock.now();
        // Started inside the window between two grid times: take a cycle at once rather than
        // leave the archive without a swing snapshot until the next grid time.
        let immediate = self.schedule.in_window(now) && self.schedule.next_at_or_after(now) != Some(now);
        if immediate && !self.cycle(now, &mut passed, &stop).await? {
            return Ok(());
        }
        // A start exactly on a grid time ran no immediate cycle: that grid time is still owed,
        // so look from `now` itself (at or after); only a cycle already taken at `now` moves
        // the search past it. Either way each grid time, the window's inclusive end included,
        // runs once.
        let mut from = if immediate { now.plus_millis(1) } else { now };
        while let Some(cycle) = self.schedule.next_at_or_after(from) {
            tokio::select! {
                _ = self.clock.sleep_until(cycle) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
            if !self.cycle(cycle, &mut passed, &stop).await? {
                return Ok(());
            }
            from = cycle.plus_millis(1);
        }
        Ok(())
    }

    /// One pass over the universe; false if stopped part-way.
    async fn cycle(
        &mut self,
        cycle: UtcTime,
        passed: &mut Vec<Record<MarketEvent>>,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, SinkError> {
        let next = self.schedule.next_at_or_after(cycle.plus_millis(1));
        let mut done = 0usize;
        let mut failed: Vec<(Symbol, String)> = Vec::new();
        let universe = self.universe.borrow().clone();
        // A few requests in flight: the provider's rate limiter still spaces them, but the
        // cycle is no longer bound by one round trip per symbol (a real REST round trip is
        // tens of milliseconds; 2,000 of them back to back would not fit 18 req/s).
        let provider = self.processor.provider.clone();
        let mut fetches = futures_util::stream::iter(universe.iter().cloned())
            .map(|symbol| {
                let p = provider.clone();
                async move {
                    let r = p.snapshot(&symbol).await;
                    (symbol, r)
                }
            })
            .buffered(self.concurrency);
        while let Some((symbol, result)) = fetches.next().await {
            if *stop.borrow() {
                return Ok(false);
            }
            let now = self.clock.now();
            if let Some(next) = next
                && now >= next
            {
                // The next cycle is due: it starts on time, and what this one missed is a
                // swing gap, recorded with how far it got.
                let left = universe.len() - done;
                let detail = format!(
                    "cycle {cycle} covered {done}/{} symbols before the next cycle was due at {next}; {left} not snapshotted (from {symbol})",
                    universe.len()
                );
                tracing::warn!("{detail}");
                inc(&self.processor.events.stats.track_a_incomplete);
                let gap = SystemEvent::gap(cycle, now, "swing", "cycle_overrun", Some(detail));
                self.processor.events.system(now, gap).await?;
                inc(&self.processor.events.stats.track_a_cycles);
                return Ok(true);
            }
            let frame = match result {
                Ok(f) => f,
                Err(e) => {
                    failed.push((symbol, e.to_string()));
                    continue;
                }
            };
            self.processor.process(Route::Swing, &frame, passed).await?;
            for rec in passed.drain(..) {
                // Snapshots stay out of Track B's book: it is fed in band by the stream only,
                // so a replay rebuilds the same book.
                if let MarketEvent::Snapshot(snap) = &rec.body {
                    self.monitor.lock().unwrap_or_else(|p| p.into_inner()).on_snapshot(rec.meta.receive_time, snap);
                    let stream = Stream::Swing(rec.body.provider(), rec.body.market());
                    self.processor.events.sink.write(stream, rec.meta.receive_time, &rec).await?;
                    if let Some(tap) = &self.tap {
                        tap.market_event(&rec);
                    }
                    inc(&self.processor.events.stats.swing_written);
                }
            }
            done += 1;
        }
        if let Some((first, why)) = failed.first() {
            // One marker per cycle, not one per symbol: a provider outage fails them all.
            let now = self.clock.now();
            let symbols: Vec<&str> = failed.iter().map(|(s, _)| s.as_str()).collect();
            let detail = format!(
                "cycle {cycle}: {} of {} snapshots failed (first {first}: {why}); symbols: {}",
                failed.len(),
                universe.len(),
                symbols.join(",")
            );
            tracing::warn!(failed = failed.len(), "Track A snapshots failed: {why}");
            self.processor.events.system(now, SystemEvent::gap(cycle, now, "swing", "api_error", Some(detail))).await?;
        }
        inc(&self.processor.events.stats.track_a_cycles);
        Ok(true)
    }
}

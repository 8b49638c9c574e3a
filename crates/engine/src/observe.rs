//! The observer task of one provider: takes its frames — the stream's, Track B's clock ticks
//! and the REST readings that feed the book — in the order they were queued, archives and
//! normalizes each through the [`FrameProcessor`] (the frame router), and applies what
//! passed along the frame's route.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use model::{Clock, MarketEvent, RawFrame, Record, Symbol};
use providers::MarketProvider;

use crate::book::LatestBook;
use crate::pipeline::{Events, FrameBytes, FrameProcessor};
use crate::reconnect::Outage;
use crate::router::{Route, RoutedFrame};
use crate::sink::SinkError;
use crate::stats::Stats;
use crate::tap::Tap;
use crate::track_b::Sampler;
use crate::triggers::CandidateMonitor;
use crate::watchdog::Activity;

pub struct ObserverTask<P> {
    pub processor: FrameProcessor<P>,
    pub frames: mpsc::Receiver<RoutedFrame>,
    /// The stream's frames came through this budget; the task gives their bytes back.
    pub frame_bytes: Arc<FrameBytes>,
    pub clock: Clock,
    pub book: Arc<LatestBook>,
    pub sampler: Sampler,
    pub activity: Arc<Activity>,
    pub outage: Arc<Outage>,
    pub slots: watch::Receiver<Vec<Symbol>>,
    pub monitor: Arc<Mutex<CandidateMonitor>>,
    pub events: Events,
    pub tap: Option<Arc<dyn Tap>>,
    pub stats: Arc<Stats>,
}

impl<P: MarketProvider> ObserverTask<P> {
    /// Runs until the stream and Track B's clock drop their senders, so nothing queued is
    /// lost at shutdown.
    pub async fn run(mut self) -> Result<(), SinkError> {
        let mut passed = Vec::new();
        while let Some((route, frame)) = self.frames.recv().await {
            // Queue lag in wall-clock terms: the thresholds are about this machine.
            let lag = self.clock.now().millis_since(frame.receive_time).max(0) as f64 / self.clock.speed().max(1.0);
            self.stats.gauges.queue_lag_ms.fetch_max(lag as u64, Relaxed);
            self.processor.process(route, &frame, &mut passed).await?;
            if route == Route::Stream {
                self.frame_bytes.release(&frame);
            }
            self.activity.on_frame(frame.receive_time);
            match route {
                Route::Clock => {
                    self.sampler.sample(&frame.frame, frame.receive_time, self.processor.last_level).await?;
                }
                Route::Book => {
                    for rec in &passed {
                        self.book.apply(rec.meta.receive_time, &rec.body);
                    }
                }
                Route::Stream => self.on_stream(&frame, &passed).await?,
                // Track A and the gap evidence run their own processors.
                Route::Swing | Route::Evidence => {}
            }
        }
        Ok(())
    }

    /// Stream data: it closes an open outage, shows the watchdog the stream is alive, and
    /// feeds the trigger engine, the book and the taps.
    async fn on_stream(&mut self, frame: &RawFrame, passed: &[Record<MarketEvent>]) -> Result<(), SinkError> {
        if passed.is_empty() {
            return Ok(());
        }
        if self.outage.is_open() {
            let slots = self.slots.borrow().clone();
            self.outage.on_data(frame.receive_time, &self.events, &slots).await?;
        }
        for rec in passed {
            self.activity.on_data(rec.meta.receive_time, rec.body.symbol());
            if let MarketEvent::Tick(t) = &rec.body {
                self.monitor.lock().unwrap_or_else(|p| p.into_inner()).on_tick(rec.meta.receive_time, t);
            }
            self.book.apply(rec.meta.receive_time, &rec.body);
            if let Some(tap) = &self.tap {
                tap.market_event(rec);
            }
        }
        Ok(())
    }
}

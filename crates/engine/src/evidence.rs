//! Marked evidence after a stream gap: when an outage closes, the reconnect supervisor asks
//! for a REST snapshot of each slot symbol, written next to the gap marker as a
//! `gap_snapshot` event (archived raw with the quality flag `gap`, and kept out of swing).

use tokio::sync::{mpsc, watch};

use model::{MarketEvent, SystemEvent};
use providers::MarketProvider;

use crate::pipeline::FrameProcessor;
use crate::reconnect::EvidenceRequest;
use crate::router::Route;
use crate::sink::SinkError;

pub struct GapEvidence<P> {
    pub processor: FrameProcessor<P>,
    pub requests: mpsc::UnboundedReceiver<EvidenceRequest>,
}

impl<P: MarketProvider> GapEvidence<P> {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let mut passed = Vec::new();
        loop {
            let req = tokio::select! {
                r = self.requests.recv() => match r { Some(r) => r, None => return Ok(()) },
                _ = model::stopped(&mut stop) => return Ok(()),
            };
            for symbol in &req.symbols {
                let frame = match self.processor.provider.snapshot(symbol).await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(%symbol, error = %e, "gap evidence snapshot failed");
                        continue;
                    }
                };
                self.processor.process(Route::Evidence, &frame, &mut passed).await?;
                for rec in passed.drain(..) {
                    if let MarketEvent::Snapshot(snapshot) = rec.body {
                        let ev =
                            SystemEvent::GapSnapshot { gap_start_ts: req.gap_start, gap_end_ts: req.gap_end, snapshot };
                        self.processor.events.system(rec.meta.receive_time, ev).await?;
                    }
                }
            }
        }
    }
}

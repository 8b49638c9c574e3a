//! Runs the trigger engine and the slot manager on the market clock (seed 001 §3.2): every
//! `triggers.evaluate_interval` inside Track B's window it scores the candidates, lets the
//! slot manager decide, sends a changed slot list to the provider's stream (the adapter keeps
//! it within the registration limit), writes every candidate left without a slot to the
//! overflow ledger, and logs each decision with the inputs of every score it used.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::watch;

use model::settings::Interval;
use model::{Clock, Symbol, SystemEvent};
use providers::MarketProvider;

use crate::pipeline::{Events, FrameProcessor};
use crate::router::Route;
use crate::schedule::Schedule;
use crate::sink::SinkError;
use crate::slots::SlotManager;
use crate::stats::inc;
use crate::triggers::CandidateMonitor;

pub struct Selector<P> {
    pub provider: Arc<P>,
    pub monitor: Arc<Mutex<CandidateMonitor>>,
    pub manager: SlotManager,
    /// The day's universe: the slot manager's reserve when candidates run out.
    pub universe: watch::Receiver<Arc<Vec<Symbol>>>,
    pub manual: watch::Receiver<crate::live::Manual>,
    pub every: Interval,
    /// Track B's window: slots only matter while it samples.
    pub schedule: Schedule,
    pub subs: watch::Sender<Vec<Symbol>>,
    pub events: Events,
    pub clock: Clock,
    /// Archives each ranking response raw before it is used, like every provider frame.
    pub raw: FrameProcessor<P>,
}

impl<P: MarketProvider> Selector<P> {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let mut ranking_failed = false;
        loop {
            tokio::select! {
                _ = self.clock.sleep(self.every.get()) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
            let now = self.clock.now();
            if self.universe.has_changed().unwrap_or(false) {
                let u = self.universe.borrow_and_update().clone();
                self.manager.set_reserve(u.as_ref().clone());
            }
            if self.manual.has_changed().unwrap_or(false) {
                let m = self.manual.borrow_and_update().clone();
                tracing::info!(include = ?m.include, exclude = ?m.exclude, "manual override changed");
                self.monitor.lock().unwrap_or_else(|p| p.into_inner()).set_manual(m.include, m.exclude);
            }
            if !self.schedule.in_window(now) {
                continue;
            }
            match self.provider.volume_ranking().await {
                Ok(r) => {
                    ranking_failed = false;
                    if let Some(frame) = &r.raw {
                        // Parses to no market event: the response is evidence for the
                        // slot decisions, not data for a track.
                        self.raw.process(Route::Swing, frame, &mut Vec::new()).await?;
                    }
                    self.monitor.lock().unwrap_or_else(|p| p.into_inner()).on_ranking(now, &r.rows);
                }
                // Once per failure streak: the other inputs still score candidates.
                Err(e) if !ranking_failed => {
                    ranking_failed = true;
                    tracing::warn!(provider = %self.events.provider, error = %e, "volume ranking unavailable");
                }
                Err(_) => {}
            }
            let (candidates, exclude) = {
                let mut m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
                let candidates = m.evaluate(now);
                // The monitor counts since the start of the run, as the counter does.
                let skipped = m.skipped().total();
                self.events.stats.trigger_points_skipped.fetch_max(skipped, std::sync::atomic::Ordering::Relaxed);
                (candidates, m.manual_exclude().to_vec())
            };
            let decision = self.manager.decide(now, &candidates, &exclude);
            self.monitor.lock().unwrap_or_else(|p| p.into_inner()).on_slots(now, self.manager.slots());
            for o in &decision.overflow {
                self.events.overflow(now, o.entry(now, self.events.provider)).await?;
            }
            if decision.changed() {
                inc(&self.events.stats.slot_changes);
                let scored: Vec<_> = candidates.iter().filter(|c| c.has_signal()).collect();
                let ev = SystemEvent::SlotDecision {
                    slots: decision.slots.clone(),
                    added: decision.added.clone(),
                    removed: decision.removed.clone(),
                    candidates: json!(scored),
                };
                self.events.system(now, ev).await?;
                tracing::info!(added = ?decision.added, removed = ?decision.removed, "slots changed");
                let _ = self.subs.send(decision.slots);
            }
        }
    }
}

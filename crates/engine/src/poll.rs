//! Degrade mode's last resort (seed 000 §3.3): when the stream stays dead in degrade mode,
//! Track B is fed from REST polls of the slot symbols.
//!
//! The poller does not touch the book. It puts each REST response into the provider's
//! frame queue, and the observer applies it in order with the stream's frames and Track B's
//! clock frames, so the raw archive holds the polls (quality flag `degraded`) exactly where
//! they were used and `replay` samples the same states. Polls never count as stream data:
//! they do not close the outage (its gap marker still tells how long ticks were missing)
//! and do not reset the watchdog's silence. Samples taken while polling say so (quality
//! flag `degraded`), and each carries the age of its data as always.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use serde_json::json;
use tokio::sync::{mpsc, watch};

use model::settings::Interval;
use model::{Clock, Symbol, SystemEvent, UtcTime};
use providers::MarketProvider;

use crate::pipeline::Events;
use crate::reconnect::Outage;
use crate::router::{Route, RoutedFrame};
use crate::schedule::Schedule;
use crate::sink::SinkError;
use crate::watchdog::Activity;

pub struct Poller<P> {
    pub provider: Arc<P>,
    pub clock: Clock,
    /// Period of a poll round over every slot symbol (`watchdog.poll_interval`).
    pub every: Interval,
    /// Stream silence in degrade mode before polling starts (`watchdog.poll_after`).
    pub after: Interval,
    /// Track B's window: polls only feed samples.
    pub schedule: Schedule,
    pub degraded: Arc<AtomicBool>,
    pub outage: Arc<Outage>,
    pub activity: Arc<Activity>,
    pub slots: watch::Receiver<Vec<Symbol>>,
    pub frames: mpsc::Sender<RoutedFrame>,
    pub events: Events,
}

/// Whether the stream counts as dead for Track B: in degrade mode, and no stream data for
/// `after` since the later of the last data and entering degrade mode (the trades-only
/// session degrade mode starts gets that long to deliver).
pub fn stream_dead(degraded_since: Option<UtcTime>, last_data: Option<UtcTime>, now: UtcTime, after: Interval) -> bool {
    let Some(entered) = degraded_since else { return false };
    let since = last_data.map_or(entered, |d| d.max(entered));
    now.millis_since(since) >= after.as_millis() as i64
}

impl<P: MarketProvider> Poller<P> {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let every = self.every.as_millis() as i64;
        let mut degraded_since: Option<UtcTime> = None;
        let mut polling = false;
        // The slot set the last poll round or top-up covered.
        let mut polled: Vec<Symbol> = Vec::new();
        let mut slots_open = true;
        let mut next = self.clock.now().plus_millis(every);
        loop {
            let round = tokio::select! {
                _ = self.clock.sleep_until(next) => true,
                changed = self.slots.changed(), if polling && slots_open => {
                    slots_open = changed.is_ok();
                    false
                }
                _ = model::stopped(&mut stop) => return Ok(()),
            };
            if !round {
                // Slots changed between rounds: poll the entrants now (see `poll`).
                // `changed()` has marked the new set seen, so take the entrants here.
                let mut entered = VecDeque::new();
                self.take_entrants(&mut entered, &mut polled);
                if !self.poll(entered, &mut polled).await {
                    return Ok(()); // the observer has stopped: the run is ending
                }
                continue;
            }
            let now = self.clock.now();
            next = next.plus_millis(every).max(now);
            degraded_since = match (self.degraded.load(Relaxed), degraded_since) {
                (true, None) => Some(now),
                (true, since) => since,
                (false, _) => None,
            };
            let dead = stream_dead(degraded_since, self.activity.last_data(), now, self.after);
            let want = dead && self.schedule.in_window(now);
            if want != polling {
                polling = want;
                self.outage.rest_polling.store(want, Relaxed);
                self.announce(now, want).await?;
            }
            if !polling {
                continue;
            }
            polled = self.slots.borrow_and_update().clone();
            if !self.poll(VecDeque::from(polled.clone()), &mut polled).await {
                return Ok(());
            }
        }
    }

    /// One REST snapshot per queued symbol, each into the frame queue; false once the
    /// observer has stopped taking frames. `polled` is the slot set already covered.
    ///
    /// A symbol that enters the slots has no data at all until it is polled, so before each
    /// snapshot a slot change puts the entrants at the front of the queue (rather than up to
    /// a whole round later: a round of 41 rate-limited snapshots takes seconds), and drops
    /// the symbols that left.
    async fn poll(&mut self, mut queue: VecDeque<Symbol>, polled: &mut Vec<Symbol>) -> bool {
        let mut failed: Vec<String> = Vec::new();
        loop {
            if self.slots.has_changed().unwrap_or(false) {
                self.take_entrants(&mut queue, polled);
            }
            let Some(symbol) = queue.pop_front() else { break };
            // Through the provider's rate limiter, shared with Track A.
            match self.provider.snapshot(&symbol).await {
                Ok(frame) => {
                    if self.frames.send((Route::Book, frame)).await.is_err() {
                        return false;
                    }
                }
                Err(e) => failed.push(format!("{symbol}: {e}")),
            }
        }
        if !failed.is_empty() {
            // The samples show it too: their data_age_ms keeps growing.
            tracing::warn!(provider = %self.events.provider, failed = failed.len(), first = %failed[0], "REST polls failed");
        }
        true
    }

    /// Takes the current slot set as covered: its symbols not in `polled` go to the front
    /// of `queue`, queued symbols no longer in it are dropped.
    fn take_entrants(&mut self, queue: &mut VecDeque<Symbol>, polled: &mut Vec<Symbol>) {
        let current = self.slots.borrow_and_update().clone();
        queue.retain(|s| current.contains(s));
        for s in current.iter().rev().filter(|s| !polled.contains(s)) {
            queue.push_front(s.clone());
        }
        *polled = current;
    }

    async fn announce(&self, now: UtcTime, on: bool) -> Result<(), SinkError> {
        let n = self.slots.borrow().len();
        let ev = if on {
            tracing::error!(provider = %self.events.provider, "stream dead in degrade mode: Track B polls REST");
            SystemEvent::SelfHealing {
                action: "rest_polling".into(),
                level: 2,
                reason: format!("stream still silent {} into degrade mode; Track B fed by REST polls", self.after),
                detail: Some(
                    json!({ "slots": n, "poll_interval": self.every.to_string(), "last_data": self.activity.last_data() }),
                ),
            }
        } else {
            tracing::info!(provider = %self.events.provider, "REST polling stopped");
            SystemEvent::SelfHealing {
                action: "rest_polling_stopped".into(),
                level: 0,
                reason: "stream data returned, degrade mode ended or Track B's window closed".into(),
                detail: Some(json!({ "last_data": self.activity.last_data() })),
            }
        };
        self.events.system(now, ev).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_dead_only_in_degrade_mode_after_the_grace_period() {
        let t0 = UtcTime::from_millis(1_800_000_000_000);
        let after: Interval = "30s".parse().unwrap();
        // Not degraded: never, however long the silence.
        assert!(!stream_dead(None, Some(t0), t0.plus_millis(3_600_000), after));
        // Just entered degrade mode after a long silence: the new session gets `after`.
        assert!(!stream_dead(Some(t0), Some(t0.plus_millis(-120_000)), t0.plus_millis(29_999), after));
        assert!(stream_dead(Some(t0), Some(t0.plus_millis(-120_000)), t0.plus_millis(30_000), after));
        // Data after entering: counted from the data.
        assert!(!stream_dead(Some(t0), Some(t0.plus_millis(20_000)), t0.plus_millis(40_000), after));
        assert!(stream_dead(Some(t0), Some(t0.plus_millis(20_000)), t0.plus_millis(50_000), after));
        // No data ever: counted from entering degrade mode.
        assert!(stream_dead(Some(t0), None, t0.plus_millis(30_000), after));
    }
}

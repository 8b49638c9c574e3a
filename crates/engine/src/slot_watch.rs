//! What happens when a symbol enters a slot (seed 001 §2.4): it is seeded at once with a
//! REST snapshot, so its first samples carry the market's state rather than nothing, and it
//! must then show stream data within `tracks.scalp.slot_dark_after`, or a `slot_dark` event
//! names it. Leaving registrations are released before an entrant's are made by the
//! provider's stream (KIS: unsubscribe first), so an entrant never waits for room.
//!
//! The seed goes through the provider's frame queue like a degrade-mode poll (`poll`): the
//! observer applies it to the book in order with the stream's frames, the raw archive keeps
//! it where it was used (so `replay` samples the same states), and it never counts as
//! stream data.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use model::settings::Interval;
use model::{Clock, Symbol, SystemEvent, UtcTime};
use providers::MarketProvider;

use crate::pipeline::Events;
use crate::router::{Route, RoutedFrame};
use crate::schedule::Schedule;
use crate::sink::SinkError;
use crate::watchdog::Activity;

pub struct SlotWatch<P> {
    pub provider: Arc<P>,
    pub clock: Clock,
    /// Track B's window: outside it no slot is held.
    pub schedule: Schedule,
    pub slots: watch::Receiver<Vec<Symbol>>,
    pub activity: Arc<Activity>,
    pub dark_after: Interval,
    pub frames: mpsc::Sender<RoutedFrame>,
    pub events: Events,
}

/// A slot entrant still waiting for its first stream data.
#[derive(Debug, Clone)]
struct Waiting {
    symbol: Symbol,
    entered: UtcTime,
}

impl<P: MarketProvider> SlotWatch<P> {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), SinkError> {
        let (seed_tx, seed_rx) = mpsc::unbounded_channel::<Symbol>();
        let seeded = Arc::new(Mutex::new(HashSet::new()));
        let seeder = seed(self.provider.clone(), self.slots.clone(), seed_rx, self.frames.clone(), seeded.clone());
        tokio::pin!(seeder);
        let dark_ms = self.dark_after.as_millis() as i64;
        let mut held: Vec<Symbol> = Vec::new();
        let mut waiting: Vec<Waiting> = Vec::new();
        loop {
            let now = self.clock.now();
            let in_window = self.schedule.in_window(now);
            let current = if in_window { self.slots.borrow_and_update().clone() } else { Vec::new() };
            self.activity.on_slots(now, &current);
            for s in current.iter().filter(|s| !held.contains(s)) {
                let _ = seed_tx.send(s.clone());
                waiting.push(Waiting { symbol: s.clone(), entered: now });
            }
            let mut still = Vec::with_capacity(waiting.len());
            for w in waiting.drain(..) {
                if !current.contains(&w.symbol) || self.activity.has_data_since(&w.symbol, w.entered) {
                    continue;
                }
                let waited = now.millis_since(w.entered);
                if waited < dark_ms {
                    still.push(w);
                    continue;
                }
                let was_seeded = seeded.lock().unwrap_or_else(|p| p.into_inner()).contains(&w.symbol);
                tracing::warn!(provider = %self.events.provider, symbol = %w.symbol, waited_ms = waited, "slot dark: no stream data since entering the slot");
                let ev = SystemEvent::SlotDark {
                    symbol: w.symbol,
                    entered: w.entered,
                    waited_ms: waited as u64,
                    seeded: was_seeded,
                };
                self.events.system(now, ev).await?;
            }
            waiting = still;
            held = current;
            // Wake for the next deadline, the window's opening, or (inside it) at least once
            // per `dark_after`, besides every slot change.
            let wake = if in_window {
                let next = waiting.iter().map(|w| w.entered.plus_millis(dark_ms)).min();
                next.unwrap_or(now.plus_millis(dark_ms)).min(now.plus_millis(dark_ms))
            } else {
                match self.schedule.next_at_or_after(now) {
                    Some(open) => open,
                    None => now.plus_millis(dark_ms),
                }
            };
            tokio::select! {
                changed = self.slots.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                _ = self.clock.sleep_until(wake) => {}
                r = &mut seeder => return r,
                _ = model::stopped(&mut stop) => return Ok(()),
            }
        }
    }
}

/// Takes a REST snapshot of each entrant still holding its slot when its turn comes (the
/// provider's rate limiter paces them) and queues it for the observer.
async fn seed<P: MarketProvider>(
    provider: Arc<P>,
    slots: watch::Receiver<Vec<Symbol>>,
    mut entrants: mpsc::UnboundedReceiver<Symbol>,
    frames: mpsc::Sender<RoutedFrame>,
    seeded: Arc<Mutex<HashSet<Symbol>>>,
) -> Result<(), SinkError> {
    while let Some(symbol) = entrants.recv().await {
        if !slots.borrow().contains(&symbol) {
            continue;
        }
        match provider.snapshot(&symbol).await {
            Ok(frame) => {
                if frames.send((Route::Book, frame)).await.is_err() {
                    return Ok(()); // the observer has stopped: the run is ending
                }
                seeded.lock().unwrap_or_else(|p| p.into_inner()).insert(symbol);
            }
            // The slot_dark check still names the symbol if the stream stays silent too.
            Err(e) => tracing::warn!(%symbol, error = %e, "slot seed snapshot failed"),
        }
    }
    // The watch loop holds the sender for the whole run.
    std::future::pending().await
}

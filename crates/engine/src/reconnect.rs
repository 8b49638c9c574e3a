//! Reconnection (seed 001 §2.11, §2.14.2): when a provider stream ends without being asked
//! to, wait the configured backoff step and connect again, for as long as it takes. Every
//! attempt is a `reconnection_event`; the whole outage, from the disconnect to the first
//! frame that yields data, is one `gap_marker`. The attempt counter resets only on that
//! first data frame, not on a TCP connect, so a server that accepts and then drops cannot
//! cause a reconnect storm.

use std::sync::Arc;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use model::settings::{Checker, Interval, Validate};
use model::{Clock, RawFrame, Symbol, SystemEvent, UtcTime};
use providers::MarketProvider;

use crate::pipeline::Events;
use crate::sink::SinkError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// Waits before successive attempts; the last one repeats (seed: 1, 2, 5, 10, 20, 30, 60 s).
    pub backoff: Vec<Interval>,
}

impl Validate for ReconnectConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(!self.backoff.is_empty(), "backoff", "needs at least one step");
    }
}

#[derive(Debug, Clone)]
struct Open {
    start: UtcTime,
    reason: String,
    attempt: u32,
    backoff_seconds: u64,
}

/// The outage in progress, shared by the stream supervisor and the observer task.
#[derive(Debug, Default)]
pub struct Outage {
    open: Mutex<Option<Open>>,
}

impl Outage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Called by the observer for a frame that yielded data: closes the outage, if any.
    pub async fn on_data(&self, now: UtcTime, events: &Events, slots: &[Symbol]) -> Result<(), SinkError> {
        let Some(o) = self.lock().take() else { return Ok(()) };
        let level = events.mitigation.load(std::sync::atomic::Ordering::Relaxed);
        events.system(now, SystemEvent::gap(o.start, now, "scalp", "ws_disconnect", Some(o.reason))).await?;
        let event = SystemEvent::ReconnectionEvent {
            timestamp: now,
            attempt_no: o.attempt,
            backoff_seconds: o.backoff_seconds,
            result: "SUCCESS".into(),
            recovered_slot_list: slots.to_vec(),
            mitigation_level_after: level,
        };
        events.system(now, event).await
    }
}

pub struct Supervisor<P> {
    pub provider: Arc<P>,
    pub clock: Clock,
    pub events: Events,
    pub outage: Arc<Outage>,
    pub backoff: Vec<Interval>,
}

impl<P: MarketProvider> Supervisor<P> {
    /// Runs the provider stream until `stop`, reconnecting after every unrequested end.
    pub async fn run(
        self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), SinkError> {
        loop {
            let result = self.provider.stream(subscriptions.clone(), out.clone(), stop.clone()).await;
            if *stop.borrow() {
                return Ok(());
            }
            let why = match result {
                Ok(()) => "the stream ended without being asked to".to_string(),
                Err(e) => e.to_string(),
            };
            let now = self.clock.now();
            // Attempts made so far in this outage, and the one that just failed (if any).
            let (done, failed) = {
                let mut open = self.outage.lock();
                match open.as_mut() {
                    // Still no data since the outage began: this attempt failed.
                    Some(o) => (o.attempt, Some((o.attempt, o.backoff_seconds))),
                    None => {
                        *open = Some(Open { start: now, reason: why.clone(), attempt: 0, backoff_seconds: 0 });
                        (0, None)
                    }
                }
            };
            let level = self.events.mitigation.load(std::sync::atomic::Ordering::Relaxed);
            if let Some((attempt_no, backoff_seconds)) = failed {
                let event = SystemEvent::ReconnectionEvent {
                    timestamp: now,
                    attempt_no,
                    backoff_seconds,
                    result: "FAIL".into(),
                    recovered_slot_list: vec![],
                    mitigation_level_after: level,
                };
                self.events.system(now, event).await?;
            }
            tracing::warn!(provider = %self.provider.id(), reason = %why, "stream lost; reconnecting");
            let wait = self.backoff[(done as usize).min(self.backoff.len() - 1)];
            if let Some(o) = self.outage.lock().as_mut() {
                o.attempt = done + 1;
                o.backoff_seconds = wait.get().as_secs();
            }
            tokio::select! {
                _ = self.clock.sleep(wait.get()) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
        }
    }
}

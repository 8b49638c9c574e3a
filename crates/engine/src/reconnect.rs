//! Reconnection (seed 001 §2.11, §2.14.2): when a provider stream ends without being asked
//! to, wait the configured backoff step and connect again, for as long as it takes. Every
//! attempt is a `reconnection_event`; the whole outage, from the disconnect to the first
//! frame that yields data, is one `gap_marker`. The attempt counter resets only on that
//! first data frame, not on a TCP connect, so a server that accepts and then drops cannot
//! cause a reconnect storm.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

use model::settings::{Checker, Interval, Validate};
use model::{Clock, RawFrame, Symbol, SystemEvent, UtcTime};
use providers::MarketProvider;

use crate::activity::Activity;
use crate::pipeline::Events;
use crate::schedule::Schedule;
use crate::sink::SinkError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// Waits before successive attempts; the last one repeats (seed: 1, 2, 5, 10, 20, 30, 60 s).
    pub backoff: Vec<Interval>,
    /// Continuous failure this long pauses scalp recording and marks the day anomalous
    /// (seed 001 §2.11: 5 minutes).
    pub pause_scalp_after: Interval,
    /// The stream connects this long before Track B's window opens, so the book is warm at
    /// the first sample; it is closed when the window ends (KR stocks; crypto never closes).
    pub connect_ahead: Interval,
}

impl Validate for ReconnectConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(!self.backoff.is_empty(), "backoff", "needs at least one step");
    }
}

#[derive(Debug, Clone)]
struct Open {
    /// The last data received before the outage: where the hole in the data begins.
    start: UtcTime,
    /// When the outage was noticed (a dropped socket, the idle timeout, the watchdog):
    /// only data received after this proves the stream is back.
    detected: UtcTime,
    /// The gap marker's reason code; `reason` is the detail.
    code: &'static str,
    reason: String,
    attempt: u32,
    backoff_seconds: u64,
}

/// A request for marked evidence after a gap: REST snapshots of `symbols`.
#[derive(Debug, Clone)]
pub struct EvidenceRequest {
    pub gap_start: UtcTime,
    pub gap_end: UtcTime,
    pub symbols: Vec<Symbol>,
}

/// The outage in progress, shared by the stream supervisor, the watchdog and the observer
/// task, plus the switches the outage drives.
#[derive(Debug, Default)]
pub struct Outage {
    open: Mutex<Option<Open>>,
    /// Scalp recording is paused (continuous failure past `pause_scalp_after`).
    pub scalp_paused: AtomicBool,
    /// Whether a stream session is currently up (for the status line).
    pub connected: AtomicBool,
    /// When the current stream session began (ms; 0 before the first). The watchdog only
    /// sees the socket down if it looks during the backoff; a session that came up between
    /// two of its looks must not be blamed for the silence of the one before.
    session_started_ms: AtomicI64,
    /// Track B is fed by REST polls (degrade mode, stream dead): it keeps sampling even
    /// when scalp recording would otherwise pause.
    pub rest_polling: AtomicBool,
    /// Asks the supervisor to drop the current session and connect again (the watchdog).
    pub restart: Notify,
    evidence: Mutex<Option<mpsc::UnboundedSender<EvidenceRequest>>>,
}

impl Outage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// Where the hole of the open outage began (the last data before it); `None` while no
    /// outage is open.
    pub fn down_since(&self) -> Option<UtcTime> {
        self.lock().as_ref().map(|o| o.start)
    }

    /// When the current (or last) stream session began.
    pub fn session_started(&self) -> Option<UtcTime> {
        match self.session_started_ms.load(Relaxed) {
            0 => None,
            ms => Some(UtcTime::from_millis(ms)),
        }
    }

    /// Where snapshots of the slot symbols are asked for when an outage closes.
    pub fn set_evidence(&self, tx: mpsc::UnboundedSender<EvidenceRequest>) {
        *self.evidence.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Opens an outage noticed at `detected` whose hole began at `start` (the last data
    /// received, not the moment a timeout or the watchdog noticed).
    pub fn open_at(&self, start: UtcTime, detected: UtcTime, code: &'static str, reason: String) {
        let mut open = self.lock();
        if open.is_none() {
            let start = start.min(detected);
            *open = Some(Open { start, detected, code, reason, attempt: 0, backoff_seconds: 0 });
        }
    }

    /// Called by the observer for a frame that yielded data: closes the outage, if any.
    pub async fn on_data(&self, now: UtcTime, events: &Events, slots: &[Symbol]) -> Result<(), SinkError> {
        let o = {
            let mut open = self.lock();
            match open.as_mut() {
                Some(o) if now > o.detected => open.take(),
                // Data received before the outage was noticed was queued behind it: it does
                // not end the outage, but the hole only begins after it.
                Some(o) => {
                    o.start = o.start.max(now);
                    None
                }
                None => None,
            }
        };
        let Some(o) = o else { return Ok(()) };
        let level = events.mitigation.load(Relaxed);
        // A frame stamped before the outage opened (queued behind it) still ends it; the
        // marker never runs backwards.
        let end = now.max(o.start);
        events.system(now, SystemEvent::gap(o.start, end, "scalp", o.code, Some(o.reason))).await?;
        let event = SystemEvent::ReconnectionEvent {
            timestamp: now,
            attempt_no: o.attempt,
            backoff_seconds: o.backoff_seconds,
            result: "SUCCESS".into(),
            recovered_slot_list: slots.to_vec(),
            mitigation_level_after: level,
        };
        events.system(now, event).await?;
        if self.scalp_paused.swap(false, Relaxed) {
            let ev = SystemEvent::SelfHealing {
                action: "scalp_resumed".into(),
                level: 0,
                reason: "the stream delivers data again".into(),
                detail: None,
            };
            events.system(now, ev).await?;
        }
        if let Some(tx) = self.evidence.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(EvidenceRequest { gap_start: o.start, gap_end: now, symbols: slots.to_vec() });
        }
        Ok(())
    }
}

pub struct Supervisor<P> {
    pub provider: Arc<P>,
    pub clock: Clock,
    pub events: Events,
    pub outage: Arc<Outage>,
    pub config: ReconnectConfig,
    /// When the stream is wanted (Track B's window on trading days); `None`: always.
    pub window: Option<Schedule>,
    /// When data last arrived, where a gap marker begins.
    pub activity: Arc<Activity>,
}

impl Outage {
    /// The window closed while the stream was down: the gap ends with the window, and the
    /// next window starts with a fresh attempt count.
    async fn close_at_window_end(&self, end: UtcTime, events: &Events) -> Result<(), SinkError> {
        let Some(o) = self.lock().take() else { return Ok(()) };
        let detail = format!("{} (still down when the window closed)", o.reason);
        events.system(end, SystemEvent::gap(o.start, end.max(o.start), "scalp", o.code, Some(detail))).await
    }
}

impl<P: MarketProvider> Supervisor<P> {
    /// Runs the provider stream until `stop`, reconnecting after every unrequested end.
    pub async fn run(
        self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), SinkError> {
        let backoff = &self.config.backoff;
        loop {
            // Outside the window nothing is expected from the stream: stay disconnected.
            let window_end = match &self.window {
                Some(w) => {
                    let now = self.clock.now();
                    let ahead = self.config.connect_ahead.as_millis() as i64;
                    if !w.in_window(now.plus_millis(ahead)) && !w.in_window(now) {
                        self.outage.close_at_window_end(now, &self.events).await?;
                        let Some(open) = w.next_at_or_after(now) else { return Ok(()) };
                        tokio::select! {
                            _ = self.clock.sleep_until(open.plus_millis(-ahead)) => {}
                            _ = model::stopped(&mut stop) => return Ok(()),
                        }
                    }
                    let now = self.clock.now();
                    let day = if w.in_window(now) { now } else { now.plus_millis(ahead) };
                    Some(UtcTime::from_kst(jiff::civil::DateTime::from_parts(day.kst().date(), w.window.end)))
                }
                None => None,
            };
            let closes = async {
                match window_end {
                    Some(t) => self.clock.sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            self.outage.connected.store(true, Relaxed);
            let session_started = self.clock.now();
            self.outage.session_started_ms.store(session_started.as_millis(), Relaxed);
            let result = tokio::select! {
                r = self.provider.stream(subscriptions.clone(), out.clone(), stop.clone()) => r.map_err(|e| e.to_string()),
                _ = self.outage.restart.notified() => Err("session restarted by the watchdog".to_string()),
                _ = closes => {
                    self.outage.connected.store(false, Relaxed);
                    tracing::info!(provider = %self.provider.id(), "stream window closed; disconnected until the next one");
                    continue;
                }
            };
            self.outage.connected.store(false, Relaxed);
            if *stop.borrow() {
                return Ok(());
            }
            let why = match result {
                Ok(()) => "the stream ended without being asked to".to_string(),
                Err(e) => e,
            };
            let now = self.clock.now();
            // Attempts made so far in this outage, and the one that just failed (if any).
            let (done, failed, since) = {
                let mut open = self.outage.lock();
                match open.as_mut() {
                    // No data since the outage began: the last attempt failed (or, for an
                    // outage the watchdog opened, the silent session is the first failure).
                    Some(o) if o.attempt > 0 => (o.attempt, Some((o.attempt, o.backoff_seconds)), o.start),
                    Some(o) => (0, None, o.start),
                    None => {
                        // The hole began with the last data this session delivered (a stalled
                        // socket is noticed only when a timeout runs out), or with the
                        // session itself if it delivered none.
                        let start = self.activity.last_data().map_or(session_started, |d| d.max(session_started));
                        let start = start.min(now);
                        *open = Some(Open {
                            start,
                            detected: now,
                            code: "ws_disconnect",
                            reason: why.clone(),
                            attempt: 0,
                            backoff_seconds: 0,
                        });
                        (0, None, start)
                    }
                }
            };
            let level = self.events.mitigation.load(Relaxed);
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
            let failing_ms = now.millis_since(since);
            if failing_ms >= self.config.pause_scalp_after.as_millis() as i64
                && !self.outage.scalp_paused.swap(true, Relaxed)
            {
                // Seed 001 §2.11: recording scalp data with no stream behind it would only
                // write empty samples; stop, say so loudly, and mark the day.
                tracing::error!(provider = %self.provider.id(), "stream down for {failing_ms} ms: scalp recording paused");
                let ev = SystemEvent::SelfHealing {
                    action: "scalp_paused".into(),
                    level: 2,
                    reason: format!("reconnection failing for {}s", failing_ms / 1000),
                    detail: Some(serde_json::json!({ "since": since, "last_error": why })),
                };
                self.events.system(now, ev).await?;
                let day = SystemEvent::AnomalyDay {
                    condition: "reconnect_failing".into(),
                    value: (failing_ms / 1000) as f64,
                    threshold: self.config.pause_scalp_after.get().as_secs_f64(),
                    date: now.kst_yyyymmdd(),
                };
                self.events.system(now, day).await?;
            }
            tracing::warn!(provider = %self.provider.id(), reason = %why, "stream lost; reconnecting");
            let wait = backoff[(done as usize).min(backoff.len() - 1)];
            if let Some(o) = self.outage.lock().as_mut() {
                o.attempt = done + 1;
                o.backoff_seconds = wait.get().as_secs();
            }
            crate::stats::inc(&self.events.stats.reconnect_attempts);
            tokio::select! {
                _ = self.clock.sleep(wait.get()) => {}
                _ = model::stopped(&mut stop) => return Ok(()),
            }
        }
    }
}

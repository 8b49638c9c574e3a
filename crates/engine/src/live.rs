//! What a running collection exposes while it runs: the status line, `/health`, `/metrics`
//! and the exit summary read it; the tasks update it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use model::{Clock, Market, Provider, SessionId, Symbol, UtcTime};

use crate::anomaly::Day;
use crate::mitigation::Pressure;
use crate::pipeline::FrameBytes;
use crate::reconnect::Outage;
use crate::router::RoutedFrame;
use crate::stats::Stats;
use crate::track_b::SlotGauge;

/// What the status line, `/health` and the exit summary read while a run is live.
#[derive(Debug)]
pub struct Live {
    pub session: SessionId,
    pub providers: Vec<(Provider, Market)>,
    pub clock: Clock,
    pub started: UtcTime,
    /// Where the archive is (its file system's usage is a `/metrics` gauge).
    pub data_dir: PathBuf,
    pub stats: Arc<Stats>,
    pub mitigation: Arc<AtomicU8>,
    /// Summed over providers.
    pub universe_size: AtomicU64,
    /// Slot capacity summed over providers (41 per market by default).
    pub slot_capacity: AtomicU64,
    /// Track B's sampling rate at each mitigation level.
    pub hz_by_level: [f64; 3],
    /// Forced readings from fault scripts.
    pub pressure: Arc<Pressure>,
    /// The day so far (reconnects, gaps, recording rate, tripped anomaly conditions).
    pub day: Mutex<Day>,
    /// Manual override (seed 001 §2.5 trigger 4): symbols always / never given a slot.
    /// Sent by a config reload (SIGHUP) today, by a CLI/API command later.
    pub manual: watch::Sender<Manual>,
    /// Each provider's pipeline, registered as it starts.
    pub(crate) feeds: Mutex<Vec<Arc<Feed>>>,
}

/// One provider's pipeline as the live views see it: its stream's state, its slots and its
/// queue. The status line and `/health` sum them; `/metrics` labels them by provider.
#[derive(Debug)]
pub struct Feed {
    pub provider: Provider,
    pub market: Market,
    pub outage: Arc<Outage>,
    pub slots: Arc<SlotGauge>,
    pub slot_capacity: u64,
    /// The day's universe of this provider.
    pub universe: AtomicU64,
    /// Set by this provider's watchdog while it runs in degrade mode.
    pub degraded: Arc<AtomicBool>,
    /// The observer queue: frames waiting (a weak sender, so it never holds the queue open)…
    pub(crate) frames: mpsc::WeakSender<RoutedFrame>,
    /// …and the bytes of the stream's frames among them.
    pub(crate) frame_bytes: Arc<FrameBytes>,
}

/// The connection states a stream can be in, in the order they win when providers are summed.
pub const CONNECTION_STATES: [&str; 5] = ["rest_polling", "reconnecting", "degraded", "connected", "connecting"];

impl Feed {
    /// `rest_polling` (degrade mode feeds Track B from REST), `reconnecting` (an outage is
    /// open), `degraded` (trades only), `connected`, or `connecting` (no session up, e.g.
    /// before the first or outside the stream's window).
    pub fn connection_state(&self) -> &'static str {
        if self.outage.rest_polling.load(Relaxed) {
            "rest_polling"
        } else if self.outage.is_open() {
            "reconnecting"
        } else if self.degraded.load(Relaxed) {
            "degraded"
        } else if self.outage.connected.load(Relaxed) {
            "connected"
        } else {
            "connecting"
        }
    }

    /// Market-clock seconds since the stream last delivered data, while an outage is open
    /// (a lost or silent stream being reconnected); 0 while the stream is up, and outside
    /// its window, when nothing is expected.
    pub fn disconnected_seconds(&self, now: UtcTime) -> f64 {
        self.outage.down_since().map_or(0.0, |since| now.millis_since(since).max(0) as f64 / 1000.0)
    }

    /// Frames waiting in the observer queue, and the bytes of the stream's frames among them.
    pub fn queued(&self) -> (u64, u64) {
        let frames = self.frames.upgrade().map_or(0, |tx| tx.max_capacity() - tx.capacity());
        (frames as u64, self.frame_bytes.queued() as u64)
    }
}

/// The manual override lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manual {
    pub include: Vec<Symbol>,
    pub exclude: Vec<Symbol>,
}

impl Live {
    /// A run's view with no provider started: what tools and the tests of the components
    /// that read a `Live` (alert sources) begin from.
    pub fn detached(clock: Clock, data_dir: PathBuf) -> Live {
        let started = clock.now();
        Live {
            session: SessionId::starting_at(started),
            providers: Vec::new(),
            clock,
            started,
            data_dir,
            stats: Arc::default(),
            mitigation: Arc::default(),
            universe_size: AtomicU64::new(0),
            slot_capacity: AtomicU64::new(0),
            hz_by_level: [0.0; 3],
            pressure: Arc::default(),
            day: Mutex::default(),
            manual: watch::Sender::new(Manual::default()),
            feeds: Mutex::default(),
        }
    }

    /// Each provider's pipeline started so far, in start order.
    pub fn feeds(&self) -> Vec<Arc<Feed>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn feed(&self, provider: Provider) -> Option<Arc<Feed>> {
        self.feeds().into_iter().find(|f| f.provider == provider)
    }

    pub fn outages(&self) -> Vec<Arc<Outage>> {
        self.feeds().iter().map(|f| f.outage.clone()).collect()
    }

    /// `rest_polling`, `reconnecting`, `degraded`, `connected` or `connecting`, over all
    /// providers: the first of [`CONNECTION_STATES`] any provider is in, except that
    /// `connected` needs every provider connected.
    pub fn connection_state(&self) -> &'static str {
        let states: Vec<&str> = self.feeds().iter().map(|f| f.connection_state()).collect();
        Self::fold_states(&states)
    }

    fn fold_states(states: &[&str]) -> &'static str {
        match CONNECTION_STATES.iter().find(|s| states.contains(s)) {
            Some(&"connected") if states.iter().any(|s| *s != "connected") => "connecting",
            Some(s) => s,
            None => "connecting",
        }
    }

    /// Slots Track B sampled last, summed over providers, and how many of them had data
    /// younger than `tracks.scalp.stale_after` (`slots 41/41 streaming 41`).
    pub fn slots(&self) -> (u64, u64) {
        self.feeds()
            .iter()
            .fold((0, 0), |(a, s), f| (a + f.slots.assigned.load(Relaxed), s + f.slots.streaming.load(Relaxed)))
    }

    /// Track B's sampling rate now.
    pub fn hz(&self) -> f64 {
        self.hz_by_level[self.mitigation.load(Relaxed).min(2) as usize]
    }

    pub fn day(&self) -> Day {
        self.day.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(provider: Provider, market: Market, frames: &mpsc::Sender<RoutedFrame>) -> Arc<Feed> {
        Arc::new(Feed {
            provider,
            market,
            outage: Arc::default(),
            slots: Arc::default(),
            slot_capacity: 41,
            universe: AtomicU64::new(0),
            degraded: Arc::default(),
            frames: frames.downgrade(),
            frame_bytes: Arc::new(FrameBytes::new(1000)),
        })
    }

    #[test]
    fn each_provider_has_its_own_state_and_the_run_shows_the_worst() {
        let (tx, _rx) = mpsc::channel(8);
        let (kis, upbit) = (feed(Provider::Kis, Market::KrStocks, &tx), feed(Provider::Upbit, Market::Crypto, &tx));
        let feeds = [kis.clone(), upbit.clone()];
        let run = |feeds: &[Arc<Feed>]| {
            let states: Vec<&str> = feeds.iter().map(|f| f.connection_state()).collect();
            let live_like = Live::fold_states(&states);
            (states, live_like)
        };
        assert_eq!(run(&feeds), (vec!["connecting", "connecting"], "connecting"));
        kis.outage.connected.store(true, Relaxed);
        assert_eq!(run(&feeds), (vec!["connected", "connecting"], "connecting"));
        upbit.outage.connected.store(true, Relaxed);
        assert_eq!(run(&feeds), (vec!["connected", "connected"], "connected"));
        // Degrade mode is one provider's, not the run's.
        upbit.degraded.store(true, Relaxed);
        assert_eq!(run(&feeds), (vec!["connected", "degraded"], "degraded"));
        let t0 = UtcTime::from_millis(1_000_000);
        kis.outage.open_at(t0, t0.plus_millis(5_000), "ws_disconnect", "test".into());
        assert_eq!(run(&feeds), (vec!["reconnecting", "degraded"], "reconnecting"));
        // Disconnected since the last data before the outage; 0 for the stream that is up.
        assert_eq!(kis.disconnected_seconds(t0.plus_millis(90_500)), 90.5);
        assert_eq!(upbit.disconnected_seconds(t0.plus_millis(90_500)), 0.0);
        assert_eq!(run(&[]), (vec![], "connecting"));
    }

    #[test]
    fn the_queue_counts_frames_and_bytes_without_holding_it_open() {
        let (tx, mut rx) = mpsc::channel(8);
        let f = feed(Provider::Kis, Market::KrStocks, &tx);
        let frame = model::RawFrame {
            provider: Provider::Kis,
            kind: model::RawFrameKind::Ws,
            channel: "t".into(),
            frame: "x".repeat(300),
            receive_time: UtcTime::from_millis(0),
        };
        tx.try_send((crate::router::Route::Stream, frame.clone())).unwrap();
        tx.try_send((crate::router::Route::Stream, frame.clone())).unwrap();
        let reserve = f.frame_bytes.clone();
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
            reserve.reserve(&frame).await;
            reserve.reserve(&frame).await;
        });
        assert_eq!(f.queued(), (2, 600));
        drop(tx);
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok());
        assert_eq!(rx.try_recv().unwrap_err(), mpsc::error::TryRecvError::Disconnected, "the weak sender held it open");
        assert_eq!(f.queued(), (0, 600));
    }
}

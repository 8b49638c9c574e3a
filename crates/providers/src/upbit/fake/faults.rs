//! Runtime fault switches and the counters of what the server saw.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use model::UtcTime;
use tokio::sync::watch;

/// Runtime fault switches. Counts are "the next N" and run down as they fire.
#[derive(Debug)]
pub struct Faults {
    /// WebSocket connections stay open but send nothing and answer no `PING`.
    pub stall: AtomicBool,
    /// The next N data frames are cut in half (the JSON is torn).
    pub torn_frames: AtomicU32,
    /// The next N data frames are replaced by bytes that are not JSON (nor UTF-8).
    pub malformed_frames: AtomicU32,
    pub(super) rest_status: AtomicU32,
    pub(super) rest_status_count: AtomicU32,
    pub(super) refuse_until_ms: AtomicI64,
    pub(super) drop_gen: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            stall: AtomicBool::new(false),
            torn_frames: AtomicU32::new(0),
            malformed_frames: AtomicU32::new(0),
            rest_status: AtomicU32::new(0),
            rest_status_count: AtomicU32::new(0),
            refuse_until_ms: AtomicI64::new(i64::MIN),
            drop_gen: watch::Sender::new(0),
        }
    }
}

impl Faults {
    /// Drops every open WebSocket connection abruptly (no close frame, like a 1006).
    pub fn drop_connections(&self) {
        self.drop_gen.send_modify(|g| *g += 1);
    }
    /// Answers the next `n` REST requests with `status` (429, 500, 503, …) instead.
    pub fn fail_rest(&self, status: u16, n: u32) {
        self.rest_status.store(status as u32, Ordering::SeqCst);
        self.rest_status_count.store(n, Ordering::SeqCst);
    }
    /// Refuses new WebSocket connections (closes the TCP socket at once) until `until`.
    pub fn refuse_connections_until(&self, until: UtcTime) {
        self.refuse_until_ms.store(until.as_millis(), Ordering::SeqCst);
    }
    pub fn set_stall(&self, on: bool) {
        self.stall.store(on, Ordering::SeqCst);
    }
    pub fn tear_next(&self, n: u32) {
        self.torn_frames.store(n, Ordering::SeqCst);
    }
    pub fn garble_next(&self, n: u32) {
        self.malformed_frames.store(n, Ordering::SeqCst);
    }
}

pub(super) fn take(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
}

/// What the server saw, for tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub rest_requests: AtomicU64,
    pub rest_ok: AtomicU64,
    pub rest_429: AtomicU64,
    pub rest_418: AtomicU64,
    pub rest_injected: AtomicU64,
    /// Most requests accepted in one group within any 1 s window.
    pub rest_max_per_second: AtomicU64,
    pub ws_connections: AtomicU64,
    pub ws_refused: AtomicU64,
    pub ws_connect_rejected: AtomicU64,
    pub ws_client_messages: AtomicU64,
    pub ws_message_violations: AtomicU64,
    pub ws_subscribes: AtomicU64,
    pub ws_subscribe_errors: AtomicU64,
    pub ws_pings: AtomicU64,
    pub ws_data_frames: AtomicU64,
    pub ws_idle_drops: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

//! Per-stage counters (seed 000 §3.1: `published_count`, `received_count`, `saved_count`).
//! Engine-owned atomics, so the status line, `/metrics`, the exit summary and the tests all
//! read the same numbers, and a loss anywhere shows as a mismatch:
//!
//! - `events_normalized == events_passed + rejected_validate + rejected_guard`
//! - `lines_published == lines_saved + lines_failed` once the sink has drained

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),+ $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$m])* pub $name: AtomicU64,)+
            /// Receive time (ms) of the newest record that passed the observer core.
            pub last_record_ms: AtomicI64,
        }

        #[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $(pub $name: u64,)+
            pub last_record_ms: i64,
        }

        impl Stats {
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Relaxed),)+ last_record_ms: self.last_record_ms.load(Relaxed) }
            }
        }

        impl StatsSnapshot {
            /// Prometheus text exposition format.
            pub fn prometheus(&self) -> String {
                let mut out = String::new();
                $(
                    let _ = writeln!(out, "# TYPE stock_observer_{} counter", stringify!($name));
                    let _ = writeln!(out, "stock_observer_{} {}", stringify!($name), self.$name);
                )+
                out
            }
        }
    };
}

counters! {
    /// Raw frames received from providers (WebSocket and REST).
    frames_received,
    /// Frames the provider's parser could not understand (kept in the raw archive).
    frames_malformed,
    /// Normalized events produced by parsing.
    events_normalized,
    rejected_validate,
    rejected_guard,
    events_passed,
    swing_written,
    scalp_written,
    /// Track B samples not kept because the archive queue was full (each in the overflow ledger).
    scalp_sampled_down,
    /// Track B sample times that passed before the sampler could take them.
    scalp_late,
    system_events,
    overflow_entries,
    gaps,
    /// Lines handed to the archive sink.
    lines_published,
    /// Lines the sink appended to a file.
    lines_saved,
    /// Lines the sink failed to write (disk errors); each is logged.
    lines_failed,
    bytes_saved,
    files_closed,
    files_open,
    track_a_cycles,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

//! Per-stage counters (seed 000 §3.1: `published_count`, `received_count`, `saved_count`).
//! Engine-owned atomics, so the status line, `/metrics`, the exit summary and the tests all
//! read the same numbers, and a loss anywhere shows as a mismatch:
//!
//! - `events_normalized == events_passed + rejected_validate + rejected_guard + rejected_unsubscribed`
//! - `lines_published == lines_saved + lines_failed` once the sink has drained
//! - `lines_saved` and `bytes_saved` are the sums of `Stats::saved` over stream owners, and what
//!   the archive's files hold

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use model::Provider;

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),+ $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$m])* pub $name: AtomicU64,)+
            /// Receive time (ms) of the newest record that passed the observer core.
            pub last_record_ms: AtomicI64,
            /// Readings for the mitigation controller, not counters.
            pub gauges: Gauges,
            /// `lines_saved` and `bytes_saved` by whose stream the lines went to.
            pub saved: Saved,
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
    /// Stream records for symbols the stream was never asked for (injected or misrouted).
    rejected_unsubscribed,
    events_passed,
    swing_written,
    /// Track B samples written, whatever their quality…
    scalp_written,
    /// …of which nothing had arrived for the symbol yet (`quality_flag: no_data`)…
    scalp_no_data,
    /// …or the newest data was older than `tracks.scalp.stale_after` (`stale`).
    scalp_stale,
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
    /// Lines the sink failed to write (disk errors); each streak of failures is logged and
    /// ends in an `archive` gap marker.
    lines_failed,
    /// Lines appended (so counted in `lines_saved`) and then lost when writing or fsyncing
    /// their file failed (a full disk).
    lines_lost,
    bytes_saved,
    files_closed,
    files_open,
    track_a_cycles,
    /// Track A cycles cut short by the next cycle's due time (each with a swing gap marker).
    track_a_incomplete,
    /// Samples Track B's schedule asked for (slots × due times, outside paused periods).
    scalp_expected,
    /// Reconnection attempts made after a stream was lost.
    reconnect_attempts,
    mitigation_changes,
    slot_changes,
    /// Watchdog session restarts and degrade-mode entries.
    watchdog_actions,
    /// Candidate-monitor measurements skipped because they could not be computed (a
    /// difference or quotient outside `Decimal`'s range; reasons in
    /// `triggers::SkippedPoints`).
    trigger_points_skipped,
    /// Daily backup packages written and verified (`backup_created` events).
    backups_created,
    /// Backup packing, pulling or verifying that failed (`backup_failed` events).
    backups_failed,
    /// Unbacked days past `retention.raw_cap_days` that retention kept (`retention_held` events).
    retention_held,
}

/// Lines and bytes one stream owner's files received.
#[derive(Debug, Default)]
pub struct LinesBytes {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
}

/// What the sink appended, by owner: each provider's streams (raw, swing, scalp, events,
/// overflow), and the data dir's own (`system/lifecycle`).
#[derive(Debug, Default)]
pub struct Saved {
    by_provider: [LinesBytes; Provider::ALL.len()],
    pub lifecycle: LinesBytes,
}

impl Saved {
    /// `provider`'s lines and bytes; `None`: the lifecycle stream's.
    pub fn of(&self, provider: Option<Provider>) -> &LinesBytes {
        provider.map_or(&self.lifecycle, |p| &self.by_provider[p as usize])
    }
}

impl Stats {
    /// One line of `bytes` (its newline included) appended to a file of `provider`'s streams
    /// (`None`: the lifecycle stream).
    pub fn saved(&self, provider: Option<Provider>, bytes: u64) {
        inc(&self.lines_saved);
        add(&self.bytes_saved, bytes);
        let of = self.saved.of(provider);
        inc(&of.lines);
        add(&of.bytes, bytes);
    }
}

/// Worst readings since the mitigation controller last looked; each is taken (reset to 0)
/// by the controller so one slow moment counts once (`/metrics` only loads them), and two
/// plain gauges of the archive sink.
#[derive(Debug, Default)]
pub struct Gauges {
    /// How long a frame waited between arrival and the observer, in wall-clock ms.
    pub queue_lag_ms: AtomicU64,
    /// Longest flush + fsync of the archive, in wall-clock ms.
    pub write_latency_ms: AtomicU64,
    /// When the archive's last successful flush + fsync ended (wall clock, Unix ms; 0 before
    /// the first): everything appended before it is on disk. Not reset by readers.
    pub durable_unix_ms: AtomicI64,
    /// When the archive sink last finished an fsync attempt, successful or not (wall clock,
    /// Unix ms; 0 before the first). It keeps moving on a full disk and stops when the sink
    /// or the housekeeping that drives it hangs: the systemd watchdog's liveness signal.
    pub sink_beat_unix_ms: AtomicI64,
    /// Messages waiting in the archive sink's queue, as the sink last saw it. Not reset.
    pub archive_queue: AtomicU64,
    /// Lengths (s) of the gap markers written since the health task last looked.
    pub gap_seconds: std::sync::Mutex<Vec<i64>>,
}

impl Gauges {
    pub fn take_queue_lag_ms(&self) -> u64 {
        self.queue_lag_ms.swap(0, Relaxed)
    }
    pub fn take_write_latency_ms(&self) -> u64 {
        self.write_latency_ms.swap(0, Relaxed)
    }
    pub fn push_gap(&self, seconds: i64) {
        self.gap_seconds.lock().unwrap_or_else(|p| p.into_inner()).push(seconds);
    }
    pub fn take_gaps(&self) -> Vec<i64> {
        std::mem::take(&mut *self.gap_seconds.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl StatsSnapshot {
    /// Track B samples with data (written, not `no_data`) over samples due, for this run;
    /// `None` before any sample was due. The status line, `/health`, `/metrics` and the exit
    /// summary all show this one figure.
    pub fn recording_rate(&self) -> Option<f64> {
        crate::anomaly::recording_rate(self.scalp_written, self.scalp_no_data, self.scalp_expected)
    }
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

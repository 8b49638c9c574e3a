//! `/metrics`: the Prometheus text exposition (format 0.0.4) of a live `collect`.
//!
//! Names follow Prometheus's conventions: the `stock_observer_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters and only on them, gauges for state. Series of
//! one provider carry `provider` (and `market` where the figure is per market); a figure the
//! engine keeps for the whole run has no label. Process figures use the standard
//! `process_*` names. Every family is declared once, with its `# HELP` and `# TYPE`, through
//! [`Exposition`], which writes straight into one buffer.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::UNIX_EPOCH;

use engine::Live;
use engine::live::{CONNECTION_STATES, Feed};
use lifecycle::package::{MARKER, Packages};

/// A Prometheus text exposition being written.
#[derive(Debug)]
pub struct Exposition {
    out: String,
}

impl Default for Exposition {
    fn default() -> Self {
        Exposition { out: String::with_capacity(16 * 1024) }
    }
}

/// One family: its samples follow its `# HELP` and `# TYPE` lines.
#[must_use = "a family needs its samples"]
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

/// A sample's value.
pub trait Value {
    fn write_to(self, out: &mut String);
}

macro_rules! integer_values {
    ($($t:ty),+) => {$(
        impl Value for $t {
            fn write_to(self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )+};
}
integer_values!(u8, u64, i64, usize);

impl Value for f64 {
    fn write_to(self, out: &mut String) {
        match self {
            v if v.is_nan() => out.push_str("NaN"),
            v if v == f64::INFINITY => out.push_str("+Inf"),
            v if v == f64::NEG_INFINITY => out.push_str("-Inf"),
            v => {
                let _ = write!(out, "{v}");
            }
        }
    }
}

impl Value for bool {
    fn write_to(self, out: &mut String) {
        out.push(if self { '1' } else { '0' });
    }
}

impl Exposition {
    pub fn counter(&mut self, name: &'static str, help: &str) -> Family<'_> {
        debug_assert!(name.ends_with("_total"), "{name}: a counter's name ends in _total");
        self.family(name, "counter", help)
    }

    pub fn gauge(&mut self, name: &'static str, help: &str) -> Family<'_> {
        debug_assert!(!name.ends_with("_total"), "{name}: only counters end in _total");
        self.family(name, "gauge", help)
    }

    fn family(&mut self, name: &'static str, kind: &str, help: &str) -> Family<'_> {
        let out = &mut self.out;
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
        Family { out, name }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// The family's one sample, without labels.
    pub fn value(mut self, v: impl Value) {
        self.sample(&[], v);
    }

    /// A sample with `labels` (names are identifiers; values are escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], v: impl Value) -> &mut Self {
        let out = &mut *self.out;
        out.push_str(self.name);
        for (i, (k, val)) in labels.iter().enumerate() {
            out.push(if i == 0 { '{' } else { ',' });
            out.push_str(k);
            out.push_str("=\"");
            for c in val.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        if !labels.is_empty() {
            out.push('}');
        }
        out.push(' ');
        v.write_to(out);
        out.push('\n');
        self
    }
}

/// The run's figures and the process's, and when given the time of the newest complete
/// backup package under `backups`.
pub fn write(e: &mut Exposition, live: &Live, backups: Option<&Packages>) {
    run(e, live);
    archive(e, live);
    providers(e, live);
    if let Some(p) = backups {
        e.gauge(
            "stock_observer_backup_last_success_timestamp_seconds",
            "When the newest SUCCESS.marker of a daily backup package was written (Unix time; 0: no complete package yet).",
        )
        .value(last_backup(p).unwrap_or(0.0));
    }
    process(e);
}

/// The run-wide counters and gauges (one series each: the engine keeps them for the run).
fn run(e: &mut Exposition, live: &Live) {
    let s = live.stats.snapshot();
    e.gauge("stock_observer_build_info", "The recorder's version; always 1.")
        .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1u8);
    let counters: [(&'static str, &str, u64); 25] = [
        (
            "stock_observer_frames_received_total",
            "Raw frames received from providers (WebSocket and REST), each archived before parsing.",
            s.frames_received,
        ),
        (
            "stock_observer_frames_malformed_total",
            "Frames the provider's parser could not understand (kept in the raw archive).",
            s.frames_malformed,
        ),
        ("stock_observer_events_normalized_total", "Normalized events produced by parsing.", s.events_normalized),
        ("stock_observer_events_passed_total", "Events that passed validation and the guard.", s.events_passed),
        ("stock_observer_swing_snapshots_written_total", "Track A (swing) snapshots written.", s.swing_written),
        ("stock_observer_swing_cycles_total", "Track A cycles run.", s.track_a_cycles),
        (
            "stock_observer_swing_cycles_incomplete_total",
            "Track A cycles cut short by the next cycle's due time (each with a gap marker).",
            s.track_a_incomplete,
        ),
        (
            "stock_observer_scalp_samples_due_total",
            "Track B (scalp) samples the schedule asked for: slots times due times, outside paused periods.",
            s.scalp_expected,
        ),
        (
            "stock_observer_scalp_samples_written_total",
            "Track B samples written, whatever their quality.",
            s.scalp_written,
        ),
        (
            "stock_observer_scalp_samples_no_data_total",
            "Track B samples written with quality_flag no_data: nothing had arrived for the symbol yet.",
            s.scalp_no_data,
        ),
        (
            "stock_observer_scalp_samples_stale_total",
            "Track B samples written with quality_flag stale: data older than tracks.scalp.stale_after.",
            s.scalp_stale,
        ),
        (
            "stock_observer_scalp_samples_sampled_down_total",
            "Track B samples not kept because the archive queue was full (each in the overflow ledger).",
            s.scalp_sampled_down,
        ),
        (
            "stock_observer_scalp_samples_late_total",
            "Track B sample times that passed before the sampler could take them.",
            s.scalp_late,
        ),
        ("stock_observer_system_events_total", "System events written.", s.system_events),
        ("stock_observer_overflow_entries_total", "Overflow ledger entries written.", s.overflow_entries),
        ("stock_observer_gap_markers_total", "Gap markers written.", s.gaps),
        (
            "stock_observer_reconnect_attempts_total",
            "Reconnection attempts made after a stream was lost.",
            s.reconnect_attempts,
        ),
        ("stock_observer_mitigation_changes_total", "Mitigation level changes.", s.mitigation_changes),
        ("stock_observer_slot_changes_total", "Track B slot list changes.", s.slot_changes),
        (
            "stock_observer_watchdog_actions_total",
            "Watchdog session restarts and degrade-mode entries.",
            s.watchdog_actions,
        ),
        (
            "stock_observer_trigger_points_skipped_total",
            "Candidate-monitor measurements that could not be computed.",
            s.trigger_points_skipped,
        ),
        (
            "stock_observer_backups_created_total",
            "Daily backup packages written and verified (backup_created events).",
            s.backups_created,
        ),
        (
            "stock_observer_backups_failed_total",
            "Backup packing, pulling or verifying that failed (backup_failed events).",
            s.backups_failed,
        ),
        (
            "stock_observer_retention_held_total",
            "Unbacked raw days past retention.raw_cap_days that retention kept instead of deleting (retention_held events).",
            s.retention_held,
        ),
        ("stock_observer_archive_lines_published_total", "Lines handed to the archive sink.", s.lines_published),
    ];
    for (name, help, v) in counters {
        e.counter(name, help).value(v);
    }
    e.counter("stock_observer_events_rejected_total", "Events refused, by the stage that refused them.")
        .sample(&[("reason", "validate")], s.rejected_validate)
        .sample(&[("reason", "guard")], s.rejected_guard)
        .sample(&[("reason", "unsubscribed")], s.rejected_unsubscribed);
    e.gauge("stock_observer_mitigation_level", "Mitigation level: 0 normal, 1 and 2 degraded (lower Track B rate).")
        .value(live.mitigation.load(Relaxed));
    e.gauge("stock_observer_scalp_sample_rate_hertz", "Track B's sampling rate at the current mitigation level.")
        .value(live.hz());
    // NaN is Prometheus's "no value": nothing was due yet.
    e.gauge(
        "stock_observer_recording_ratio",
        "Track B samples with data over samples due, for this run (NaN before any was due).",
    )
    .value(s.recording_rate().unwrap_or(f64::NAN));
    e.gauge(
        "stock_observer_queue_lag_seconds",
        "Longest wait of a frame between arrival and the observer since the mitigation controller's last sample.",
    )
    .value(millis(live.stats.gauges.queue_lag_ms.load(Relaxed)));
}

/// What the archive sink did: lines and bytes per provider (and for the data dir's own
/// lifecycle stream), failures, files, its queue and durability, and the disk it fills.
fn archive(e: &mut Exposition, live: &Live) {
    let s = &live.stats;
    let saved = |stat: fn(&engine::stats::LinesBytes) -> &AtomicU64, e: &mut Family<'_>| {
        for (p, _) in &live.providers {
            e.sample(&[("provider", p.as_str())], stat(s.saved.of(Some(*p))).load(Relaxed));
        }
    };
    saved(
        |c| &c.lines,
        &mut e.counter("stock_observer_archive_lines_saved_total", "Lines appended to the provider's archive files."),
    );
    saved(
        |c| &c.bytes,
        &mut e.counter(
            "stock_observer_archive_saved_bytes_total",
            "Bytes (newlines included) appended to the provider's archive files.",
        ),
    );
    e.counter(
        "stock_observer_archive_lifecycle_lines_saved_total",
        "Lines appended to system/lifecycle (backups, receipts, compression, retention).",
    )
    .value(s.saved.lifecycle.lines.load(Relaxed));
    e.counter("stock_observer_archive_lifecycle_saved_bytes_total", "Bytes appended to system/lifecycle.")
        .value(s.saved.lifecycle.bytes.load(Relaxed));
    e.counter(
        "stock_observer_archive_lines_failed_total",
        "Lines the archive could not write (disk errors); each streak ends in an archive gap marker.",
    )
    .value(s.lines_failed.load(Relaxed));
    e.counter(
        "stock_observer_archive_lines_lost_total",
        "Lines appended and then lost when writing or fsyncing their file failed (a full disk).",
    )
    .value(s.lines_lost.load(Relaxed));
    e.counter("stock_observer_archive_files_closed_total", "Archive files closed and entered in their day's manifest.")
        .value(s.files_closed.load(Relaxed));
    e.gauge("stock_observer_archive_files_open", "Archive files open for appending.").value(s.files_open.load(Relaxed));
    e.gauge("stock_observer_archive_queue_length", "Messages waiting in the archive sink's queue.")
        .value(s.gauges.archive_queue.load(Relaxed));
    e.gauge(
        "stock_observer_archive_sync_duration_seconds",
        "Longest flush and fsync of the archive since the mitigation controller's last sample.",
    )
    .value(millis(s.gauges.write_latency_ms.load(Relaxed)));
    e.gauge(
        "stock_observer_archive_last_durable_write_timestamp_seconds",
        "When the archive's last successful flush and fsync ended (Unix time; 0 before the first).",
    )
    .value(millis(s.gauges.durable_unix_ms.load(Relaxed).max(0) as u64));
    if let Some(d) = archive::disk_usage(&live.data_dir) {
        e.gauge("stock_observer_data_filesystem_used_bytes", "Bytes used on the file system holding the data dir.")
            .value(d.used);
        e.gauge(
            "stock_observer_data_filesystem_avail_bytes",
            "Bytes available to the recorder on the file system holding the data dir.",
        )
        .value(d.avail);
    }
}

/// One figure of a provider's pipeline.
type FeedFigure = fn(&Feed) -> u64;

/// Each provider's stream, slots and queue.
fn providers(e: &mut Exposition, live: &Live) {
    let feeds = live.feeds();
    let now = live.clock.now();
    let mut f = e.gauge(
        "stock_observer_connection_state",
        "The provider stream's state: 1 for the current one of connected, connecting, reconnecting, degraded, rest_polling.",
    );
    for feed in &feeds {
        let current = feed.connection_state();
        for state in CONNECTION_STATES {
            f.sample(&[("provider", feed.provider.as_str()), ("state", state)], state == current);
        }
    }
    let mut f = e.gauge(
        "stock_observer_stream_disconnected_seconds",
        "Seconds (market clock) since the provider's stream last delivered data, while it is being reconnected; 0 while up.",
    );
    for feed in &feeds {
        f.sample(&[("provider", feed.provider.as_str())], feed.disconnected_seconds(now));
    }
    let per_market: [(&'static str, &str, FeedFigure); 4] = [
        ("stock_observer_universe_symbols", "Symbols in the provider's universe today.", |f| f.universe.load(Relaxed)),
        ("stock_observer_slots_assigned", "Slots Track B sampled last.", |f| f.slots.assigned.load(Relaxed)),
        ("stock_observer_slots_streaming", "Slots whose newest data is younger than tracks.scalp.stale_after.", |f| {
            f.slots.streaming.load(Relaxed)
        }),
        ("stock_observer_slot_capacity", "Track B slots configured.", |f| f.slot_capacity),
    ];
    for (name, help, get) in per_market {
        let mut f = e.gauge(name, help);
        for feed in &feeds {
            f.sample(&[("provider", feed.provider.as_str()), ("market", feed.market.as_str())], get(feed));
        }
    }
    let queued: Vec<(u64, u64)> = feeds.iter().map(|f| f.queued()).collect();
    let mut f = e.gauge("stock_observer_frame_queue_length", "Frames waiting for the provider's observer.");
    for (feed, (frames, _)) in feeds.iter().zip(&queued) {
        f.sample(&[("provider", feed.provider.as_str())], *frames);
    }
    let mut f = e.gauge(
        "stock_observer_frame_queue_bytes",
        "Bytes of stream frames waiting for the provider's observer (bounded by pipeline.frames_bytes).",
    );
    for (feed, (_, bytes)) in feeds.iter().zip(&queued) {
        f.sample(&[("provider", feed.provider.as_str())], *bytes);
    }
}

/// The newest `SUCCESS.marker`'s modification time (Unix seconds), over every complete package.
fn last_backup(packages: &Packages) -> Option<f64> {
    let days = packages.complete().ok()?;
    days.iter()
        .filter_map(|d| std::fs::metadata(packages.day_dir(*d).join(MARKER)).ok()?.modified().ok())
        .max()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc` (100 on every architecture
/// Linux runs on today; the Prometheus clients assume it too).
const USER_HZ: f64 = 100.0;

/// The standard process figures, from `/proc/self` (absent where there is no procfs).
fn process(e: &mut Exposition) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command name, which is in parentheses and may hold spaces: field 3
    // (state) is index 0.
    let fields: Vec<&str> = stat.rsplit_once(") ").map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        e.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.")
            .value((utime + stime) as f64 / USER_HZ);
    }
    if let Some(rss) = resident_bytes() {
        e.gauge("process_resident_memory_bytes", "Resident memory size in bytes.").value(rss);
    }
    if let Some(start) = start_time(field(22)) {
        e.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.")
            .value(start);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        e.gauge("process_open_fds", "Open file descriptors.").value(fds.count());
    }
}

/// `VmRSS` of `/proc/self/status` (kB there), in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim();
    kb.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The boot time (`btime` of `/proc/stat`) plus the process's start in clock ticks after
/// boot; read once, it never changes.
fn start_time(ticks: Option<u64>) -> Option<f64> {
    static START: OnceLock<Option<f64>> = OnceLock::new();
    *START.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let boot: u64 = stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
        Some(boot as f64 + ticks? as f64 / USER_HZ)
    })
}

fn millis(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_declared_once_and_values_escaped() {
        let mut e = Exposition::default();
        e.counter("x_total", "a \\ help\nline").sample(&[("provider", "k\"i\\s\n")], 3u64).sample(&[], 4u64);
        e.gauge("y_ratio", "r").value(f64::NAN);
        e.gauge("z", "z").value(f64::INFINITY);
        e.gauge("w_seconds", "w").value(1.5);
        assert_eq!(
            e.finish(),
            "# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\nx_total{provider=\"k\\\"i\\\\s\\n\"} 3\nx_total 4\n\
             # HELP y_ratio r\n# TYPE y_ratio gauge\ny_ratio NaN\n\
             # HELP z z\n# TYPE z gauge\nz +Inf\n\
             # HELP w_seconds w\n# TYPE w_seconds gauge\nw_seconds 1.5\n"
        );
    }

    #[test]
    fn process_figures_come_from_procfs() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return; // no procfs: the process figures are left out
        }
        let mut e = Exposition::default();
        process(&mut e);
        let out = e.finish();
        let value = |name: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{name} missing: {out}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6, "{out}");
        assert!(value("process_cpu_seconds_total") >= 0.0, "{out}");
        assert!(value("process_open_fds") >= 3.0, "{out}");
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(start <= now + 1.0 && start > now - 3600.0, "started {start}, now {now}");
    }
}

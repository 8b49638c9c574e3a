//! The live status line and the exit summary.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use engine::{Live, StatsSnapshot, Summary};

fn line(live: &Live, s: &StatsSnapshot, prev: &StatsSnapshot, secs: f64) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let rate = |now: u64, before: u64| (now.saturating_sub(before)) as f64 / secs;
    let t = live.clock.now().kst();
    let day = live.day();
    let (assigned, streaming) = live.slots();
    format!(
        "{} KST x{} | raw {} ({:.0}/s) | swing {} ({:.0}/s) | scalp {} ({:.0}/s) | slots {}/{} streaming {} of {} | {} Hz L{} | {} | reconnects {} | gaps {} | rec {} stale {} empty {} | files {} open | rejects {}",
        t.time().strftime("%H:%M:%S"),
        live.clock.speed(),
        s.frames_received,
        rate(s.frames_received, prev.frames_received),
        s.swing_written,
        rate(s.swing_written, prev.swing_written),
        s.scalp_written,
        rate(s.scalp_written, prev.scalp_written),
        assigned,
        live.slot_capacity.load(Relaxed),
        streaming,
        live.universe_size.load(Relaxed),
        live.hz(),
        live.mitigation.load(Relaxed),
        live.connection_state(),
        day.reconnects,
        day.gaps,
        percent(s.recording_rate()),
        s.scalp_stale,
        s.scalp_no_data,
        s.files_open,
        s.rejected_validate + s.rejected_guard + s.rejected_unsubscribed + s.frames_malformed,
    )
}

/// A rate as a percentage, or `-` while there is nothing to measure.
fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

pub async fn run(live: Arc<Live>, every: Duration, mut stop: watch::Receiver<bool>) {
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(every);
    let mut prev = live.stats.snapshot();
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = model::stopped(&mut stop) => break,
        }
        let s = live.stats.snapshot();
        let text = line(&live, &s, &prev, every.as_secs_f64());
        let mut err = std::io::stderr().lock();
        // On a terminal the line rewrites itself; in a log (CI, systemd) it is one line per tick.
        let _ = if tty { write!(err, "\r\x1b[K{text}") } else { writeln!(err, "{text}") };
        let _ = err.flush();
        prev = s;
    }
    if tty {
        eprintln!();
    }
}

pub fn print_summary(sum: &Summary, data_dir: &Path) {
    let s = &sum.stats;
    println!("session {} ended cleanly ({} → {} market time)", sum.session, sum.started, sum.ended);
    if sum.recovered_crash {
        println!("  recovered from a previous crash: a gap_marker records the lost interval");
    }
    println!("  frames received   {:>10}  (malformed {})", s.frames_received, s.frames_malformed);
    println!(
        "  events            {:>10}  passed {}, rejected {} by validation, {} by the guard, {} never subscribed",
        s.events_normalized, s.events_passed, s.rejected_validate, s.rejected_guard, s.rejected_unsubscribed
    );
    println!("  swing snapshots   {:>10}  in {} Track A cycles", s.swing_written, s.track_a_cycles);
    println!(
        "  scalp samples     {:>10}  of {} due: {} with data (recording rate {}), {} of them stale, {} empty (no data yet); sampled down {}, late {}",
        s.scalp_written,
        s.scalp_expected,
        s.scalp_written.saturating_sub(s.scalp_no_data),
        percent(s.recording_rate()),
        s.scalp_stale,
        s.scalp_no_data,
        s.scalp_sampled_down,
        s.scalp_late
    );
    println!("  system events     {:>10}  (gaps {}), overflow entries {}", s.system_events, s.gaps, s.overflow_entries);
    println!(
        "  archive lines     {:>10}  of {} published ({} failed, {} lost in failed writes), {} bytes, {} files closed",
        s.lines_saved, s.lines_published, s.lines_failed, s.lines_lost, s.bytes_saved, s.files_closed
    );
    println!(
        "  archive: {}  (check with: stock-observer verify --data-dir {})",
        data_dir.display(),
        data_dir.display()
    );
}

//! The database maintenance job inside `collect`: once at start-up, then at the start (Seoul
//! midnight, market clock) of every following trading day. A failure is logged and retried
//! at the next run; recording never waits for the database.
//!
//! Retention is backup-first: [`held`] says which days the database may drop.

use std::path::{Path, PathBuf};

use jiff::civil::{Date, DateTime, Time};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use model::calendar::KrxCalendar;
use model::{Clock, Day, UtcTime};
use store::{Store, StoreConfig};

/// Starts the job when this deployment uses the database (a `store.url`, or the live sink).
pub fn spawn(
    cfg: &StoreConfig,
    data_dir: PathBuf,
    clock: Clock,
    calendar: KrxCalendar,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if cfg.url.is_none() && !cfg.live_sink.enabled {
        return None;
    }
    let cfg = cfg.clone();
    Some(tokio::spawn(run(cfg, data_dir, clock, calendar, stop)))
}

async fn run(
    cfg: StoreConfig,
    data_dir: PathBuf,
    clock: Clock,
    calendar: KrxCalendar,
    mut stop: watch::Receiver<bool>,
) {
    let store = match Store::open(&cfg, &data_dir).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "database maintenance not started: cannot open the database");
            return;
        }
    };
    loop {
        let now = clock.now();
        match store::maintain(&store, &cfg, now, &|day| held(&data_dir, day)).await {
            Ok(r) => {
                tracing::info!(
                    database = %store.describe(),
                    today = %r.today,
                    mode = r.mode.as_str(),
                    partitions_created = r.partitions_created,
                    retention_removed = r.retention_removed,
                    partitions = r.partitions.len(),
                    "database maintenance done"
                );
                if let Some(first) = r.retention_kept.first() {
                    tracing::warn!(
                        database = %store.describe(),
                        kept = r.retention_kept.len(),
                        oldest = %format_args!("{} {}", first.table, first.day),
                        reason = %first.reason,
                        "database retention held back: days past the window are kept until backed up"
                    );
                }
            }
            Err(e) => tracing::warn!(database = %store.describe(), error = %e, "database maintenance failed"),
        }
        let Some(next) = next_trading_day(&calendar, now.kst().date()) else {
            tracing::warn!("no trading day within a year: database maintenance stops (check calendar.holidays)");
            return;
        };
        tokio::select! {
            _ = clock.sleep_until(UtcTime::from_kst(DateTime::from_parts(next, Time::midnight()))) => {}
            _ = model::stopped(&mut stop) => return,
        }
    }
}

/// Whether the database may drop `day`'s data: it is in a verified backup package
/// (`backups/YYYYMMDD/SUCCESS.marker`), or the archive still has it to reload with `etl`
/// (its manifest lists a raw file that is still on disk, as written or compressed to
/// `<name>.zst`). Anything unreadable counts as not held, so a doubt keeps the data.
pub fn held(data_dir: &Path, day: Day) -> bool {
    let d = day.to_string();
    if data_dir.join("backups").join(&d).join("SUCCESS.marker").is_file() {
        return true;
    }
    match archive::Manifest::load(data_dir, &d) {
        Ok(m) => m.files.keys().any(|f| {
            f.starts_with("raw/") && (data_dir.join(f).is_file() || data_dir.join(format!("{f}.zst")).is_file())
        }),
        Err(e) => {
            tracing::warn!(error = %e, "database retention keeps {d}: its manifest cannot be read");
            false
        }
    }
}

/// The first trading day after `today`.
fn next_trading_day(calendar: &KrxCalendar, today: Date) -> Option<Date> {
    let mut d = today;
    for _ in 0..366 {
        d = d.tomorrow().ok()?;
        if calendar.is_trading_day(d) {
            return Some(d);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_day_is_held_by_a_backup_marker_or_a_raw_file_of_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let day = |s: &str| s.parse::<Day>().unwrap();
        assert!(!held(root, day("20260114")), "nothing at all");
        std::fs::create_dir_all(root.join("backups/20260114")).unwrap();
        assert!(!held(root, day("20260114")), "a package still being written");
        std::fs::write(root.join("backups/20260114/SUCCESS.marker"), "").unwrap();
        assert!(held(root, day("20260114")));

        let mut m = archive::Manifest::empty("20260115");
        let entry = |f: &str| {
            let closed_at = UtcTime::from_millis(1_768_440_000_000);
            let e = serde_json::json!({"size": 1, "lines": 1, "sha256": "00", "closed_at": closed_at});
            (f.to_string(), serde_json::from_value::<archive::ManifestEntry>(e).unwrap())
        };
        m.files.extend([entry("swing/sim/kr_stocks/20260115/10_00.jsonl")]);
        m.store(root).unwrap();
        assert!(!held(root, day("20260115")), "no raw file: cannot be re-derived");
        m.files.extend([entry("raw/sim/20260115/10.jsonl")]);
        m.store(root).unwrap();
        assert!(!held(root, day("20260115")), "listed, but gone from the disk");
        std::fs::create_dir_all(root.join("raw/sim/20260115")).unwrap();
        std::fs::write(root.join("raw/sim/20260115/10.jsonl"), "{}\n").unwrap();
        assert!(held(root, day("20260115")));
        std::fs::rename(root.join("raw/sim/20260115/10.jsonl"), root.join("raw/sim/20260115/10.jsonl.zst")).unwrap();
        assert!(held(root, day("20260115")), "compressed in place");
    }

    #[test]
    fn next_trading_day_skips_weekends_and_holidays() {
        let cal = KrxCalendar::new([date(2026, 1, 19)]);
        // Friday → Monday is a holiday → Tuesday.
        assert_eq!(next_trading_day(&cal, date(2026, 1, 16)), Some(date(2026, 1, 20)));
        assert_eq!(next_trading_day(&cal, date(2026, 1, 14)), Some(date(2026, 1, 15)));
    }
}

//! The database maintenance job inside `collect`: once at start-up, then at the start (Seoul
//! midnight, market clock) of every following trading day. A failure is logged and retried
//! at the next run; recording never waits for the database.

use std::path::PathBuf;

use jiff::civil::{Date, DateTime, Time};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use model::calendar::KrxCalendar;
use model::{Clock, UtcTime};
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
        match store::maintain(&store, &cfg, now).await {
            Ok(r) => tracing::info!(
                database = %store.describe(),
                today = %r.today,
                mode = r.mode.as_str(),
                partitions_created = r.partitions_created,
                retention_removed = r.retention_removed,
                partitions = r.partitions.len(),
                "database maintenance done"
            ),
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
    fn next_trading_day_skips_weekends_and_holidays() {
        let cal = KrxCalendar::new([date(2026, 1, 19)]);
        // Friday → Monday is a holiday → Tuesday.
        assert_eq!(next_trading_day(&cal, date(2026, 1, 16)), Some(date(2026, 1, 20)));
        assert_eq!(next_trading_day(&cal, date(2026, 1, 14)), Some(date(2026, 1, 15)));
    }
}

//! The maintenance job: daily partitions ahead of time, retention, rollup refresh.
//!
//! `collect` runs it at start-up and at the start of every trading day (market clock), and
//! `stock-observer db maintain` runs it by hand. Every step is idempotent, so a run that is
//! repeated, or late, or overlaps with another one does no harm.
//!
//! Retention is backup-first: a day past `store.ticks_retention` / `store.samples_retention`
//! is dropped only if the caller says it is held (in a verified backup package, or still in
//! the archive it can be reloaded from). The oldest day that is not held stops retention for
//! that table: it and every newer day stay until it is held, so what the database drops is
//! always a run of days from the oldest, each one recoverable.

use serde::Serialize;

use model::{Day, UtcTime};

use crate::backend::{Backend, Mode};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::rows::{Table, yyyymmdd};

/// What one maintenance run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    /// The Seoul day the run was for, `YYYYMMDD`.
    pub today: String,
    pub mode: Mode,
    /// Native mode: daily partitions created (today and `store.partitions_ahead_days` ahead).
    pub partitions_created: u32,
    /// Native mode: daily partitions dropped by retention. SQLite: rows deleted by retention.
    /// TimescaleDB: chunks dropped by retention.
    pub retention_removed: u32,
    /// Days past a retention window that were kept because they, or an older day of the same
    /// table, are not held; oldest first per table. Empty when retention took everything due.
    pub retention_kept: Vec<RetentionKept>,
    /// The daily partitions that exist after the run (native mode; empty otherwise).
    pub partitions: Vec<String>,
}

/// A day past its table's retention window that the run kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionKept {
    pub table: &'static str,
    /// `YYYYMMDD` (Seoul).
    pub day: String,
    pub reason: String,
}

/// Runs maintenance as of `now` (the caller's clock, so simulated days age like real ones).
/// Refuses an unmigrated database like `etl` does.
///
/// `held(day)`: the day's data is in a verified backup package or can be loaded again from
/// the archive. Retention drops only held days, oldest first, and stops at the first day
/// that is not held (see the module documentation).
pub async fn maintain<B: Backend>(
    store: &B,
    cfg: &StoreConfig,
    now: UtcTime,
    held: &(dyn Fn(Day) -> bool + Sync),
) -> Result<MaintenanceReport, StoreError> {
    let status = store.status().await?;
    if let Some(p) = status.problem() {
        return Err(p);
    }
    if status.pending() > 0 {
        return Err(StoreError::NotMigrated { pending: status.pending() });
    }
    let today = now.kst().date();
    let partitions_created = store.maintain(today, cfg.partitions_ahead_days + 1).await?;
    let mut retention_removed = 0;
    let mut retention_kept = Vec::new();
    for (table, window) in [(Table::MarketTicks, cfg.ticks_retention), (Table::ScalpTicks, cfg.samples_retention)] {
        let before = match window {
            None => None,
            Some(w) => {
                // Whole days only: a day goes once all of it is older than the window.
                let due = Day::of(now.plus_millis(-i64::try_from(w.get().as_millis()).unwrap_or(i64::MAX)));
                let days = store.retention_days(table, due).await?;
                let (horizon, kept) = horizon(table, due, &days, held);
                retention_kept.extend(kept);
                Some(horizon)
            }
        };
        retention_removed += store.apply_retention(table, before).await?;
    }
    // Yesterday is the last day that can still have changed; earlier days were refreshed by
    // earlier runs (or by `etl`, which refreshes the day it loads).
    if let Ok(yesterday) = today.yesterday() {
        store.refresh_rollups(yesterday).await?;
    }
    Ok(MaintenanceReport {
        today: yyyymmdd(today),
        mode: store.mode(),
        partitions_created,
        retention_removed,
        retention_kept,
        partitions: store.daily_partitions().await?,
    })
}

/// The first day retention keeps for `table`: `due` (the window's), or the oldest of `days`
/// (the days with data before `due`, oldest first) that is not held. With the days that
/// were due but are kept, and why.
fn horizon(table: Table, due: Day, days: &[Day], held: &(dyn Fn(Day) -> bool + Sync)) -> (Day, Vec<RetentionKept>) {
    let Some(first) = days.iter().copied().find(|d| !held(*d)) else {
        return (due, Vec::new());
    };
    let kept = days
        .iter()
        .filter(|d| **d >= first)
        .map(|d| RetentionKept {
            table: table.name(),
            day: d.to_string(),
            reason: if *d == first {
                "not held: no verified backup package, and not in the archive to reload".into()
            } else {
                format!("newer than {first}, which is not held")
            },
        })
        .collect();
    (first, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        s.parse().unwrap()
    }

    #[test]
    fn retention_stops_at_the_oldest_day_not_held() {
        let days = [day("20260105"), day("20260106"), day("20260108"), day("20260109")];
        let all = |_: Day| true;
        assert_eq!(horizon(Table::MarketTicks, day("20260110"), &days, &all), (day("20260110"), Vec::new()));
        // The 6th is not held: it and everything newer stay, even the held 8th.
        let not_6th = |d: Day| d != day("20260106");
        let (h, kept) = horizon(Table::MarketTicks, day("20260110"), &days, &not_6th);
        assert_eq!(h, day("20260106"));
        let listed: Vec<&str> = kept.iter().map(|k| k.day.as_str()).collect();
        assert_eq!(listed, ["20260106", "20260108", "20260109"]);
        assert!(kept[0].reason.starts_with("not held"), "{kept:?}");
        assert!(kept[1].reason.contains("20260106"), "{kept:?}");
        // A day with no data (the 7th) needs no holding.
        let only_7th = |d: Day| d == day("20260107");
        assert_eq!(horizon(Table::ScalpTicks, day("20260110"), &days, &only_7th).0, day("20260105"));
    }
}

//! The maintenance job: daily partitions ahead of time, retention, rollup refresh.
//!
//! `collect` runs it at start-up and at the start of every trading day (market clock), and
//! `stock-observer db maintain` runs it by hand. Every step is idempotent, so a run that is
//! repeated, or late, or overlaps with another one does no harm.

use serde::Serialize;

use model::UtcTime;

use crate::backend::{Backend, Mode};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::rows::yyyymmdd;

/// What one maintenance run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    /// The Seoul day the run was for, `YYYYMMDD`.
    pub today: String,
    pub mode: Mode,
    /// Native mode: daily partitions created (today and `store.partitions_ahead_days` ahead).
    pub partitions_created: u32,
    /// Native mode: daily partitions dropped by retention. SQLite: rows deleted by retention.
    /// TimescaleDB: 0 (retention policies, re-set from the config on each run, drop chunks).
    pub retention_removed: u32,
    /// The daily partitions that exist after the run (native mode; empty otherwise).
    pub partitions: Vec<String>,
}

/// Runs maintenance as of `now` (the caller's clock, so simulated days age like real ones).
/// Refuses an unmigrated database like `etl` does.
pub async fn maintain<B: Backend>(store: &B, cfg: &StoreConfig, now: UtcTime) -> Result<MaintenanceReport, StoreError> {
    let status = store.status().await?;
    if let Some(p) = status.problem() {
        return Err(p);
    }
    if status.pending() > 0 {
        return Err(StoreError::NotMigrated { pending: status.pending() });
    }
    let today = now.kst().date();
    let partitions_created = store.maintain(today, cfg.partitions_ahead_days + 1).await?;
    let retention_removed = store
        .apply_retention(now, cfg.ticks_retention.map(|i| i.get()), cfg.samples_retention.map(|i| i.get()))
        .await?;
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
        partitions: store.daily_partitions().await?,
    })
}

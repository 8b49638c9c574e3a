//! The lifecycle jobs inside `collect`, on the market clock: catch-up at start, then packing
//! at `backup.at` each day and compression and retention every `retention.interval`. Each
//! job runs on a blocking thread; recording never waits for it. What a job did reaches the
//! archive as system events through `events`.

use std::sync::Arc;

use archive::DiskUsage;
use jiff::civil::DateTime;
use model::{Clock, Day, SystemEvent, UtcTime};
use tokio::sync::{mpsc, watch};

use crate::upkeep::Upkeep;

/// Where the jobs' events go (the collector writes them to `system/lifecycle/`).
pub type EventTx = mpsc::Sender<(UtcTime, SystemEvent)>;
/// The disk's state now; tests pass their own to stage pressure.
pub type DiskGauge = Arc<dyn Fn() -> Option<DiskUsage> + Send + Sync>;

/// The next `backup.at` strictly after `now`.
pub fn next_backup(upkeep: &Upkeep, now: UtcTime) -> UtcTime {
    let today = Day::of(now);
    let at = |d: Day| UtcTime::from_kst(DateTime::from_parts(d.date(), upkeep.backup.at));
    if at(today) > now { at(today) } else { at(today.plus(1)) }
}

/// Runs until `stop` turns true, starting once `ready` resolves (the archive is open and
/// recovered: a crash's unclosed files must not read as a day still being written).
pub async fn run(
    upkeep: Arc<Upkeep>,
    clock: Clock,
    disk: DiskGauge,
    events: EventTx,
    ready: impl std::future::Future<Output = ()>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = ready => {}
        _ = model::stopped(&mut stop) => return,
    }
    let interval = upkeep.retention.interval.get();
    let mut next_pack = clock.now();
    let mut next_tick = clock.now();
    loop {
        let now = clock.now();
        if upkeep.backup.enabled && now >= next_pack {
            let job = upkeep.clone();
            let out = tokio::task::spawn_blocking(move || job.pack_finished_days(now)).await;
            send(&events, now, out.unwrap_or_else(|e| panicked("backup", e))).await;
            next_pack = next_backup(&upkeep, now);
        }
        if now >= next_tick {
            let (job, gauge) = (upkeep.clone(), disk.clone());
            let out = tokio::task::spawn_blocking(move || tick(&job, now, gauge())).await;
            send(&events, now, out.unwrap_or_else(|e| panicked("retention", e))).await;
            next_tick = now.plus(interval);
        }
        let wake = if upkeep.backup.enabled { next_pack.min(next_tick) } else { next_tick };
        tokio::select! {
            _ = clock.sleep_until(wake) => {}
            _ = model::stopped(&mut stop) => return,
        }
    }
}

/// One compression and retention pass.
pub fn tick(upkeep: &Upkeep, now: UtcTime, usage: Option<DiskUsage>) -> Vec<SystemEvent> {
    let mut events = upkeep.compress_old_days(now);
    if upkeep.retention.enabled {
        match upkeep.retention(now, usage, false) {
            Ok((_, ev)) => events.extend(ev),
            Err(e) => tracing::error!(error = %e, "retention failed; it runs again in retention.interval"),
        }
    }
    events
}

fn panicked(job: &str, e: tokio::task::JoinError) -> Vec<SystemEvent> {
    tracing::error!(error = %e, "the {job} job panicked");
    Vec::new()
}

async fn send(tx: &EventTx, at: UtcTime, events: Vec<SystemEvent>) {
    for e in events {
        if tx.send((at, e)).await.is_err() {
            tracing::warn!("lifecycle event not recorded: the collector is shutting down");
            return;
        }
    }
}

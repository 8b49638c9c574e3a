//! The live sink: ticks and samples written to the database while recording.
//!
//! Recording must never wait for the database, so `offer_*` only ever `try_send`s into a
//! bounded queue: when the queue is full the row is dropped and counted. A background task
//! writes batches; when a write fails (database down, disk full) the batch is dropped and
//! counted, the error is logged and kept, and writes pause for `retry_after` so a dead server
//! costs one connection attempt per interval. Every dropped row is still in the archive:
//! `stock-observer etl --date …` fills the hole afterwards.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use model::{MarketEvent, Record, ScalpSample};

use crate::backend::Backend;
use crate::config::LiveSinkConfig;
use crate::rows::{MarketTickRow, ScalpTickRow};

enum Item {
    Tick(MarketTickRow),
    Sample(ScalpTickRow),
}

/// Counters, shared with whoever reports them (status line, /metrics).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Rows handed to `offer_*` (ticks and samples).
    pub offered: AtomicU64,
    /// Rows dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Rows in batches the database accepted (including duplicates it skipped).
    pub rows_stored: AtomicU64,
    /// Rows lost to failed writes or skipped while the database was failing.
    pub rows_failed: AtomicU64,
    /// Failed write attempts.
    pub write_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkSnapshot {
    pub offered: u64,
    pub dropped_queue_full: u64,
    pub rows_stored: u64,
    pub rows_failed: u64,
    pub write_errors: u64,
    pub last_error: Option<String>,
}

impl SinkStats {
    pub fn snapshot(&self) -> SinkSnapshot {
        SinkSnapshot {
            offered: self.offered.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            rows_stored: self.rows_stored.load(Relaxed),
            rows_failed: self.rows_failed.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            last_error: self.last_error.lock().map(|g| g.clone()).unwrap_or(None),
        }
    }
}

pub struct LiveSink {
    tx: mpsc::Sender<Item>,
    stats: Arc<SinkStats>,
    task: JoinHandle<()>,
}

impl LiveSink {
    /// Starts the writer task on the current tokio runtime.
    pub fn spawn<B: Backend + 'static>(store: Arc<B>, cfg: &LiveSinkConfig, batch_rows: usize) -> LiveSink {
        let (tx, rx) = mpsc::channel(cfg.queue_rows.max(1));
        let stats = Arc::new(SinkStats::default());
        let task = tokio::spawn(writer(
            store,
            rx,
            stats.clone(),
            batch_rows.max(1),
            cfg.flush_interval.get(),
            cfg.retry_after.get(),
        ));
        LiveSink { tx, stats, task }
    }

    fn offer(&self, item: Item) -> bool {
        self.stats.offered.fetch_add(1, Relaxed);
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(_) => {
                self.stats.dropped_queue_full.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Queues the tick of an accepted market event (quotes and snapshots are ignored and
    /// return true). Never waits; false when the row was dropped.
    pub fn offer_event(&self, rec: &Record<MarketEvent>) -> bool {
        match MarketTickRow::from_record(rec) {
            Some(row) => self.offer(Item::Tick(row)),
            None => true,
        }
    }

    pub fn offer_sample(&self, rec: &Record<ScalpSample>) -> bool {
        self.offer(Item::Sample(ScalpTickRow::from_record(rec)))
    }

    pub fn offer_tick_row(&self, row: MarketTickRow) -> bool {
        self.offer(Item::Tick(row))
    }

    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    /// Writes what is queued (one attempt) and stops the task.
    pub async fn close(self) -> SinkSnapshot {
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "store live sink task failed");
        }
        self.stats.snapshot()
    }
}

async fn writer<B: Backend>(
    store: Arc<B>,
    mut rx: mpsc::Receiver<Item>,
    stats: Arc<SinkStats>,
    batch: usize,
    flush_every: Duration,
    retry_after: Duration,
) {
    let mut ticks: Vec<MarketTickRow> = Vec::with_capacity(batch);
    let mut samples: Vec<ScalpTickRow> = Vec::with_capacity(batch);
    let mut paused_until: Option<Instant> = None;
    let mut timer = tokio::time::interval(flush_every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closed = tokio::select! {
            item = rx.recv() => match item {
                Some(Item::Tick(t)) => { ticks.push(t); false }
                Some(Item::Sample(s)) => { samples.push(s); false }
                None => true,
            },
            _ = timer.tick() => {
                flush(&*store, &stats, &mut ticks, &mut samples, &mut paused_until, retry_after).await;
                false
            }
        };
        if closed {
            paused_until = None;
            flush(&*store, &stats, &mut ticks, &mut samples, &mut paused_until, retry_after).await;
            return;
        }
        if ticks.len() >= batch || samples.len() >= batch {
            flush(&*store, &stats, &mut ticks, &mut samples, &mut paused_until, retry_after).await;
        }
    }
}

async fn flush<B: Backend>(
    store: &B,
    stats: &SinkStats,
    ticks: &mut Vec<MarketTickRow>,
    samples: &mut Vec<ScalpTickRow>,
    paused_until: &mut Option<Instant>,
    retry_after: Duration,
) {
    if ticks.is_empty() && samples.is_empty() {
        return;
    }
    if paused_until.is_some_and(|t| Instant::now() < t) {
        let n = (ticks.len() + samples.len()) as u64;
        stats.rows_failed.fetch_add(n, Relaxed);
        ticks.clear();
        samples.clear();
        return;
    }
    let mut failed = None;
    if !ticks.is_empty() {
        let n = ticks.len() as u64;
        match store.write_market_ticks(std::mem::take(ticks)).await {
            Ok(_) => {
                stats.rows_stored.fetch_add(n, Relaxed);
            }
            Err(e) => {
                stats.rows_failed.fetch_add(n, Relaxed);
                failed = Some(e.to_string());
            }
        }
    }
    if !samples.is_empty() {
        let n = samples.len() as u64;
        if failed.is_some() {
            stats.rows_failed.fetch_add(n, Relaxed);
            samples.clear();
        } else {
            match store.write_scalp_ticks(std::mem::take(samples)).await {
                Ok(_) => {
                    stats.rows_stored.fetch_add(n, Relaxed);
                }
                Err(e) => {
                    stats.rows_failed.fetch_add(n, Relaxed);
                    failed = Some(e.to_string());
                }
            }
        }
    }
    match failed {
        Some(e) => {
            stats.write_errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, pause = ?retry_after, "store live sink: write failed; rows dropped (the archive has them, run `etl` to fill the hole)");
            if let Ok(mut g) = stats.last_error.lock() {
                *g = Some(e);
            }
            *paused_until = Some(Instant::now() + retry_after);
        }
        None => *paused_until = None,
    }
}

//! `collect`: opens the archive (recovering from a crash), builds the day's universe, and runs
//! the provider stream, the observer, Track A, Track B and the archive housekeeping until
//! told to stop; then drains every queue and closes the archive cleanly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64};

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use model::{Clock, Market, Provider, RawFrame, SessionId, Symbol, SystemEvent, UtcTime};
use providers::MarketProvider;

use crate::book::LatestBook;
use crate::config::EngineConfig;
use crate::observer::ObserverCore;
use crate::pipeline::{Events, FrameProcessor};
use crate::reconnect::{Outage, Supervisor};
use crate::schedule::{End, Schedule};
use crate::sink::{Sink, SinkError};
use crate::stats::{Stats, StatsSnapshot};
use crate::track_a::TrackA;
use crate::track_b::TrackB;
use crate::universe::{self, Filter, UniverseError};

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Universe(#[from] UniverseError),
    #[error(transparent)]
    Provider(#[from] providers::ProviderError),
    #[error("a pipeline task failed: {0}")]
    Task(String),
}

/// What the status line, `/health` and the exit summary read while a run is live.
#[derive(Debug)]
pub struct Live {
    pub session: SessionId,
    pub provider: Provider,
    pub market: Market,
    pub clock: Clock,
    pub started: UtcTime,
    pub stats: Arc<Stats>,
    pub mitigation: Arc<AtomicU8>,
    pub universe_size: AtomicU64,
    pub slots: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub session: SessionId,
    pub started: UtcTime,
    pub ended: UtcTime,
    pub recovered_crash: bool,
    pub stats: StatsSnapshot,
}

pub struct Collector<P> {
    pub config: EngineConfig,
    pub provider: Arc<P>,
    pub data_dir: PathBuf,
    pub live: Arc<Live>,
    /// Describes the source in the session-start event (e.g. seed and speed of the sim).
    pub source_detail: serde_json::Value,
}

impl<P: MarketProvider> Collector<P> {
    pub fn new(
        config: EngineConfig,
        provider: P,
        clock: Clock,
        data_dir: PathBuf,
        source_detail: serde_json::Value,
    ) -> Self {
        let started = clock.now();
        let live = Arc::new(Live {
            session: SessionId::starting_at(started),
            provider: provider.id(),
            market: provider.market(),
            clock,
            started,
            stats: Arc::default(),
            mitigation: Arc::default(),
            universe_size: AtomicU64::new(0),
            slots: AtomicU64::new(0),
        });
        Collector { config, provider: Arc::new(provider), data_dir, live, source_detail }
    }

    /// Runs until `stop` turns true or the market clock reaches `until`, then shuts down
    /// cleanly. Nothing is scheduled at or after `until`.
    pub async fn run(self, stop: watch::Receiver<bool>, until: Option<UtcTime>) -> Result<Summary, CollectError> {
        let cfg = &self.config;
        let live = self.live.clone();
        let clock = live.clock;
        let (pid, market) = (live.provider, live.market);
        let stats = live.stats.clone();

        let (sink, recovery) = {
            let (root, acfg, session, stats) =
                (self.data_dir.clone(), cfg.archive.clone(), live.session.clone(), stats.clone());
            let (now, cap) = (clock.now(), cfg.pipeline.archive_capacity);
            tokio::task::spawn_blocking(move || Sink::start(root, &acfg, now, &session, cap, stats))
                .await
                .map_err(|e| CollectError::Task(e.to_string()))??
        };
        let events = Events {
            sink: sink.handle.clone(),
            provider: pid,
            session: live.session.clone(),
            stats: stats.clone(),
            mitigation: live.mitigation.clone(),
        };

        let now = clock.now();
        if recovery.crashed {
            let start = recovery.last_good.unwrap_or(now);
            let detail = format!(
                "previous session {} ended without a clean shutdown; {} file(s) repaired, {} closed",
                recovery.previous_session.as_deref().unwrap_or("unknown"),
                recovery.repaired.len(),
                recovery.closed.len()
            );
            tracing::warn!("{detail}");
            events.system(now, SystemEvent::gap(start, now, "all", "crash_restart", Some(detail))).await?;
        }
        for r in &recovery.repaired {
            tracing::warn!(file = %r.file, cut_bytes = r.cut_bytes, "cut a torn line left by a crash");
            events
                .system(
                    now,
                    SystemEvent::ArchiveRecovery {
                        file: r.file.clone(),
                        cut_bytes: r.cut_bytes,
                        kept_lines: r.kept_lines,
                    },
                )
                .await?;
        }
        let detail = json!({ "provider": pid, "market": market, "speed": clock.speed(), "source": self.source_detail });
        events
            .system(
                now,
                SystemEvent::SessionStart {
                    source: pid.to_string(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    detail,
                },
            )
            .await?;

        // The day's universe, fixed for the day.
        let day = now.kst().date();
        let listings = self.provider.universe(day).await?;
        let filter = Filter { min_prev_close: cfg.universe.min_prev_close };
        let (uni, _reloaded) = {
            let root = self.data_dir.clone();
            let date = now.kst_yyyymmdd();
            tokio::task::spawn_blocking(move || universe::load_or_build(&root, &date, market, pid, filter, || listings))
                .await
                .map_err(|e| CollectError::Task(e.to_string()))??
        };
        let symbols: Arc<Vec<Symbol>> = Arc::new(uni.symbols());
        // Until the trigger engine chooses them, the slots are the first N universe symbols.
        let slots: Arc<Vec<Symbol>> = Arc::new(symbols.iter().take(cfg.tracks.scalp.slots).cloned().collect());
        live.universe_size.store(symbols.len() as u64, std::sync::atomic::Ordering::Relaxed);
        live.slots.store(slots.len() as u64, std::sync::atomic::Ordering::Relaxed);

        let book = Arc::new(LatestBook::default());
        let seq = Arc::new(AtomicU64::new(0));
        let calendar = cfg.calendar.krx();
        let core = || {
            ObserverCore::new(
                &cfg.observer,
                &cfg.calendar,
                live.session.clone(),
                self.provider.mapper_version(),
                live.mitigation.clone(),
                stats.clone(),
            )
        };
        let processor = || FrameProcessor {
            provider: self.provider.clone(),
            core: core(),
            events: events.clone(),
            seq: seq.clone(),
        };

        let (inner_stop_tx, inner_stop) = watch::channel(false);
        let mut tasks: JoinSet<Result<(), CollectError>> = JoinSet::new();

        // Provider stream → observer. The frames channel blocks the stream when full.
        let (frames_tx, mut frames_rx) = mpsc::channel::<RawFrame>(cfg.pipeline.frames_capacity);
        let (_subs_tx, subs_rx) = watch::channel(slots.as_ref().clone());
        let outage = Arc::new(Outage::default());
        {
            let supervisor = Supervisor {
                provider: self.provider.clone(),
                clock,
                events: events.clone(),
                outage: outage.clone(),
                backoff: cfg.reconnect.backoff.clone(),
            };
            let stop = inner_stop.clone();
            tasks.spawn(async move { supervisor.run(subs_rx, frames_tx, stop).await.map_err(CollectError::from) });
        }
        {
            let mut p = processor();
            let book = book.clone();
            let (events, slots) = (events.clone(), slots.clone());
            tasks.spawn(async move {
                let mut passed = Vec::new();
                // Runs until the stream drops its sender, so nothing queued is lost at shutdown.
                while let Some(frame) = frames_rx.recv().await {
                    p.process(&frame, &mut passed).await?;
                    if passed.is_empty() {
                        continue;
                    }
                    if outage.is_open() {
                        outage.on_data(frame.receive_time, &events, &slots).await?;
                    }
                    for rec in &passed {
                        book.apply(rec.meta.receive_time, &rec.body);
                    }
                }
                Ok(())
            });
        }
        let track_a = TrackA {
            processor: processor(),
            universe: symbols.clone(),
            schedule: Schedule {
                window: cfg.tracks.swing.window,
                interval_ms: cfg.tracks.swing.interval.as_millis() as i64,
                end: End::Inclusive,
                calendar: calendar.clone(),
                market,
                until,
            },
            clock,
            book: book.clone(),
        };
        let a_stop = inner_stop.clone();
        tasks.spawn(async move { track_a.run(a_stop).await.map_err(CollectError::from) });
        let track_b = TrackB {
            provider: pid,
            market,
            slots: slots.clone(),
            schedule: Schedule {
                window: cfg.tracks.scalp.window,
                interval_ms: cfg.tracks.scalp.sample_interval.as_millis() as i64,
                end: End::Exclusive,
                calendar,
                market,
                until,
            },
            clock,
            book: book.clone(),
            events: events.clone(),
        };
        let b_stop = inner_stop.clone();
        tasks.spawn(async move { track_b.run(b_stop).await.map_err(CollectError::from) });

        // Housekeeping on the wall clock: fsync for durability, closing files whose window ended.
        {
            let handle = sink.handle.clone();
            let mut stop = inner_stop.clone();
            let fsync = cfg.archive.fsync_interval.get();
            let house = cfg.pipeline.housekeeping_interval.get();
            tasks.spawn(async move {
                let mut sync_tick = tokio::time::interval(fsync);
                let mut house_tick = tokio::time::interval(house);
                loop {
                    tokio::select! {
                        _ = sync_tick.tick() => handle.sync().await,
                        _ = house_tick.tick() => handle.housekeep(clock.now()).await,
                        _ = model::stopped(&mut stop) => return Ok(()),
                    }
                }
            });
        }

        // Wait for the stop request or for a task to fail.
        let mut outer = stop;
        let mut failure = None;
        let reached_until = async {
            match until {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(reached_until);
        // A track whose schedule is over ends quietly; only a failure ends the run early.
        loop {
            tokio::select! {
                _ = model::stopped(&mut outer) => break,
                _ = &mut reached_until => {
                    tracing::info!("the market clock reached --until");
                    break;
                }
                Some(res) = tasks.join_next() => {
                    if let Some(e) = task_error(res) {
                        tracing::error!(error = %e, "pipeline task failed; shutting down");
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        let _ = inner_stop_tx.send(true);
        while let Some(res) = tasks.join_next().await {
            if let Some(e) = task_error(res) {
                tracing::error!(error = %e, "pipeline task failed during shutdown");
                failure.get_or_insert(e);
            }
        }

        let ended = clock.now();
        let counters = serde_json::to_value(stats.snapshot()).unwrap_or_default();
        events.system(ended, SystemEvent::SessionEnd { clean: failure.is_none(), counters }).await?;
        drop(events);
        sink.close(ended).await?;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(Summary {
            session: live.session.clone(),
            started: live.started,
            ended,
            recovered_crash: recovery.crashed,
            stats: stats.snapshot(),
        })
    }
}

fn task_error(res: Result<Result<(), CollectError>, tokio::task::JoinError>) -> Option<CollectError> {
    match res {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(CollectError::Task(e.to_string())),
    }
}

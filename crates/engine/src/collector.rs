//! `collect`: opens the archive (recovering from a crash), then for each provider builds the
//! day's universe and runs its stream (under the reconnect supervisor), observer, Track A
//! and Track B, plus the archive housekeeping, until told to stop; then drains every queue
//! and closes the archive cleanly. All providers share one archive sink and one session.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use jiff::civil::{Time, time};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use archive::Stream;
use tokio::task::JoinSet;

use model::settings::Window;
use model::{Clock, Market, Meta, Provider, RawFrame, Record, SessionId, Symbol, SystemEvent, UtcTime};
use providers::{AnyProvider, MarketProvider};

use crate::book::LatestBook;
use crate::config::EngineConfig;
use crate::day_roll::{DayRoll, FetchError, fetch_universe};
use crate::evidence::GapEvidence;
use crate::health::HealthTask;
use crate::housekeeping::Housekeeping;
use crate::live::{Feed, Live, Manual};
use crate::observe::ObserverTask;
use crate::observer::ObserverCore;
use crate::pipeline::{Events, FrameBytes, FrameProcessor, StreamIntake};
use crate::poll::Poller;
use crate::reconnect::{EvidenceRequest, Outage, Supervisor};
use crate::router::{RoutedFrame, Router};
use crate::schedule::{End, Schedule};
use crate::selector::Selector;
use crate::sink::{Sink, SinkError, SinkHandle};
use crate::slot_watch::SlotWatch;
use crate::slots::SlotManager;
use crate::stats::{StatsSnapshot, inc};
use crate::tap::Tap;
use crate::track_a::TrackA;
use crate::track_b::{Sampler, TrackBClock};
use crate::triggers::CandidateMonitor;
use crate::watchdog::{Activity, Watchdog};
use archive::universe::UniverseError;

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
    /// The configured slots do not fit a provider's stream (its registration budget).
    #[error("{0}")]
    Budget(String),
}

impl From<FetchError> for CollectError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Universe(e) => CollectError::Universe(e),
            FetchError::Provider(e) => CollectError::Provider(e),
            FetchError::Task(e) => CollectError::Task(e),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub session: SessionId,
    pub started: UtcTime,
    pub ended: UtcTime,
    pub recovered_crash: bool,
    pub stats: StatsSnapshot,
}

type Tasks = JoinSet<Result<(), CollectError>>;

/// What a provider's pipeline needs from the run it joins.
pub struct RunContext {
    pub config: EngineConfig,
    pub data_dir: PathBuf,
    pub live: Arc<Live>,
    pub sink: SinkHandle,
    pub stop: watch::Receiver<bool>,
    pub until: Option<UtcTime>,
    pub tap: Option<Arc<dyn Tap>>,
}

impl RunContext {
    fn events(&self, provider: Provider) -> Events {
        Events {
            sink: self.sink.clone(),
            provider,
            session: self.live.session.clone(),
            stats: self.live.stats.clone(),
            mitigation: self.live.mitigation.clone(),
            tap: self.tap.clone(),
        }
    }
}

/// A window covering the whole Seoul day: crypto trades around the clock (seed 001 §2.3–2.4).
const ALL_DAY: Window = Window { start: time(0, 0, 0, 0), end: Time::MAX };

/// Wires one provider's tasks: its stream under the reconnect supervisor, the observer task,
/// Track A, Track B's clock, the slot selector and watcher, degrade-mode polls, the
/// watchdog, gap evidence and the day roll. Each is a named task; this only connects them.
async fn launch_provider<P: MarketProvider>(
    provider: Arc<P>,
    ctx: &RunContext,
    tasks: &mut Tasks,
) -> Result<(), CollectError> {
    let cfg = &ctx.config;
    let live = &ctx.live;
    let clock = live.clock;
    let (pid, market) = (provider.id(), provider.market());
    let mapper = provider.mapper();
    let stats = live.stats.clone();
    let events = ctx.events(pid);
    let now = clock.now();
    let stop = || ctx.stop.clone();

    provider.check_credentials().await?;
    // The day's universe, fixed for the day (seed 001 §2.2); rebuilt each trading day.
    let uni = fetch_universe(provider.as_ref(), &ctx.data_dir, &cfg.universe, now.kst().date()).await?;
    let symbols: Arc<Vec<Symbol>> = Arc::new(uni.symbols());
    let (universe_tx, universe_rx) = watch::channel(symbols.clone());
    // Until the trigger engine chooses them, the slots are the first N universe symbols.
    let slots: Arc<Vec<Symbol>> = Arc::new(symbols.iter().take(cfg.tracks.scalp.slots).cloned().collect());
    live.universe_size.fetch_add(symbols.len() as u64, Relaxed);

    let book = Arc::new(LatestBook::default());
    let monitor = Arc::new(Mutex::new(CandidateMonitor::new(cfg.triggers.clone())));
    let seq = Arc::new(AtomicU64::new(0));
    let calendar = cfg.calendar.krx();
    let processor = || {
        let (observer, calendar) = (cfg.observer.clone(), cfg.calendar.clone());
        let (session, mitigation, stats) = (live.session.clone(), live.mitigation.clone(), stats.clone());
        let core = move || {
            ObserverCore::new(&observer, &calendar, session.clone(), mapper.version, mitigation.clone(), stats.clone())
        };
        FrameProcessor::new(provider.clone(), Router::new(mapper, Box::new(core)), events.clone(), seq.clone())
    };
    let schedule = |window: Window, interval_ms: i64, end: End| Schedule {
        window: if market == Market::Crypto { ALL_DAY } else { window },
        interval_ms,
        end,
        calendar: calendar.clone(),
        market,
        until: ctx.until,
    };
    let scalp = &cfg.tracks.scalp;
    let track_b_schedule = schedule(scalp.window, scalp.sample_interval.as_millis() as i64, End::Exclusive);

    // Provider stream → byte budget → observer queue, which Track B's clock, degrade-mode
    // polls and slot seeds also feed. The queue blocks the stream when full.
    let (frames_tx, frames_rx) = mpsc::channel::<RoutedFrame>(cfg.pipeline.frames_capacity);
    let frame_bytes = Arc::new(FrameBytes::new(cfg.pipeline.frames_bytes));
    let (stream_tx, stream_rx) = mpsc::channel::<RawFrame>(1);
    let intake = StreamIntake { budget: frame_bytes.clone(), from: stream_rx, to: frames_tx.clone() };
    tasks.spawn(async move {
        intake.run().await;
        Ok(())
    });

    let (subs_tx, subs_rx) = watch::channel(slots.as_ref().clone());
    let outage = Arc::new(Outage::default());
    live.slot_capacity.fetch_add(scalp.slots as u64, Relaxed);
    let degraded = Arc::new(AtomicBool::new(false));
    let activity = Arc::new(Activity::default());

    let supervisor = Supervisor {
        provider: provider.clone(),
        clock,
        events: events.clone(),
        outage: outage.clone(),
        config: cfg.reconnect.clone(),
        window: (market != Market::Crypto).then(|| track_b_schedule.clone()),
        activity: activity.clone(),
    };
    let subs = subs_rx.clone();
    spawn(tasks, supervisor.run(subs, stream_tx, stop()));

    let selector = Selector {
        provider: provider.clone(),
        monitor: monitor.clone(),
        manager: SlotManager::new(cfg.slots.clone(), symbols.as_ref().clone(), now),
        universe: universe_rx.clone(),
        manual: live.manual.subscribe(),
        every: cfg.triggers.evaluate_interval,
        schedule: track_b_schedule.clone(),
        subs: subs_tx,
        events: events.clone(),
        clock,
        raw: processor(),
    };
    spawn(tasks, selector.run(stop()));

    let mut sampler =
        Sampler::new(pid, market, book.clone(), events.clone(), false, scalp.stale_after.as_millis() as i64);
    sampler.tap = ctx.tap.clone();
    live.feeds.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::new(Feed {
        provider: pid,
        market,
        outage: outage.clone(),
        slots: sampler.gauge.clone(),
        slot_capacity: scalp.slots as u64,
        universe: AtomicU64::new(symbols.len() as u64),
        degraded: degraded.clone(),
        frames: frames_tx.downgrade(),
        frame_bytes: frame_bytes.clone(),
    }));
    let observer = ObserverTask {
        processor: processor(),
        frames: frames_rx,
        frame_bytes,
        clock,
        book: book.clone(),
        sampler,
        activity: activity.clone(),
        outage: outage.clone(),
        slots: subs_rx.clone(),
        monitor: monitor.clone(),
        events: events.clone(),
        tap: ctx.tap.clone(),
        stats: stats.clone(),
    };
    spawn(tasks, observer.run());

    let (evidence_tx, evidence_rx) = mpsc::unbounded_channel::<EvidenceRequest>();
    outage.set_evidence(evidence_tx);
    spawn(tasks, GapEvidence { processor: processor(), requests: evidence_rx }.run(stop()));

    let day_roll = DayRoll {
        provider: provider.clone(),
        data_dir: ctx.data_dir.clone(),
        config: cfg.universe.clone(),
        clock,
        schedule: Schedule {
            window: Window { start: cfg.universe.build_at, end: Time::MAX },
            interval_ms: 86_400_000,
            end: End::Inclusive,
            calendar: calendar.clone(),
            market,
            until: ctx.until,
        },
        live: live.clone(),
        book: book.clone(),
        activity: activity.clone(),
        slots: subs_rx.clone(),
        universe: universe_tx,
    };
    spawn(tasks, day_roll.run(stop()));

    let track_a = TrackA {
        processor: processor(),
        universe: universe_rx.clone(),
        schedule: schedule(cfg.tracks.swing.window, cfg.tracks.swing.interval.as_millis() as i64, End::Inclusive),
        clock,
        tap: ctx.tap.clone(),
        monitor: monitor.clone(),
        concurrency: cfg.tracks.swing.concurrency,
    };
    spawn(tasks, track_a.run(stop()));

    let track_b = TrackBClock {
        provider: pid,
        slots: subs_rx.clone(),
        schedule: track_b_schedule.clone(),
        intervals: [scalp.interval_ms(0), scalp.interval_ms(1), scalp.interval_ms(2)],
        mitigation: live.mitigation.clone(),
        paused: outage.clone(),
        clock,
        frames: frames_tx.clone(),
        events: events.clone(),
    };
    spawn(tasks, track_b.run(stop()));

    let poller = Poller {
        provider: provider.clone(),
        clock,
        every: cfg.watchdog.poll_interval,
        after: cfg.watchdog.poll_after,
        schedule: track_b_schedule.clone(),
        degraded: degraded.clone(),
        outage: outage.clone(),
        activity: activity.clone(),
        slots: subs_rx.clone(),
        frames: frames_tx.clone(),
        events: events.clone(),
    };
    spawn(tasks, poller.run(stop()));

    let slot_watch = SlotWatch {
        provider: provider.clone(),
        clock,
        schedule: track_b_schedule.clone(),
        slots: subs_rx.clone(),
        activity: activity.clone(),
        dark_after: scalp.slot_dark_after,
        // The last sender of the observer queue: once every feeder ends, the observer drains and ends.
        frames: frames_tx,
        events: events.clone(),
    };
    spawn(tasks, slot_watch.run(stop()));

    let watchdog = Watchdog {
        config: cfg.watchdog.clone(),
        clock,
        schedule: track_b_schedule,
        activity,
        outage,
        slots: subs_rx,
        events,
        degraded,
        trades_only: {
            let provider = provider.clone();
            Arc::new(move |on| provider.set_trades_only(on))
        },
    };
    spawn(tasks, watchdog.run(stop()));
    Ok(())
}

/// Spawns a named task whose error ends the run.
fn spawn<E: Into<CollectError>>(tasks: &mut Tasks, task: impl Future<Output = Result<(), E>> + Send + 'static) {
    tasks.spawn(async move { task.await.map_err(Into::into) });
}

pub struct Collector {
    pub config: EngineConfig,
    pub providers: Vec<AnyProvider>,
    pub data_dir: PathBuf,
    pub live: Arc<Live>,
    /// Describes the source in the session-start event (e.g. sim seed and fake servers).
    pub source_detail: serde_json::Value,
    /// Sinks beside the archive (the live database sink).
    pub tap: Option<Arc<dyn Tap>>,
    /// Jobs outside the engine (backups, receipts, compression, retention).
    pub lifecycle: Option<LifecycleHook>,
}

/// How jobs outside the engine share the archive: they start once it is open (crash
/// recovery done, so a day's files are closed or repaired), and their events are written
/// to `system/lifecycle/` in the order received, until shutdown.
pub struct LifecycleHook {
    pub events: mpsc::Receiver<(UtcTime, SystemEvent)>,
    pub ready: tokio::sync::oneshot::Sender<()>,
}

impl Collector {
    pub fn new(
        config: EngineConfig,
        providers: Vec<AnyProvider>,
        clock: Clock,
        data_dir: PathBuf,
        source_detail: serde_json::Value,
    ) -> Self {
        let mut config = config;
        // The skew allowance is for transport delay, which is wall-clock time; on an
        // accelerated clock every real millisecond of delay reads as `speed` market ones.
        // The allowance in force is recorded in session_start so replay applies the same.
        let skew = config.observer.max_clock_skew.as_millis() as f64 * clock.speed().max(1.0);
        config.observer.max_clock_skew = model::settings::Interval::from_millis(skew as u64);
        let started = clock.now();
        let live = Arc::new(Live {
            session: SessionId::starting_at(started),
            providers: providers.iter().map(|p| (p.id(), p.market())).collect(),
            clock,
            started,
            data_dir: data_dir.clone(),
            stats: Arc::default(),
            mitigation: Arc::default(),
            universe_size: AtomicU64::new(0),
            slot_capacity: AtomicU64::new(0),
            hz_by_level: [0, 1, 2].map(|l| 1000.0 / config.tracks.scalp.interval_ms(l) as f64),
            pressure: Arc::default(),
            day: Mutex::default(),
            manual: watch::Sender::new(Manual {
                include: config.triggers.manual_include.clone(),
                exclude: config.triggers.manual_exclude.clone(),
            }),
            feeds: Mutex::default(),
        });
        Collector { config, providers, data_dir, live, source_detail, tap: None, lifecycle: None }
    }

    /// Runs until `stop` turns true or the market clock reaches `until`, then shuts down
    /// cleanly. Nothing is scheduled at or after `until`.
    pub async fn run(self, stop: watch::Receiver<bool>, until: Option<UtcTime>) -> Result<Summary, CollectError> {
        let live = self.live.clone();
        let clock = live.clock;
        let stats = live.stats.clone();
        // Before anything is opened: a slot count the streams cannot carry would record
        // empty samples all day (seed 001 §1.1), so it is refused with what fits.
        for p in &self.providers {
            p.slot_budget().check(p.id(), self.config.tracks.scalp.slots).map_err(CollectError::Budget)?;
        }

        let (sink, recovery) = {
            let (root, acfg, session, stats) =
                (self.data_dir.clone(), self.config.archive.clone(), live.session.clone(), stats.clone());
            let (now, cap) = (clock.now(), self.config.pipeline.archive_capacity);
            tokio::task::spawn_blocking(move || Sink::start(root, &acfg, now, &session, cap, stats))
                .await
                .map_err(|e| CollectError::Task(e.to_string()))??
        };
        let (inner_stop_tx, inner_stop) = watch::channel(false);
        let ctx = RunContext {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            live: live.clone(),
            sink: sink.handle.clone(),
            stop: inner_stop.clone(),
            until,
            tap: self.tap.clone(),
        };

        let now = clock.now();
        for (pid, market) in &live.providers {
            let events = ctx.events(*pid);
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
            let detail = json!({
                "provider": pid,
                "market": market,
                "speed": clock.speed(),
                "max_clock_skew_ms": self.config.observer.max_clock_skew.as_millis(),
                "source": self.source_detail,
            });
            let start = SystemEvent::SessionStart {
                source: pid.to_string(),
                version: env!("CARGO_PKG_VERSION").into(),
                detail,
            };
            events.system(now, start).await?;
        }
        // Repairs are facts about files, not providers: the first provider's events carry them.
        if let Some((pid, _)) = live.providers.first() {
            for r in &recovery.repaired {
                tracing::warn!(file = %r.file, cut_bytes = r.cut_bytes, "cut a torn line left by a crash");
                let ev = SystemEvent::ArchiveRecovery {
                    file: r.file.clone(),
                    cut_bytes: r.cut_bytes,
                    kept_lines: r.kept_lines,
                };
                ctx.events(*pid).system(now, ev).await?;
            }
        }

        let mut tasks: Tasks = JoinSet::new();
        let mut failure = None;
        for p in &self.providers {
            if let Err(e) = launch_provider(Arc::new(p.clone()), &ctx, &mut tasks).await {
                tracing::error!(provider = %p.id(), error = %e, "provider failed to start; shutting down");
                failure = Some(e);
                break;
            }
        }

        if failure.is_none() {
            let health = HealthTask {
                config: self.config.clone(),
                live: live.clone(),
                data_dir: self.data_dir.clone(),
                events: live.providers.iter().map(|(pid, _)| ctx.events(*pid)).collect(),
            };
            let stop = inner_stop.clone();
            tasks.spawn(async move { health.run(stop).await.map_err(CollectError::from) });
        }

        if let Some(LifecycleHook { events: mut rx, ready }) = self.lifecycle {
            let _ = ready.send(());
            let (sink, session, stats, mut stop, tap) =
                (sink.handle.clone(), live.session.clone(), stats.clone(), inner_stop.clone(), self.tap.clone());
            tasks.spawn(async move {
                loop {
                    let next = tokio::select! {
                        e = rx.recv() => e,
                        _ = model::stopped(&mut stop) => None,
                    };
                    let Some((at, event)) = next.or_else(|| rx.try_recv().ok()) else { return Ok(()) };
                    inc(&stats.system_events);
                    match &event {
                        SystemEvent::BackupCreated { .. } => inc(&stats.backups_created),
                        SystemEvent::BackupFailed { .. } => inc(&stats.backups_failed),
                        SystemEvent::RetentionHeld { .. } => inc(&stats.retention_held),
                        _ => {}
                    }
                    let rec = Record { body: event, meta: Meta::new(at, at, session.clone()) };
                    sink.write(Stream::Lifecycle, at, &rec).await?;
                    if let Some(tap) = &tap {
                        tap.system_event(None, &rec);
                    }
                }
            });
        }

        let housekeeping = Housekeeping {
            sink: sink.handle.clone(),
            clock,
            fsync_every: self.config.archive.fsync_interval.get(),
            housekeep_every: self.config.pipeline.housekeeping_interval.get(),
        };
        let housekeeping_stop = inner_stop.clone();
        tasks.spawn(async move {
            housekeeping.run(housekeeping_stop).await;
            Ok(())
        });

        // Wait for the stop request, --until, or a task failure.
        let mut outer = stop;
        let reached_until = async {
            match until {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(reached_until);
        // A track whose schedule is over ends quietly; only a failure ends the run early.
        while failure.is_none() {
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
        for (pid, _) in &live.providers {
            let end = SystemEvent::SessionEnd { clean: failure.is_none(), counters: counters.clone() };
            ctx.events(*pid).system(ended, end).await?;
        }
        drop(ctx);
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

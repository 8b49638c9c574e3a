//! `collect`: opens the archive (recovering from a crash), then for each provider builds the
//! day's universe and runs its stream (under the reconnect supervisor), observer, Track A
//! and Track B, plus the archive housekeeping, until told to stop; then drains every queue
//! and closes the archive cleanly. All providers share one archive sink and one session.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use jiff::civil::{Time, time};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use model::settings::Window;
use model::{
    Clock, Market, MarketEvent, Provider, QualityFlag, RawFrame, RawFrameKind, SessionId, Symbol, SystemEvent, UtcTime,
};
use providers::MarketProvider;

use crate::anomaly::Day;
use crate::book::LatestBook;
use crate::config::EngineConfig;
use crate::health::HealthTask;
use crate::mitigation::Pressure;
use crate::observer::ObserverCore;
use crate::pipeline::{Events, FrameBytes, FrameProcessor, RawRefs, Subscribed};
use crate::poll::Poller;
use crate::reconnect::{EvidenceRequest, Outage, Supervisor};
use crate::schedule::{End, Schedule};
use crate::selector::Selector;
use crate::sink::{Sink, SinkError, SinkHandle};
use crate::slot_watch::SlotWatch;
use crate::slots::SlotManager;
use crate::stats::{Stats, StatsSnapshot};
use crate::tap::Tap;
use crate::track_a::TrackA;
use crate::track_b::{Sampler, SlotGauge, TrackBClock};
use crate::triggers::CandidateMonitor;
use crate::universe::{self, Filter, UniverseError};
use crate::watchdog::{Activity, Watchdog};

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

/// What the status line, `/health` and the exit summary read while a run is live.
#[derive(Debug)]
pub struct Live {
    pub session: SessionId,
    pub providers: Vec<(Provider, Market)>,
    pub clock: Clock,
    pub started: UtcTime,
    pub stats: Arc<Stats>,
    pub mitigation: Arc<AtomicU8>,
    /// Summed over providers.
    pub universe_size: AtomicU64,
    /// Slot capacity summed over providers (41 per market by default).
    pub slot_capacity: AtomicU64,
    /// Track B's sampling rate at each mitigation level.
    pub hz_by_level: [f64; 3],
    /// Forced readings from fault scripts.
    pub pressure: Arc<Pressure>,
    /// The day so far (reconnects, gaps, recording rate, tripped anomaly conditions).
    pub day: Mutex<Day>,
    /// Set by the watchdog while a provider runs in degrade mode.
    pub degraded: Arc<AtomicBool>,
    /// Manual override (seed 001 §2.5 trigger 4): symbols always / never given a slot.
    /// Sent by a config reload (SIGHUP) today, by a CLI/API command later.
    pub manual: watch::Sender<Manual>,
    outages: Mutex<Vec<Arc<Outage>>>,
    slot_gauges: Mutex<Vec<Arc<SlotGauge>>>,
}

/// The manual override lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manual {
    pub include: Vec<Symbol>,
    pub exclude: Vec<Symbol>,
}

impl Live {
    pub fn outages(&self) -> Vec<Arc<Outage>> {
        self.outages.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `rest_polling`, `reconnecting`, `degraded`, `connected` or `connecting`, over all providers.
    pub fn connection_state(&self) -> &'static str {
        let outages = self.outages();
        if outages.iter().any(|o| o.rest_polling.load(Relaxed)) {
            "rest_polling"
        } else if outages.iter().any(|o| o.is_open()) {
            "reconnecting"
        } else if self.degraded.load(Relaxed) {
            "degraded"
        } else if outages.iter().all(|o| o.connected.load(Relaxed)) {
            "connected"
        } else {
            "connecting"
        }
    }

    /// Slots Track B sampled last, summed over providers, and how many of them had data
    /// younger than `tracks.scalp.stale_after` (`slots 41/41 streaming 41`).
    pub fn slots(&self) -> (u64, u64) {
        let gauges = self.slot_gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges.iter().fold((0, 0), |(a, s), g| (a + g.assigned.load(Relaxed), s + g.streaming.load(Relaxed)))
    }

    /// Track B's sampling rate now.
    pub fn hz(&self) -> f64 {
        self.hz_by_level[self.mitigation.load(Relaxed).min(2) as usize]
    }

    pub fn day(&self) -> Day {
        self.day.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
        }
    }
}

/// A provider the collector can run, whatever its concrete type.
pub trait Launch: Send + Sync {
    fn id(&self) -> Provider;
    fn market(&self) -> Market;
    fn slot_budget(&self) -> providers::SlotBudget;
    /// Builds the day's universe and spawns the provider's tasks into `tasks`.
    fn launch<'a>(
        self: Arc<Self>,
        ctx: &'a RunContext,
        tasks: &'a mut Tasks,
    ) -> BoxFuture<'a, Result<(), CollectError>>;
}

impl<P: MarketProvider> Launch for P {
    fn id(&self) -> Provider {
        MarketProvider::id(self)
    }
    fn market(&self) -> Market {
        MarketProvider::market(self)
    }
    fn slot_budget(&self) -> providers::SlotBudget {
        MarketProvider::slot_budget(self)
    }
    fn launch<'a>(
        self: Arc<Self>,
        ctx: &'a RunContext,
        tasks: &'a mut Tasks,
    ) -> BoxFuture<'a, Result<(), CollectError>> {
        Box::pin(launch_provider(self, ctx, tasks))
    }
}

/// A window covering the whole Seoul day: crypto trades around the clock (seed 001 §2.3–2.4).
const ALL_DAY: Window = Window { start: time(0, 0, 0, 0), end: Time::MAX };

async fn launch_provider<P: MarketProvider>(
    provider: Arc<P>,
    ctx: &RunContext,
    tasks: &mut Tasks,
) -> Result<(), CollectError> {
    let cfg = &ctx.config;
    let live = &ctx.live;
    let clock = live.clock;
    let (pid, market) = (provider.id(), provider.market());
    let stats = live.stats.clone();
    let events = ctx.events(pid);
    let now = clock.now();

    provider.check_credentials().await?;
    // The day's universe, fixed for the day (seed 001 §2.2); rebuilt each trading day.
    let uni = day_universe(provider.as_ref(), ctx, now.kst().date()).await?;
    let symbols: Arc<Vec<Symbol>> = Arc::new(uni.symbols());
    let (universe_tx, universe_rx) = watch::channel(symbols.clone());
    // Until the trigger engine chooses them, the slots are the first N universe symbols.
    let slots: Arc<Vec<Symbol>> = Arc::new(symbols.iter().take(cfg.tracks.scalp.slots).cloned().collect());
    live.universe_size.fetch_add(symbols.len() as u64, Relaxed);

    let book = Arc::new(LatestBook::default());
    let monitor = Arc::new(Mutex::new(CandidateMonitor::new(cfg.triggers.clone())));
    let seq = Arc::new(AtomicU64::new(0));
    let calendar = cfg.calendar.krx();
    let processor = || FrameProcessor {
        provider: provider.clone(),
        core: ObserverCore::new(
            &cfg.observer,
            &cfg.calendar,
            live.session.clone(),
            provider.mapper_version(),
            live.mitigation.clone(),
            stats.clone(),
        ),
        events: events.clone(),
        seq: seq.clone(),
        refs: RawRefs::default(),
        last_level: 0,
        quality: QualityFlag::Normal,
        subscribed: None,
    };
    let schedule = |window: Window, interval_ms: i64, end: End| Schedule {
        window: if market == Market::Crypto { ALL_DAY } else { window },
        interval_ms,
        end,
        calendar: calendar.clone(),
        market,
        until: ctx.until,
    };

    // Provider stream → observer. The frames channel blocks the stream when full.
    let (frames_tx, mut frames_rx) = mpsc::channel::<RawFrame>(cfg.pipeline.frames_capacity);
    // The stream's frames pass a byte budget on their way in; the observer gives it back.
    let frame_bytes = Arc::new(FrameBytes::new(cfg.pipeline.frames_bytes));
    let (stream_tx, mut stream_rx) = mpsc::channel::<RawFrame>(1);
    {
        let (budget, frames_tx) = (frame_bytes.clone(), frames_tx.clone());
        tasks.spawn(async move {
            while let Some(frame) = stream_rx.recv().await {
                budget.reserve(&frame).await;
                if frames_tx.send(frame).await.is_err() {
                    break; // the observer has stopped: the run is ending
                }
            }
            Ok(())
        });
    }
    let clock_frames = frames_tx.clone();
    let poll_frames = frames_tx.clone();
    let seed_frames = frames_tx.clone();
    let (subs_tx, subs_rx) = watch::channel(slots.as_ref().clone());
    let outage = Arc::new(Outage::default());
    live.outages.lock().unwrap_or_else(|p| p.into_inner()).push(outage.clone());
    live.slot_capacity.fetch_add(cfg.tracks.scalp.slots as u64, Relaxed);
    let activity = Arc::new(Activity::default());
    let supervisor = Supervisor {
        provider: provider.clone(),
        clock,
        events: events.clone(),
        outage: outage.clone(),
        config: cfg.reconnect.clone(),
        window: (market != Market::Crypto).then(|| {
            schedule(cfg.tracks.scalp.window, cfg.tracks.scalp.sample_interval.as_millis() as i64, End::Exclusive)
        }),
        activity: activity.clone(),
    };
    let stop = ctx.stop.clone();
    {
        let subs_rx = subs_rx.clone();
        drop(frames_tx);
        tasks.spawn(async move { supervisor.run(subs_rx, stream_tx, stop).await.map_err(CollectError::from) });
    }
    let selector = Selector {
        provider: provider.clone(),
        monitor: monitor.clone(),
        manager: SlotManager::new(cfg.slots.clone(), symbols.as_ref().clone(), now),
        universe: universe_rx.clone(),
        manual: live.manual.subscribe(),
        every: cfg.triggers.evaluate_interval,
        schedule: schedule(
            cfg.tracks.scalp.window,
            cfg.tracks.scalp.sample_interval.as_millis() as i64,
            End::Exclusive,
        ),
        subs: subs_tx,
        events: events.clone(),
        clock,
        raw: processor(),
    };
    let stop = ctx.stop.clone();
    tasks.spawn(async move { selector.run(stop).await.map_err(CollectError::from) });
    {
        let mut p = processor();
        p.subscribed = providers::mapper(pid).and_then(|m| m.subscribes).map(|_| Subscribed::default());
        // Degrade-mode REST polls (`poll`): their own guard state, and raw lines that say so.
        let mut polls = processor();
        polls.quality = QualityFlag::Degraded;
        let (book, events, subs, outage, activity, monitor) =
            (book.clone(), events.clone(), subs_rx.clone(), outage.clone(), activity.clone(), monitor.clone());
        let stale_after = cfg.tracks.scalp.stale_after.as_millis() as i64;
        let mut sampler = Sampler::new(pid, market, book.clone(), events.clone(), false, stale_after);
        sampler.tap = ctx.tap.clone();
        live.slot_gauges.lock().unwrap_or_else(|p| p.into_inner()).push(sampler.gauge.clone());
        let tap = ctx.tap.clone();
        let gauges_stats = stats.clone();
        tasks.spawn(async move {
            let mut passed = Vec::new();
            // Runs until the stream and Track B's clock drop their senders, so nothing
            // queued is lost at shutdown.
            while let Some(frame) = frames_rx.recv().await {
                // Queue lag in wall-clock terms: the thresholds are about this machine.
                let lag = clock.now().millis_since(frame.receive_time).max(0) as f64 / clock.speed().max(1.0);
                gauges_stats.gauges.queue_lag_ms.fetch_max(lag as u64, Relaxed);
                // Only the poller and the slot seeds send REST frames here: they feed the book
                // for Track B and are not stream data (the outage stays open, silence keeps
                // counting).
                let polled = frame.kind == RawFrameKind::Rest;
                if polled {
                    polls.process(&frame, &mut passed).await?;
                } else {
                    p.process(&frame, &mut passed).await?;
                }
                // Everything but REST responses and Track B's clock came through the stream's
                // byte budget.
                if !polled && frame.kind != RawFrameKind::Clock {
                    frame_bytes.release(&frame);
                }
                activity.on_frame(frame.receive_time);
                if frame.kind == RawFrameKind::Clock {
                    sampler.sample(&frame.frame, frame.receive_time, p.last_level).await?;
                    continue;
                }
                if polled {
                    for rec in &passed {
                        book.apply(rec.meta.receive_time, &rec.body);
                    }
                    continue;
                }
                if passed.is_empty() {
                    continue;
                }
                if outage.is_open() {
                    let slots = subs.borrow().clone();
                    outage.on_data(frame.receive_time, &events, &slots).await?;
                }
                for rec in &passed {
                    activity.on_data(rec.meta.receive_time, rec.body.symbol());
                    if let MarketEvent::Tick(t) = &rec.body {
                        monitor.lock().unwrap_or_else(|p| p.into_inner()).on_tick(rec.meta.receive_time, t);
                    }
                    book.apply(rec.meta.receive_time, &rec.body);
                    if let Some(tap) = &tap {
                        tap.market_event(rec);
                    }
                }
            }
            Ok(())
        });
    }
    // Marked evidence after a gap: a REST snapshot of each slot symbol, next to the marker.
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<EvidenceRequest>();
        outage.set_evidence(tx);
        let mut p = processor();
        p.quality = QualityFlag::Gap;
        let mut stop = ctx.stop.clone();
        tasks.spawn(async move {
            let mut passed = Vec::new();
            loop {
                let req = tokio::select! {
                    r = rx.recv() => match r { Some(r) => r, None => return Ok(()) },
                    _ = model::stopped(&mut stop) => return Ok(()),
                };
                for symbol in &req.symbols {
                    let frame = match p.provider.snapshot(symbol).await {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(%symbol, error = %e, "gap evidence snapshot failed");
                            continue;
                        }
                    };
                    p.process(&frame, &mut passed).await?;
                    for rec in passed.drain(..) {
                        if let MarketEvent::Snapshot(snapshot) = rec.body {
                            let ev = SystemEvent::GapSnapshot {
                                gap_start_ts: req.gap_start,
                                gap_end_ts: req.gap_end,
                                snapshot,
                            };
                            p.events.system(rec.meta.receive_time, ev).await?;
                        }
                    }
                }
            }
        });
    }
    {
        // Each trading day's universe, built before the open; Track A and the slot manager
        // pick it up at their next cycle.
        let provider = provider.clone();
        let (root, cfg2, live2) = (ctx.data_dir.clone(), cfg.clone(), live.clone());
        let (book, activity, slots_now) = (book.clone(), activity.clone(), subs_rx.clone());
        let mut stop = ctx.stop.clone();
        let build = Schedule {
            window: Window { start: cfg.universe.build_at, end: Time::MAX },
            interval_ms: 86_400_000,
            end: End::Inclusive,
            calendar: calendar.clone(),
            market,
            until: ctx.until,
        };
        tasks.spawn(async move {
            let mut from = clock.now().plus_millis(1);
            while let Some(at) = build.next_at_or_after(from) {
                tokio::select! {
                    _ = clock.sleep_until(at) => {}
                    _ = model::stopped(&mut stop) => return Ok(()),
                }
                from = at.plus_millis(1);
                let old = universe_tx.borrow().len() as u64;
                let uni = match fetch_universe(provider.as_ref(), &root, &cfg2, at.kst().date()).await {
                    Ok(u) => u,
                    Err(e) => {
                        // Yesterday's universe keeps the tracks running; the failure is loud.
                        tracing::error!(provider = %provider.id(), error = %e, "building the day's universe failed");
                        continue;
                    }
                };
                let symbols = Arc::new(uni.symbols());
                // Day roll: per-symbol state shrinks to the new universe and the slots held.
                let keep: std::collections::HashSet<Symbol> =
                    symbols.iter().chain(slots_now.borrow().iter()).cloned().collect();
                book.retain(|s| keep.contains(s));
                activity.retain(|s| keep.contains(s));
                live2.universe_size.fetch_sub(old, Relaxed);
                live2.universe_size.fetch_add(symbols.len() as u64, Relaxed);
                tracing::info!(provider = %provider.id(), date = %uni.date, count = uni.count, "universe for the day");
                let _ = universe_tx.send(symbols);
            }
            Ok(())
        });
    }
    let track_a = TrackA {
        processor: processor(),
        universe: universe_rx.clone(),
        schedule: schedule(cfg.tracks.swing.window, cfg.tracks.swing.interval.as_millis() as i64, End::Inclusive),
        clock,
        tap: ctx.tap.clone(),
        monitor: monitor.clone(),
        concurrency: cfg.tracks.swing.concurrency,
    };
    let stop = ctx.stop.clone();
    tasks.spawn(async move { track_a.run(stop).await.map_err(CollectError::from) });
    let scalp = &cfg.tracks.scalp;
    let track_b_schedule = schedule(scalp.window, scalp.sample_interval.as_millis() as i64, End::Exclusive);
    let track_b = TrackBClock {
        provider: pid,
        slots: subs_rx.clone(),
        schedule: track_b_schedule.clone(),
        intervals: [scalp.interval_ms(0), scalp.interval_ms(1), scalp.interval_ms(2)],
        mitigation: live.mitigation.clone(),
        paused: outage.clone(),
        clock,
        frames: clock_frames,
        events: events.clone(),
    };
    let stop = ctx.stop.clone();
    tasks.spawn(async move { track_b.run(stop).await.map_err(CollectError::from) });
    let poller = Poller {
        provider: provider.clone(),
        clock,
        every: cfg.watchdog.poll_interval,
        after: cfg.watchdog.poll_after,
        schedule: track_b_schedule.clone(),
        degraded: live.degraded.clone(),
        outage: outage.clone(),
        activity: activity.clone(),
        slots: subs_rx.clone(),
        frames: poll_frames,
        events: events.clone(),
    };
    let stop = ctx.stop.clone();
    tasks.spawn(async move { poller.run(stop).await.map_err(CollectError::from) });
    let slot_watch = SlotWatch {
        provider: provider.clone(),
        clock,
        schedule: track_b_schedule.clone(),
        slots: subs_rx.clone(),
        activity: activity.clone(),
        dark_after: cfg.tracks.scalp.slot_dark_after,
        frames: seed_frames,
        events: events.clone(),
    };
    let stop = ctx.stop.clone();
    tasks.spawn(async move { slot_watch.run(stop).await.map_err(CollectError::from) });
    let watchdog = Watchdog {
        config: cfg.watchdog.clone(),
        clock,
        schedule: track_b_schedule,
        activity,
        outage,
        slots: subs_rx,
        events,
        degraded: live.degraded.clone(),
        trades_only: {
            let provider = provider.clone();
            Arc::new(move |on| provider.set_trades_only(on))
        },
    };
    let stop = ctx.stop.clone();
    tasks.spawn(async move { watchdog.run(stop).await.map_err(CollectError::from) });
    Ok(())
}

/// Loads the day's universe file, or builds it from the provider's listings.
async fn fetch_universe<P: MarketProvider>(
    provider: &P,
    root: &std::path::Path,
    cfg: &EngineConfig,
    day: jiff::civil::Date,
) -> Result<universe::UniverseFile, CollectError> {
    let (market, pid) = (provider.market(), provider.id());
    let date = day.strftime("%Y%m%d").to_string();
    let (r, d) = (root.to_path_buf(), date.clone());
    let existing = tokio::task::spawn_blocking(move || universe::load(&r, &d, market))
        .await
        .map_err(|e| CollectError::Task(e.to_string()))??;
    if let Some(u) = existing {
        return Ok(u);
    }
    let listings = provider.universe(day).await?;
    let filter = Filter::for_market(market, &cfg.universe);
    let root = root.to_path_buf();
    let (u, _) =
        tokio::task::spawn_blocking(move || universe::load_or_build(&root, &date, market, pid, filter, || listings))
            .await
            .map_err(|e| CollectError::Task(e.to_string()))??;
    Ok(u)
}

async fn day_universe<P: MarketProvider>(
    provider: &P,
    ctx: &RunContext,
    day: jiff::civil::Date,
) -> Result<universe::UniverseFile, CollectError> {
    fetch_universe(provider, &ctx.data_dir, &ctx.config, day).await
}

pub struct Collector {
    pub config: EngineConfig,
    pub providers: Vec<Arc<dyn Launch>>,
    pub data_dir: PathBuf,
    pub live: Arc<Live>,
    /// Describes the source in the session-start event (e.g. sim seed and fake servers).
    pub source_detail: serde_json::Value,
    /// Sinks beside the archive (the live database sink).
    pub tap: Option<Arc<dyn Tap>>,
}

impl Collector {
    pub fn new(
        config: EngineConfig,
        providers: Vec<Arc<dyn Launch>>,
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
            stats: Arc::default(),
            mitigation: Arc::default(),
            universe_size: AtomicU64::new(0),
            slot_capacity: AtomicU64::new(0),
            hz_by_level: [0, 1, 2].map(|l| 1000.0 / config.tracks.scalp.interval_ms(l) as f64),
            pressure: Arc::default(),
            day: Mutex::default(),
            degraded: Arc::default(),
            manual: watch::Sender::new(Manual {
                include: config.triggers.manual_include.clone(),
                exclude: config.triggers.manual_exclude.clone(),
            }),
            outages: Mutex::default(),
            slot_gauges: Mutex::default(),
        });
        Collector { config, providers, data_dir, live, source_detail, tap: None }
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
            if let Err(e) = p.clone().launch(&ctx, &mut tasks).await {
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

        // Housekeeping on the wall clock: fsync for durability, closing files whose window ended.
        {
            let handle = sink.handle.clone();
            let mut stop = inner_stop.clone();
            let fsync = self.config.archive.fsync_interval.get();
            let house = self.config.pipeline.housekeeping_interval.get();
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

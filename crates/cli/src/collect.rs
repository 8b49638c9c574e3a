use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use jiff::civil::{DateTime, Time};
use tokio::sync::watch;

use engine::Collector;
use model::{Clock, UtcTime};
use providers::sim::SimMarket;

use crate::sources::{self, Binds, Mode};

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: the embedded configs/observer.yaml; APP_ENV selects an overlay).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the archive is written.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Stop after this much wall-clock time (e.g. 30s, 10m, 1h). Default: until Ctrl-C.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop when the market clock reaches this Seoul time of day (HH:MM).
    #[arg(long, value_name = "HH:MM", value_parser = parse_hhmm)]
    until: Option<Time>,
    /// Run the simulated market clock N times faster than real time (sim only).
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = parse_speed)]
    speed: f64,
    /// Start the simulated clock at this Seoul date and time (default: the opening of Track
    /// B's window, 09:30, on the latest trading day on or before today, so a demo records
    /// both tracks at once).
    #[arg(long, value_name = "YYYY-MM-DDTHH:MM", value_parser = parse_start)]
    start: Option<DateTime>,
    /// Inject a fault into the simulated market at a market time of the first day, for a
    /// duration (repeatable). Kinds: ws_disconnect, ws_silent (heartbeats, no data), ws_stall
    /// (nothing at all), rest_429, rest_5xx, cpu_pressure.
    #[arg(long = "fault", value_name = "KIND@HH:MM:SS+DUR")]
    faults: Vec<crate::faults::Fault>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<model::settings::Interval>().map(|i| i.get())
}

fn parse_hhmm(s: &str) -> Result<Time, String> {
    Time::strptime("%H:%M", s).map_err(|_| format!("{s:?} is not a time of day in HH:MM form"))
}

/// Highest supported acceleration: beyond it the simulated day outruns one core.
const MAX_SPEED: f64 = 10_000.0;
/// Lifecycle events waiting for the archive: a few per job and a job an hour at most, so
/// this is never the limit; a full queue is logged, never waited on.
const LIFECYCLE_QUEUE: usize = 1024;

pub fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_SPEED => Ok(v),
        _ => Err(format!("{s:?} must be a number above 0 and at most {MAX_SPEED}")),
    }
}

pub fn parse_start(s: &str) -> Result<DateTime, String> {
    DateTime::strptime("%Y-%m-%dT%H:%M", s)
        .map_err(|_| format!("{s:?} is not a Seoul date and time in YYYY-MM-DDTHH:MM form"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = crate::load_config(args.config.as_deref())?;
    let settings = loaded.settings;
    let mode = sources::mode(&settings)?;

    let (clock, start, market) = match mode {
        Mode::Live => {
            if args.speed != 1.0 || args.start.is_some() {
                bail!("--speed and --start only apply to the simulated market (source: sim)");
            }
            let clock = Clock::real();
            (clock, clock.now(), None)
        }
        Mode::Sim => {
            let start = match args.start {
                Some(dt) => UtcTime::from_kst(dt),
                None => default_start(&settings)?,
            };
            let market = sim_market(&settings, start)?;
            (Clock::simulated(start, args.speed, settings.sim.clock_stall_grace.get()), start, Some(market))
        }
    };
    let until = match args.until {
        Some(t) => {
            let u = UtcTime::from_kst(DateTime::from_parts(start.kst().date(), t));
            if u <= start {
                bail!("--until {t} is not after the start {} (Seoul)", start.kst());
            }
            Some(u)
        }
        None => None,
    };

    if mode == Mode::Live && !args.faults.is_empty() {
        bail!("--fault only applies to the simulated market (source: sim)");
    }
    let faults = crate::faults::schedule(&args.faults, start)?;
    // Checked before any port is bound, so a second collector on the same data dir is told
    // that, not that the first one's health port is taken. The writer's lock still decides.
    if archive::collector_running(&args.data_dir)? {
        return Err(archive::ArchiveError::Locked { path: args.data_dir.clone() }.into());
    }

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let fakes = match market {
            Some(market) => {
                let fakes = sources::start_fakes(&settings, market, clock, &Binds::any(), false).await?;
                let venues: Vec<String> = fakes.servers.iter().map(|f| f.provider.to_string()).collect();
                eprintln!(
                    "no broker credentials configured: recording the simulated market (seed {}, {} KRX symbols; venues: {}) through the real adapters against fake servers on loopback, from {} KST at {}x",
                    settings.sim.seed,
                    settings.sim.symbols,
                    venues.join(", "),
                    start.kst(),
                    args.speed
                );
                fakes
            }
            None => sources::Fakes::default(),
        };
        let adapters = sources::adapters(&settings, mode, clock, &args.data_dir, &fakes)?;
        let detail = match mode {
            Mode::Sim => serde_json::json!({ "mode": "sim", "seed": settings.sim.seed, "symbols": settings.sim.symbols }),
            Mode::Live => serde_json::json!({ "mode": "live" }),
        };
        let mut collector = Collector::new(settings.engine(), adapters, clock, args.data_dir.clone(), detail);
        let live_sink = crate::live::start(&settings.store, &args.data_dir).await?;
        let mut taps: Vec<Arc<dyn engine::tap::Tap>> = Vec::new();
        // /api/v1/stream's feed: only with the HTTP listener on.
        let hub = settings
            .http
            .enabled
            .then(|| api::v1::stream::Hub::new(settings.api.stream_replay, settings.api.stream_keep_alive.get()));
        if let Some(hub) = &hub {
            taps.push(Arc::new(api::v1::stream::StreamTap(hub.clone())));
        }
        if let Some(sink) = &live_sink {
            taps.push(Arc::new(crate::live::LiveTap(sink.clone())));
            eprintln!("live database sink on: {}", settings.store.url.as_deref().unwrap_or("embedded SQLite"));
        }
        let live = collector.live.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let alerting = crate::alerting::start(
            crate::alerting::Wiring {
                settings: &settings,
                data_dir: &args.data_dir,
                clock,
                live: live.clone(),
                sink: live_sink.as_ref().map(|s| s.stats()),
                packages: lifecycle::package::Packages::new(settings.backup.dir_for(&args.data_dir)),
            },
            stop_rx.clone(),
        )
        .await?;
        if let Some(a) = &alerting {
            taps.push(a.tap.clone());
        }
        collector.tap = (!taps.is_empty()).then(|| Arc::new(engine::tap::Taps(taps)) as Arc<dyn engine::tap::Tap>);
        reload_on_sighup(live.clone(), args.config.clone());
        let targets = Arc::new(crate::faults::Targets {
            fakes: fakes.servers.iter().map(|f| f.faults.clone()).collect(),
            pressure: live.pressure.clone(),
        });
        for (fault, on, off) in faults {
            tokio::spawn(crate::faults::run(fault, on, off, clock, targets.clone()));
        }
        // Backups, compression and retention on the market clock; their events reach the
        // archive through the collector (system/lifecycle/).
        let (lifecycle_tx, lifecycle_rx) = tokio::sync::mpsc::channel(LIFECYCLE_QUEUE);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        collector.lifecycle = Some(engine::LifecycleHook { events: lifecycle_rx, ready: ready_tx });
        let upkeep = Arc::new(lifecycle::upkeep::Upkeep::new(
            &args.data_dir,
            settings.backup.clone(),
            settings.compression.clone(),
            settings.retention.clone(),
        ));
        let gauge: lifecycle::schedule::DiskGauge = {
            let dir = args.data_dir.clone();
            Arc::new(move || archive::disk_usage(&dir))
        };
        // The archive is open: the lifecycle jobs start, and systemd is told READY=1.
        let (started_tx, started_rx) = watch::channel(false);
        tokio::spawn(async move {
            if ready_rx.await.is_ok() {
                let _ = started_tx.send(true);
            }
        });
        let mut started = started_rx.clone();
        let ready = async move {
            // A collector that never opens its archive never starts the jobs either.
            if started.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let lifecycle_jobs = tokio::spawn(lifecycle::schedule::run(
            upkeep.clone(),
            clock,
            gauge,
            lifecycle_tx.clone(),
            ready,
            stop_rx.clone(),
        ));
        let maintenance = crate::maintain::spawn(
            &settings.store,
            args.data_dir.clone(),
            clock,
            settings.calendar.krx(),
            stop_rx.clone(),
        );

        if settings.http.enabled {
            // The HTTP surface is a window on the recording, not part of it: a taken port
            // costs /health and /metrics for this run, never the recording.
            // The backup pull source, for keys of scope backup:read (`stock-observer apikey`);
            // a coordinator's receipt becomes a `backup_receipt` event in the archive.
            let sessions = api::session::Sessions::from_env(settings.api.session_ttl.get().as_secs() as i64)?;
            let keys = Arc::new(api::keys::KeyStore::open(&args.data_dir).with_sessions(sessions));
            let receipts = lifecycle_tx.clone();
            let backup = api::BackupRoutes::new(upkeep.packages.dir(), keys.clone()).on_receipt(move |r| {
                let event = model::SystemEvent::BackupReceipt {
                    date: r.date,
                    held_by: r.held_by.clone(),
                    manifest_sha256: r.manifest_sha256.clone(),
                };
                if receipts.try_send((clock.now(), event)).is_err() {
                    tracing::warn!(date = %r.date, "receipt recorded in the backup dir, but its event was not archived (queue full or shutting down)");
                }
            });
            let extra = alerting.as_ref().map(|a| -> api::ExtraMetrics {
                let stats = a.stats();
                Arc::new(move |e: &mut api::metrics::Exposition| stats.expose(e))
            });
            // /api/v1 over the same database the live sink and the ETL fill.
            let v1 = match store::Store::open(&settings.store, &args.data_dir).await {
                Ok(db) => Some(api::v1::router(
                    api::v1::ApiState {
                        live: Some(live.clone()),
                        stream: hub.clone(),
                        upkeep: Some(upkeep.clone()),
                        etl_batch_rows: settings.store.batch_rows,
                        ..api::v1::ApiState::new(Arc::new(db), args.data_dir.clone(), clock, settings.api)
                    },
                    keys.clone(),
                )),
                Err(e) => {
                    tracing::warn!("/api/v1 is off: the database cannot be opened: {e}");
                    None
                }
            };
            let metrics_keys = settings.http.metrics_auth.then(|| keys.clone());
            let mounts = api::Mounts { backup: Some(backup), metrics: extra, v1, metrics_keys };
            match api::serve(&settings.http, live.clone(), mounts, stop_rx.clone()).await {
                Ok(l) => eprintln!("health: http://{0}/health  metrics: http://{0}/metrics", l.addr),
                Err(e) => tracing::warn!("{e}; recording continues without /health and /metrics"),
            }
        }
        let status = tokio::spawn(crate::status::run(live.clone(), settings.status.interval.get(), stop_rx.clone()));
        // After the HTTP listener is up; a no-op without NOTIFY_SOCKET (systemd Type=notify).
        let stale = 3 * settings.archive.fsync_interval.get();
        let service = tokio::spawn(crate::service::run(live.clone(), started_rx, stale, stop_rx.clone()));

        let stopper = stop_tx.clone();
        tokio::spawn(async move {
            let reason = tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = sleep_opt(args.duration) => "--duration reached",
            };
            eprintln!("\n{reason}: shutting down (flush, fsync, close, manifest); Ctrl-C again to abort");
            let _ = stopper.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("aborted: the next start will recover the archive");
                std::process::exit(130);
            }
        });

        let result = collector.run(stop_rx, until).await;
        let _ = stop_tx.send(true);
        // A pack in progress finishes on its own thread; the next run redoes an unmarked one.
        lifecycle_jobs.abort();
        let _ = status.await;
        let _ = service.await;
        if let Some(m) = maintenance {
            // A run still waiting on a slow database is abandoned: every step is idempotent
            // and repeats at the next start.
            m.abort();
        }
        drop(fakes);
        let sink_report = match live_sink {
            Some(s) => crate::live::finish(s).await,
            None => None,
        };
        let alert_counts = match alerting {
            Some(a) => Some(a.finish().await),
            None => None,
        };
        let summary = result.with_context(|| format!("collecting into {}", args.data_dir.display()))?;
        crate::status::print_summary(&summary, &args.data_dir);
        if let Some(a) = alert_counts {
            println!(
                "  alerts: {} raised, {} outbox rows written ({} deduplicated), {} sent, {} failed, {} retried, {} rate-limited, {} dropped, {} still in memory",
                a.raised, a.rows_enqueued, a.deduplicated, a.sent, a.failed, a.retried, a.rate_limited, a.dropped, a.held
            );
        }
        if let Some(r) = sink_report {
            println!(
                "  live database sink: {} rows stored, {} failed ({} write errors), {} dropped (queue full)",
                r.rows_stored, r.rows_failed, r.write_errors, r.dropped_queue_full
            );
            if r.rows_failed + r.dropped_queue_full > 0 {
                println!(
                    "  the database missed rows{}; fill it from the archive with:",
                    r.last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
                );
                for day in session_days(summary.started, summary.ended) {
                    println!("    stock-observer etl --data-dir {} --date {day}", args.data_dir.display());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The Seoul days (`YYYYMMDD`) a session from `started` to `ended` recorded into.
fn session_days(started: UtcTime, ended: UtcTime) -> Vec<String> {
    let (first, last) = (started.kst().date(), ended.kst().date());
    let mut days = vec![store::yyyymmdd(first)];
    let mut d = first;
    while let Ok(next) = d.tomorrow()
        && next <= last
    {
        days.push(store::yyyymmdd(next));
        d = next;
    }
    days
}

/// The simulated market of `start`'s day, generated up to `start`. Call it before the clock
/// starts, so a fast clock does not run ahead while the market is built.
pub fn sim_market(settings: &config::Settings, start: UtcTime) -> anyhow::Result<SimMarket> {
    let mut market = SimMarket::try_new(&settings.sim, start.kst().date()).map_err(|p| {
        anyhow::anyhow!("invalid sim config: {}", p.iter().map(|p| format!("sim.{p}")).collect::<Vec<_>>().join("; "))
    })?;
    market.advance_all(start);
    Ok(market)
}

/// The opening of Track B's window (09:30) on the latest KRX trading day on or before today,
/// so a demo always runs in market hours with both tracks recording, weekends included.
pub fn default_start(settings: &config::Settings) -> anyhow::Result<UtcTime> {
    let today = Clock::real().now().kst().date();
    let day = settings
        .calendar
        .krx()
        .latest_trading_day(today)
        .context("no trading day in the last year: check calendar.holidays")?;
    Ok(UtcTime::from_kst(DateTime::from_parts(day, settings.tracks.scalp.window.start)))
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// SIGHUP re-reads the configuration (same file and APP_ENV) and applies what can change
/// while recording: the manual override lists. A file that no longer loads or validates is
/// reported and ignored; the run goes on with what it had.
fn reload_on_sighup(live: Arc<engine::Live>, file: Option<PathBuf>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the configuration cannot be reloaded while running");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match crate::load_config(file.as_deref()) {
                Ok(l) => {
                    let t = l.settings.triggers;
                    let m = engine::Manual { include: t.manual_include, exclude: t.manual_exclude };
                    eprintln!(
                        "SIGHUP: configuration reloaded; manual override include {:?}, exclude {:?} (other changes need a restart)",
                        m.include.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                        m.exclude.iter().map(|s| s.as_str()).collect::<Vec<_>>()
                    );
                    live.manual.send_replace(m);
                }
                Err(e) => eprintln!("SIGHUP: configuration not reloaded, keeping the running one: {e:#}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> UtcTime {
        s.parse().unwrap()
    }

    #[test]
    fn session_days_are_seoul_days() {
        // 23:50 UTC is 08:50 the next day in Seoul.
        assert_eq!(session_days(t("2026-01-13T23:50:00.000Z"), t("2026-01-14T06:30:00.000Z")), ["20260114"]);
        // Across Seoul midnight (15:00 UTC) twice.
        assert_eq!(
            session_days(t("2026-01-14T14:00:00.000Z"), t("2026-01-16T15:00:00.000Z")),
            ["20260114", "20260115", "20260116", "20260117"]
        );
    }
}

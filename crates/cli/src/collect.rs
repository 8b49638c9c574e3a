use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use jiff::civil::{DateTime, Time};
use tokio::sync::watch;

use engine::Collector;
use model::{Clock, UtcTime};
use providers::sim::SimProvider;

/// Broker credentials that would select a real provider instead of the simulated market.
const CREDENTIAL_VARS: &[&str] = &["KIS_APP_KEY", "KIS_APP_SECRET"];

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
    /// Start the simulated clock at this Seoul date and time (default: 09:00 of the latest
    /// trading day on or before today, so a demo always runs in market hours).
    #[arg(long, value_name = "YYYY-MM-DDTHH:MM", value_parser = parse_start)]
    start: Option<DateTime>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<model::settings::Interval>().map(|i| i.get())
}

fn parse_hhmm(s: &str) -> Result<Time, String> {
    Time::strptime("%H:%M", s).map_err(|_| format!("{s:?} is not a time of day in HH:MM form"))
}

/// Highest supported acceleration: beyond it the simulated day outruns one core.
const MAX_SPEED: f64 = 10_000.0;

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_SPEED => Ok(v),
        _ => Err(format!("{s:?} must be a number above 0 and at most {MAX_SPEED}")),
    }
}

fn parse_start(s: &str) -> Result<DateTime, String> {
    DateTime::strptime("%Y-%m-%dT%H:%M", s)
        .map_err(|_| format!("{s:?} is not a Seoul date and time in YYYY-MM-DDTHH:MM form"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = crate::load_config(args.config.as_deref())?;
    let settings = loaded.settings;
    if let Some(var) = CREDENTIAL_VARS.iter().find(|v| std::env::var_os(v).is_some()) {
        bail!(
            "{var} is set, but this build has no KIS adapter yet; unset the KIS_* variables to record the simulated market"
        );
    }

    let calendar = settings.calendar.krx();
    let start = match args.start {
        Some(dt) => UtcTime::from_kst(dt),
        None => {
            let today = Clock::real().now().kst().date();
            let day = calendar
                .latest_trading_day(today)
                .context("no trading day in the last year: check calendar.holidays")?;
            UtcTime::from_kst(DateTime::from_parts(day, settings.calendar.session.start))
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
    let market = SimProvider::market(&settings.sim, start.kst().date())
        .map_err(|p| anyhow::anyhow!("invalid sim config: {p}"))?;
    let clock = Clock::simulated(start, args.speed);
    eprintln!(
        "no broker credentials configured: recording the built-in simulated market (sim, seed {}, {} symbols) from {} KST at {}x",
        settings.sim.seed,
        settings.sim.symbols,
        start.kst(),
        args.speed
    );

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let provider = SimProvider::new(market, clock);
        let detail = serde_json::json!({ "seed": settings.sim.seed, "symbols": settings.sim.symbols });
        let collector = Collector::new(settings.engine(), provider, clock, args.data_dir.clone(), detail);
        let live = collector.live.clone();
        let (stop_tx, stop_rx) = watch::channel(false);

        if settings.http.enabled {
            let addr = api::serve(&settings.http, live.clone(), stop_rx.clone()).await?;
            eprintln!("health: http://{addr}/health  metrics: http://{addr}/metrics");
        }
        let status = tokio::spawn(crate::status::run(live.clone(), settings.status.interval.get(), stop_rx.clone()));

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
        let _ = status.await;
        let summary = result.with_context(|| format!("collecting into {}", args.data_dir.display()))?;
        crate::status::print_summary(&summary, &args.data_dir);
        Ok(ExitCode::SUCCESS)
    })
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

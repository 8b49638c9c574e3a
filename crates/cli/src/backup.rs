//! `stock-observer backup create|verify|restore|pull|list`, `retention run` and
//! `coordinator`: the archive's life after recording (crates/lifecycle).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use lifecycle::coordinator::{Coordinator, CoordinatorConfig};
use lifecycle::package::{self, Packages, Packed, Step};
use lifecycle::pull::{Edge, Pulled};
use lifecycle::upkeep::Upkeep;
use model::settings::{Checker, Validate};
use model::{Clock, Day, Meta, Record, SessionId, SystemEvent, UtcTime};

/// The environment variable `backup pull` reads its `backup:read` key from.
pub const KEY_ENV: &str = "STOCK_OBSERVER_BACKUP_KEY";

#[derive(Subcommand)]
pub enum Backup {
    /// Pack one finished day: every closed archive file (zstd per file), MANIFEST.json,
    /// SHA256SUMS (check with `sha256sum -c SHA256SUMS`) and SUCCESS.marker, written last.
    /// Refuses a day whose files are still open. Does nothing if the day is packed already.
    Create(CreateArgs),
    /// Check a package: its marker, the manifest's own checksum, every file's size and
    /// sha256 (stored and original), and extra or missing files. Exits non-zero with one
    /// `file: what` line per problem.
    Verify {
        /// The package folder (`.../backups/YYYYMMDD`).
        path: PathBuf,
    },
    /// Restore a package into a data dir; `stock-observer verify --date` then passes on it.
    /// Never overwrites a file that differs.
    Restore {
        /// The package folder.
        path: PathBuf,
        /// The data dir to restore into (created if missing).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Download a day's package from an edge's HTTP listener with a `backup:read` key
    /// (from STOCK_OBSERVER_BACKUP_KEY), resuming a cut transfer; verifies every file
    /// against the edge's manifest, then writes its own SUCCESS.marker. Running it again
    /// does nothing.
    Pull(PullArgs),
    /// List a data dir's packages and receipts.
    List(DataDirArgs),
}

#[derive(Args)]
pub struct DataDirArgs {
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Configuration file (default: the embedded configs/observer.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    dir: DataDirArgs,
    /// The Seoul day to pack.
    #[arg(long, value_name = "YYYYMMDD")]
    date: Day,
    /// Where packages go (default: backup.dir, i.e. DATA_DIR/backups).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct PullArgs {
    /// The edge's listener, e.g. http://10.0.0.5:9464.
    #[arg(long, value_name = "URL")]
    from: String,
    #[arg(long, value_name = "YYYYMMDD")]
    date: Day,
    /// Where copies go: DIR/YYYYMMDD/.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Connect and read timeout.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
}

#[derive(Subcommand)]
pub enum Retention {
    /// Apply backup-first retention now (what `collect` does every retention.interval):
    /// raw days after 3 days (7 on anomaly days) once a verified copy exists, derived files
    /// after their periods, never the newest 48 h; an unbacked day past the cap is kept and
    /// reported. Each deletion is a `retention_deleted` event in system/lifecycle/.
    Run {
        #[command(flatten)]
        dir: DataDirArgs,
        /// Print what would be deleted and kept; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args)]
pub struct CoordinatorArgs {
    /// The coordinator's YAML file: name, dir, lookback_days, pull_after, retries,
    /// retry_interval, timeout and edges (name, url, key_env, backup_at).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// One round for every edge now, then exit (non-zero if any pull failed).
    #[arg(long)]
    once: bool,
}

fn upkeep(dir: &DataDirArgs) -> anyhow::Result<(Upkeep, config::Settings)> {
    let settings = crate::load_config(dir.config.as_deref())?.settings;
    let upkeep =
        Upkeep::new(&dir.data_dir, settings.backup.clone(), settings.compression.clone(), settings.retention.clone());
    Ok((upkeep, settings))
}

pub fn run(cmd: Backup) -> anyhow::Result<ExitCode> {
    match cmd {
        Backup::Create(args) => create(args),
        Backup::Verify { path } => verify(&path),
        Backup::Restore { path, to } => {
            let r = package::restore(&path, &to).with_context(|| format!("restoring {}", path.display()))?;
            println!(
                "restored {} into {}: {} files written ({} bytes), {} already there; check it with: stock-observer verify --data-dir {} --date {}",
                r.date,
                to.display(),
                r.written,
                r.bytes,
                r.already_there,
                to.display(),
                r.date
            );
            Ok(ExitCode::SUCCESS)
        }
        Backup::Pull(args) => pull(args),
        Backup::List(dir) => list(&dir),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let (mut upkeep, _) = upkeep(&args.dir)?;
    if !args.dir.data_dir.is_dir() {
        bail!("data dir {} does not exist", args.dir.data_dir.display());
    }
    if let Some(out) = &args.out {
        upkeep.packages = Packages::new(out);
    }
    let now = Clock::real().now();
    let progress = |step: Step| {
        if let Step::Stored { index, total, original_bytes } = step {
            eprint!("\r  {}/{} files packed ({} bytes)   ", index + 1, total, original_bytes);
        }
        stop_for_crash_test(step);
    };
    let started = std::time::Instant::now();
    let (result, events) = upkeep.pack(args.date, now, &progress);
    eprintln!();
    record_if_idle(&args.dir.data_dir, now, events);
    match result.with_context(|| format!("packing {} of {}", args.date, args.dir.data_dir.display()))? {
        Packed::Created { dir, manifest, marker, .. } => {
            let secs = started.elapsed().as_secs_f64();
            let (orig, stored) = (manifest.original_bytes(), manifest.stored_bytes());
            println!(
                "packed {}: {} files, {} → {} bytes ({:.1}x) in {:.1}s ({:.0} MB/s) into {}; manifest sha256 {}",
                args.date,
                manifest.files.len(),
                orig,
                stored,
                orig as f64 / stored.max(1) as f64,
                secs,
                orig as f64 / 1e6 / secs.max(1e-9),
                dir.display(),
                marker.manifest_sha256
            );
        }
        Packed::Exists { dir, marker } => {
            println!(
                "{} is packed already ({}, completed {}): nothing to do",
                args.date,
                dir.display(),
                marker.completed_at
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Crash tests stop the packer after a chosen step (`STOCK_OBSERVER_TEST_STOP_AT=manifest`,
/// `stored:N`, `writing:N`, `sums`, `marker`) and kill it there. Debug builds only.
fn stop_for_crash_test(step: Step) {
    #[cfg(all(debug_assertions, target_os = "linux"))]
    if let Ok(at) = std::env::var("STOCK_OBSERVER_TEST_STOP_AT") {
        let name = match step {
            Step::Writing { index } => format!("writing:{index}"),
            Step::Stored { index, .. } => format!("stored:{index}"),
            Step::Manifest => "manifest".into(),
            Step::Sums => "sums".into(),
            Step::Marker => "marker".into(),
        };
        if name == at {
            // SAFETY: raise() only delivers a signal to this process.
            #[allow(unsafe_code)]
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
        }
    }
    #[cfg(not(all(debug_assertions, target_os = "linux")))]
    let _ = step;
}

fn verify(path: &Path) -> anyhow::Result<ExitCode> {
    let checked = package::verify(path).with_context(|| format!("verifying {}", path.display()))?;
    for p in &checked.problems {
        println!("{p}");
    }
    match (&checked.manifest, checked.ok()) {
        (Some(m), true) => {
            println!(
                "backup verify OK: {} {} files ({} bytes, {} stored) in {}",
                m.date,
                checked.files_checked,
                m.original_bytes(),
                m.stored_bytes(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            println!("backup verify FAILED: {} problem(s) in {}", checked.problems.len(), path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    let key = std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty()).with_context(|| {
        format!(
            "{KEY_ENV} is not set: create a key on the edge with `stock-observer apikey create --scope backup:read`"
        )
    })?;
    let edge = Edge { base: args.from.clone(), key: key.into(), timeout: Duration::from_secs(args.timeout) };
    let copies = Packages::new(&args.to);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(edge.pull(args.date, &copies, Clock::real().now()));
    match result.with_context(|| format!("pulling {} from {}", args.date, args.from))? {
        Pulled::Copied { files, resumed, bytes, manifest, .. } => println!(
            "pulled {} from {} ({}): {} files fetched ({} resumed), {} bytes; verified, SUCCESS.marker written in {}",
            args.date,
            args.from,
            manifest.server,
            files,
            resumed,
            bytes,
            copies.day_dir(args.date).display()
        ),
        Pulled::Held { marker } => println!(
            "{} is held already in {} (manifest {}): nothing to do",
            args.date,
            copies.day_dir(args.date).display(),
            marker.manifest_sha256
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn list(dir: &DataDirArgs) -> anyhow::Result<ExitCode> {
    let (upkeep, _) = upkeep(dir)?;
    let receipts = lifecycle::receipt::Receipts::of(&upkeep.packages);
    let days = upkeep.packages.complete()?;
    if days.is_empty() {
        println!("no packages in {}", upkeep.packages.dir().display());
    }
    for d in days {
        let (marker, m) = upkeep.packages.manifest(d)?;
        let receipt = match receipts.load(d)? {
            Some(r) => format!("held by {} since {}", r.held_by, r.received_at),
            None => "no receipt".into(),
        };
        println!(
            "{d}  {} files  {} → {} bytes  completed {}  {receipt}",
            marker.files,
            m.original_bytes(),
            m.stored_bytes(),
            marker.completed_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_retention(cmd: Retention) -> anyhow::Result<ExitCode> {
    let Retention::Run { dir, dry_run } = cmd;
    if !dir.data_dir.is_dir() {
        bail!("data dir {} does not exist", dir.data_dir.display());
    }
    if !dry_run && archive::collector_running(&dir.data_dir)? {
        bail!(
            "a collector is recording into {}: it applies retention itself every retention.interval. Stop it \
             first, or look with --dry-run",
            dir.data_dir.display()
        );
    }
    let (upkeep, _) = upkeep(&dir)?;
    let now = Clock::real().now();
    let usage = archive::disk_usage(&dir.data_dir);
    let (plan, events) = upkeep.retention(now, usage, dry_run)?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for d in &plan.deletions {
        println!("{verb} {} ({}): {} files, {} bytes", d.day, d.rule, d.files.len(), d.bytes);
    }
    for h in &plan.held {
        println!("kept {} ({}): {}", h.day, h.rule, h.reason);
    }
    if let Some(p) = &plan.pressure {
        println!(
            "disk {:.1}% used, above retention.disk_high_water_percent {}%: needed {} bytes, {} freed",
            p.usage.percent(),
            p.mark,
            p.needed,
            p.freed
        );
    }
    if plan.deletions.is_empty() && plan.held.is_empty() {
        println!("nothing to delete");
    }
    if !dry_run {
        record_if_idle(&dir.data_dir, now, events);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_coordinator(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let cfg: CoordinatorConfig = serde_yaml_figment(&text, &args.config)?;
    let mut c = Checker::default();
    cfg.validate(&mut c);
    if !c.problems.is_empty() {
        bail!(
            "invalid coordinator configuration {}:\n{}",
            args.config.display(),
            c.problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
        );
    }
    let clock = Clock::real();
    // Alerts as `collect` raises them (the `alerts:` and `store:` sections of the main
    // configuration; the outbox defaults to `<dir>/observer.db`).
    let settings = if args.once { None } else { Some(crate::load_config(None)?.settings) };
    let dir = cfg.dir.clone();
    let coordinator = std::sync::Arc::new(Coordinator::open(cfg, clock.now())?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let failed = runtime.block_on(async {
        if args.once {
            let mut failed = 0;
            for i in 0..coordinator.edges() {
                let r = coordinator.round(i, &clock).await;
                for (date, why) in &r.failed {
                    println!("FAILED {}: {why}", date.map_or("-".into(), |d| d.to_string()));
                }
                println!(
                    "edge {}: pulled {:?}, receipts sent {:?}",
                    i,
                    r.pulled.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    r.receipts.iter().map(ToString::to_string).collect::<Vec<_>>()
                );
                failed += r.failed.len();
            }
            Ok::<_, anyhow::Error>(failed)
        } else {
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                eprintln!("Ctrl-C: stopping after the rounds in progress");
                let _ = stop_tx.send(true);
            });
            let delivery = match settings.as_ref().filter(|s| s.alerts.enabled) {
                Some(s) => {
                    Some(crate::alerting::Delivery::start(&s.alerts, &s.store, &dir, clock, stop.clone()).await?)
                }
                None => None,
            };
            if let Some(d) = &delivery {
                let source = alerts::sources::EventAlerts::new(d.tx.clone());
                coordinator.observe(Box::new(move |at, e| source.on_event(None, e, at)));
            }
            coordinator.clone().run(clock, stop).await;
            if let Some(d) = delivery {
                let a = d.finish().await;
                println!("alerts: {} raised, {} sent, {} failed, {} dropped", a.raised, a.sent, a.failed, a.dropped);
            }
            Ok(0)
        }
    })?;
    for (name, h) in coordinator.health() {
        println!(
            "{name}: {} last good backup {} ({} days held){}",
            if h.reachable { "reachable," } else { "UNREACHABLE," },
            h.last_good_backup.map_or("none".into(), |d| d.to_string()),
            h.days_held,
            h.last_error.map(|e| format!("; last error: {e}")).unwrap_or_default()
        );
    }
    coordinator.close(clock.now())?;
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Parses a YAML file with figment, so errors name the key and the file like the main
/// configuration's do.
fn serde_yaml_figment<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> anyhow::Result<T> {
    use figment::providers::{Format, Yaml};
    figment::Figment::from(Yaml::string(text)).extract().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes `events` to the data dir's `system/lifecycle/` when no collector holds it (a
/// running collector records its own jobs' events; a hand-run command's are in its output).
fn record_if_idle(root: &Path, now: UtcTime, events: Vec<SystemEvent>) {
    if events.is_empty() {
        return;
    }
    match archive::collector_running(root) {
        Ok(false) => {}
        _ => {
            eprintln!("note: a collector holds {}; these events are reported here only: {events:?}", root.display());
            return;
        }
    }
    let session = SessionId::starting_at(now);
    let written =
        archive::ArchiveWriter::open(root, &archive::ArchiveConfig::default(), now, &session).and_then(|(mut w, _)| {
            for e in &events {
                let line = serde_json::to_vec(&Record { body: e, meta: Meta::new(now, now, session.clone()) })
                    .map_err(|err| archive::ArchiveError::Io { path: root.to_path_buf(), source: err.into() })?;
                w.append(archive::Stream::Lifecycle, now, &line)?;
            }
            w.close_all(now).map(|_| ())
        });
    if let Err(e) = written {
        eprintln!("warning: events not recorded in {}: {e}", root.display());
    }
}

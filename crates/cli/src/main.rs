//! `stock-observer`: the one binary. Subcommands wire the crates together; all the work is
//! in the library crates.

mod alerting;
mod apikey;
mod backup;
mod bench;
mod bench_api;
mod bench_backup;
mod collect;
mod db;
mod debug;
mod faults;
mod live;
mod maintain;
mod replay;
mod serve;
mod service;
mod sim;
mod sources;
mod status;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "stock-observer",
    version,
    about = "Records market data into a reproducible raw archive, and keeps recording through faults, writing evidence of every gap."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record market data until Ctrl-C, --duration or --until (the main job).
    Collect(collect::Args),
    /// Serve the simulated market over the real KIS and Upbit wire protocols on loopback.
    Sim(sim::Args),
    /// Serve /api/v1 over a database and archive without collecting.
    Serve(serve::Args),
    /// Re-run normalization and the tracks over recorded raw frames into a new archive;
    /// the swing and scalp files equal the original's.
    Replay(replay::Args),
    /// Check archive integrity: every line parses and carries the common meta, every closed
    /// file matches its manifest. Exits non-zero with a report of each problem.
    Verify(verify::Args),
    /// The query database: apply migrations, show their state and the storage mode.
    #[command(subcommand)]
    Db(db::Db),
    /// Load one archive day into the database, reconcile row counts per table, and record the
    /// result as an `etl_reconcile` event in that day's system/events archive file.
    Etl(db::EtlArgs),
    /// Load and validate the configuration, then print the effective values.
    Config(ConfigArgs),
    /// API keys for the HTTP API's /api/v1 routes: create (printed once), list, revoke.
    #[command(subcommand)]
    Apikey(apikey::ApiKey),
    /// Measure throughput (results go in docs/benchmarks.md).
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Daily backup packages: create, verify, restore, pull from an edge, list.
    #[command(subcommand)]
    Backup(backup::Backup),
    /// Backup-first retention of the archive.
    #[command(subcommand)]
    Retention(backup::Retention),
    /// The central backup coordinator: pulls every edge's packages after its backup time,
    /// aggregates each day across edges and sends each edge a receipt for what it holds.
    Coordinator(backup::CoordinatorArgs),
    /// What an operator needs from a running collector or a data dir, in plain text: status,
    /// pipeline, slots, gaps, db, bus.
    #[command(subcommand)]
    Debug(debug::DebugCmd),
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Configuration file (default: the embedded configs/observer.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Loads the layered configuration, honouring `APP_ENV`.
pub fn load_config(file: Option<&std::path::Path>) -> anyhow::Result<config::Loaded> {
    let app_env = std::env::var("APP_ENV").ok();
    Ok(config::load(file, app_env.as_deref())?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Collect(_) | Command::Sim(_) | Command::Serve(_) | Command::Coordinator(_)) {
        // A report piped into `head` should end quietly when the reader goes, as other Unix
        // tools do, not panic in println!. Not for the long-running services: their sockets
        // are written with MSG_NOSIGNAL anyway, and a recorder must not die with its log pipe.
        // SAFETY: restoring the default disposition before any thread starts.
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL)
        };
    }
    init_logging();
    let result = match cli.command {
        Command::Collect(args) => collect::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Db(cmd) => load_config(None).and_then(|l| db::run_db(cmd, &l.settings.store)),
        Command::Etl(args) => load_config(None).and_then(|l| db::run_etl(args, &l.settings)),
        Command::Config(args) => print_config(args),
        Command::Apikey(cmd) => apikey::run(cmd),
        Command::Bench(b) => bench::run(b),
        Command::Backup(b) => backup::run(b),
        Command::Retention(r) => backup::run_retention(r),
        Command::Coordinator(args) => backup::run_coordinator(args),
        Command::Debug(cmd) => debug::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", model::errors::with_causes(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Libraries that see secrets on the wire: the KIS approval key travels in WebSocket text
/// frames, the app key, secret and access token in REST headers and bodies, the database
/// password in the PostgreSQL start-up. At `debug`/`trace` these crates log frames, headers
/// and buffers, so they are held at [`WIRE_LOG_CAP`] whatever `RUST_LOG` says.
const WIRE_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "http",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "hyper_rustls",
    "tokio_postgres",
    "postgres_protocol",
    "tower",
];

/// The most any [`WIRE_TARGETS`] crate may log: their `info` and above carry no payloads. A
/// security control, not a setting: no configuration or `RUST_LOG` can raise it.
const WIRE_LOG_CAP: tracing_subscriber::filter::LevelFilter = tracing_subscriber::filter::LevelFilter::INFO;

/// The cap on the wire crates, applied after (and independently of) `RUST_LOG`: an `EnvFilter`
/// alone can be talked past (`RUST_LOG=trace`, `RUST_LOG=h2=trace`, a span directive
/// `[conn]=trace` that enables every target inside a span), a second filter ANDed with it
/// cannot. `log` records (tungstenite logs through `log`) carry their crate's target too.
fn wire_cap() -> tracing_subscriber::filter::Targets {
    WIRE_TARGETS
        .iter()
        .fold(tracing_subscriber::filter::Targets::new().with_default(tracing::Level::TRACE), |t, target| {
            t.with_target(*target, WIRE_LOG_CAP)
        })
}

/// The log layer: `rust_log` (`RUST_LOG`; default `info`) with [`wire_cap`] on top.
fn log_layer<S, W>(rust_log: Option<&str>, writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::FilterExt;
    let env =
        rust_log.and_then(|s| tracing_subscriber::EnvFilter::builder().parse(s).ok()).unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt::layer().with_writer(writer).with_filter(env.and(wire_cap()))
}

/// Logs to stderr ([`log_layer`]); `log` records (tungstenite's) are forwarded with their
/// targets.
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let rust_log = std::env::var("RUST_LOG").ok();
    tracing_subscriber::registry().with(log_layer(rust_log.as_deref(), std::io::stderr)).init();
}

fn print_config(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_config(args.config.as_deref())?;
    eprintln!("configuration OK (sources: {})", loaded.sources.join(" → "));
    let mut shown = serde_json::to_value(&loaded.settings)?;
    // The store URL as parsed, never the raw string (which validation has already checked).
    if let Some(url) = shown.pointer_mut("/store/url")
        && let Some(raw) = url.as_str()
    {
        *url = serde_json::Value::String(store::shown_url(raw));
    }
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(rust_log: &str) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::registry().with(super::log_layer(Some(rust_log), move || out.clone()));
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("conn");
            let _in = span.enter();
            // As tungstenite (through `log`) and h2 write a frame carrying the approval key.
            tracing::trace!(target: "tungstenite::protocol", "frame: approval_key=SECRET-1");
            tracing::debug!(target: "h2::codec::framed_write", "send frame=SECRET-2");
            tracing::trace!(target: "hyper_util::client", "headers SECRET-3");
            tracing::info!(target: "tungstenite::protocol", "connection closed");
            tracing::trace!(target: "so_providers::kis::stream", "our own trace line");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn no_rust_log_can_open_the_wire_crates_below_info() {
        for (rust_log, ours) in [
            ("trace", true),
            ("tungstenite=trace,h2=trace,hyper_util=trace", false),
            ("[conn]=trace", true),
            ("trace,tungstenite[conn]=trace", true),
        ] {
            let out = logged(rust_log);
            assert!(!out.contains("SECRET"), "RUST_LOG={rust_log}:\n{out}");
            assert!(out.contains("connection closed"), "RUST_LOG={rust_log}: info is kept:\n{out}");
            assert_eq!(out.contains("our own trace line"), ours, "RUST_LOG={rust_log}: our trace:\n{out}");
        }
        assert!(!logged("info").contains("our own trace line"));
    }
}

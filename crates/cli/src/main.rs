//! `stock-observer`: the one binary. Subcommands wire the crates together; all the work is
//! in the library crates.

mod bench;
mod collect;
mod db;
mod faults;
mod live;
mod maintain;
mod replay;
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
    /// Measure throughput (results go in docs/benchmarks.md).
    #[command(subcommand)]
    Bench(bench::Bench),
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
    if !matches!(cli.command, Command::Collect(_) | Command::Sim(_)) {
        // A report piped into `head` should end quietly when the reader goes, as other Unix
        // tools do, not panic in println!. Not for the long-running services: their sockets
        // are written with MSG_NOSIGNAL anyway, and a recorder must not die with its log pipe.
        // SAFETY: restoring the default disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Collect(args) => collect::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Db(cmd) => load_config(None).and_then(|l| db::run_db(cmd, &l.settings.store)),
        Command::Etl(args) => load_config(None).and_then(|l| db::run_etl(args, &l.settings)),
        Command::Config(args) => print_config(args),
        Command::Bench(b) => bench::run(b),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", model::errors::with_causes(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn print_config(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_config(args.config.as_deref())?;
    eprintln!("configuration OK (sources: {})", loaded.sources.join(" → "));
    println!("{}", serde_json::to_string_pretty(&loaded.settings)?);
    Ok(ExitCode::SUCCESS)
}

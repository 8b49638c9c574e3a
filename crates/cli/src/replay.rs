use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct Args {
    /// The recorded archive (its `raw/` folder, or the data dir that holds it).
    #[arg(long, value_name = "DIR")]
    raw: PathBuf,
    /// A new archive folder for the replayed swing and scalp records.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Configuration file (observer limits, calendar, archive rotation) — use the one the
    /// recording ran with.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = crate::load_config(args.config.as_deref())?.settings;
    let archive = if args.raw.join("raw").is_dir() {
        args.raw.clone()
    } else if args.raw.file_name().is_some_and(|n| n == "raw") && args.raw.is_dir() {
        args.raw.parent().map(PathBuf::from).unwrap_or_default()
    } else {
        bail!("{} holds no raw/ folder of a recorded archive", args.raw.display());
    };
    if args.out.exists() && std::fs::read_dir(&args.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: replay writes a fresh archive", args.out.display());
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let report = runtime
        .block_on(engine::replay::replay(&archive, &args.out, &settings.engine()))
        .with_context(|| format!("replaying {}", archive.display()))?;
    println!(
        "replayed {} frames: {} swing records, {} scalp samples, {} rejected, {} malformed into {}",
        report.frames,
        report.swing,
        report.scalp,
        report.rejected,
        report.malformed,
        args.out.display()
    );
    for p in &report.skipped {
        println!("  skipped raw/{p}: this build has no frame mapper for it");
    }
    if report.bad_lines > 0 {
        // The rest was replayed; the output cannot equal the recording, so the exit says so.
        for l in &report.bad_line_samples {
            println!("  bad line {l}");
        }
        let more = report.bad_lines - report.bad_line_samples.len() as u64;
        if more > 0 {
            println!("  … and {more} more bad lines");
        }
        println!("replay FAILED: {} bad archive line(s) skipped (see `stock-observer verify`)", report.bad_lines);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The archive to check.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Only partitions of this Seoul date.
    #[arg(long, value_name = "YYYYMMDD", value_parser = parse_date)]
    date: Option<String>,
}

fn parse_date(s: &str) -> Result<String, String> {
    let ok = s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) && jiff::civil::Date::strptime("%Y%m%d", s).is_ok();
    if ok { Ok(s.to_string()) } else { Err(format!("{s:?} is not a date in YYYYMMDD form")) }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.data_dir.is_dir() {
        anyhow::bail!("data dir {} does not exist", args.data_dir.display());
    }
    let report = archive::verify(&args.data_dir, args.date.as_deref())
        .with_context(|| format!("verifying {}", args.data_dir.display()))?;
    for p in &report.problems {
        println!("{p}");
    }
    if report.ok() {
        println!("verify OK: {} files, {} lines in {}", report.files, report.lines, args.data_dir.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "verify FAILED: {} problem(s) in {} files, {} lines",
            report.problems.len(),
            report.files,
            report.lines
        );
        Ok(ExitCode::FAILURE)
    }
}

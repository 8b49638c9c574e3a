//! `stock-observer bench backup`: packs one recorded day with `backup create`'s code, then the
//! same files with `tar | zstd -3` and `tar | gzip`, and prints input MB/s and compression
//! ratio for each, side by side (docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use lifecycle::package::{self, PackOptions, Packages, Packed};
use model::{Clock, Day};

#[derive(clap::Args)]
pub struct BenchBackupArgs {
    /// The archive holding the day.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[arg(long, value_name = "YYYYMMDD")]
    date: Day,
    /// zstd level for both our packer and `zstd`.
    #[arg(long, default_value_t = 3)]
    level: i32,
    /// Files our packer compresses at once (`zstd -T` gets the same).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

struct Row {
    name: String,
    secs: f64,
    input: u64,
    output: u64,
}

pub fn run(args: BenchBackupArgs) -> anyhow::Result<ExitCode> {
    let day = args.date.to_string();
    let manifest = archive::Manifest::load(&args.data_dir, &day)?;
    if manifest.files.is_empty() {
        bail!("no closed archive files for {day} in {}", args.data_dir.display());
    }
    let scratch = tempfile_dir(&args.data_dir)?;
    let mut rows = Vec::new();

    // Our packer, from cold page cache or not: each tool reads the same files in turn, the
    // first run warms the cache for the others, so ours runs first (the hardest case).
    let packages = Packages::new(scratch.join("ours"));
    let opts = PackOptions { server: "bench".into(), level: args.level, threads: args.threads };
    let t = Instant::now();
    let packed = package::create(&args.data_dir, args.date, &packages, &opts, Clock::real().now(), &|_| {})?;
    let secs = t.elapsed().as_secs_f64();
    let Packed::Created { manifest: m, .. } = packed else { bail!("unexpected: a package existed in a fresh dir") };
    rows.push(Row {
        name: format!("backup create (zstd -{}, {} threads, + sha256 x2)", args.level, args.threads),
        secs,
        input: m.original_bytes(),
        output: m.stored_bytes(),
    });

    // The same files for tar: what the package holds, by their archive paths.
    let list: Vec<String> = m.files.iter().map(|f| f.original_path.clone()).collect();
    let list_file = scratch.join("files.txt");
    std::fs::write(&list_file, list.join("\n") + "\n")?;
    for (name, compressor) in [
        (
            format!("tar | zstd -{} -T{}", args.level, args.threads),
            vec![
                "zstd".to_string(),
                format!("-{}", args.level),
                format!("-T{}", args.threads),
                "-q".into(),
                "-c".into(),
            ],
        ),
        ("tar | gzip (-6)".to_string(), vec!["gzip".to_string(), "-c".into()]),
    ] {
        let out = scratch.join("out");
        let t = Instant::now();
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&args.data_dir)
            .arg("-cf")
            .arg("-")
            .arg("-T")
            .arg(&list_file)
            .stdout(Stdio::piped())
            .spawn()
            .context("running tar")?;
        let status = Command::new(&compressor[0])
            .args(&compressor[1..])
            .stdin(tar.stdout.context("tar's stdout")?)
            .stdout(std::fs::File::create(&out)?)
            .status()
            .with_context(|| format!("running {} (Debian: apt-get install {})", compressor[0], compressor[0]))?;
        let secs = t.elapsed().as_secs_f64();
        if !status.success() {
            bail!("{name} failed: {status}");
        }
        rows.push(Row { name, secs, input: m.original_bytes(), output: std::fs::metadata(&out)?.len() });
        std::fs::remove_file(&out)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);

    println!("{day}: {} files, {:.1} MB of archive", m.files.len(), m.original_bytes() as f64 / 1e6);
    println!("{:<48} {:>9} {:>10} {:>8}", "", "seconds", "input MB/s", "ratio");
    for r in rows {
        println!(
            "{:<48} {:>9.2} {:>10.0} {:>7.1}x",
            r.name,
            r.secs,
            r.input as f64 / 1e6 / r.secs.max(1e-9),
            r.input as f64 / r.output.max(1) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A scratch folder beside the data dir (same file system, so the write side is comparable).
fn tempfile_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let parent = data_dir.canonicalize()?.parent().map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!(".bench-backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

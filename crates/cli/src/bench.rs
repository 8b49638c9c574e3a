//! `stock-observer bench …`: end-to-end throughput on one core, for docs/benchmarks.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;

use archive::{ArchiveWriter, Stream};
use engine::book::LatestBook;
use engine::observer::ObserverCore;
use engine::pipeline::{encode_raw_line, raw_ref};
use model::{Meta, Price, Provider, Qty, RawFrame, RawFrameKind, SessionId, Side, Symbol, UtcTime};
use providers::kis::fake::{TradeAcc, trade_record};
use providers::sim::{SimTrade, wire};
use rust_decimal::Decimal;

#[derive(Subcommand)]
pub enum Bench {
    /// Push N synthetic trade frames through collect's per-tick path on the current thread —
    /// raw archive append (before parsing) → normalize → validate → guard → enrich → latest
    /// state for Track B — and report ticks/s and archived bytes/s.
    Pipeline(PipelineArgs),
    /// Database ingest rate (market_ticks) and query latency (1-year daily bars, latest price).
    Db(crate::db::BenchDbArgs),
}

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// Number of ticks.
    #[arg(long, default_value_t = 1_000_000)]
    ticks: u64,
    /// Distinct symbols the ticks are spread over (a Track B slot set).
    #[arg(long, default_value_t = 41)]
    symbols: u32,
    /// Frame format: `kis` (H0STCNT0, the reference provider and collect's default path) or
    /// `sim` (the sim's JSON frames).
    #[arg(long, default_value = "kis", value_parser = ["kis", "sim"])]
    provider: String,
    /// Trade records per frame (KIS batches several when a symbol is busy).
    #[arg(long, default_value_t = 1)]
    records_per_frame: u32,
    /// Configuration file (archive buffer, observer limits).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Archive directory for the run (default: a fresh folder under the system temp dir,
    /// removed afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(b: Bench) -> anyhow::Result<ExitCode> {
    match b {
        Bench::Pipeline(args) => pipeline(args),
        Bench::Db(args) => crate::db::run_bench(args),
    }
}

fn pipeline(args: PipelineArgs) -> anyhow::Result<ExitCode> {
    let settings = crate::load_config(args.config.as_deref())?.settings;
    let (dir, temporary) = match args.data_dir {
        Some(d) => (d, false),
        None => (std::env::temp_dir().join(format!("stock-observer-bench-{}", std::process::id())), true),
    };
    anyhow::ensure!(args.symbols > 0 && args.ticks > 0, "--ticks and --symbols must be positive");

    // Inputs are made before the clock starts: frames as a provider would deliver them.
    let start = UtcTime::from_kst("2026-01-14T09:30:00".parse()?);
    let symbols: Vec<Symbol> =
        (0..args.symbols).map(|i| Symbol::new(&format!("{:06}", 5930 + i * 10))).collect::<Result<_, _>>()?;
    eprintln!("preparing {} trade frames over {} symbols…", args.ticks, args.symbols);
    let trades: Vec<SimTrade> = (0..args.ticks)
        .map(|i| SimTrade {
            time: start.plus_millis((i / 8) as i64),
            symbol: symbols[(i % args.symbols as u64) as usize].clone(),
            price: Price::from_int(71_500 + 100 * (i % 7) as i64),
            size: Qty::from_int(1 + (i % 50) as i64),
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            seq: i + 1,
            cum_volume: Qty::from_int(1000 + i as i64),
        })
        .collect();
    let per = args.records_per_frame.max(1) as usize;
    let pid: Provider = args.provider.parse()?;
    let frames: Vec<RawFrame> = match pid {
        Provider::Kis => {
            let mut accs: std::collections::HashMap<Symbol, TradeAcc> = Default::default();
            trades
                .chunks(per)
                .map(|chunk| {
                    let records: Vec<String> = chunk
                        .iter()
                        .map(|t| {
                            let acc = accs.entry(t.symbol.clone()).or_default();
                            let best = (t.price.0 - Decimal::from(100), t.price.0);
                            trade_record(t, Decimal::from(70_000), best, acc, 47)
                        })
                        .collect();
                    let text = format!("0|H0STCNT0|{:03}|{}", chunk.len(), records.join("^"));
                    let receive_time = chunk[chunk.len() - 1].time.plus_millis(3);
                    RawFrame { provider: pid, kind: RawFrameKind::Ws, channel: "H0STCNT0".into(), frame: text, receive_time }
                })
                .collect()
        }
        _ => trades
            .iter()
            .map(|t| RawFrame {
                provider: pid,
                kind: RawFrameKind::Ws,
                channel: "trade".into(),
                frame: wire::encode_trade(t),
                receive_time: t.time.plus_millis(3),
            })
            .collect(),
    };
    let mapper = providers::mapper(pid).context("no mapper for that provider")?;

    let session = SessionId::starting_at(start);
    let cfg = settings.observer.clone();
    let stats = Arc::new(engine::Stats::default());
    let mut core = ObserverCore::new(
        &cfg,
        &settings.calendar,
        session.clone(),
        wire::MAPPER_VERSION,
        Arc::default(),
        stats.clone(),
    );
    let (mut writer, _) = ArchiveWriter::open(&dir, &settings.archive, start, &session)
        .with_context(|| format!("opening {}", dir.display()))?;

    let book = LatestBook::default();
    let began = Instant::now();
    let mut line = Vec::with_capacity(512);
    for (seq, frame) in frames.iter().enumerate() {
        let (seq, rt) = (seq as u64 + 1, &frame.receive_time);
        line.clear();
        encode_raw_line(&mut line, frame, seq, &Meta::new(*rt, *rt, session.clone()));
        writer.append(Stream::Raw(pid), *rt, &line)?;
        let raw_ref = raw_ref(pid, *rt, seq);
        for (event_time, event) in (mapper.parse)(frame)? {
            if let Ok(rec) = core.observe(event_time, *rt, event, Some(raw_ref.clone())) {
                book.apply(rec.meta.receive_time, &rec.body);
            }
        }
    }
    let end = frames.last().map_or(start, |f| f.receive_time);
    let summary = writer.close_all(end)?;
    let secs = began.elapsed().as_secs_f64();
    let s = stats.snapshot();
    anyhow::ensure!(
        s.events_passed == args.ticks,
        "only {} of {} ticks passed the observer core",
        s.events_passed,
        args.ticks
    );
    let bytes = summary.bytes_written;
    println!(
        "bench pipeline: {} ticks over {} symbols, {} frames ({pid}, {per} record(s) per frame) in {:.3} s (one thread, fsync at close)",
        args.ticks,
        args.symbols,
        frames.len(),
        secs
    );
    println!("  {:.0} ticks/s", args.ticks as f64 / secs);
    println!(
        "  {:.1} MB/s archived ({} bytes of raw-frame lines, sha256 and fsync included)",
        bytes as f64 / secs / 1e6,
        bytes
    );
    if temporary {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

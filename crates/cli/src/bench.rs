//! `stock-observer bench …`: end-to-end throughput on one core, for docs/benchmarks.md.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;

use archive::raw::{RawRefs, encode as encode_raw_line};
use archive::{ArchiveWriter, Stream};
use engine::book::LatestBook;
use engine::observer::ObserverCore;
use engine::router::{Route, Router};
use model::{MarketEvent, Meta, Price, Provider, Qty, RawFrame, RawFrameKind, SessionId, Side, Symbol, UtcTime};
use providers::kis::fake::{TradeAcc, trade_record};
use providers::sim::{SimTrade, wire};
use rust_decimal::Decimal;

#[derive(Subcommand)]
pub enum Bench {
    /// Push N synthetic trade frames through collect's per-tick path on the current thread —
    /// raw archive append (before parsing) → normalize → validate → guard → enrich → latest
    /// state for Track B — and report ticks/s and archived bytes/s.
    Pipeline(PipelineArgs),
    /// Parse and normalize provider WebSocket messages on the current thread and report
    /// messages/s, events/s and MB/s (no archive, no observer core): generated ones, or
    /// captured ones from a file (--input), so other parsers can be timed on the same bytes.
    Parse(ParseArgs),
    /// Database ingest rate (market_ticks) and query latency (1-year daily bars, latest price).
    Db(crate::db::BenchDbArgs),
    /// Pack a recorded day with `backup create`'s code, then with `tar | zstd` and
    /// `tar | gzip`, and compare input MB/s and compression ratio.
    Backup(crate::bench_backup::BenchBackupArgs),
    /// `/api/v1` under concurrent keep-alive clients on loopback: `latest` and 1-year daily
    /// `bars` from `serve`'s router over a seeded temporary database, with p50–p99.9, max and
    /// requests/s; every answer checked (any non-200 fails the run). `--serve-only` serves
    /// the seeded data for another load tool (`wrk`). Load settings are flags, not configs/.
    Api(crate::bench_api::BenchApiArgs),
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

#[derive(clap::Args)]
pub struct ParseArgs {
    /// `kis` (H0STCNT0 trade frames) or `upbit` (WebSocket trade, ticker and orderbook
    /// messages in DEFAULT format, with exponent-form prices).
    #[arg(long, value_parser = ["kis", "upbit"])]
    provider: String,
    /// Number of generated messages (frames).
    #[arg(long, default_value_t = 1_000_000)]
    frames: u64,
    /// KIS trade records per generated frame.
    #[arg(long, default_value_t = 1)]
    records_per_frame: u32,
    /// Parse the messages in FILE instead of generated ones: one message per line, exactly as
    /// the venue sends it (Upbit JSON text frames; KIS `0|H0STCNT0|001|…` data frames and
    /// JSON control frames). A line that does not parse is counted and reported by number.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["frames", "records_per_frame", "emit"])]
    input: Option<PathBuf>,
    /// Write the generated messages to FILE, one per line, and exit without timing: input for
    /// --input or for another parser, byte for byte what this bench parses.
    #[arg(long, value_name = "FILE")]
    emit: Option<PathBuf>,
}

/// Upbit WebSocket messages as the real server sends them (spec golden frames), with the
/// varying fields filled in per message.
fn upbit_message(i: u64) -> String {
    let price = 100_473_000 + (i % 97) * 1000;
    match i % 4 {
        0 | 1 => format!(
            r#"{{"type":"trade","code":"KRW-BTC","timestamp":{ts},"trade_date":"2026-11-24","trade_time":"01:07:42","trade_timestamp":{ts},"trade_price":{price}.00000000,"trade_volume":0.000{v:05},"ask_bid":"BID","prev_closing_price":100571000.00000000,"change":"FALL","change_price":98000.00000000,"sequential_id":{sid},"best_ask_price":{price},"best_ask_size":0.43139478,"best_bid_price":100465000,"best_bid_size":0.01990656,"stream_type":"REALTIME"}}"#,
            ts = 1_795_000_000_000u64 + i,
            v = 14208 + i % 1000,
            sid = 17_950_000_000_000_000u64 + i,
        ),
        2 => format!(
            r#"{{"type":"ticker","code":"KRW-ETH","opening_price":5183000,"high_price":5231000,"low_price":5155000,"trade_price":{p},"prev_closing_price":5183000.00000000,"acc_trade_price":78039261076.51241000,"change":"RISE","change_price":4000.00000000,"signed_change_price":4000.00000000,"change_rate":0.0007717538,"signed_change_rate":0.0007717538,"ask_bid":"ASK","trade_volume":0.03103806,"acc_trade_volume":2429.58834336,"trade_date":"20261124","trade_time":"074102","trade_timestamp":{ts},"acc_ask_volume":1146.25573608,"acc_bid_volume":1283.33260728,"highest_52_week_price":5767800.00000000,"highest_52_week_date":"2026-03-28","lowest_52_week_price":2070000.00000000,"lowest_52_week_date":"2025-12-30","market_state":"ACTIVE","is_trading_suspended":false,"delisting_date":null,"market_warning":"NONE","timestamp":{ts},"acc_trade_price_24h":228827082483.70729000,"acc_trade_volume_24h":7158.80283560,"stream_type":"REALTIME"}}"#,
            p = 5_187_000 + (i % 50) * 1000,
            ts = 1_795_000_000_000u64 + i,
        ),
        _ => format!(
            r#"{{"type":"orderbook","code":"KRW-BTC","timestamp":{ts},"total_ask_size":2.51469375,"total_bid_size":1.63815297,"orderbook_units":[{{"ask_price":1.16539E8,"bid_price":1.16538E8,"ask_size":0.02054761,"bid_size":0.08120946}},{{"ask_price":1.1654E8,"bid_price":1.16537E8,"ask_size":0.0133,"bid_size":0.5}},{{"ask_price":1.16541E8,"bid_price":1.16536E8,"ask_size":1.2,"bid_size":0.25}}],"stream_type":"REALTIME","level":0}}"#,
            ts = 1_795_000_000_000u64 + i,
        ),
    }
}

/// The generated messages: what `bench parse` times without --input, and what --emit writes.
fn generate(pid: Provider, frames: u64, records_per_frame: u32) -> anyhow::Result<Vec<String>> {
    let start = UtcTime::from_kst("2026-11-24T10:00:00".parse()?);
    let per = records_per_frame.max(1) as u64;
    let symbols: Vec<Symbol> =
        (0..41).map(|i| Symbol::new(&format!("{:06}", 5930 + i * 10))).collect::<Result<_, _>>()?;
    Ok((0..frames)
        .map(|i| match pid {
            Provider::Kis => {
                let mut acc = TradeAcc::default();
                let records: Vec<String> = (0..per)
                    .map(|j| {
                        let t = SimTrade {
                            time: start.plus_millis((i * per + j) as i64),
                            symbol: symbols[(i % 41) as usize].clone(),
                            price: Price::from_int(71_500 + 100 * ((i + j) % 7) as i64),
                            size: Qty::from_int(1 + ((i + j) % 50) as i64),
                            side: if j % 2 == 0 { Side::Buy } else { Side::Sell },
                            seq: i * per + j + 1,
                            cum_volume: Qty::from_int(1000 + (i * per + j) as i64),
                        };
                        let best = (t.price.0 - Decimal::from(100), t.price.0);
                        trade_record(&t, Decimal::from(70_000), best, &mut acc, 47)
                    })
                    .collect();
                format!("0|H0STCNT0|{per:03}|{}", records.join("^"))
            }
            _ => upbit_message(i),
        })
        .collect())
}

/// Messages read from a capture file: each line's text, or why it is not a message.
struct Lines {
    texts: Vec<(usize, String)>,
    /// Lines that are not UTF-8 text, so no parser gets them: (line number, why).
    unreadable: Vec<(usize, String)>,
    count: usize,
}

/// Splits `bytes` into lines (`\n`, with a `\r` before it dropped; a last line without a
/// newline counts, an empty piece after the final newline does not).
fn split_lines(bytes: &[u8]) -> Lines {
    let mut pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if pieces.last().is_some_and(|l| l.is_empty()) {
        pieces.pop();
    }
    let mut out = Lines { texts: Vec::with_capacity(pieces.len()), unreadable: Vec::new(), count: pieces.len() };
    for (i, piece) in pieces.into_iter().enumerate() {
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        match std::str::from_utf8(piece) {
            Ok(t) => out.texts.push((i + 1, t.to_string())),
            Err(e) => out.unreadable.push((i + 1, format!("not UTF-8 text ({e})"))),
        }
    }
    out
}

fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let pid: Provider = args.provider.parse()?;
    let mapper = providers::mapper(pid).context("no mapper for that provider")?;
    let start = UtcTime::from_kst("2026-11-24T10:00:00".parse()?);
    if let Some(path) = &args.emit {
        eprintln!("generating {} {pid} messages…", args.frames);
        let msgs = generate(pid, args.frames, args.records_per_frame)?;
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut bytes = 0;
        for m in &msgs {
            out.write_all(m.as_bytes()).and_then(|_| out.write_all(b"\n"))?;
            bytes += m.len() + 1;
        }
        out.flush().with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {} {pid} messages ({bytes} bytes) to {}", msgs.len(), path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let (source, lines) = match &args.input {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let lines = split_lines(&bytes);
            anyhow::ensure!(lines.count > 0, "{} holds no messages (expected one per line)", path.display());
            (format!("from {}", path.display()), lines)
        }
        None => {
            eprintln!("preparing {} {pid} messages…", args.frames);
            let texts: Vec<(usize, String)> = generate(pid, args.frames, args.records_per_frame)?
                .into_iter()
                .enumerate()
                .map(|(i, text)| (i + 1, text))
                .collect();
            let count = texts.len();
            ("generated".to_string(), Lines { texts, unreadable: Vec::new(), count })
        }
    };
    let frames: Vec<(usize, RawFrame)> = lines
        .texts
        .into_iter()
        .map(|(line, frame)| {
            (line, RawFrame { provider: pid, kind: RawFrameKind::Ws, channel: "ws".into(), frame, receive_time: start })
        })
        .collect();
    let bytes: usize = frames.iter().map(|(_, f)| f.frame.len()).sum();
    let began = Instant::now();
    let mut events = 0u64;
    let mut errors = lines.unreadable.len();
    let mut first_error = lines.unreadable.into_iter().next();
    for (line, f) in &frames {
        match (mapper.parse)(f) {
            Ok(out) => events += out.len() as u64,
            Err(e) => {
                errors += 1;
                if first_error.as_ref().is_none_or(|(l, _)| l > line) {
                    first_error = Some((*line, e.to_string()));
                }
            }
        }
    }
    let secs = began.elapsed().as_secs_f64();
    let plural = if errors == 1 { "" } else { "s" };
    println!(
        "bench parse: {} {pid} messages ({source}, {bytes} bytes), {events} events, {errors} parse error{plural} in {secs:.3} s (one thread)",
        lines.count,
    );
    if let Some((line, why)) = &first_error {
        println!("  first parse error at line {line}: {why}");
    }
    println!("  {:.0} messages/s", frames.len() as f64 / secs);
    println!("  {:.0} events/s (ticks and quotes out of the mapper)", events as f64 / secs);
    println!("  {:.1} MB/s", bytes as f64 / secs / 1e6);
    if let Some((line, _)) = first_error {
        eprintln!("error: {errors} of {} messages did not parse (the first at line {line})", lines.count);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(b: Bench) -> anyhow::Result<ExitCode> {
    match b {
        Bench::Pipeline(args) => pipeline(args),
        Bench::Parse(args) => parse(args),
        Bench::Db(args) => crate::db::run_bench(args),
        Bench::Backup(args) => crate::bench_backup::run(args),
        Bench::Api(args) => crate::bench_api::run(args),
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
                    RawFrame {
                        provider: pid,
                        kind: RawFrameKind::Ws,
                        channel: "H0STCNT0".into(),
                        frame: text,
                        receive_time,
                    }
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
    let stats = Arc::new(engine::Stats::default());
    // The production path: the frame router (mapper, subscription filter, observer core).
    let core = {
        let (cfg, calendar, session, stats) =
            (settings.observer.clone(), settings.calendar.clone(), session.clone(), stats.clone());
        move || ObserverCore::new(&cfg, &calendar, session.clone(), mapper.version, Arc::default(), stats.clone())
    };
    let mut router = Router::new(mapper, Box::new(core));
    let (mut passed, mut refused) = (Vec::new(), Vec::new());
    // The stream's subscribe requests come first, as on the wire: the filter admits the symbols.
    for (i, symbol) in symbols.iter().enumerate() {
        let sent = RawFrame {
            provider: pid,
            kind: RawFrameKind::Sent,
            channel: "subscribe".into(),
            frame: format!(
                r#"{{"header":{{"approval_key":"***","custtype":"P","tr_type":"1","content-type":"utf-8"}},"body":{{"input":{{"tr_id":"H0STCNT0","tr_key":"{symbol}"}}}}}}"#
            ),
            receive_time: start,
        };
        router.normalize(Route::Stream, &sent, i as u64, &mut RawRefs::default(), &mut passed, &mut refused)?;
    }
    let (mut writer, _) = ArchiveWriter::open(&dir, &settings.archive, start, &session)
        .with_context(|| format!("opening {}", dir.display()))?;

    let book = LatestBook::default();
    let mut refs = RawRefs::default();
    let cpu_before = (cpu_seconds(Usage::Thread), cpu_seconds(Usage::Process));
    let began = Instant::now();
    let mut line = Vec::with_capacity(512);
    // A KIS trade record also yields its level-1 quote: ticks are counted apart from events.
    let mut ticks_passed = 0u64;
    for (seq, frame) in frames.iter().enumerate() {
        let (seq, rt) = (seq as u64 + 1, &frame.receive_time);
        line.clear();
        encode_raw_line(&mut line, frame, seq, &Meta::new(*rt, *rt, session.clone()));
        writer.append(Stream::Raw(pid), *rt, &line)?;
        router.normalize(Route::Stream, frame, seq, &mut refs, &mut passed, &mut refused)?;
        for rec in passed.drain(..) {
            ticks_passed += matches!(rec.body, MarketEvent::Tick(_)) as u64;
            book.apply(rec.meta.receive_time, &rec.body);
        }
        refused.clear();
    }
    let end = frames.last().map_or(start, |f| f.receive_time);
    let summary = writer.close_all(end)?;
    let secs = began.elapsed().as_secs_f64();
    let pipeline_cpu = cpu_seconds(Usage::Thread) - cpu_before.0;
    let io_cpu = cpu_seconds(Usage::Process) - cpu_before.1 - pipeline_cpu;
    let s = stats.snapshot();
    anyhow::ensure!(
        ticks_passed == args.ticks && s.events_passed == s.events_normalized,
        "only {ticks_passed} of {} ticks ({} of {} events) passed the observer core",
        args.ticks,
        s.events_passed,
        s.events_normalized
    );
    let bytes = summary.bytes_written;
    println!(
        "bench pipeline: {} ticks ({} events) over {} symbols, {} frames ({pid}, {per} record(s) per frame) in {:.3} s (fsync at close)",
        args.ticks,
        s.events_passed,
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
    println!(
        "  CPU: {pipeline_cpu:.3} s on the pipeline thread (every per-tick step), {io_cpu:.3} s on the archive's I/O thread (sha256, write(2))"
    );
    if temporary {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

enum Usage {
    Thread,
    Process,
}

/// User + system CPU time consumed so far by the calling thread or the whole process.
#[cfg(target_os = "linux")]
fn cpu_seconds(who: Usage) -> f64 {
    let who = match who {
        Usage::Thread => libc::RUSAGE_THREAD,
        Usage::Process => libc::RUSAGE_SELF,
    };
    // SAFETY: rusage is plain integers and timevals, for which all-zero bytes are a valid value.
    #[allow(unsafe_code)]
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass, which is valid and writable.
    #[allow(unsafe_code)]
    let failed = unsafe { libc::getrusage(who, &mut u) } != 0;
    if failed {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

#[cfg(not(target_os = "linux"))]
fn cpu_seconds(_who: Usage) -> f64 {
    f64::NAN
}

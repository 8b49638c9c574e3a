//! `stock-observer debug status|pipeline|slots|gaps|db|bus`: what an operator needs from a
//! running collector (its `/health` and `/metrics`) or a data dir, in plain text.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

const DEFAULT_URL: &str = "http://127.0.0.1:9464";

#[derive(Subcommand)]
pub enum DebugCmd {
    /// A running collector's /health (session, market time, connection per provider, slots,
    /// Hz and level, recording rate, gaps and reconnects today, files open). If it cannot be
    /// reached, says so and shows what --data-dir holds (collector running? files closed today),
    /// and exits non-zero.
    Status(StatusArgs),
    /// The pipeline's counters from /metrics: frames received, events passed and rejected by
    /// reason, archive lines published → saved (failed, lost), queues and lag, and the
    /// difference between published and saved.
    Pipeline(UrlArgs),
    /// Slot assignment per provider: from /metrics (assigned, capacity, streaming), and the newest slot_decision
    /// event (symbols, added, removed) of the day in --data-dir's system/events.
    Slots(SlotsArgs),
    /// The day's gap_marker events in the archive (plain or compressed): start, end, seconds,
    /// scope, reason, and the total.
    Gaps(GapsArgs),
    /// What `stock-observer db status` prints.
    Db(crate::db::DbArgs),
    /// The message bus (there is none yet).
    Bus,
}

#[derive(Args)]
pub struct UrlArgs {
    /// The collector's HTTP address (http.listen).
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL)]
    pub url: String,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub url: UrlArgs,
    /// Archive directory to fall back to when the collector cannot be reached.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct SlotsArgs {
    #[command(flatten)]
    pub url: UrlArgs,
    /// Archive directory whose system/events hold slot_decision events.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Day of the events file (default: today, KST).
    #[arg(long, value_name = "YYYYMMDD")]
    pub date: Option<String>,
}

#[derive(Args)]
pub struct GapsArgs {
    /// Archive directory.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Day (default: today, KST).
    #[arg(long, value_name = "YYYYMMDD")]
    pub date: Option<String>,
}

pub fn run(cmd: DebugCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DebugCmd::Status(a) => status(&a),
        DebugCmd::Pipeline(a) => pipeline(&a),
        DebugCmd::Slots(a) => slots(&a),
        DebugCmd::Gaps(a) => gaps(&a.data_dir, &day(a.date)),
        DebugCmd::Db(a) => {
            let loaded = crate::load_config(None)?;
            crate::db::run_db(crate::db::Db::Status(a), &loaded.settings.store)
        }
        DebugCmd::Bus => {
            println!("no message bus: none exists yet (Redis arrives with the hub issue)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn day(date: Option<String>) -> String {
    date.unwrap_or_else(|| model::Clock::real().now().kst_yyyymmdd())
}

/// GET `path` from `url` (`http://host:port`), the body of a 200 response.
pub fn get(url: &str, path: &str) -> anyhow::Result<String> {
    let fail = || format!("collector at {url} unreachable");
    let authority = url.strip_prefix("http://").with_context(|| format!("{url}: only http:// URLs"))?;
    let authority = authority.split('/').next().unwrap_or_default();
    let addr = authority
        .to_socket_addrs()
        .with_context(fail)?
        .next()
        .with_context(|| format!("collector at {url} unreachable: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).with_context(fail)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").with_context(fail)?;
    let mut response = String::new();
    s.read_to_string(&mut response).with_context(fail)?;
    let (head, body) = response.split_once("\r\n\r\n").with_context(|| format!("{url}{path}: no HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        bail!("{url}{path}: {status}");
    }
    Ok(body.to_string())
}

/// One `/metrics` sample: family name, labels, value.
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped).
pub fn parse_metrics(body: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let labels = rest.trim_end_matches('}').split("\",").filter_map(|kv| {
                    let (k, v) = kv.split_once("=\"")?;
                    Some((k.trim_start_matches(',').to_string(), v.trim_end_matches('"').to_string()))
                });
                (n, labels.collect())
            }
            None => (series, BTreeMap::new()),
        };
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

/// The sum of a family's series (0 if absent).
pub fn sum(samples: &[Sample], name: &str) -> f64 {
    samples.iter().filter(|s| s.name == name).map(|s| s.value).sum()
}

/// A family's series by the value of `label`.
fn by(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        *m.entry(s.labels.get(label).cloned().unwrap_or_default()).or_default() += s.value;
    }
    m
}

fn status(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &a.data_dir
        && !dir.is_dir()
    {
        bail!("data dir {} does not exist", dir.display());
    }
    let url = &a.url.url;
    let health = match get(url, "/health") {
        Ok(h) => h,
        Err(e) => {
            let Some(dir) = &a.data_dir else { return Err(e) };
            eprintln!("error: {}", model::errors::with_causes(e.as_ref()));
            data_dir_status(dir)?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let h: Value = serde_json::from_str(&health).with_context(|| format!("{url}/health: not JSON"))?;
    let n = |k: &str| h[k].as_u64().unwrap_or_default();
    let s = |k: &str| h[k].as_str().unwrap_or("-").to_string();
    println!("collector at {url}: {}", s("status"));
    println!("session            {} (up {} s)", s("session_id"), n("uptime_seconds"));
    println!("market time        {} (last record {})", s("market_time"), s("last_record_time"));
    let providers: Vec<&str> = h["providers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    println!("providers          {}", providers.join(", "));
    println!("connection         {}", s("connection"));
    // Per provider, from /metrics (best effort: /health alone still answers the rest).
    if let Ok(m) = get(url, "/metrics") {
        let m = parse_metrics(&m);
        for x in m.iter().filter(|x| x.name == "stock_observer_connection_state" && x.value == 1.0) {
            let p = x.labels.get("provider").map_or("-", String::as_str);
            let st = x.labels.get("state").map_or("-", String::as_str);
            let slots = by(&m, "stock_observer_slots_assigned", "provider").get(p).copied().unwrap_or_default();
            println!("  {p:<16} {st}, {slots} slots");
        }
    }
    println!(
        "slots              {} of {} capacity, {} streaming; universe {}",
        n("slots"),
        n("slot_capacity"),
        n("slots_streaming"),
        n("universe")
    );
    println!("sampling           {} Hz, mitigation level {}", h["hz"], n("mitigation_level"));
    let rate = h["recording_rate"].as_f64().map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0));
    println!(
        "recording rate     {rate} ({} of {} samples with data, {} stale, {} empty)",
        n("scalp_samples_with_data"),
        n("scalp_samples_due"),
        n("scalp_samples_stale"),
        n("scalp_samples_no_data")
    );
    println!(
        "today              {} gaps, {} reconnects, anomalies {}",
        n("gaps_today"),
        n("reconnects_today"),
        h["anomalies_today"]
    );
    println!("files open         {}", n("files_open"));
    Ok(ExitCode::SUCCESS)
}

fn data_dir_status(dir: &Path) -> anyhow::Result<()> {
    let running = archive::collector_running(dir)?;
    println!(
        "data dir {}: collector {}",
        dir.display(),
        if running { "running (holds the lock)" } else { "not running" }
    );
    let today = day(None);
    let mut m = archive::Manifest::load(dir, &today)?;
    println!("files closed today ({today}): {}", m.files.len());
    if m.files.is_empty() {
        // Nothing closed today: the newest day that has a manifest (a replayed or simulated
        // day, or yesterday's session).
        let names = std::fs::read_dir(dir.join("manifests")).into_iter().flatten().filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".json")?.to_string())
        });
        if let Some(newest) = names.filter(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit())).max() {
            m = archive::Manifest::load(dir, &newest)?;
            println!("newest manifest ({newest}): {} files closed", m.files.len());
        }
    }
    let mut closed: Vec<_> = m.files.iter().collect();
    closed.sort_by_key(|(_, e)| e.closed_at);
    for (path, e) in closed.iter().rev().take(10) {
        println!("  {} {path} ({} lines, {} bytes)", e.closed_at, e.lines, e.size);
    }
    Ok(())
}

fn pipeline(a: &UrlArgs) -> anyhow::Result<ExitCode> {
    let m = parse_metrics(&get(&a.url, "/metrics")?);
    let v = |name: &str| sum(&m, &format!("stock_observer_{name}"));
    let rejected = by(&m, "stock_observer_events_rejected_total", "reason");
    let saved = by(&m, "stock_observer_archive_lines_saved_total", "provider");
    let (published, saved_total) = (v("archive_lines_published_total"), v("archive_lines_saved_total"));
    println!("frames received    {} (malformed {})", v("frames_received_total"), v("frames_malformed_total"));
    let reasons: Vec<String> = rejected.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "events             {} normalized, {} passed, rejected: {}",
        v("events_normalized_total"),
        v("events_passed_total"),
        if reasons.is_empty() { "-".into() } else { reasons.join(", ") }
    );
    println!("system events      {}", v("system_events_total"));
    let per: Vec<String> = saved.iter().map(|(p, n)| format!("{p} {n}")).collect();
    println!(
        "archive lines      published {published} → saved {saved_total} ({}); failed {}, lost {}",
        per.join(", "),
        v("archive_lines_failed_total"),
        v("archive_lines_lost_total")
    );
    let queued = v("archive_queue_length");
    let frames = by(&m, "stock_observer_frame_queue_length", "provider");
    let fq: Vec<String> = frames.iter().map(|(p, n)| format!("{p} {n}")).collect();
    println!(
        "queues             archive {queued}, frames {}; lag {} s",
        if fq.is_empty() { "-".into() } else { fq.join(", ") },
        v("queue_lag_seconds")
    );
    let diff = published - saved_total;
    if diff == 0.0 {
        println!("published − saved  0: every published line is saved");
    } else {
        println!("published − saved  {diff} (in the queue {queued}; anything beyond it and the failed writes is lost)");
    }
    Ok(ExitCode::SUCCESS)
}

fn slots(a: &SlotsArgs) -> anyhow::Result<ExitCode> {
    let mut shown = false;
    match get(&a.url.url, "/metrics") {
        Ok(body) => {
            let m = parse_metrics(&body);
            let cap = by(&m, "stock_observer_slot_capacity", "provider");
            let streaming = by(&m, "stock_observer_slots_streaming", "provider");
            println!("collector at {}:", a.url.url);
            for (p, n) in by(&m, "stock_observer_slots_assigned", "provider") {
                let (c, s) = (cap.get(&p).copied().unwrap_or_default(), streaming.get(&p).copied().unwrap_or_default());
                println!("  {p:<16} {n} slots of {c}, {s} streaming");
            }
            shown = true;
        }
        Err(e) if a.data_dir.is_some() => eprintln!("note: {}", model::errors::with_causes(e.as_ref())),
        Err(e) => return Err(e),
    }
    if let Some(dir) = &a.data_dir {
        let date = day(a.date.clone());
        for (provider, events) in events_of(dir, &date)? {
            let Some(d) = events.into_iter().rev().find(|e| e["event_type"] == "slot_decision") else { continue };
            let list = |k: &str| -> Vec<String> {
                d[k].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
            };
            println!("{provider}: newest slot_decision at {} ({date})", d["event_time"].as_str().unwrap_or("-"));
            println!("  slots   ({}) {}", list("slots").len(), list("slots").join(" "));
            println!("  added   {}", list("added").join(" "));
            println!("  removed {}", list("removed").join(" "));
            shown = true;
        }
    }
    if !shown {
        println!("no slot_decision events");
    }
    Ok(ExitCode::SUCCESS)
}

/// Each provider's system events of `date`, in file order.
fn events_of(dir: &Path, date: &str) -> anyhow::Result<Vec<(String, Vec<Value>)>> {
    if !dir.is_dir() {
        bail!("data dir {} does not exist", dir.display());
    }
    let root = dir.join("system/events");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root) else { return Ok(out) };
    let mut providers: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.is_dir()).collect();
    providers.sort();
    for p in providers {
        let path = p.join(format!("{date}.jsonl"));
        let reader = match archive::open_lines(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut events = Vec::new();
        for line in reader.lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            // A torn last line of a crashed run is skipped: verify reports it.
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                events.push(v);
            }
        }
        out.push((p.file_name().unwrap_or_default().to_string_lossy().into_owned(), events));
    }
    Ok(out)
}

fn gaps(dir: &Path, date: &str) -> anyhow::Result<ExitCode> {
    let (mut count, mut seconds) = (0u64, 0i64);
    let all = events_of(dir, date)?;
    println!("gap markers of {date} in {}:", dir.display());
    for (provider, events) in all {
        for g in events.iter().filter(|e| e["event_type"] == "gap_marker") {
            let s = |k: &str| g[k].as_str().unwrap_or("-").to_string();
            let secs = g["gap_seconds"].as_i64().unwrap_or_default();
            println!(
                "  {provider:<8} {} → {}  {secs:>6} s  scope {}  reason {}",
                s("gap_start_ts"),
                s("gap_end_ts"),
                s("scope"),
                s("reason")
            );
            count += 1;
            seconds += secs;
        }
    }
    println!("total: {count} gap marker(s), {seconds} s");
    Ok(ExitCode::SUCCESS)
}

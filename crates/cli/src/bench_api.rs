//! `stock-observer bench api`: `/api/v1` under 100 concurrent keep-alive clients on loopback
//! (seed 004 §7.4, issue 18), for docs/benchmarks.md.
//!
//! The server is the one `stock-observer serve` runs (`api::v1::standalone` on
//! `api::serve_app`, the configured store, a key from the data dir's key store), over a fresh
//! data dir seeded through the store's own write path: a day of trades for the latest-price
//! route and a year of daily bars. The load comes from the same process on a runtime of its
//! own: one hyper HTTP/1 connection per client, each sending its next request as soon as the
//! previous answer is read (a closed loop, as `wrk` does), every latency kept and sorted.
//! Every answer is checked: a 401 or a wrong body is an error, and any error fails the run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rust_decimal::Decimal;
use serde::Deserialize;

use api::keys::{KeyStore, Scope};
use config::Settings;
use model::settings::Interval;
use model::{Clock, Day, Market, Price, Provider, Qty, QualityFlag, Side, Symbol, UtcTime};
use store::{Backend, Bar, BarInterval, BarTable, MarketTickRow, RowMeta, Store};

/// Tuning numbers of a benchmark are flags, not `configs/` settings: they describe the load,
/// not the server (whose settings come from the configuration as in `serve`).
#[derive(clap::Args)]
pub struct BenchApiArgs {
    /// Concurrent keep-alive connections, one client each, for each route in turn.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Measured time of each route.
    #[arg(long, value_name = "DUR", default_value = "10s")]
    duration: Interval,
    /// Load before the measurement of each route, not counted (connections, caches, pools).
    #[arg(long, value_name = "DUR", default_value = "2s")]
    warmup: Interval,
    /// Threads of the load generator's runtime (`wrk -t`); the server's runtime has one
    /// worker per core, as `serve`, and both share the machine's cores.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Trades seeded for the latest-price route, spread over --symbols over one session.
    #[arg(long, default_value_t = 100_000)]
    ticks: u64,
    /// Symbols seeded (trades and a year of daily bars each); the routes ask for the first,
    /// 005930.
    #[arg(long, default_value_t = 41)]
    symbols: u32,
    /// Offered load in requests/s, all clients together, each client on a fixed schedule
    /// (an open loop, as `wrk2 -R`): latency at a given rate, queueing included when the
    /// server falls behind. Without it each client sends its next request as soon as the
    /// previous answer is read (a closed loop, as `wrk`), which measures the most the server
    /// answers, and a latency that is then clients / throughput by construction.
    #[arg(long, value_name = "REQ/S", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Routes to load, in this order (repeatable): `latest` (the newest trade of 005930) and
    /// `bars` (its daily bars of one year).
    #[arg(long = "route", value_name = "ROUTE", value_parser = ["latest", "bars"], default_values = ["latest", "bars"])]
    routes: Vec<String>,
    /// Seed, start the server and print its base URL and a read key on stdout (one line
    /// each), the `wrk` commands on stderr, and serve until Ctrl-C; no load.
    #[arg(long)]
    serve_only: bool,
    /// Listen here (loopback only: the printed key is a real key).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Configuration file (store, http limits, api limits; default: the embedded
    /// configs/observer.yaml). A store.url is written into: use a disposable database.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data dir for the database and the key (default: a fresh folder under the system temp
    /// dir, removed afterwards).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a positive number of requests per second")),
    }
}

/// A KRX session, 09:00–15:30 Seoul, in milliseconds.
const SESSION_MS: i64 = 390 * 60_000;

/// What was seeded: the answers the routes must give.
struct Seeded {
    symbol: Symbol,
    /// The newest trade's price of `symbol` (what `latest` must say).
    last_price: Price,
    /// The daily bars of `symbol` in `[from, to)`, oldest first: (bar time, close).
    closes: Vec<(UtcTime, Price)>,
    from: UtcTime,
    to: UtcTime,
}

pub fn run(args: BenchApiArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.clients > 0 && args.client_threads > 0, "--clients and --client-threads must be positive");
    ensure!(args.symbols > 0 && args.ticks >= u64::from(args.symbols), "--ticks must be at least --symbols (> 0)");
    ensure!(args.listen.ip().is_loopback(), "--listen {}: the bench serves a real key, on loopback only", args.listen);
    let settings = crate::load_config(args.config.as_deref())?.settings;
    let (dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("stock-observer-bench-api-{}", std::process::id())), true),
    };
    let result = bench(&args, settings, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn bench(args: &BenchApiArgs, settings: Settings, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    // The server's runtime is `serve`'s (one worker per core); the load generator gets its
    // own, so the two are scheduled like two processes sharing the cores, as with `wrk`.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("api-server")
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    let mut http = settings.http.clone();
    http.listen = args.listen;
    // `http.max_connections` protects the recorder's file descriptors; the load needs one
    // per client (and room for a reconnect), and says so rather than measuring refusals.
    let needed = (args.clients + args.clients / 4 + 4).min(api::bounds::MAX_CONNECTIONS);
    if http.max_connections < needed {
        eprintln!(
            "http.max_connections {} is below {} clients: raised to {needed} for this run",
            http.max_connections, args.clients
        );
        http.max_connections = needed;
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (listener, key, seeded, described) = server_rt.block_on(async {
        let db = Store::open(&settings.store, dir).await.context("opening the database")?;
        db.migrate().await.context("migrating the benchmark database")?;
        let described = db.describe();
        eprintln!("bench api: {described} ({} mode) in {}", db.mode().as_str(), dir.display());
        let seeded = seed(&db, &settings, args).await?;
        let sessions = api::session::Sessions::from_env(settings.api.session_ttl.get().as_secs() as i64)?;
        let keys = Arc::new(KeyStore::open(dir).with_sessions(sessions));
        let key = keys.create(Scope::Read, "bench api", Clock::real().now()).context("creating an API key")?;
        // `serve`'s state without the admin routes' backups: the bench reads only.
        let state = api::v1::ApiState::new(Arc::new(db), dir.to_path_buf(), Clock::real(), settings.api);
        let app = api::v1::standalone(state, keys, described.clone());
        let listener = api::serve_app(&http, app, Arc::default(), stop).await?;
        anyhow::Ok((listener, key.text().to_string(), seeded, described))
    })?;
    let base = format!("http://{}", listener.addr);
    let routes: Vec<(&str, String)> = args
        .routes
        .iter()
        .map(|r| match r.as_str() {
            "latest" => ("latest", format!("/api/v1/latest/{}", seeded.symbol)),
            _ => (
                "bars 1d, 1 year",
                format!("/api/v1/bars/{}?interval=1d&from={}&to={}", seeded.symbol, seeded.from, seeded.to),
            ),
        })
        .collect();

    if args.serve_only {
        println!("{base}");
        println!("{key}");
        eprintln!("serving /api/v1 on {base} over {described}; Ctrl-C stops. For example:");
        for (_, path) in &routes {
            eprintln!("  wrk -t2 -c{} -d10s --latency -H \"Authorization: Bearer $KEY\" '{base}{path}'", args.clients);
        }
        server_rt.block_on(tokio::signal::ctrl_c()).context("waiting for Ctrl-C")?;
        let _ = stop_tx.send(true);
        return Ok(ExitCode::SUCCESS);
    }

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    let auth = HeaderValue::from_str(&format!("Bearer {key}")).context("the key is not a header value")?;
    let host = HeaderValue::from_str(&listener.addr.to_string())?;
    let mut results = Vec::new();
    for (name, path) in &routes {
        let uri: Uri = format!("{base}{path}").parse()?;
        let mut target = Target { uri, host: host.clone(), auth: auth.clone(), check: Check::Probe };
        // The checks first, on one request each: without a key the route must refuse, with
        // it answer exactly what was seeded; the load is then held to that answer.
        target.check = client_rt.block_on(probe(listener.addr, &target, &seeded, name))?;
        eprintln!("{name}: {} clients, {} warm-up + {} measured…", args.clients, args.warmup, args.duration);
        let (tally, cpu) = client_rt.block_on(load(listener.addr, Arc::new(target), args))?;
        results.push((*name, path.clone(), tally, cpu));
    }
    let _ = stop_tx.send(true);
    drop(client_rt);

    report(args, &described, results)
}

/// Writes the trades and the daily bars through the store's write API, as `collect`'s sink
/// and the ETL do, and returns what the routes must answer.
async fn seed(db: &Store, settings: &Settings, args: &BenchApiArgs) -> anyhow::Result<Seeded> {
    let now = Clock::real().now();
    // The last whole session: the latest trading day before today.
    let calendar = settings.calendar.krx();
    let last_day = calendar
        .latest_trading_day(Day::of(now).plus(-1).date())
        .context("no trading day in the past year (calendar.holidays)")?;
    let day = Day::new(last_day);
    db.maintain(last_day, 1).await.context("preparing the day's partitions")?;
    let symbols: Vec<Symbol> =
        (0..args.symbols).map(|i| Symbol::new(&format!("{:06}", 5930 + i * 10))).collect::<Result<_, _>>()?;
    let n = symbols.len() as u64;
    let per_symbol = args.ticks / n;
    let step = (SESSION_MS / per_symbol as i64).max(1);
    let open = day.start().plus_millis(9 * 3_600_000);
    let session = format!("sess_{}_090000", day.start().kst_yyyymmdd());
    let yyyymmdd = day.start().kst_yyyymmdd();
    eprintln!("seeding {} trades of {} symbols on {last_day}…", per_symbol * n, n);
    let mut last_price = Price::from_int(0);
    let mut cum = vec![0i64; symbols.len()];
    let batch = settings.store.batch_rows.max(1) as u64;
    let mut i = 0u64;
    while i < per_symbol * n {
        let rows: Vec<MarketTickRow> = (i..(i + batch).min(per_symbol * n))
            .map(|i| {
                // Symbols interleaved as a feed delivers them; prices walk on KRX's 100-won
                // tick for this price band.
                let k = (i % n) as usize;
                let seq = i / n;
                let time = open.plus_millis(seq as i64 * step);
                let price = Price::from_int(71_000 + 100 * ((seq * 7 + k as u64 * 3) % 31) as i64);
                let size = 1 + (i % 97) as i64;
                cum[k] += size;
                if k == 0 {
                    last_price = price;
                }
                MarketTickRow {
                    provider: Provider::Kis,
                    market: Market::KrStocks,
                    symbol: symbols[k].clone(),
                    time,
                    trade_id: format!("{yyyymmdd}-{seq}"),
                    price,
                    volume: Qty::from_int(size),
                    side: Some(if i % 2 == 0 { Side::Buy } else { Side::Sell }),
                    cum_volume: Some(Qty::from_int(cum[k])),
                    change: None,
                    meta: RowMeta {
                        schema_version: model::SCHEMA_VERSION.into(),
                        receive_time: time.plus_millis(3),
                        session_id: session.clone(),
                        mitigation_level: 0,
                        quality_flag: QualityFlag::Normal,
                        raw_ref: Some(format!("raw/kis/{yyyymmdd}/{:02}.jsonl#{i}", time.kst().hour())),
                    },
                }
            })
            .collect();
        i += rows.len() as u64;
        db.write_market_ticks(rows).await.context("writing market_ticks")?;
    }

    // One year back from the last session: the trading days of the calendar (weekdays that
    // are not configured holidays), one daily bar each per symbol.
    let (from, to) = (day.plus(-364).start(), day.end());
    let days: Vec<Day> = (0..365).map(|d| day.plus(d - 364)).filter(|d| calendar.is_trading_day(d.date())).collect();
    eprintln!("seeding {} daily bars ({} trading days × {n} symbols)…", days.len() * symbols.len(), days.len());
    let mut closes = Vec::with_capacity(days.len());
    let mut bars = Vec::with_capacity(days.len() * symbols.len());
    for (k, symbol) in symbols.iter().enumerate() {
        let mut close = 60_000 + 1_000 * k as i64;
        for (j, d) in days.iter().enumerate() {
            let open = close;
            // A deterministic walk of ±1,500 won a day, in whole ticks.
            close = (open + 100 * (((j * 13 + k * 5) % 31) as i64 - 15)).max(10_000);
            let bar_time = d.start();
            if k == 0 {
                closes.push((bar_time, Price::from_int(close)));
            }
            bars.push(Bar {
                provider: Provider::Kis,
                market: Market::KrStocks,
                symbol: symbol.clone(),
                bar_time,
                open: Price::from_int(open),
                high: Price::from_int(open.max(close) + 500),
                low: Price::from_int(open.min(close) - 500),
                close: Price::from_int(close),
                volume: Qty::from_int(10_000_000 + 1_000 * (j as i64 % 500)),
                coverage_ratio: 1.0,
                count: 390,
                meta: None,
            });
        }
    }
    for chunk in bars.chunks(batch as usize) {
        db.write_bars(BarTable::Scalp(BarInterval::D1), chunk.to_vec()).await.context("writing bars_1d")?;
    }
    Ok(Seeded { symbol: symbols[0].clone(), last_price, closes, from, to })
}

/// One route under load: where, with which key, and what every answer must be.
struct Target {
    uri: Uri,
    host: HeaderValue,
    auth: HeaderValue,
    check: Check,
}

enum Check {
    /// Before the probe: nothing to compare with yet.
    Probe,
    /// `latest`: its age changes with every answer, so each is parsed and its symbol and
    /// price compared.
    Latest { symbol: String, price: Decimal },
    /// An answer that is the same bytes every time (`bars` of a fixed range): compared with
    /// the probe's answer, which was parsed and checked bar by bar. Parsing 40 KB of JSON
    /// per answer would take the server's CPU from under it.
    Exact(Bytes),
}

#[derive(Deserialize)]
struct LatestBody {
    symbol: String,
    provider: String,
    price: String,
    age_seconds: f64,
}

#[derive(Deserialize)]
struct BarsBody {
    symbol: String,
    interval: String,
    bars: Vec<BarBody>,
}

#[derive(Deserialize)]
struct BarBody {
    time: String,
    close: String,
}

impl Check {
    /// Why `body` (status 200) is not the expected answer, if it is not.
    fn wrong(&self, body: &[u8]) -> Option<String> {
        match self {
            Check::Probe => None,
            Check::Latest { symbol, price } => match serde_json::from_slice::<LatestBody>(body) {
                Ok(b) if &b.symbol == symbol && Decimal::from_str(&b.price).ok().as_ref() == Some(price) => None,
                Ok(b) => Some(format!("latest says {} at {}, expected {symbol} at {price}", b.symbol, b.price)),
                Err(e) => Some(format!("not a latest-price answer ({e})")),
            },
            Check::Exact(expected) => (body != expected.as_ref())
                .then(|| format!("bars answer differs from the checked one ({} bytes)", body.len())),
        }
    }
}

/// One GET on `sender`: status, body.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    t: &Target,
    key: bool,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let mut req = Request::get(t.uri.clone()).header(HOST, t.host.clone());
    if key {
        req = req.header(AUTHORIZATION, t.auth.clone());
    }
    let resp = sender.send_request(req.body(Empty::new())?).await?;
    let status = resp.status();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// A keep-alive HTTP/1 connection whose driver runs on its own task (for the probes only).
async fn connect(addr: SocketAddr) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Checks the route without a key (401) and with it (the seeded answer, in full), and returns
/// the check every answer under load must pass.
async fn probe(addr: SocketAddr, t: &Target, seeded: &Seeded, name: &str) -> anyhow::Result<Check> {
    let mut sender = connect(addr).await?;
    let (status, _) = get(&mut sender, t, false).await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{name} without a key answered {status}, not 401: auth is off");
    let (status, body) = get(&mut sender, t, true).await?;
    let text = String::from_utf8_lossy(&body);
    ensure!(status == StatusCode::OK, "{name} with the key answered {status}: {text}");
    if t.uri.path().starts_with("/api/v1/latest/") {
        let b: LatestBody = serde_json::from_slice(&body).with_context(|| format!("{name}: {text}"))?;
        let check = Check::Latest { symbol: seeded.symbol.to_string(), price: seeded.last_price.0 };
        ensure!(b.provider == "kis" && b.age_seconds > 0.0, "{name}: {text}");
        if let Some(why) = check.wrong(&body) {
            bail!("{name}: {why}");
        }
        return Ok(check);
    }
    let b: BarsBody = serde_json::from_slice(&body).with_context(|| format!("{name}: {text}"))?;
    ensure!(b.symbol == seeded.symbol.as_str() && b.interval == "1d", "{name}: answered {} {}", b.symbol, b.interval);
    let got: Vec<(String, Option<Decimal>)> =
        b.bars.iter().map(|x| (x.time.clone(), Decimal::from_str(&x.close).ok())).collect();
    let want: Vec<(String, Option<Decimal>)> = seeded.closes.iter().map(|(t, p)| (t.to_string(), Some(p.0))).collect();
    ensure!(got == want, "{name}: {} bars answered, {} seeded, or their times or closes differ", got.len(), want.len());
    eprintln!("{name}: {} bars, {} bytes per answer", b.bars.len(), body.len());
    Ok(Check::Exact(body))
}

/// What the clients saw in the measured window.
#[derive(Default)]
struct Tally {
    /// Latency of every good answer, nanoseconds.
    nanos: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    bytes: u64,
    /// From the window's start to the last answer to a request started in it.
    span: Duration,
}

impl Tally {
    fn error(&mut self, why: String) {
        self.errors += 1;
        self.first_error.get_or_insert(why);
    }
}

/// The measured window: answers to requests started in `[begin, end)` count.
#[derive(Clone, Copy)]
struct Window {
    begin: Instant,
    end: Instant,
}

/// A client's schedule under `--rate`: its next request is due at `next`, then every `every`.
struct Pace {
    next: Instant,
    every: Duration,
}

impl Pace {
    /// When the next request starts, for its latency: the due time if the client is late
    /// (the server's slowness made it late, so the wait counts, as a user's would, instead of
    /// vanishing into a later send: "coordinated omission"), else the moment it woke for it
    /// (the timer's lateness, up to a millisecond, is the load generator's, not the server's).
    /// `None` once the next one would start at or after `end`.
    async fn wait(&mut self, end: Instant) -> Option<Instant> {
        let due = self.next;
        if due >= end {
            return None;
        }
        self.next += self.every;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
            return Some(Instant::now());
        }
        Some(due)
    }
}

/// `--clients` connections for warm-up + duration; returns what the measured window saw, and
/// the CPU the server and the clients used in it.
async fn load(
    addr: SocketAddr,
    target: Arc<Target>,
    args: &BenchApiArgs,
) -> anyhow::Result<(Tally, Option<ThreadCpu>)> {
    let start = Instant::now();
    let begin = start + args.warmup.get();
    let w = Window { begin, end: begin + args.duration.get() };
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            // Each client at rate/clients, the clients' schedules spread evenly over one period.
            let pace = args.rate.map(|rate| {
                let every = Duration::from_secs_f64(args.clients as f64 / rate);
                Pace { next: start + every.mul_f64(i as f64 / args.clients as f64), every }
            });
            tokio::spawn(client(addr, target.clone(), w, pace))
        })
        .collect();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(w.begin.into()).await;
        let before = ThreadCpu::sample();
        tokio::time::sleep_until(w.end.into()).await;
        ThreadCpu::sample()
            .zip(before)
            .map(|(a, b)| ThreadCpu { server: a.server - b.server, client: a.client - b.client })
    });
    let mut all = Tally::default();
    for c in clients {
        let t = c.await.context("a client task failed")?;
        all.nanos.extend(t.nanos);
        all.bytes += t.bytes;
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    all.nanos.sort_unstable();
    // Requests started in the window are answered after it when the server falls behind
    // an offered rate: the rate answered is over the time they took, not the window.
    all.span = w.end.max(Instant::now()) - w.begin;
    Ok((all, cpu.await.context("the CPU sampler failed")?))
}

/// One client: a keep-alive connection (a new one if it fails), a request at a time, each
/// as soon as the previous answer is read or, under `--rate`, when its schedule says.
async fn client(addr: SocketAddr, t: Arc<Target>, w: Window, mut pace: Option<Pace>) -> Tally {
    let mut tally = Tally::default();
    // Under --rate a client is done when its schedule is (a reconnect after its last request
    // would only wait on the server's connection limit and stretch the measured span).
    while Instant::now() < w.end && pace.as_ref().is_none_or(|p| p.next < w.end) {
        if let Err(e) = connection(addr, &t, w, &mut pace, &mut tally).await {
            tally.error(format!("connection: {e:#}"));
            // A refused or reset connection must not turn into a reconnect storm.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tally
}

async fn connection(
    addr: SocketAddr,
    t: &Target,
    w: Window,
    pace: &mut Option<Pace>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection is driven by this task too: one task per client, like one wrk
    // connection, and no wake-up between two tasks per request.
    let mut conn = std::pin::pin!(conn);
    let requests = async {
        loop {
            let started = match pace.as_mut() {
                Some(p) => match p.wait(w.end).await {
                    Some(at) => at,
                    None => return anyhow::Ok(()),
                },
                None => Instant::now(),
            };
            if started >= w.end {
                return anyhow::Ok(());
            }
            let (status, body) = get(&mut sender, t, true).await?;
            let took = started.elapsed();
            if started < w.begin {
                continue;
            }
            if status != StatusCode::OK {
                tally.error(format!("status {status}: {}", String::from_utf8_lossy(&body)));
            } else if let Some(why) = t.check.wrong(&body) {
                tally.error(why);
            } else {
                tally.nanos.push(took.as_nanos() as u64);
                tally.bytes += body.len() as u64;
            }
        }
    };
    tokio::select! {
        r = requests => r,
        r = conn.as_mut() => match r {
            Ok(()) => bail!("the server closed the connection"),
            Err(e) => Err(e.into()),
        },
    }
}

/// The `p` quantile (0..=1) by nearest rank, in milliseconds.
fn quantile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn report(
    args: &BenchApiArgs,
    described: &str,
    results: Vec<(&str, String, Tally, Option<ThreadCpu>)>,
) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = match args.rate {
        Some(r) => format!("{r:.0} req/s offered (open loop)"),
        None => "each sending on the previous answer (closed loop)".to_string(),
    };
    println!(
        "bench api: {} keep-alive clients {load} on {} client threads, server {cores} workers, {cores} cores shared; {} measured after {} warm-up; {described}",
        args.clients, args.client_threads, args.duration, args.warmup
    );
    println!(
        "{:<16} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  CPU (cores): server / client",
        "route", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    let mut failed = false;
    let mut json = serde_json::Map::new();
    for (name, path, t, cpu) in &results {
        let q = |p| quantile_ms(&t.nanos, p);
        let secs = t.span.as_secs_f64();
        let rate = t.nanos.len() as f64 / secs;
        // The CPU was sampled over the window itself.
        let window = args.duration.get().as_secs_f64();
        let cpu_text =
            cpu.as_ref().map_or("-".to_string(), |c| format!("{:.2} / {:.2}", c.server / window, c.client / window));
        println!(
            "{:<16} {:>9} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7}  {cpu_text}",
            name,
            t.nanos.len(),
            rate,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(1.0),
            t.errors
        );
        if let Some(e) = &t.first_error {
            println!("  first error: {e}");
        }
        if let Some(offered) = args.rate.filter(|r| rate < 0.97 * r) {
            println!(
                "  answered {rate:.0} of {offered:.0} req/s offered: the server fell behind, latency includes the queue"
            );
        }
        failed |= t.errors > 0 || t.nanos.is_empty();
        json.insert(
            name.to_string(),
            serde_json::json!({
                "path": path, "clients": args.clients, "offered_per_s": args.rate,
                "requests": t.nanos.len(), "requests_per_s": rate.round(), "errors": t.errors,
                "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": q(1.0),
                "mb_per_s": t.bytes as f64 / secs / 1e6,
            }),
        );
    }
    println!("{}", serde_json::Value::Object(json));
    if failed {
        eprintln!("error: some answers were not the expected 200 (see first error above); the figures are not valid");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// CPU seconds used by the server's and the load generator's threads (the latter known by
/// their name), so a run shows how the two shared the cores.
struct ThreadCpu {
    server: f64,
    client: f64,
}

impl ThreadCpu {
    #[cfg(target_os = "linux")]
    fn sample() -> Option<ThreadCpu> {
        // SAFETY: sysconf reads a constant of the system.
        #[allow(unsafe_code)]
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let mut out = ThreadCpu { server: 0.0, client: 0.0 };
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            // `pid (comm) state …`: the name may hold spaces, the fields after `)` do not;
            // utime and stime are the 14th and 15th fields.
            let Some((head, rest)) = stat.rsplit_once(')') else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let used = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
            let secs = (used(11) + used(12)) / ticks;
            // Every thread but the load generator's serves: the runtime's workers and
            // blocking pool, and the store's own (SQLite readers).
            if head.contains("(bench-client") {
                out.client += secs;
            } else {
                out.server += secs;
            }
        }
        Some(out)
    }

    #[cfg(not(target_os = "linux"))]
    fn sample() -> Option<ThreadCpu> {
        None
    }
}

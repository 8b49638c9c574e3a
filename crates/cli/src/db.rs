//! `stock-observer db migrate|status|maintain|sync`, `stock-observer etl` and `stock-observer
//! bench db`: the query database (crates/store). The store section of the configuration is
//! passed in by the caller; `--url` (or `STOCK_OBSERVER__STORE__URL`) overrides its `url`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};

use model::{Market, Price, Provider, Qty, QualityFlag, Side, Symbol};
use store::{
    Backend, Bar, BarInterval, BarQuery, BarTable, EtlOptions, MarketTickRow, MigrationState, RowMeta, Store,
    StoreConfig,
};

#[derive(Subcommand)]
pub enum Db {
    /// Apply pending SQL migrations, each in one transaction; refuses if an applied file changed.
    Migrate(DbArgs),
    /// Show the storage mode and each migration (applied, skipped, pending, changed); exits
    /// non-zero if a migration is pending or an applied file changed.
    Status(DbArgs),
    /// Run the maintenance job now (what `collect` runs daily): create the daily partitions
    /// for today and store.partitions_ahead_days ahead, apply store.ticks_retention and
    /// store.samples_retention to days held by a verified backup (`<DIR>/backups/YYYYMMDD/
    /// SUCCESS.marker`) or by the archive (raw files in `<DIR>/manifests/YYYYMMDD.json`),
    /// refresh rollups; prints what it did as JSON, with the days kept and why.
    Maintain(DbArgs),
    /// Copy a whole database one way, e.g. production → local: PostgreSQL → PostgreSQL with
    /// pg_dump streamed through pg_restore into psql (one transaction; the source is only
    /// read, a read-only role suffices), or SQLite → SQLite as a consistent online-backup
    /// snapshot. Replaces what the destination has of the source's tables; prints the tables
    /// and rows copied.
    Sync(SyncArgs),
}

#[derive(Args)]
pub struct SyncArgs {
    /// The database to copy: `postgres://user@host:port/db`, `sqlite://PATH` or a file path.
    /// Its password comes from SO_SYNC_FROM_PASSWORD, else as the destination's.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The database to replace, of the same kind. Its password comes from
    /// STOCK_OBSERVER__STORE__PASSWORD or PGPASSWORD (or libpq's ~/.pgpass).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Directory holding pg_dump, pg_restore and psql (default: the PATH); pg_dump must be at
    /// least as new as the source's server.
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
}

#[derive(Args)]
pub struct DbArgs {
    /// Archive directory; the embedded database is `<DIR>/observer.db`.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL (`postgres://user@host:port/db` or `sqlite:///path`); the password comes
    /// from STOCK_OBSERVER__STORE__PASSWORD or PGPASSWORD. Default: the store.url setting,
    /// else the embedded SQLite file.
    #[arg(long, value_name = "URL", env = "STOCK_OBSERVER__STORE__URL")]
    pub url: Option<String>,
}

#[derive(Args)]
pub struct EtlArgs {
    /// Archive partition date to load (Asia/Seoul), YYYYMMDD.
    #[arg(long, value_name = "YYYYMMDD")]
    pub date: String,
    #[command(flatten)]
    pub db: DbArgs,
    /// Rows per write transaction (default: store.batch_rows).
    #[arg(long, value_name = "N")]
    pub batch_rows: Option<usize>,
    /// Also append the reconciliation report (an `etl_reconcile` event) to this JSONL file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Apply pending migrations first.
    #[arg(long)]
    pub migrate: bool,
}

#[derive(Args)]
pub struct BenchDbArgs {
    /// Database to measure (PostgreSQL or sqlite:// URL); default: a fresh SQLite file in a
    /// temporary directory. Use an empty, disposable database: the benchmark writes into it.
    #[arg(long, value_name = "URL", env = "STOCK_OBSERVER__STORE__URL")]
    pub url: Option<String>,
    /// market_ticks rows to ingest.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Rows per write transaction (default: store.batch_rows).
    #[arg(long, value_name = "N")]
    pub batch_rows: Option<usize>,
    /// Symbols the ticks and daily bars are spread over.
    #[arg(long, default_value_t = 41)]
    pub symbols: u32,
    /// Timed executions of each query.
    #[arg(long, default_value_t = 2_000)]
    pub queries: u32,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

async fn open(base: &StoreConfig, db: &DbArgs) -> anyhow::Result<Store> {
    let mut cfg = base.clone();
    if db.url.is_some() {
        cfg.url = db.url.clone();
    }
    validated(&cfg, db.url.is_some())?;
    let store = Store::open(&cfg, &db.data_dir).await?;
    Ok(store)
}

/// The store section checked as the configuration loader checks it, so `--url` (or
/// STOCK_OBSERVER__STORE__URL) passes the same rules as `store.url`: no password in it, a
/// known scheme, a valid `sslmode`. Messages never repeat the URL.
fn validated(cfg: &StoreConfig, from_flag: bool) -> anyhow::Result<()> {
    use model::settings::Validate;
    let mut c = model::settings::Checker::default();
    c.section("store", |c| cfg.validate(c));
    if c.problems.is_empty() {
        return Ok(());
    }
    let source = if from_flag { "--url (or STOCK_OBSERVER__STORE__URL)" } else { "configuration" };
    let each: Vec<String> = c.problems.iter().map(|p| format!("{source}: {p}")).collect();
    anyhow::bail!("invalid database settings:\n  {}", each.join("\n  "))
}

/// `db migrate` / `db status`.
pub fn run_db(cmd: Db, base: &StoreConfig) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match cmd {
            Db::Migrate(args) => {
                let store = open(base, &args).await?;
                let report = store.migrate().await.with_context(|| format!("migrating {}", store.describe()))?;
                eprintln!("{} ({} mode)", store.describe(), report.mode);
                for m in &report.applied {
                    eprintln!("applied  {m}");
                }
                for m in &report.skipped {
                    eprintln!("skipped  {m} (other storage mode)");
                }
                if report.applied.is_empty() && report.skipped.is_empty() {
                    eprintln!("up to date");
                }
                Ok(ExitCode::SUCCESS)
            }
            Db::Maintain(args) => {
                let store = open(base, &args).await?;
                let data_dir = args.data_dir.clone();
                let held = move |day| crate::maintain::held(&data_dir, day);
                let report = store::maintain(&store, base, model::Clock::real().now(), &held)
                    .await
                    .with_context(|| format!("maintaining {}", store.describe()))?;
                eprintln!(
                    "{}: {} partition(s) created, {} removed by retention",
                    store.describe(),
                    report.partitions_created,
                    report.retention_removed
                );
                for k in &report.retention_kept {
                    eprintln!("kept {} {}: {}", k.table, k.day, k.reason);
                }
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(ExitCode::SUCCESS)
            }
            Db::Sync(args) => sync(args, base).await,
            Db::Status(args) => {
                let store = open(base, &args).await?;
                let st = store.status().await.with_context(|| format!("reading {}", store.describe()))?;
                println!("{} — mode: {}", store.describe(), describe_mode(&st.mode));
                for m in &st.migrations {
                    let state = match &m.state {
                        MigrationState::Applied { applied_at } => format!("applied {applied_at}"),
                        MigrationState::Skipped { mode } => format!("skipped (not for {mode} mode)"),
                        MigrationState::Pending => "PENDING".into(),
                        MigrationState::Changed { recorded, current } => {
                            format!("CHANGED since applied (recorded {recorded:.12}…, file {current:.12}…)")
                        }
                        MigrationState::Unknown => "UNKNOWN to this binary".into(),
                    };
                    println!("{:03}_{:<24} {state}", m.version, m.name);
                }
                if let Some(p) = st.problem() {
                    return Err(anyhow::Error::new(p));
                }
                if st.pending() == 0 && st.mode == "native" {
                    let parts = store.daily_partitions().await?;
                    println!("daily partitions ({}): {}", parts.len(), summarize_partitions(&parts));
                }
                if st.pending() > 0 {
                    eprintln!("{} pending; run `stock-observer db migrate`", st.pending());
                    return Ok(ExitCode::FAILURE);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// `db sync`: the copy, with progress on stderr and what was copied on stdout.
async fn sync(args: SyncArgs, base: &StoreConfig) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let shown = |u: &str| if u.contains("://") { store::shown_url(u) } else { u.to_string() };
    eprintln!("syncing {} → {}", shown(&args.from), shown(&args.to));
    // A rewritten progress line is for a person watching; a log gets the summary only.
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress: store::sync::ProgressFn = std::sync::Arc::new(|p| {
        let line = match p {
            store::SyncProgress::Bytes(n) => format!("{:.1} MB streamed", n as f64 / 1e6),
            store::SyncProgress::Pages { copied, total } => format!("{copied}/{total} pages"),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}   ");
        let _ = err.flush();
    });
    let opts = store::SyncOptions {
        tls_ca_file: base.tls_ca_file.clone(),
        connect_timeout: Some(base.connect_timeout.get()),
        tools_dir: args.pg_bin.clone(),
        progress: on_terminal.then_some(progress),
    };
    let result = store::sync(&args.from, &args.to, &opts).await;
    if on_terminal {
        eprintln!();
    }
    let r = result.context("db sync")?;
    println!("synced {} ({}) → {}", r.from, r.kind, r.to);
    let width = r.tables.iter().map(|t| t.table.len()).max().unwrap_or(0);
    for t in &r.tables {
        println!("  {:<width$}  {:>12} rows", t.table, t.rows);
    }
    let what = match r.pages {
        Some(pages) => format!("{pages} pages, {} bytes", r.bytes),
        None => format!("{} bytes streamed", r.bytes),
    };
    println!("{} tables, {} rows; {what}; {:.1} s", r.tables.len(), r.total_rows(), r.elapsed_ms as f64 / 1000.0);
    Ok(ExitCode::SUCCESS)
}

/// `market_ticks 20260114..20260121 (8), scalp_ticks …`: each table's first and last day.
fn summarize_partitions(parts: &[String]) -> String {
    let mut by_table: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for p in parts {
        if let Some((table, day)) = p.rsplit_once('_') {
            by_table.entry(table).or_default().push(day);
        }
    }
    let each: Vec<String> = by_table
        .iter()
        .map(|(t, days)| format!("{t} {}..{} ({})", days[0], days[days.len() - 1], days.len()))
        .collect();
    if each.is_empty() { "none".into() } else { each.join(", ") }
}

fn describe_mode(mode: &str) -> &'static str {
    match mode {
        "sqlite" => "sqlite (embedded)",
        "timescale" => "timescale (TimescaleDB hypertables, compression, continuous aggregates)",
        _ => "native (PostgreSQL daily range partitions, rollups maintained by the store)",
    }
}

/// `etl --date YYYYMMDD`: prints the reconciliation report (JSON), records it as an
/// `etl_reconcile` system event in that day's archive, and fails if it does not reconcile or
/// could not be recorded.
pub fn run_etl(args: EtlArgs, settings: &config::Settings) -> anyhow::Result<ExitCode> {
    let base = &settings.store;
    runtime()?.block_on(async {
        let store = open(base, &args.db).await?;
        if args.migrate {
            store.migrate().await?;
        }
        let opts = EtlOptions {
            date: args.date.clone(),
            batch_rows: args.batch_rows.unwrap_or(base.batch_rows),
            progress: true,
        };
        let report = match store::run_etl(&store, &args.db.data_dir, &opts).await {
            Ok(r) => r,
            Err(e) => {
                let e = anyhow::Error::from(e).context(format!(
                    "etl {} from {} into {}",
                    args.date,
                    args.db.data_dir.display(),
                    store.describe()
                ));
                alert_etl_failure(&store, settings, &args.date, format!("{e:#}")).await;
                return Err(e);
            }
        };
        let body = report.to_event_body();
        println!("{}", serde_json::to_string_pretty(&body)?);
        if let Some(path) = &args.report {
            append_line(path, &serde_json::to_string(&body)?)?;
        }
        for t in report.tables.iter().filter(|t| !t.ok) {
            eprintln!("{}: archive implies {} rows, database has {}", t.table.name(), t.expected, t.in_db);
        }
        let recorded =
            store::etl::record_reconcile(&args.db.data_dir, &settings.archive, &report, model::Clock::real().now());
        match recorded {
            Ok(file) => eprintln!("reconciliation recorded in {file}"),
            Err(e) => {
                eprintln!("error: the reconciliation was not recorded in the archive: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
        if !report.ok {
            let bad: Vec<String> = report
                .tables
                .iter()
                .filter(|t| !t.ok)
                .map(|t| format!("{}: archive implies {} rows, database has {}", t.table.name(), t.expected, t.in_db))
                .collect();
            alert_etl_failure(&store, settings, &args.date, bad.join("\n")).await;
        }
        Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}

/// An ETL that fails is an alert: written to the outbox of the database it loads, for the
/// chats the configuration names; a running `collect`'s worker sends it.
async fn alert_etl_failure(store: &Store, settings: &config::Settings, date: &str, why: String) {
    if !settings.alerts.enabled {
        return;
    }
    let alert = alerts::Alert::new(
        alerts::Severity::Warn,
        format!("etl:{date}"),
        format!("ETL of {date} failed"),
        why,
        model::Clock::real().now(),
    );
    let queued = async {
        store.sync_chats(&settings.alerts.telegram.chats).await?;
        alerts::outbox::enqueue(store, &alert).await
    };
    match queued.await {
        Ok((rows, _)) => eprintln!("alert queued in the outbox for {rows} chat message(s)"),
        Err(e) => eprintln!("the ETL failure could not be queued as an alert: {e}"),
    }
}

fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("writing {}", path.display()))
}

/// `bench db`: ingest rate of market_ticks and latency of the two hot queries.
pub fn run_bench(args: BenchDbArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.rows > 0 && args.symbols > 0 && args.batch_rows != Some(0) && args.queries > 0,
        "counts must be positive"
    );
    let tmp = std::env::temp_dir().join(format!("stock-observer-bench-db-{}", std::process::id()));
    let result = runtime()?.block_on(bench(&args, &tmp));
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn bench(args: &BenchDbArgs, tmp: &Path) -> anyhow::Result<ExitCode> {
    // The configured store section (copy_connections, synchronous_commit, …; overridable as
    // STOCK_OBSERVER__STORE__KEY), with the flags' URL and batch size.
    let base = crate::load_config(None)?.settings.store;
    let batch_rows = args.batch_rows.unwrap_or(base.batch_rows);
    let cfg = StoreConfig { url: args.url.clone(), batch_rows, ..base };
    validated(&cfg, args.url.is_some())?;
    let store = Store::open(&cfg, tmp).await?;
    store.migrate().await.context("migrating the benchmark database")?;
    eprintln!("bench db: {} ({} mode)", store.describe(), store.mode().as_str());

    // Ticks over one trading day, 09:00 KST onwards, symbols interleaved as a feed delivers them.
    let day = store::parse_day("20260114").map_err(anyhow::Error::msg)?;
    store.maintain(day, 1).await?;
    let (day_start, _) = store::day_range(day);
    let t0 = day_start.plus_millis(9 * 3_600_000);
    let symbols: Vec<Symbol> =
        (0..args.symbols).map(|i| Symbol::new(&format!("{:06}", 5930 + i * 10))).collect::<Result<_, _>>()?;
    let session = "sess_20260114_090000".to_string();
    let make = |i: u64| -> MarketTickRow {
        let s = &symbols[(i % symbols.len() as u64) as usize];
        let time = t0.plus_millis((i / symbols.len() as u64) as i64 * 7);
        MarketTickRow {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: s.clone(),
            time,
            trade_id: i.to_string(),
            price: Price::from_int(70_000 + (i % 50) as i64 * 100),
            volume: Qty::from_int(1 + (i % 97) as i64),
            side: Some(if i.is_multiple_of(2) { Side::Buy } else { Side::Sell }),
            cum_volume: Some(Qty::from_int(i as i64)),
            change: None,
            meta: RowMeta {
                schema_version: model::SCHEMA_VERSION.into(),
                receive_time: time.plus_millis(3),
                session_id: session.clone(),
                mitigation_level: 0,
                quality_flag: QualityFlag::Normal,
                raw_ref: Some(format!("raw/sim/20260114/09.jsonl#{i}")),
            },
        }
    };
    let mut written = 0u64;
    let mut busy = std::time::Duration::ZERO;
    let mut i = 0u64;
    while i < args.rows {
        let n = (batch_rows as u64).min(args.rows - i);
        // Rows are built outside the timed section: the figure is the database's rate.
        let batch: Vec<MarketTickRow> = (i..i + n).map(make).collect();
        let started = Instant::now();
        written += store.write_market_ticks(batch).await?;
        busy += started.elapsed();
        i += n;
    }
    let ingest = written as f64 / busy.as_secs_f64();
    let pg = match store.mode() {
        store::Mode::Sqlite => String::new(),
        _ => format!(
            ", {} connection(s), synchronous_commit {}",
            cfg.copy_connections,
            if cfg.synchronous_commit { "on" } else { "off" }
        ),
    };
    println!(
        "ingest market_ticks: {written} rows in {:.2} s = {:.0} rows/s (batches of {}{pg})",
        busy.as_secs_f64(),
        ingest,
        batch_rows,
    );

    // One year of daily bars per symbol.
    let mut bars = Vec::new();
    for d in 0..365i64 {
        let bar_time = day_start.plus_millis(-d * 86_400_000);
        for (k, s) in symbols.iter().enumerate() {
            let p = Price::from_int(50_000 + (d * 37 + k as i64 * 11) % 5_000);
            bars.push(Bar {
                provider: Provider::Sim,
                market: Market::KrStocks,
                symbol: s.clone(),
                bar_time,
                open: p,
                high: Price(p.0 + rust_decimal::Decimal::from(500)),
                low: Price(p.0 - rust_decimal::Decimal::from(500)),
                close: p,
                volume: Qty::from_int(1_000_000 + d),
                coverage_ratio: 1.0,
                count: 390,
                meta: None,
            });
        }
    }
    for chunk in bars.chunks(10_000) {
        store.write_bars(BarTable::Scalp(BarInterval::D1), chunk.to_vec()).await?;
    }
    let year = BarQuery {
        symbol: symbols[0].clone(),
        provider: None,
        interval: BarInterval::D1,
        from: day_start.plus_millis(-365 * 86_400_000),
        to: day_start.plus_millis(86_400_000),
    };
    let got = store.bars(year.clone()).await?.len();
    anyhow::ensure!(got == 365, "1-year query returned {got} bars, expected 365");
    let daily = time_queries(args.queries, |_| {
        let q = year.clone();
        let store = &store;
        async move { store.bars(q).await.map(|_| ()) }
    })
    .await?;
    println!("1-year daily bars (365 rows, one symbol): p50 {:.3} ms  p99 {:.3} ms", daily.0, daily.1);
    let latest = time_queries(args.queries, |k| {
        let s = symbols[k as usize % symbols.len()].clone();
        let store = &store;
        async move { store.latest_price(s, None).await.map(|_| ()) }
    })
    .await?;
    println!("latest price (one symbol): p50 {:.3} ms  p99 {:.3} ms", latest.0, latest.1);
    println!(
        "{}",
        serde_json::json!({
            "backend": store.mode().as_str(),
            "ingest_rows": written, "ingest_rows_per_s": ingest.round(),
            "daily_1y_p50_ms": daily.0, "daily_1y_p99_ms": daily.1,
            "latest_p50_ms": latest.0, "latest_p99_ms": latest.1,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// p50 and p99 in milliseconds over `n` calls (after 50 warm-up calls).
async fn time_queries<F, Fut>(n: u32, mut f: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<(), store::StoreError>>,
{
    for k in 0..50 {
        f(k).await?;
    }
    let mut times = Vec::with_capacity(n as usize);
    for k in 0..n {
        let started = Instant::now();
        f(k).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    Ok((pct(0.50), pct(0.99)))
}

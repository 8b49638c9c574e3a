//! PostgreSQL: a deadpool pool of tokio-postgres connections. Tick-rate rows go in with one
//! binary COPY straight into the table (its daily partition); only when that COPY hits a
//! unique violation — a re-run, an overlap with the live sink — is the transaction rolled
//! back and the batch merged through a per-session TEMP staging table with `INSERT … SELECT …
//! ON CONFLICT DO NOTHING`, so one duplicate never costs the rest of its batch while fresh data
//! costs a single COPY. Smaller tables go in as one `INSERT … SELECT FROM unnest(arrays)` per
//! batch, one round trip however many rows.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::{SinkExt, pin_mut};
use jiff::civil::Date;
use rust_decimal::Decimal;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use model::{Market, Price, Provider, Qty, QualityFlag, Symbol, UtcTime};

use crate::backend::shared::{like_pattern, side_from_str, side_str};
use crate::backend::{Backend, Mode};
use crate::config::{StoreConfig, TimescaleChoice};
use crate::error::StoreError;
use crate::migrate::{self, Applied, MigrateReport, Migration, StatusReport};
use crate::pgconn::{PASSWORD_ENV, PgUrl, SslMode, shown_url};
use crate::pgcopy::CopyBuf;
use crate::rows::*;

/// Serializes migrators across processes (`pg_advisory_lock` key; arbitrary, fixed).
const MIGRATION_LOCK: i64 = 0x736f_6d69_6772;

const MODE_UNKNOWN: u8 = 0;
const MODE_NATIVE: u8 = 1;
const MODE_TIMESCALE: u8 = 2;

pub struct PgStore {
    pool: Pool,
    url: String,
    timescale: TimescaleChoice,
    mode: AtomicU8,
    copy_connections: usize,
    copy_chunk_rows: usize,
}

fn ts(t: UtcTime) -> jiff::Timestamp {
    t.to_timestamp()
}

fn from_ts(t: jiff::Timestamp) -> UtcTime {
    UtcTime::from_timestamp(t)
}

fn parse<T: FromStr>(s: &str, column: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| StoreError::Decode { column, why: e.to_string() })
}

fn quality(s: &str) -> QualityFlag {
    QualityFlag::parse(s).unwrap_or_default()
}

impl PgStore {
    /// Builds the pool; no connection is made until the first call. The password comes from
    /// [`PASSWORD_ENV`] or `PGPASSWORD`, never from the URL (refused) or the config. TLS
    /// follows the URL's `sslmode` ([`crate::pgconn`]).
    pub async fn connect(url: &str, cfg: &StoreConfig) -> Result<Self, StoreError> {
        let bad = |why: String| StoreError::Url { url: shown_url(url), why };
        let PgUrl { config: mut pg, sslmode, loopback } = PgUrl::parse(url).map_err(bad)?;
        let shown = PgUrl { config: pg.clone(), sslmode, loopback }.display();
        if let Some(pw) = std::env::var(PASSWORD_ENV).ok().or_else(|| std::env::var("PGPASSWORD").ok()) {
            pg.password(pw);
        }
        if !loopback && sslmode != SslMode::Require {
            tracing::warn!(
                url = %shown,
                "store: sslmode={sslmode} to a non-loopback host: the password and the data may cross the network unencrypted"
            );
        }
        let tls = crate::pgconn::tls_connector(sslmode, cfg.tls_ca_file.as_deref()).map_err(bad)?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(cfg.connect_timeout.get());
        }
        pg.application_name("stock-observer");
        if !cfg.synchronous_commit {
            // Commits return before their WAL is flushed. A server crash can lose the last
            // few hundred milliseconds of committed rows but never corrupts anything; the
            // archive holds every row and `etl` puts them back (docs/storage.md).
            pg.options("-c synchronous_commit=off");
        }
        let pg_connect_timeout = pg.get_connect_timeout().copied();
        let mgr = Manager::from_config(pg, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            // A new connection gets as long as one attempt is allowed (the URL's or ours).
            .create_timeout(pg_connect_timeout)
            .wait_timeout(Some(cfg.pool_wait_timeout.get()))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(PgStore {
            pool,
            url: shown,
            timescale: cfg.timescale,
            mode: AtomicU8::new(MODE_UNKNOWN),
            copy_connections: cfg.copy_connections.clamp(1, cfg.pool_size.max(1)),
            copy_chunk_rows: cfg.copy_chunk_rows.max(1),
        })
    }

    pub fn url_redacted(&self) -> &str {
        &self.url
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    fn set_mode(&self, mode: Mode) {
        let v = if mode == Mode::Timescale { MODE_TIMESCALE } else { MODE_NATIVE };
        self.mode.store(v, Ordering::Relaxed);
    }

    async fn read_applied(c: &tokio_postgres::Client) -> Result<Vec<Applied>, StoreError> {
        let rows = c
            .query(
                "SELECT version, name, checksum, mode, skipped,
                        to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM schema_migrations ORDER BY version",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Applied {
                version: r.get::<_, i32>(0) as u32,
                name: r.get(1),
                checksum: r.get(2),
                mode: r.get(3),
                skipped: r.get(4),
                applied_at: r.get(5),
            })
            .collect())
    }

    /// The mode recorded by earlier migrations, else the one this server and config call for.
    async fn decide_mode(&self, c: &tokio_postgres::Client, applied: &[Applied]) -> Result<Mode, StoreError> {
        if let Some(a) = applied.first() {
            return Ok(if a.mode == "timescale" { Mode::Timescale } else { Mode::Native });
        }
        let available: bool = c
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')", &[])
            .await?
            .get(0);
        match (self.timescale, available) {
            (TimescaleChoice::Off, _) | (TimescaleChoice::Auto, false) => Ok(Mode::Native),
            (_, true) => Ok(Mode::Timescale),
            (TimescaleChoice::Require, false) => Err(StoreError::Invalid(
                "store.timescale is `require` but the server does not offer the timescaledb extension".into(),
            )),
        }
    }

    pub async fn migrate_files(&self, files: Vec<Migration>) -> Result<MigrateReport, StoreError> {
        let mut c = self.client().await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
        let result = self.migrate_locked(&mut c, &files).await;
        // Unlock whatever happened; the pool reuses this session.
        let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
        let report = result?;
        unlock?;
        Ok(report)
    }

    async fn migrate_locked(
        &self,
        c: &mut deadpool_postgres::Object,
        files: &[Migration],
    ) -> Result<MigrateReport, StoreError> {
        c.batch_execute(migrate::POSTGRES_BOOTSTRAP).await?;
        let applied = Self::read_applied(c).await?;
        let mode = self.decide_mode(c, &applied).await?;
        let status = migrate::plan(mode.as_str(), files, &applied);
        if let Some(p) = status.problem() {
            return Err(p);
        }
        let mut report = MigrateReport { mode: mode.as_str().into(), ..Default::default() };
        for f in files {
            if applied.iter().any(|a| a.version == f.version) {
                continue;
            }
            let skip = f.only_mode().is_some_and(|m| m != mode.as_str());
            let tx = c.transaction().await?;
            if !skip {
                tx.batch_execute(&f.sql).await.map_err(|e| StoreError::MigrationFailed {
                    version: f.version,
                    name: f.name.clone(),
                    why: StoreError::from(e).to_string(),
                })?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, mode, skipped) VALUES ($1, $2, $3, $4, $5)",
                &[&(f.version as i32), &f.name, &f.checksum(), &mode.as_str(), &skip],
            )
            .await?;
            tx.commit().await?;
            if skip { report.skipped.push(migrate::label(f)) } else { report.applied.push(migrate::label(f)) }
        }
        self.set_mode(mode);
        Ok(report)
    }

    pub async fn status_files(&self, files: Vec<Migration>) -> Result<StatusReport, StoreError> {
        let c = self.client().await?;
        // Read-only: a database never migrated has no bookkeeping table yet, and status must
        // not create it (it also runs as a read-only role, e.g. behind the API).
        let bookkept: bool = c.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
        let applied = if bookkept { Self::read_applied(&c).await? } else { Vec::new() };
        let mode = self.decide_mode(&c, &applied).await?;
        if !applied.is_empty() {
            self.set_mode(mode);
        }
        Ok(migrate::plan(mode.as_str(), &files, &applied))
    }

    /// User tables and functions, for tests that check a failed migration left nothing behind.
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'
                 UNION ALL SELECT proname::text || '()' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'public' ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Runs arbitrary read-only SQL returning one bigint; for tests and `db status`.
    pub async fn scalar_i64(&self, sql: &str) -> Result<i64, StoreError> {
        let c = self.client().await?;
        Ok(c.query_one(sql, &[]).await?.get(0))
    }

    async fn unnest_exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let st = tx.prepare_cached(sql).await?;
        let n = tx.execute(&st, params).await?;
        tx.commit().await?;
        Ok(n)
    }

    fn is_timescale(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == MODE_TIMESCALE
    }
}

impl PgStore {
    /// Loads `rows` with binary COPY, split over up to `copy_connections` connections that
    /// run in parallel, each part in its own transaction (a failed part leaves the others
    /// stored; a retry is a no-op for them). Returns the rows that were new.
    async fn copy_load<R: CopyTable>(&self, rows: Vec<R>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let parts = plan_parts(&rows, self.copy_connections);
        let rows = Arc::new(rows);
        let spawned: Vec<_> = parts
            .into_iter()
            .map(|part| tokio::spawn(copy_part(self.pool.clone(), rows.clone(), part, self.copy_chunk_rows)))
            .collect();
        let mut n = 0;
        let mut first_err = None;
        for task in spawned {
            match task.await.map_err(StoreError::from).and_then(|r| r) {
                Ok(k) => n += k,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}

/// The newest row of each (symbol, provider) among `rows` in key order (symbol, time,
/// provider, trade id), where it is the last of its pair; the result stays in key order.
fn newest_per_symbol_and_provider<'a>(rows: &[&'a MarketTickRow]) -> Vec<&'a MarketTickRow> {
    let mut out: Vec<&MarketTickRow> = Vec::new();
    let mut symbol_start = 0;
    for r in rows {
        if out.get(symbol_start).is_some_and(|first| first.symbol != r.symbol) {
            symbol_start = out.len();
        }
        match out[symbol_start..].iter_mut().find(|o| o.provider == r.provider) {
            Some(o) => *o = r,
            None => out.push(r),
        }
    }
    // Within a symbol, keep the upsert in (symbol, provider) key order.
    out.sort_by(|a, b| (a.symbol.as_str(), a.provider.as_str()).cmp(&(b.symbol.as_str(), b.provider.as_str())));
    out
}

/// A table loaded with binary COPY.
trait CopyTable: Sized + Send + Sync + 'static {
    const TABLE: &'static str;
    /// Its per-session TEMP twin made by `so_prepare_staging()` (migration 004).
    const STAGE: &'static str;
    /// Every column, in the table's order (the staging merge is `SELECT *`).
    const COLUMNS: &'static str;
    fn encode(&self, out: &mut CopyBuf);
    /// The leading column of the natural key (the symbol): a part never splits one.
    fn group(&self) -> &str;
    /// The order of the table's natural key.
    fn key_cmp(a: &Self, b: &Self) -> std::cmp::Ordering;
    /// More work in the same transaction once the rows (in key order) are in.
    fn after(
        _tx: &deadpool_postgres::Transaction<'_>,
        _rows: &[&Self],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Splits a batch into at most `parts` parts of whole symbols, contiguous in key order and
/// of about equal size, as row indices grouped by symbol. Each connection then loads its own
/// symbols, so parallel loads neither touch the same index leaf pages nor upsert the same
/// `latest_prices` rows, and in key order a symbol's index inserts land on one leaf page
/// after another instead of hopping between every symbol's page (docs/benchmarks.md).
/// Grouping is linear; a feed keeps each symbol's rows in time order, so the groups usually
/// need no sort at all (`copy_part` checks).
fn plan_parts<R: CopyTable>(rows: &[R], parts: usize) -> Vec<Vec<u32>> {
    let mut groups: HashMap<&str, Vec<u32>> = HashMap::default();
    for (i, r) in rows.iter().enumerate() {
        groups.entry(r.group()).or_default().push(i as u32);
    }
    let mut groups: Vec<(&str, Vec<u32>)> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let target = rows.len().div_ceil(parts.max(1));
    let mut out = Vec::with_capacity(parts);
    let mut current: Vec<u32> = Vec::with_capacity(target);
    for (_, g) in groups {
        current.extend_from_slice(&g);
        if current.len() >= target && out.len() + 1 < parts {
            out.push(std::mem::replace(&mut current, Vec::with_capacity(target)));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Encodes `rows` and streams them into `COPY … FROM STDIN`, `chunk_rows` rows per message:
/// the server parses one message while the next is encoded, so neither side waits for a
/// whole batch.
async fn copy_stream<R: CopyTable>(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    rows: &[&R],
    chunk_rows: usize,
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(&format!("COPY {table} ({}) FROM STDIN (FORMAT binary)", R::COLUMNS)).await?;
    pin_mut!(sink);
    let mut out = CopyBuf::new();
    let mut written = 0;
    for chunk in rows.chunks(chunk_rows.max(1)) {
        for r in chunk {
            r.encode(&mut out);
        }
        written += chunk.len();
        if written < rows.len() {
            let bytes = out.take();
            sink.send(bytes).await?;
        }
    }
    sink.send(out.finish()).await?;
    sink.finish().await
}

async fn copy_part<R: CopyTable>(
    pool: Pool,
    rows: Arc<Vec<R>>,
    mut idx: Vec<u32>,
    chunk_rows: usize,
) -> Result<u64, StoreError> {
    let key = |a: &u32, b: &u32| R::key_cmp(&rows[*a as usize], &rows[*b as usize]);
    if !idx.is_sorted_by(|a, b| key(a, b).is_le()) {
        idx.sort_by(key);
    }
    let part: Vec<&R> = idx.iter().map(|&i| &rows[i as usize]).collect();
    let mut c = pool.get().await?;
    {
        let tx = c.transaction().await?;
        match copy_stream(&tx, R::TABLE, &part, chunk_rows).await {
            Ok(n) => {
                R::after(&tx, &part).await?;
                tx.commit().await?;
                return Ok(n);
            }
            // The COPY was the transaction's first write, so rolling it all back loses
            // nothing, and needs no savepoint (whose subtransaction every row would pay for).
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => tx.rollback().await?,
            Err(e) => return Err(e.into()),
        }
    }
    let tx = c.transaction().await?;
    tx.execute("SELECT so_prepare_staging()", &[]).await?;
    copy_stream(&tx, R::STAGE, &part, chunk_rows).await?;
    let n =
        tx.execute(&format!("INSERT INTO {} SELECT * FROM {} ON CONFLICT DO NOTHING", R::TABLE, R::STAGE), &[]).await?;
    R::after(&tx, &part).await?;
    tx.commit().await?;
    Ok(n)
}

impl CopyTable for MarketTickRow {
    const TABLE: &'static str = "market_ticks";
    const STAGE: &'static str = "so_stage_market_ticks";
    const COLUMNS: &'static str = "symbol, time, provider, trade_id, market, price, volume, side, cum_volume, change, \
        schema_version, receive_time, session_id, mitigation_level, quality_flag, raw_ref";

    fn group(&self) -> &str {
        self.symbol.as_str()
    }

    fn key_cmp(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.symbol.as_str(), a.time, a.provider.as_str(), &a.trade_id).cmp(&(
            b.symbol.as_str(),
            b.time,
            b.provider.as_str(),
            &b.trade_id,
        ))
    }

    fn encode(&self, out: &mut CopyBuf) {
        out.row(16);
        out.text(self.symbol.as_str());
        out.timestamptz(self.time);
        out.text(self.provider.as_str());
        out.text(&self.trade_id);
        out.text(self.market.as_str());
        out.numeric(self.price.0);
        out.numeric(self.volume.0);
        out.opt_text(side_str(self.side));
        out.opt_numeric(self.cum_volume.map(|q| q.0));
        out.opt_numeric(self.change.map(|p| p.0));
        out.row_meta(&self.meta);
    }

    /// Keeps `latest_prices` (the newest trade per symbol and provider) current. The newest
    /// row per key is picked here, so the statement carries one row per symbol, in key order:
    /// concurrent writers then lock shared keys in the same order and cannot deadlock.
    async fn after(tx: &deadpool_postgres::Transaction<'_>, rows: &[&Self]) -> Result<(), StoreError> {
        let latest = newest_per_symbol_and_provider(rows);
        let symbol: Vec<&str> = latest.iter().map(|r| r.symbol.as_str()).collect();
        let provider: Vec<&str> = latest.iter().map(|r| r.provider.as_str()).collect();
        let market: Vec<&str> = latest.iter().map(|r| r.market.as_str()).collect();
        let time: Vec<jiff::Timestamp> = latest.iter().map(|r| ts(r.time)).collect();
        let price: Vec<Decimal> = latest.iter().map(|r| r.price.0).collect();
        let volume: Vec<Decimal> = latest.iter().map(|r| r.volume.0).collect();
        let trade_id: Vec<&str> = latest.iter().map(|r| r.trade_id.as_str()).collect();
        let st = tx
            .prepare_cached(
                "INSERT INTO latest_prices (symbol, provider, market, time, price, volume, trade_id)
                 SELECT * FROM unnest($1::varchar[], $2::text[], $3::text[], $4::timestamptz[], $5::numeric[],
                    $6::numeric[], $7::text[])
                 ON CONFLICT (symbol, provider) DO UPDATE SET market = excluded.market, time = excluded.time,
                    price = excluded.price, volume = excluded.volume, trade_id = excluded.trade_id
                 WHERE excluded.time > latest_prices.time
                    OR (excluded.time = latest_prices.time AND excluded.trade_id > latest_prices.trade_id)",
            )
            .await?;
        tx.execute(&st, &[&symbol, &provider, &market, &time, &price, &volume, &trade_id]).await?;
        Ok(())
    }
}

impl CopyTable for ScalpTickRow {
    const TABLE: &'static str = "scalp_ticks";
    const STAGE: &'static str = "so_stage_scalp_ticks";
    const COLUMNS: &'static str = "symbol, event_time, provider, market, bid_price, ask_price, bid_size, ask_size, \
        last_price, volume, data_age_ms, sample_interval_ms, schema_version, receive_time, session_id, \
        mitigation_level, quality_flag, raw_ref";

    fn group(&self) -> &str {
        self.symbol.as_str()
    }

    fn key_cmp(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.symbol.as_str(), a.event_time, a.provider.as_str()).cmp(&(
            b.symbol.as_str(),
            b.event_time,
            b.provider.as_str(),
        ))
    }

    fn encode(&self, out: &mut CopyBuf) {
        out.row(18);
        out.text(self.symbol.as_str());
        out.timestamptz(self.event_time);
        out.text(self.provider.as_str());
        out.text(self.market.as_str());
        out.opt_numeric(self.bid_price.map(|p| p.0));
        out.opt_numeric(self.ask_price.map(|p| p.0));
        out.opt_numeric(self.bid_size.map(|q| q.0));
        out.opt_numeric(self.ask_size.map(|q| q.0));
        out.opt_numeric(self.last_price.map(|p| p.0));
        out.opt_numeric(self.volume.map(|q| q.0));
        out.opt_int8(self.data_age_ms);
        out.int4(self.sample_interval_ms.min(i32::MAX as u64) as i32);
        out.row_meta(&self.meta);
    }
}

fn bar_from_row(r: &Row) -> Result<Bar, StoreError> {
    Ok(Bar {
        provider: parse(r.get::<_, &str>(0), "provider")?,
        market: parse(r.get::<_, &str>(1), "market")?,
        symbol: parse(r.get::<_, &str>(2), "symbol")?,
        bar_time: from_ts(r.get(3)),
        open: Price(r.get(4)),
        high: Price(r.get(5)),
        low: Price(r.get(6)),
        close: Price(r.get(7)),
        volume: Qty(r.get(8)),
        coverage_ratio: r.get(9),
        count: r.get::<_, i32>(10) as u32,
        meta: None,
    })
}

fn meta_at(r: &Row, i: usize, with_receive: bool, with_ref: bool) -> RowMeta {
    let mut j = i + 1;
    let receive_time = if with_receive {
        j += 1;
        from_ts(r.get(i + 1))
    } else {
        UtcTime::default()
    };
    RowMeta {
        schema_version: r.get(i),
        receive_time,
        session_id: r.get(j),
        mitigation_level: r.get::<_, i16>(j + 1).clamp(0, 255) as u8,
        quality_flag: quality(r.get(j + 2)),
        raw_ref: if with_ref { r.get(j + 3) } else { None },
    }
}

impl Backend for PgStore {
    fn mode(&self) -> Mode {
        if self.is_timescale() { Mode::Timescale } else { Mode::Native }
    }

    async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        self.migrate_files(migrate::postgres_migrations()).await
    }

    async fn status(&self) -> Result<StatusReport, StoreError> {
        self.status_files(migrate::postgres_migrations()).await
    }

    async fn maintain(&self, from: Date, days: u32) -> Result<u32, StoreError> {
        let c = self.client().await?;
        let n: i32 = c.query_one("SELECT so_ensure_partitions($1, $2)", &[&from, &(days as i32)]).await?.get(0);
        Ok(n as u32)
    }

    async fn apply_retention(
        &self,
        now: UtcTime,
        ticks: Option<Duration>,
        samples: Option<Duration>,
    ) -> Result<u32, StoreError> {
        let c = self.client().await?;
        // Intervals travel as text ('N milliseconds') so no interval codec is needed.
        let iv = |d: Option<Duration>| d.map(|d| format!("{} milliseconds", d.as_millis()));
        let n: i32 = c
            .query_one(
                "SELECT so_apply_retention($1, $2::text::interval, $3::text::interval)",
                &[&ts(now), &iv(ticks), &iv(samples)],
            )
            .await?
            .get(0);
        Ok(n as u32)
    }

    async fn daily_partitions(&self) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT c.relname::text FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname IN ('market_ticks', 'scalp_ticks') AND c.relname ~ '_[0-9]{8}$'
                 ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn refresh_rollups(&self, day: Date) -> Result<(), StoreError> {
        if !self.is_timescale() {
            return Ok(());
        }
        let c = self.client().await?;
        let (lo, hi) = day_range(day);
        // refresh_continuous_aggregate takes "any"-typed bounds, which cannot be bound as
        // parameters; the literals are our own formatted instants.
        for view in ["bars_10m", "bars_1h", "bars_1d"] {
            c.batch_execute(&format!(
                "CALL refresh_continuous_aggregate('{view}', '{lo}'::timestamptz, '{hi}'::timestamptz)"
            ))
            .await?;
        }
        Ok(())
    }

    async fn write_market_ticks(&self, rows: Vec<MarketTickRow>) -> Result<u64, StoreError> {
        self.copy_load(rows).await
    }

    async fn write_scalp_ticks(&self, rows: Vec<ScalpTickRow>) -> Result<u64, StoreError> {
        self.copy_load(rows).await
    }

    async fn write_bars(&self, table: BarTable, rows: Vec<Bar>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let rollup = matches!(table, BarTable::Scalp(i) if i != BarInterval::M1);
        if rollup && self.is_timescale() {
            // Continuous aggregates compute these; see `refresh_rollups`.
            return Ok(0);
        }
        let symbol: Vec<&str> = rows.iter().map(|b| b.symbol.as_str()).collect();
        let bar_time: Vec<jiff::Timestamp> = rows.iter().map(|b| ts(b.bar_time)).collect();
        let provider: Vec<&str> = rows.iter().map(|b| b.provider.as_str()).collect();
        let market: Vec<&str> = rows.iter().map(|b| b.market.as_str()).collect();
        let open: Vec<Decimal> = rows.iter().map(|b| b.open.0).collect();
        let high: Vec<Decimal> = rows.iter().map(|b| b.high.0).collect();
        let low: Vec<Decimal> = rows.iter().map(|b| b.low.0).collect();
        let close: Vec<Decimal> = rows.iter().map(|b| b.close.0).collect();
        let volume: Vec<Decimal> = rows.iter().map(|b| b.volume.0).collect();
        let coverage: Vec<f64> = rows.iter().map(|b| b.coverage_ratio).collect();
        let count: Vec<i32> = rows.iter().map(|b| b.count as i32).collect();
        if rollup {
            let name = match table {
                BarTable::Scalp(i) => i.table(),
                BarTable::Swing10m => "swing_bars_10m",
            };
            let sql = format!(
                "INSERT INTO {name} AS t (symbol, bar_time, provider, market, open, high, low, close, volume,
                    coverage_ratio, minutes)
                 SELECT * FROM unnest($1::varchar[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[],
                    $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::float8[], $11::int4[])
                 ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET market = excluded.market, open = excluded.open,
                    high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume,
                    coverage_ratio = excluded.coverage_ratio, minutes = excluded.minutes
                 WHERE (t.open, t.high, t.low, t.close, t.volume, t.coverage_ratio, t.minutes)
                    IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                        excluded.coverage_ratio, excluded.minutes)"
            );
            return self
                .unnest_exec(
                    &sql,
                    &[&symbol, &bar_time, &provider, &market, &open, &high, &low, &close, &volume, &coverage, &count],
                )
                .await;
        }
        let metas: Vec<BarMeta> = rows
            .iter()
            .map(|b| {
                b.meta.clone().unwrap_or(BarMeta {
                    session_id: String::new(),
                    schema_version: model::SCHEMA_VERSION.into(),
                    mitigation_level: 0,
                    quality_flag: QualityFlag::Normal,
                })
            })
            .collect();
        let session: Vec<&str> = metas.iter().map(|m| m.session_id.as_str()).collect();
        let schema: Vec<&str> = metas.iter().map(|m| m.schema_version.as_str()).collect();
        let mitigation: Vec<i16> = metas.iter().map(|m| m.mitigation_level as i16).collect();
        let flag: Vec<&str> = metas.iter().map(|m| m.quality_flag.as_str()).collect();
        let sql = if table == BarTable::Swing10m {
            "INSERT INTO swing_bars_10m AS t (symbol, bar_time, provider, market, open, high, low, close, volume,
                snapshots, session_id, schema_version, mitigation_level, quality_flag)
             SELECT * FROM unnest($1::varchar[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[],
                $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $11::int4[], $12::varchar[],
                $13::varchar[], $14::int2[], $15::varchar[])
             WHERE $10::float8[] IS NOT NULL
             ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET open = excluded.open, high = excluded.high,
                low = excluded.low, close = excluded.close, volume = excluded.volume, snapshots = excluded.snapshots,
                session_id = excluded.session_id, mitigation_level = excluded.mitigation_level,
                quality_flag = excluded.quality_flag
             WHERE (t.open, t.high, t.low, t.close, t.volume, t.snapshots, t.session_id, t.mitigation_level,
                    t.quality_flag)
                IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                    excluded.snapshots, excluded.session_id, excluded.mitigation_level, excluded.quality_flag)"
        } else {
            "INSERT INTO scalp_1m_bars AS t (symbol, bar_time, provider, market, open, high, low, close, volume,
                coverage_ratio, samples, session_id, schema_version, mitigation_level, quality_flag)
             SELECT * FROM unnest($1::varchar[], $2::timestamptz[], $3::text[], $4::text[], $5::numeric[],
                $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::float8[], $11::int4[],
                $12::varchar[], $13::varchar[], $14::int2[], $15::varchar[])
             ON CONFLICT (symbol, bar_time, provider) DO UPDATE SET open = excluded.open, high = excluded.high,
                low = excluded.low, close = excluded.close, volume = excluded.volume,
                coverage_ratio = excluded.coverage_ratio, samples = excluded.samples,
                session_id = excluded.session_id, mitigation_level = excluded.mitigation_level,
                quality_flag = excluded.quality_flag
             WHERE (t.open, t.high, t.low, t.close, t.volume, t.coverage_ratio, t.samples, t.session_id,
                    t.mitigation_level, t.quality_flag)
                IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                    excluded.coverage_ratio, excluded.samples, excluded.session_id, excluded.mitigation_level,
                    excluded.quality_flag)"
        };
        self.unnest_exec(
            sql,
            &[
                &symbol,
                &bar_time,
                &provider,
                &market,
                &open,
                &high,
                &low,
                &close,
                &volume,
                &coverage,
                &count,
                &session,
                &schema,
                &mitigation,
                &flag,
            ],
        )
        .await
    }

    async fn write_eod(&self, rows: Vec<EodRow>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let symbol: Vec<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
        let date: Vec<Date> = rows.iter().map(|r| r.trade_date).collect();
        let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
        let market: Vec<&str> = rows.iter().map(|r| r.market.as_str()).collect();
        let open: Vec<Decimal> = rows.iter().map(|r| r.open.0).collect();
        let high: Vec<Decimal> = rows.iter().map(|r| r.high.0).collect();
        let low: Vec<Decimal> = rows.iter().map(|r| r.low.0).collect();
        let close: Vec<Decimal> = rows.iter().map(|r| r.close.0).collect();
        let volume: Vec<Decimal> = rows.iter().map(|r| r.volume.0).collect();
        let prev: Vec<Decimal> = rows.iter().map(|r| r.prev_close.0).collect();
        let session: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
        let schema: Vec<&str> = rows.iter().map(|r| r.schema_version.as_str()).collect();
        self.unnest_exec(
            "INSERT INTO eod_prices AS t (symbol, trade_date, provider, market, open, high, low, close, volume,
                prev_close, session_id, schema_version)
             SELECT * FROM unnest($1::varchar[], $2::date[], $3::text[], $4::text[], $5::numeric[], $6::numeric[],
                $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::varchar[], $12::varchar[])
             ON CONFLICT (symbol, trade_date, provider) DO UPDATE SET open = excluded.open, high = excluded.high,
                low = excluded.low, close = excluded.close, volume = excluded.volume, prev_close = excluded.prev_close,
                session_id = excluded.session_id
             WHERE (t.open, t.high, t.low, t.close, t.volume, t.prev_close, t.session_id)
                IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                    excluded.prev_close, excluded.session_id)",
            &[&symbol, &date, &provider, &market, &open, &high, &low, &close, &volume, &prev, &session, &schema],
        )
        .await
    }

    async fn write_universe(&self, rows: Vec<UniverseRow>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let date: Vec<Date> = rows.iter().map(|r| r.trade_date).collect();
        let market: Vec<&str> = rows.iter().map(|r| r.market.as_str()).collect();
        let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
        let symbol: Vec<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
        let name: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let prev: Vec<Decimal> = rows.iter().map(|r| r.prev_close.0).collect();
        let source: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
        self.unnest_exec(
            "INSERT INTO universe (trade_date, market, provider, symbol, name, prev_close, source)
             SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::varchar[], $5::text[], $6::numeric[],
                $7::text[])
             ON CONFLICT DO NOTHING",
            &[&date, &market, &provider, &symbol, &name, &prev, &source],
        )
        .await
    }

    async fn write_gaps(&self, rows: Vec<GapRow>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let file: Vec<&str> = rows.iter().map(|r| r.src.file.as_str()).collect();
        let line: Vec<i64> = rows.iter().map(|r| r.src.line as i64).collect();
        let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
        let start: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.gap_start_ts)).collect();
        let end: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.gap_end_ts)).collect();
        let secs: Vec<i64> = rows.iter().map(|r| r.gap_seconds).collect();
        let scope: Vec<&str> = rows.iter().map(|r| r.scope.as_str()).collect();
        let reason: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
        let detail: Vec<Option<&str>> = rows.iter().map(|r| r.detail.as_deref()).collect();
        let session: Vec<&str> = rows.iter().map(|r| r.meta.session_id.as_str()).collect();
        let schema: Vec<&str> = rows.iter().map(|r| r.meta.schema_version.as_str()).collect();
        let mitigation: Vec<i16> = rows.iter().map(|r| r.meta.mitigation_level as i16).collect();
        let flag: Vec<&str> = rows.iter().map(|r| r.meta.quality_flag.as_str()).collect();
        self.unnest_exec(
            "INSERT INTO scalp_gaps (src_file, src_line, provider, gap_start_ts, gap_end_ts, gap_seconds, scope,
                reason, detail, session_id, schema_version, mitigation_level, quality_flag)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                $6::int8[], $7::varchar[], $8::varchar[], $9::text[], $10::varchar[], $11::varchar[], $12::int2[],
                $13::varchar[])
             ON CONFLICT DO NOTHING",
            &[
                &file,
                &line,
                &provider,
                &start,
                &end,
                &secs,
                &scope,
                &reason,
                &detail,
                &session,
                &schema,
                &mitigation,
                &flag,
            ],
        )
        .await
    }

    async fn write_overflow(&self, rows: Vec<OverflowRow>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let file: Vec<&str> = rows.iter().map(|r| r.src.file.as_str()).collect();
        let line: Vec<i64> = rows.iter().map(|r| r.src.line as i64).collect();
        let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
        let t: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.ts)).collect();
        let symbol: Vec<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
        let score: Vec<f64> = rows.iter().map(|r| r.candidate_score).collect();
        let rank: Vec<i32> = rows.iter().map(|r| r.cutoff_rank as i32).collect();
        let reason: Vec<&str> = rows.iter().map(|r| r.decision_reason.as_str()).collect();
        let session: Vec<&str> = rows.iter().map(|r| r.meta.session_id.as_str()).collect();
        let schema: Vec<&str> = rows.iter().map(|r| r.meta.schema_version.as_str()).collect();
        let mitigation: Vec<i16> = rows.iter().map(|r| r.meta.mitigation_level as i16).collect();
        let flag: Vec<&str> = rows.iter().map(|r| r.meta.quality_flag.as_str()).collect();
        self.unnest_exec(
            "INSERT INTO overflow_entries (src_file, src_line, provider, ts, symbol, candidate_score, cutoff_rank,
                decision_reason, session_id, schema_version, mitigation_level, quality_flag)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[], $5::varchar[],
                $6::float8[], $7::int4[], $8::text[], $9::varchar[], $10::varchar[], $11::int2[], $12::varchar[])
             ON CONFLICT DO NOTHING",
            &[&file, &line, &provider, &t, &symbol, &score, &rank, &reason, &session, &schema, &mitigation, &flag],
        )
        .await
    }

    async fn write_events(&self, rows: Vec<EventRow>) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let file: Vec<&str> = rows.iter().map(|r| r.src.file.as_str()).collect();
        let line: Vec<i64> = rows.iter().map(|r| r.src.line as i64).collect();
        let provider: Vec<&str> = rows.iter().map(|r| r.provider.as_str()).collect();
        let t: Vec<jiff::Timestamp> = rows.iter().map(|r| ts(r.event_time)).collect();
        let kind: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
        let session: Vec<&str> = rows.iter().map(|r| r.meta.session_id.as_str()).collect();
        let schema: Vec<&str> = rows.iter().map(|r| r.meta.schema_version.as_str()).collect();
        let mitigation: Vec<i16> = rows.iter().map(|r| r.meta.mitigation_level as i16).collect();
        let flag: Vec<&str> = rows.iter().map(|r| r.meta.quality_flag.as_str()).collect();
        // JSON goes as text and is cast, which avoids a serde_json feature on postgres-types.
        let body: Vec<String> = rows.iter().map(|r| r.body.to_string()).collect();
        self.unnest_exec(
            "INSERT INTO system_events (src_file, src_line, provider, event_time, event_type, session_id,
                schema_version, mitigation_level, quality_flag, body)
             SELECT f, l, p, t, k, s, v, m, q, b::jsonb FROM unnest($1::text[], $2::int8[], $3::text[],
                $4::timestamptz[], $5::text[], $6::varchar[], $7::varchar[], $8::int2[], $9::varchar[], $10::text[])
                AS u(f, l, p, t, k, s, v, m, q, b)
             ON CONFLICT DO NOTHING",
            &[&file, &line, &provider, &t, &kind, &session, &schema, &mitigation, &flag, &body],
        )
        .await
    }

    async fn count_day(&self, table: Table, day: Date) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let (lo, hi) = day_range(day);
        let (lo, hi) = (ts(lo), ts(hi));
        let day_ms = 86_400_000;
        let (wlo, whi) = (ts(day_range(day).0.plus_millis(-day_ms)), ts(day_range(day).1.plus_millis(day_ms)));
        let row = match table {
            Table::MarketTicks => {
                c.query_one(
                    "SELECT count(*) FROM market_ticks WHERE time >= $1 AND time < $2 AND raw_ref LIKE $3",
                    &[&wlo, &whi, &like_pattern(table, day)],
                )
                .await?
            }
            Table::ScalpTicks => {
                c.query_one("SELECT count(*) FROM scalp_ticks WHERE event_time >= $1 AND event_time < $2", &[&lo, &hi])
                    .await?
            }
            Table::Scalp1mBars | Table::Bars10m | Table::Bars1h | Table::Bars1d | Table::SwingBars10m => {
                c.query_one(
                    &format!("SELECT count(*) FROM {} WHERE bar_time >= $1 AND bar_time < $2", table.name()),
                    &[&lo, &hi],
                )
                .await?
            }
            Table::EodPrices | Table::Universe => {
                c.query_one(&format!("SELECT count(*) FROM {} WHERE trade_date = $1", table.name()), &[&day]).await?
            }
            Table::ScalpGaps | Table::OverflowEntries | Table::SystemEvents => {
                c.query_one(
                    &format!("SELECT count(*) FROM {} WHERE src_file LIKE $1", table.name()),
                    &[&like_pattern(table, day)],
                )
                .await?
            }
        };
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn bars(&self, q: BarQuery) -> Result<Vec<Bar>, StoreError> {
        let c = self.client().await?;
        let count = if q.interval == BarInterval::M1 { "samples" } else { "minutes" };
        let sql = format!(
            "SELECT provider, market, symbol::text, bar_time, open, high, low, close, volume, coverage_ratio, {count}
             FROM {} WHERE symbol = $1 AND bar_time >= $2 AND bar_time < $3 AND ($4::text IS NULL OR provider = $4)
             ORDER BY bar_time, provider",
            q.interval.table()
        );
        let st = c.prepare_cached(&sql).await?;
        let provider = q.provider.map(|p| p.as_str());
        let rows = c.query(&st, &[&q.symbol.as_str(), &ts(q.from), &ts(q.to), &provider]).await?;
        rows.iter().map(bar_from_row).collect()
    }

    async fn latest_price(
        &self,
        symbol: Symbol,
        provider: Option<Provider>,
    ) -> Result<Option<LatestPrice>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "SELECT provider, market, symbol::text, time, price, volume, trade_id FROM latest_prices
                 WHERE symbol = $1 AND ($2::text IS NULL OR provider = $2) ORDER BY time DESC LIMIT 1",
            )
            .await?;
        let provider = provider.map(|p| p.as_str());
        let Some(r) = c.query_opt(&st, &[&symbol.as_str(), &provider]).await? else { return Ok(None) };
        Ok(Some(LatestPrice {
            provider: parse::<Provider>(r.get(0), "provider")?,
            market: parse::<Market>(r.get(1), "market")?,
            symbol: parse(r.get(2), "symbol")?,
            time: from_ts(r.get(3)),
            price: Price(r.get(4)),
            volume: Qty(r.get(5)),
            trade_id: r.get(6),
        }))
    }

    async fn ticks(&self, q: TickQuery) -> Result<Vec<MarketTickRow>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "SELECT provider, market, symbol::text, time, trade_id, price, volume, side, cum_volume, change,
                    schema_version::text, receive_time, session_id::text, mitigation_level, quality_flag::text, raw_ref
                 FROM market_ticks WHERE symbol = $1 AND time >= $2 AND time < $3 AND ($4::text IS NULL OR provider = $4)
                 ORDER BY time, provider, trade_id LIMIT $5",
            )
            .await?;
        let provider = q.provider.map(|p| p.as_str());
        let rows = c.query(&st, &[&q.symbol.as_str(), &ts(q.from), &ts(q.to), &provider, &(q.limit as i64)]).await?;
        rows.iter()
            .map(|r| {
                Ok(MarketTickRow {
                    provider: parse(r.get(0), "provider")?,
                    market: parse(r.get(1), "market")?,
                    symbol: parse(r.get(2), "symbol")?,
                    time: from_ts(r.get(3)),
                    trade_id: r.get(4),
                    price: Price(r.get(5)),
                    volume: Qty(r.get(6)),
                    side: side_from_str(r.get(7)),
                    cum_volume: r.get::<_, Option<Decimal>>(8).map(Qty),
                    change: r.get::<_, Option<Decimal>>(9).map(Price),
                    meta: meta_at(r, 10, true, true),
                })
            })
            .collect()
    }

    async fn gaps(&self, day: Date) -> Result<Vec<GapRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT src_file, src_line, provider, gap_start_ts, gap_end_ts, gap_seconds, scope::text, reason::text,
                    detail, schema_version::text, session_id::text, mitigation_level, quality_flag::text
                 FROM scalp_gaps WHERE src_file LIKE $1 ORDER BY gap_start_ts, src_file, src_line",
                &[&like_pattern(Table::ScalpGaps, day)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GapRow {
                    src: SrcRef { file: r.get(0), line: r.get::<_, i64>(1) as u64 },
                    provider: parse(r.get(2), "provider")?,
                    gap_start_ts: from_ts(r.get(3)),
                    gap_end_ts: from_ts(r.get(4)),
                    gap_seconds: r.get(5),
                    scope: r.get(6),
                    reason: r.get(7),
                    detail: r.get(8),
                    meta: meta_at(r, 9, false, false),
                })
            })
            .collect()
    }

    async fn overflow(&self, day: Date) -> Result<Vec<OverflowRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT src_file, src_line, provider, ts, symbol::text, candidate_score, cutoff_rank, decision_reason,
                    schema_version::text, session_id::text, mitigation_level, quality_flag::text
                 FROM overflow_entries WHERE src_file LIKE $1 ORDER BY ts, src_file, src_line",
                &[&like_pattern(Table::OverflowEntries, day)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OverflowRow {
                    src: SrcRef { file: r.get(0), line: r.get::<_, i64>(1) as u64 },
                    provider: parse(r.get(2), "provider")?,
                    ts: from_ts(r.get(3)),
                    symbol: r.get(4),
                    candidate_score: r.get(5),
                    cutoff_rank: r.get::<_, i32>(6) as u32,
                    decision_reason: r.get(7),
                    meta: meta_at(r, 8, false, false),
                })
            })
            .collect()
    }

    async fn events(&self, day: Date) -> Result<Vec<EventRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT src_file, src_line, provider, event_time, event_type, body::text,
                    schema_version::text, session_id::text, mitigation_level, quality_flag::text
                 FROM system_events WHERE src_file LIKE $1 ORDER BY event_time, src_file, src_line",
                &[&like_pattern(Table::SystemEvents, day)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let body: &str = r.get(5);
                Ok(EventRow {
                    src: SrcRef { file: r.get(0), line: r.get::<_, i64>(1) as u64 },
                    provider: parse(r.get(2), "provider")?,
                    event_time: from_ts(r.get(3)),
                    event_type: r.get(4),
                    body: serde_json::from_str(body)
                        .map_err(|e| StoreError::Decode { column: "body", why: e.to_string() })?,
                    meta: meta_at(r, 6, false, false),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(symbol: &str, provider: Provider, ms: i64, trade_id: &str) -> MarketTickRow {
        let time = UtcTime::from_millis(1_768_348_800_000 + ms);
        MarketTickRow {
            provider,
            market: Market::KrStocks,
            symbol: Symbol::new(symbol).unwrap(),
            time,
            trade_id: trade_id.into(),
            price: Price::from_int(70_000 + ms),
            volume: Qty::from_int(1),
            side: None,
            cum_volume: None,
            change: None,
            meta: RowMeta {
                schema_version: model::SCHEMA_VERSION.into(),
                receive_time: time,
                session_id: "s".into(),
                mitigation_level: 0,
                quality_flag: QualityFlag::Normal,
                raw_ref: None,
            },
        }
    }

    #[test]
    fn parts_hold_whole_symbols_in_key_order_and_every_row_once() {
        // 5 symbols interleaved as a feed delivers them, one of them three times as busy.
        let mut rows = Vec::new();
        for t in 0..60 {
            for s in ["000660", "005930", "035420", "000270", "051910"] {
                if s == "005930" || t % 3 == 0 {
                    rows.push(row(s, Provider::Sim, t, &t.to_string()));
                }
            }
        }
        for parts in [1, 2, 3, 8] {
            let plan = plan_parts(&rows, parts);
            assert!(!plan.is_empty() && plan.len() <= parts);
            let mut seen: Vec<u32> = plan.iter().flatten().copied().collect();
            seen.sort();
            assert_eq!(seen, (0..rows.len() as u32).collect::<Vec<_>>(), "{parts} part(s)");
            let symbols: Vec<Vec<&str>> = plan
                .iter()
                .map(|p| {
                    let mut s: Vec<&str> = p.iter().map(|&i| rows[i as usize].symbol.as_str()).collect();
                    s.dedup();
                    s
                })
                .collect();
            let flat: Vec<&str> = symbols.iter().flatten().copied().collect();
            assert_eq!(flat, ["000270", "000660", "005930", "035420", "051910"], "{parts} part(s): {symbols:?}");
            // A feed keeps each symbol in time order, so every part is already in key order.
            for p in &plan {
                assert!(p.is_sorted_by(|a, b| MarketTickRow::key_cmp(&rows[*a as usize], &rows[*b as usize]).is_le()));
            }
        }
        // Two parts of whole symbols: the busy one and its predecessors, then the rest.
        let two = plan_parts(&rows, 2);
        assert_eq!(two.iter().map(Vec::len).collect::<Vec<_>>(), [100, 40]);
    }

    #[test]
    fn newest_row_per_symbol_and_provider_from_key_order() {
        let rows = [
            row("000660", Provider::Sim, 5, "9"),
            row("005930", Provider::Kis, 1, "1"),
            row("005930", Provider::Sim, 1, "2"),
            row("005930", Provider::Kis, 2, "3"),
            row("005930", Provider::Kis, 2, "4"),
            row("005930", Provider::Sim, 3, "5"),
        ];
        let refs: Vec<&MarketTickRow> = rows.iter().collect();
        let got: Vec<(&str, &str, &str)> = newest_per_symbol_and_provider(&refs)
            .iter()
            .map(|r| (r.symbol.as_str(), r.provider.as_str(), r.trade_id.as_str()))
            .collect();
        assert_eq!(got, [("000660", "sim", "9"), ("005930", "kis", "4"), ("005930", "sim", "5")]);
        // The same choice the SQLite path makes from unordered rows.
        let mut theirs: Vec<(&str, &str, &str)> = crate::backend::shared::latest_of(&rows)
            .iter()
            .map(|r| (r.symbol.as_str(), r.provider.as_str(), r.trade_id.as_str()))
            .collect();
        theirs.sort();
        assert_eq!(got, theirs);
    }
}

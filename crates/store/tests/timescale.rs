//! TimescaleDB mode against the real extension (`so_store::testing::TimescaleServer`: the
//! timescaledb extension in PGlite's WASM PostgreSQL, on loopback): migration 003 applies
//! and is recorded as the mode, the tables are hypertables with the seed's chunk intervals
//! and compression, the rollups are continuous aggregates with refresh policies, retention
//! drops the chunks of held days only (no background policy), and the bars the store serves
//! from them equal bars computed here from the same samples, before and after the chunks are
//! compressed.
//! The tick tables' binary COPY cannot pass through that server (see `TimescaleServer`); it
//! is tested on PostgreSQL in copy.rs, etl.rs and sink.rs.

mod common;

use std::path::Path;

use model::settings::Interval;
use model::{Day, Market, Provider, Symbol, UtcTime};
use so_store::testing::TimescaleServer;
use so_store::testing::fixture::{DaySpec, write_day};
use so_store::{Backend, Bar, BarInterval, BarTable, Store, StoreConfig};

const DATE: &str = "20260114";

#[tokio::test]
async fn timescale_mode_hypertables_aggregates_policies_and_bars() {
    let server = match TimescaleServer::start() {
        Ok(s) => s,
        Err(e) => panic!("TimescaleDB test server did not start: {e}"),
    };
    // PGlite asks for a password and accepts any; the store takes it from the environment.
    // SAFETY: this binary's only test sets it before the store reads it; nothing else runs.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("STOCK_OBSERVER__STORE__PASSWORD", "postgres")
    };
    // The server has one backend session for all connections: use one.
    let cfg = StoreConfig { url: Some(server.url()), pool_size: 1, copy_connections: 1, ..StoreConfig::default() };
    let store = Store::open(&cfg, Path::new("/nonexistent")).await.unwrap();
    let Store::Postgres(p) = &store else { unreachable!() };

    let first = store.migrate().await.unwrap();
    assert_eq!(first.mode, "timescale");
    assert_eq!(first.applied, vec!["001_core", "003_timescale", "004_staging", "006_alerts"]);
    assert_eq!(first.skipped, vec!["002_native_partitions", "005_identifier_collation"]);
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty() && again.skipped.is_empty(), "{again:?}");
    let st = store.status().await.unwrap();
    assert_eq!((st.mode.as_str(), st.pending()), ("timescale", 0));
    assert_eq!(store.mode().as_str(), "timescale");

    // Seed 004: 1 h chunks for ticks, 1 day for samples and minute bars; compression by symbol.
    let chunk_secs = |table: &str| {
        format!(
            "SELECT extract(epoch FROM time_interval)::bigint FROM timescaledb_information.dimensions \
             WHERE hypertable_name = '{table}'"
        )
    };
    assert_eq!(p.scalar_i64(&chunk_secs("market_ticks")).await.unwrap(), 3_600);
    assert_eq!(p.scalar_i64(&chunk_secs("scalp_ticks")).await.unwrap(), 86_400);
    assert_eq!(p.scalar_i64(&chunk_secs("scalp_1m_bars")).await.unwrap(), 86_400);
    assert_eq!(
        p.scalar_i64("SELECT count(*) FROM timescaledb_information.hypertables WHERE compression_enabled")
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM timescaledb_information.compression_settings \
           WHERE hypertable_name = 'market_ticks' AND segmentby_column_index IS NOT NULL \
           AND attname IN ('symbol', 'provider')"
        )
        .await
        .unwrap(),
        2
    );
    let jobs = |proc: &str| {
        format!("SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = '{proc}' AND scheduled")
    };
    assert_eq!(p.scalar_i64(&jobs("policy_compression")).await.unwrap(), 3);
    assert_eq!(p.scalar_i64(&jobs("policy_refresh_continuous_aggregate")).await.unwrap(), 3);
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates \
           WHERE view_name IN ('bars_10m', 'bars_1h', 'bars_1d')"
        )
        .await
        .unwrap(),
        3
    );

    // Chunks are TimescaleDB's business: maintenance has no partitions to make.
    let day = so_store::parse_day(DATE).unwrap();
    assert_eq!(store.maintain(day, 3).await.unwrap(), 0);

    // Retention is backup-first: no background policy (one left by an earlier binary goes),
    // and maintenance drops chunks itself, up to the oldest day that is not held.
    p.scalar_i64("SELECT add_retention_policy('market_ticks', INTERVAL '30 days')::bigint").await.unwrap();
    let insert = |day: &str| {
        let at = common::day_bounds(day).0.plus_millis(10 * 3_600_000);
        format!(
            "WITH ins AS (INSERT INTO market_ticks (symbol, time, provider, trade_id, market, price, volume, \
             schema_version, receive_time, session_id, mitigation_level, quality_flag) VALUES ('005930', '{at}', \
             'sim', '{day}', 'kr_stocks', 70000, 1, '1.0', '{at}', 'sess', 0, 'normal') RETURNING 1) \
             SELECT count(*) FROM ins"
        )
    };
    for day in ["20260105", "20260106", "20260107"] {
        assert_eq!(p.scalar_i64(&insert(day)).await.unwrap(), 1);
    }
    let retained = StoreConfig { ticks_retention: Some(Interval::from_millis(10 * 86_400_000)), ..cfg.clone() };
    let not_6th = |d: Day| d.to_string() != "20260106";
    let noon_20th = common::day_bounds("20260120").0.plus_millis(12 * 3_600_000);
    let r = so_store::maintain(&store, &retained, noon_20th, &not_6th).await.unwrap();
    assert_eq!(r.retention_removed, 1, "the 5th's chunk: {r:?}");
    let kept: Vec<&str> = r.retention_kept.iter().map(|k| k.day.as_str()).collect();
    assert_eq!(kept, ["20260106", "20260107"]);
    assert_eq!(p.scalar_i64("SELECT count(*) FROM market_ticks").await.unwrap(), 2);
    assert_eq!(p.scalar_i64(&jobs("policy_retention")).await.unwrap(), 0);
    let r = so_store::maintain(&store, &retained, noon_20th, &|_| true).await.unwrap();
    assert_eq!((r.retention_removed, r.retention_kept.len()), (2, 0), "{r:?}");
    assert_eq!(p.scalar_i64("SELECT count(*) FROM market_ticks").await.unwrap(), 0);

    // Minute bars in, rollups out of the continuous aggregates.
    let dir = tempfile::tempdir().unwrap();
    let sum = write_day(dir.path(), &DaySpec::small(DATE)).unwrap();
    let bars: Vec<Bar> = common::expected_1m(&sum)
        .into_iter()
        .map(|((symbol, minute), (open, high, low, close, volume, coverage_ratio, count))| Bar {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: Symbol::new(&symbol).unwrap(),
            bar_time: UtcTime::from_millis(minute * 60_000),
            open,
            high,
            low,
            close,
            volume,
            coverage_ratio,
            count,
            meta: None,
        })
        .collect();
    let n = bars.len() as u64;
    assert_eq!(store.write_bars(BarTable::Scalp(BarInterval::M1), bars.clone()).await.unwrap(), n);
    assert_eq!(store.write_bars(BarTable::Scalp(BarInterval::M1), bars).await.unwrap(), 0, "a re-write is a no-op");
    store.refresh_rollups(day).await.unwrap();
    common::check_bars(&store, &sum, DATE).await;

    // Nothing is compressed yet: no ratio is claimed.
    let before = store.storage().await.unwrap();
    let c = before.compression.clone().unwrap();
    assert_eq!((c.compressed_chunks, c.ratio), (0, None), "{c:?}");
    assert!(c.chunks >= 1, "{c:?}");
    assert!(before.relations.iter().any(|r| r.parent.as_deref() == Some("scalp_1m_bars") && r.bytes > 0), "{before:?}");
    assert_eq!(before.total_bytes, before.relations.iter().map(|r| r.bytes).sum::<u64>());

    // Compressed chunks (what /api/v1/admin/compress asks for) answer the same.
    let far = common::day_bounds("20991231").0;
    let compressed = store.compress(far).await.unwrap().unwrap();
    assert!(compressed >= 1, "{compressed}");
    assert_eq!(store.compress(far).await.unwrap(), Some(0), "a compressed chunk is not compressed again");
    let after = store.storage().await.unwrap();
    let c = after.compression.clone().unwrap();
    assert_eq!(c.compressed_chunks, compressed, "{c:?}");
    assert!(c.before_bytes > 0 && c.after_bytes > 0, "{c:?}");
    assert_eq!(c.ratio, Some(c.before_bytes as f64 / c.after_bytes as f64));
    let chunks: Vec<_> = after.relations.iter().filter(|r| r.parent.as_deref() == Some("scalp_1m_bars")).collect();
    assert!(!chunks.is_empty() && chunks.iter().all(|r| r.compressed), "{chunks:?}");
    assert_eq!(
        p.scalar_i64(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'scalp_1m_bars' \
           AND NOT is_compressed"
        )
        .await
        .unwrap(),
        0
    );
    store.refresh_rollups(day).await.unwrap();
    common::check_bars(&store, &sum, DATE).await;
}

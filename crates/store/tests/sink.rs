//! The live sink while the database goes away: recording (the caller) never waits, the sink
//! counts and reports what it could not write, and `etl` afterwards makes the database match
//! the archive.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use model::{Market, MarketEvent, Meta, Price, Provider, Qty, Record, SessionId, Side, Symbol, Tick, UtcTime};
use so_store::testing::fixture::{DaySpec, write_day};
use so_store::{Backend, EtlOptions, LiveSink, LiveSinkConfig, Table, run_etl};

fn tick_record(t: &so_store::testing::fixture::Trade, day: &str) -> Record<MarketEvent> {
    let mut meta = Meta::new(t.time, t.time.plus_millis(2), SessionId::starting_at(t.time));
    meta.raw_ref = Some(format!("raw/sim/{day}/{:02}.jsonl#0", t.time.kst().hour()));
    Record {
        body: MarketEvent::Tick(Tick {
            provider: Provider::Sim,
            market: Market::KrStocks,
            symbol: Symbol::new(&t.symbol).unwrap(),
            price: t.price,
            size: t.size,
            side: Some(Side::Buy),
            cum_volume: None,
            trade_id: Some(t.seq.to_string()),
        }),
        meta,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_during_live_sink_then_etl_fills_the_hole() {
    let archive = tempfile::tempdir().unwrap();
    let sum = write_day(archive.path(), &DaySpec::small("20260114")).unwrap();
    let server = common::pg();
    let store = Arc::new(common::open_pg(&server, "sink").await);
    store.migrate().await.unwrap();
    store.maintain(so_store::parse_day("20260114").unwrap(), 1).await.unwrap();

    let cfg = LiveSinkConfig {
        enabled: true,
        queue_rows: 100_000,
        flush_interval: "50ms".parse().unwrap(),
        retry_after: "200ms".parse().unwrap(),
    };
    let sink = LiveSink::spawn(store.clone(), &cfg, 200);
    let third = sum.trades.len() / 3;

    // Up: the first third goes in live.
    for t in &sum.trades[..third] {
        assert!(sink.offer_event(&tick_record(t, "20260114")));
    }
    let stats = sink.stats();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.snapshot().rows_stored < third as u64 {
        assert!(Instant::now() < deadline, "live rows not stored: {:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Down: offering never waits, the sink reports errors.
    server.stop().unwrap();
    let started = Instant::now();
    for t in &sum.trades[third..2 * third] {
        sink.offer_event(&tick_record(t, "20260114"));
    }
    assert!(started.elapsed() < Duration::from_millis(500), "offer blocked: {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.snapshot().write_errors == 0
        || stats.snapshot().rows_failed + stats.snapshot().rows_stored < 2 * third as u64
    {
        assert!(Instant::now() < deadline, "no error reported while the database was down: {:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snap = stats.snapshot();
    assert!(snap.rows_failed > 0 && snap.last_error.is_some(), "{snap:?}");

    // Back up: the sink recovers by itself for new rows.
    server.restart().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for t in &sum.trades[2 * third..] {
        sink.offer_event(&tick_record(t, "20260114"));
    }
    let end = sink.close().await;
    assert_eq!(end.offered, sum.trades.len() as u64);
    assert_eq!(end.dropped_queue_full, 0);
    assert!(end.rows_stored >= (sum.trades.len() - third) as u64 - end.rows_failed, "{end:?}");

    let before = store.count_day(Table::MarketTicks, so_store::parse_day("20260114").unwrap()).await.unwrap();
    assert!(before < sum.trades.len() as u64, "the outage left a hole ({before})");

    // ETL fills the hole: the database matches the archive.
    let opts = EtlOptions { date: "20260114".into(), batch_rows: 1000, progress: false };
    let report = run_etl(&*store, archive.path(), &opts).await.unwrap();
    assert!(report.ok, "{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report.table(Table::MarketTicks).unwrap().in_db, sum.trades.len() as u64);
    let again = run_etl(&*store, archive.path(), &opts).await.unwrap();
    assert!(again.tables.iter().all(|t| t.written == 0));
}

#[tokio::test]
async fn full_queue_drops_and_counts_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open_sqlite(dir.path()).await);
    store.migrate().await.unwrap();
    let cfg = LiveSinkConfig { queue_rows: 10, ..LiveSinkConfig::default() };
    let sink = LiveSink::spawn(store.clone(), &cfg, 1_000);
    let t0 = UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap();
    let mut accepted = 0;
    for i in 0..1_000u64 {
        let t = so_store::testing::fixture::Trade {
            symbol: "005930".into(),
            time: t0.plus_millis(i as i64),
            seq: i,
            price: Price::from_int(70_000),
            size: Qty::from_int(1),
        };
        accepted += sink.offer_event(&tick_record(&t, "20260114")) as u64;
    }
    let end = sink.close().await;
    assert_eq!(end.offered, 1_000);
    assert_eq!(end.dropped_queue_full, 1_000 - accepted);
    assert!(end.dropped_queue_full > 0);
    assert_eq!(end.rows_stored, accepted);
}

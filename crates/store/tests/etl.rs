//! ETL on both backends: counts reconcile, a re-run changes nothing, bars equal bars computed
//! here from the same samples, and the API queries answer from what was loaded.

mod common;

use std::path::Path;

use model::{Price, Provider, Symbol};
use so_store::testing::fixture::{DaySpec, DaySummary, write_day};
use so_store::{Backend, EtlOptions, Store, Table, TickQuery, run_etl};

const DATE: &str = "20260114";

async fn etl_round(store: &Store, root: &Path, sum: &DaySummary) {
    store.migrate().await.unwrap();
    let opts = EtlOptions { date: DATE.into(), batch_rows: 500, progress: false };
    let first = run_etl(store, root, &opts).await.unwrap();
    assert!(first.ok, "{}", serde_json::to_string_pretty(&first).unwrap());
    let t = |t: Table| first.table(t).unwrap().clone();
    assert_eq!(t(Table::MarketTicks).expected, sum.trades.len() as u64);
    assert_eq!(t(Table::MarketTicks).in_db, sum.trades.len() as u64);
    // The repeated frame was read but stored once.
    assert_eq!(t(Table::MarketTicks).source_lines, sum.trades.len() as u64 + 1);
    assert_eq!(first.malformed_frames, 1);
    assert_eq!(t(Table::ScalpTicks).in_db, sum.samples.len() as u64);
    assert_eq!(t(Table::ScalpGaps).in_db, sum.gaps as u64);
    assert_eq!(t(Table::SystemEvents).in_db, sum.events as u64);
    assert_eq!(t(Table::OverflowEntries).in_db, sum.overflow as u64);
    assert_eq!(t(Table::Universe).in_db, sum.universe as u64);
    assert_eq!(t(Table::EodPrices).in_db, 3);
    assert_eq!(t(Table::Bars1d).in_db, 3);
    assert_eq!(t(Table::SwingBars10m).in_db, sum.snapshots as u64);
    assert_eq!(t(Table::Scalp1mBars).in_db, common::expected_1m(sum).len() as u64);
    let report_event = first.to_event_body();
    assert_eq!(report_event["event_type"], "etl_reconcile");

    // Re-run: nothing written, everything still reconciles.
    let second = run_etl(store, root, &opts).await.unwrap();
    assert!(second.ok);
    for r in &second.tables {
        assert_eq!(r.written, 0, "re-run wrote to {:?}", r.table);
        assert_eq!(r.in_db, first.table(r.table).unwrap().in_db);
    }

    common::check_bars(store, sum, DATE).await;

    // Queries.
    let s = Symbol::new("005930").unwrap();
    let last = sum.trades.iter().filter(|t| t.symbol == "005930").max_by_key(|t| (t.time, t.seq)).unwrap();
    let lp = store.latest_price(s.clone(), None).await.unwrap().unwrap();
    assert_eq!((lp.price, lp.time, lp.provider), (last.price, last.time, Provider::Sim));
    assert_eq!(lp.trade_id, last.seq.to_string());
    assert!(store.latest_price(Symbol::new("999999").unwrap(), None).await.unwrap().is_none());
    let (lo, hi) = common::day_bounds(DATE);
    let ticks = store
        .ticks(TickQuery { symbol: s.clone(), provider: None, from: lo, to: hi, limit: 100_000, after: None })
        .await
        .unwrap();
    let mut mine: Vec<_> = sum.trades.iter().filter(|t| t.symbol == "005930").collect();
    mine.sort_by_key(|t| (t.time, t.seq.to_string()));
    assert_eq!(ticks.len(), mine.len());
    for (a, b) in ticks.iter().zip(&mine) {
        assert_eq!((a.time, a.price, a.volume), (b.time, b.price, b.size));
        assert!(a.meta.raw_ref.as_deref().is_some_and(|r| r.starts_with("raw/sim/20260114/")));
    }
    let limited = store
        .ticks(TickQuery { symbol: s.clone(), provider: None, from: lo, to: hi, limit: 5, after: None })
        .await
        .unwrap();
    assert_eq!(limited.len(), 5);
    let day = so_store::parse_day(DATE).unwrap();
    let gaps = store.gaps(day).await.unwrap();
    assert_eq!(gaps.len(), 2);
    assert_eq!(gaps[0].gap_seconds, 30);
    assert_eq!(gaps[0].reason, "ws_disconnect");
    assert_eq!(store.overflow(day).await.unwrap().len(), sum.overflow);
    let events = store.events(day).await.unwrap();
    assert_eq!(events.len(), sum.events);
    assert!(events.iter().any(|e| e.event_type == "reconnection_event" && e.body["attempt_no"] == 2));
    assert!(store.gaps(so_store::parse_day("20260115").unwrap()).await.unwrap().is_empty());

    // Exact decimals survive: a price with many digits round-trips unchanged.
    let precise: Price = "168512345678.12345".parse().unwrap();
    let mut row = ticks[0].clone();
    row.trade_id = "precise".into();
    row.time = hi.plus_millis(-1);
    row.price = precise;
    assert_eq!(store.write_market_ticks(vec![row.clone(), row.clone()]).await.unwrap(), 1, "duplicate in batch");
    assert_eq!(store.write_market_ticks(vec![row.clone()]).await.unwrap(), 0, "repeat is a no-op");
    let lp = store.latest_price(s, Some(Provider::Sim)).await.unwrap().unwrap();
    assert_eq!(lp.price.to_string(), "168512345678.12345");
}

#[tokio::test]
async fn sqlite_etl_reconciles_is_idempotent_and_bars_match() {
    let archive = tempfile::tempdir().unwrap();
    let sum = write_day(archive.path(), &DaySpec::small(DATE)).unwrap();
    let store = common::open_sqlite(archive.path()).await;
    etl_round(&store, archive.path(), &sum).await;
    assert!(archive.path().join("observer.db").exists());
}

#[tokio::test]
async fn postgres_etl_reconciles_is_idempotent_and_bars_match() {
    let archive = tempfile::tempdir().unwrap();
    let sum = write_day(archive.path(), &DaySpec::small(DATE)).unwrap();
    let server = common::pg();
    let store = common::open_pg(&server, "etl").await;
    etl_round(&store, archive.path(), &sum).await;
    let Store::Postgres(p) = &store else { unreachable!() };
    // Native partitions: the day's rows sit in the day's partition, none in the default.
    let in_day = p.scalar_i64("SELECT count(*) FROM market_ticks_20260114").await.unwrap();
    assert_eq!(in_day as usize, sum.trades.len() + 1);
    let stray = p.scalar_i64("SELECT count(*) FROM market_ticks_default").await.unwrap();
    assert_eq!(stray, 0);
}

/// A day whose closed files are compressed at rest loads exactly like the plain day (the
/// same assertions as above), and the reconciliation event is still appended to its events
/// file, which the writer restores to plain form first.
#[tokio::test]
async fn sqlite_etl_of_a_compressed_day_loads_the_same() {
    let archive = tempfile::tempdir().unwrap();
    let root = archive.path();
    let sum = write_day(root, &DaySpec::small(DATE)).unwrap();
    // The fixture writes no manifest: a collector start lists its files as closed.
    let cfg = archive::ArchiveConfig::default();
    let (_, day_end) = common::day_bounds(DATE);
    let session = model::SessionId::starting_at(day_end);
    let (writer, recovered) = archive::ArchiveWriter::open(root, &cfg, day_end, &session).unwrap();
    writer.close_all(day_end).unwrap();
    let compressed = archive::compress_day(root, DATE.parse().unwrap(), 3).unwrap();
    assert_eq!(compressed.compressed as usize, recovered.closed.len());
    assert!(recovered.closed.iter().any(|f| f.starts_with("raw/")) && recovered.closed.len() >= 4);
    assert!(!root.join(format!("system/events/sim/{DATE}.jsonl")).exists());

    let store = common::open_sqlite(root).await;
    etl_round(&store, root, &sum).await;

    let opts = EtlOptions { date: DATE.into(), batch_rows: 500, progress: false };
    let report = run_etl(&store, root, &opts).await.unwrap();
    so_store::etl::record_reconcile(root, &cfg, &report, day_end.plus_millis(86_400_000)).unwrap();
    assert_eq!(reconcile_events(root).len(), 1);
    let verified = archive::verify(root, None).unwrap();
    assert!(verified.ok(), "{:?}", verified.problems);
}

#[tokio::test]
async fn etl_refuses_an_unmigrated_database() {
    let archive = tempfile::tempdir().unwrap();
    let store = common::open_sqlite(archive.path()).await;
    let opts = EtlOptions { date: DATE.into(), batch_rows: 10, progress: false };
    let err = run_etl(&store, archive.path(), &opts).await.unwrap_err();
    assert!(err.to_string().contains("db migrate"), "{err}");
}

#[tokio::test]
async fn etl_of_a_day_the_archive_does_not_have_fails_and_names_the_days_it_has() {
    let archive = tempfile::tempdir().unwrap();
    let root = archive.path();
    write_day(root, &DaySpec::small(DATE)).unwrap();
    std::fs::create_dir_all(root.join("manifests")).unwrap();
    std::fs::write(root.join(format!("manifests/{DATE}.json")), "{}").unwrap();
    let store = common::open_sqlite(root).await;
    store.migrate().await.unwrap();
    // A typo'd date: one day off.
    let opts = EtlOptions { date: "20260115".into(), batch_rows: 10, progress: false };
    let err = run_etl(&store, root, &opts).await.unwrap_err().to_string();
    assert!(err.contains("no files for 20260115") && err.contains(&format!("days with a manifest: {DATE}")), "{err}");
    // The day that is there still loads.
    let opts = EtlOptions { date: DATE.into(), batch_rows: 500, progress: false };
    assert!(run_etl(&store, root, &opts).await.unwrap().ok);
}

/// The `etl_reconcile` lines of the day's event files.
fn reconcile_events(root: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root.join(format!("system/events/sim/{DATE}.jsonl"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event_type"] == "etl_reconcile")
        .collect()
}

#[tokio::test]
async fn etl_reconcile_is_recorded_in_the_days_events_and_verify_passes() {
    let archive = tempfile::tempdir().unwrap();
    let root = archive.path();
    write_day(root, &DaySpec::small(DATE)).unwrap();
    let store = common::open_sqlite(root).await;
    store.migrate().await.unwrap();
    let cfg = archive::ArchiveConfig::default();
    let opts = EtlOptions { date: DATE.into(), batch_rows: 500, progress: false };
    // Written a day later: the event still goes to its own day's file, stamped inside it.
    let (_, day_end) = common::day_bounds(DATE);
    let now = day_end.plus_millis(86_400_000);

    let first = run_etl(&store, root, &opts).await.unwrap();
    assert!(first.ok);
    assert_eq!(first.providers, vec![Provider::Sim]);
    let file = so_store::etl::record_reconcile(root, &cfg, &first, now).unwrap();
    assert_eq!(file, format!("system/events/sim/{DATE}.jsonl"));
    let events = reconcile_events(root);
    assert_eq!(events.len(), 1);
    let ev: model::Record<model::SystemEvent> = serde_json::from_value(events[0].clone()).unwrap();
    assert_eq!(ev.meta.event_time, day_end.plus_millis(-1));
    assert_eq!(ev.meta.receive_time, now);
    let model::SystemEvent::EtlReconcile { date, ok, tables, mode, .. } = ev.body else { panic!("{:?}", ev.body) };
    assert_eq!((date.as_str(), ok, mode.as_str()), (DATE, true, "sqlite"));
    let ticks = tables.as_array().unwrap().iter().find(|t| t["table"] == "market_ticks").unwrap();
    assert_eq!(ticks["in_db"], first.table(Table::MarketTicks).unwrap().in_db);
    let verified = archive::verify(root, None).unwrap();
    assert!(verified.ok(), "{:?}", verified.problems);

    // A re-run loads the recorded event like any other line, still reconciles, and records
    // a second event; the closed file and its manifest still agree.
    let second = run_etl(&store, root, &opts).await.unwrap();
    assert!(second.ok);
    let events_row = second.table(Table::SystemEvents).unwrap();
    assert_eq!(events_row.in_db, first.table(Table::SystemEvents).unwrap().in_db + 1);
    assert_eq!(events_row.written, 1);
    so_store::etl::record_reconcile(root, &cfg, &second, now).unwrap();
    assert_eq!(reconcile_events(root).len(), 2);
    let verified = archive::verify(root, None).unwrap();
    assert!(verified.ok(), "{:?}", verified.problems);

    // Not while a recording session holds the archive.
    std::fs::write(root.join(".session"), "{}").unwrap();
    let err = so_store::etl::record_reconcile(root, &cfg, &second, now).unwrap_err();
    assert!(err.to_string().contains("recording session"), "{err}");
    assert_eq!(reconcile_events(root).len(), 2);
}

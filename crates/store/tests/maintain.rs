//! The maintenance job on both backends: PostgreSQL gets daily partitions ahead and drops
//! whole days past retention; SQLite deletes the rows of those days. Either way retention is
//! backup-first: a day that is not held, and every newer day, stays.

mod common;

use std::path::Path;

use model::settings::Interval;
use model::{Day, Market, Price, Provider, Qty, QualityFlag, Symbol, UtcTime};
use so_store::{Backend, MarketTickRow, RowMeta, ScalpTickRow, Store, StoreConfig, Table, maintain, parse_day};

fn tick(day: &str, i: i64) -> MarketTickRow {
    let time = common::day_bounds(day).0.plus_millis(10 * 3_600_000 + i);
    MarketTickRow {
        provider: Provider::Sim,
        market: Market::KrStocks,
        symbol: Symbol::new("005930").unwrap(),
        time,
        trade_id: i.to_string(),
        price: Price::from_int(70_000),
        volume: Qty::from_int(1),
        side: None,
        cum_volume: None,
        change: None,
        meta: RowMeta {
            schema_version: model::SCHEMA_VERSION.into(),
            receive_time: time,
            session_id: "sess".into(),
            mitigation_level: 0,
            quality_flag: QualityFlag::Normal,
            raw_ref: Some(format!("raw/sim/{day}/10.jsonl#{i}")),
        },
    }
}

fn sample(day: &str, i: i64) -> ScalpTickRow {
    let t = tick(day, i);
    ScalpTickRow {
        provider: t.provider,
        market: t.market,
        symbol: t.symbol,
        event_time: t.time,
        bid_price: None,
        ask_price: None,
        bid_size: None,
        ask_size: None,
        last_price: Some(t.price),
        volume: None,
        data_age_ms: None,
        sample_interval_ms: 500,
        meta: t.meta,
    }
}

/// Seoul noon of `day`.
fn noon(day: &str) -> UtcTime {
    common::day_bounds(day).0.plus_millis(12 * 3_600_000)
}

/// Every day is in a verified backup (or the archive).
fn all_held(_: Day) -> bool {
    true
}

fn retention(ticks_days: u64) -> StoreConfig {
    StoreConfig {
        partitions_ahead_days: 3,
        ticks_retention: Some(Interval::from_millis(ticks_days * 86_400_000)),
        samples_retention: None,
        ..StoreConfig::default()
    }
}

#[tokio::test]
async fn postgres_maintenance_creates_partitions_ahead_and_drops_expired_days() {
    let server = common::pg();
    let url = server.create_db("maint").unwrap();
    let cfg = StoreConfig { url: Some(url), ..retention(5) };
    let store = Store::open(&cfg, Path::new("/nonexistent")).await.unwrap();
    let err = maintain(&store, &cfg, noon("20260114"), &all_held).await.unwrap_err();
    assert!(err.to_string().contains("db migrate"), "{err}");
    store.migrate().await.unwrap();

    let first = maintain(&store, &cfg, noon("20260114"), &all_held).await.unwrap();
    // Today and 3 days ahead, for market_ticks and scalp_ticks.
    assert_eq!(first.partitions_created, 8);
    assert_eq!(first.retention_removed, 0);
    assert_eq!(first.partitions.len(), 8);
    assert!(first.partitions.contains(&"market_ticks_20260117".to_string()));
    assert!(!first.partitions.contains(&"market_ticks_20260118".to_string()));
    let again = maintain(&store, &cfg, noon("20260114"), &all_held).await.unwrap();
    assert_eq!((again.partitions_created, again.retention_removed), (0, 0), "a repeated run changes nothing");

    store.write_market_ticks((0..10).map(|i| tick("20260114", i)).collect()).await.unwrap();
    store.write_market_ticks((0..10).map(|i| tick("20260115", i)).collect()).await.unwrap();
    store.write_scalp_ticks((0..10).map(|i| sample("20260114", i)).collect()).await.unwrap();

    // Five days after the 15th ends, the 14th and 15th are past a 5-day tick retention; the
    // 16th is not yet. Samples have no retention and stay.
    let later = maintain(&store, &cfg, noon("20260121"), &all_held).await.unwrap();
    assert_eq!(later.retention_removed, 2, "{later:?}");
    assert!(!later.partitions.contains(&"market_ticks_20260115".to_string()));
    assert!(later.partitions.contains(&"market_ticks_20260116".to_string()));
    assert!(later.partitions.contains(&"scalp_ticks_20260114".to_string()));
    // New partitions from the new day: 21st..24th for both tables.
    assert!(later.partitions.contains(&"market_ticks_20260124".to_string()));
    assert_eq!(later.partitions_created, 8);
    assert_eq!(store.count_day(Table::MarketTicks, parse_day("20260114").unwrap()).await.unwrap(), 0);
    assert_eq!(store.count_day(Table::MarketTicks, parse_day("20260115").unwrap()).await.unwrap(), 0);
    assert_eq!(store.count_day(Table::ScalpTicks, parse_day("20260114").unwrap()).await.unwrap(), 10);
    let Store::Postgres(p) = &store else { unreachable!() };
    assert_eq!(p.scalar_i64("SELECT count(*) FROM market_ticks").await.unwrap(), 0);
    assert_eq!(p.scalar_i64("SELECT count(*) FROM market_ticks_default").await.unwrap(), 0);

    // /api/v1/db's sizes: every daily partition under its table, as the catalogue has it.
    let storage = store.storage().await.unwrap();
    assert_eq!(storage.compression, None, "native partitions compress nothing");
    let part = storage.relations.iter().find(|r| r.name == "scalp_ticks_20260114").unwrap();
    assert_eq!(part.parent.as_deref(), Some("scalp_ticks"));
    let bytes = p.scalar_i64("SELECT pg_total_relation_size('scalp_ticks_20260114')").await.unwrap();
    assert_eq!(part.bytes, bytes as u64);
    for name in later.partitions.iter() {
        assert!(storage.relations.iter().any(|r| &r.name == name), "{name} missing from {storage:?}");
    }
    assert_eq!(store.compress(noon("20260121")).await.unwrap(), None);
    check_samples(&store, "20260114", 10).await;
}

/// `/api/v1/scalp`'s query pages through a day's samples in order, each exactly once.
async fn check_samples(store: &Store, day: &str, n: usize) {
    let (from, to) = common::day_bounds(day);
    let symbol = Symbol::new("005930").unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = so_store::SampleQuery { symbol: symbol.clone(), provider: None, from, to, limit: 3, after };
        let page = store.samples(q).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|s| (s.event_time, s.provider));
        seen.extend(page);
    }
    let expected: Vec<ScalpTickRow> = (0..n as i64).map(|i| sample(day, i)).collect();
    assert_eq!(seen, expected);
    let other = so_store::SampleQuery { symbol, provider: Some(Provider::Upbit), from, to, limit: 100, after: None };
    assert!(store.samples(other).await.unwrap().is_empty(), "another provider's samples");
}

#[tokio::test]
async fn sqlite_maintenance_deletes_rows_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = retention(5);
    let store = common::open_sqlite(dir.path()).await;
    store.migrate().await.unwrap();
    store.write_market_ticks((0..10).map(|i| tick("20260114", i)).collect()).await.unwrap();
    store.write_market_ticks((0..7).map(|i| tick("20260116", i)).collect()).await.unwrap();
    store.write_scalp_ticks((0..4).map(|i| sample("20260114", i)).collect()).await.unwrap();

    let r = maintain(&store, &cfg, noon("20260120"), &all_held).await.unwrap();
    // The cut is 5 days before noon of the 20th: the 14th goes, the 16th stays.
    assert_eq!(r.retention_removed, 10);
    assert_eq!(r.partitions_created, 0);
    assert!(r.partitions.is_empty());
    assert_eq!(store.count_day(Table::MarketTicks, parse_day("20260114").unwrap()).await.unwrap(), 0);
    assert_eq!(store.count_day(Table::MarketTicks, parse_day("20260116").unwrap()).await.unwrap(), 7);
    assert_eq!(store.count_day(Table::ScalpTicks, parse_day("20260114").unwrap()).await.unwrap(), 4);
    assert_eq!(maintain(&store, &cfg, noon("20260120"), &all_held).await.unwrap().retention_removed, 0);

    let storage = store.storage().await.unwrap();
    assert_eq!(storage.compression, None);
    let size = |name: &str| storage.relations.iter().find(|r| r.name == name).map(|r| r.bytes).unwrap_or(0);
    assert!(size("market_ticks") > 0 && size("scalp_ticks") > 0, "{storage:?}");
    // WAL mode: recent pages are still in the -wal file.
    let len = |f: &str| std::fs::metadata(dir.path().join(f)).map(|m| m.len()).unwrap_or(0);
    let file = len("observer.db") + len("observer.db-wal");
    assert!(storage.total_bytes <= file, "dbstat counts pages of the file: {} > {file}", storage.total_bytes);
    check_samples(&store, "20260114", 4).await;
}

/// Rows of `table` on `day`.
async fn on(store: &Store, table: Table, day: &str) -> u64 {
    store.count_day(table, parse_day(day).unwrap()).await.unwrap()
}

fn kept(r: &so_store::MaintenanceReport) -> Vec<(&str, &str)> {
    r.retention_kept.iter().map(|k| (k.table, k.day.as_str())).collect()
}

#[tokio::test]
async fn sqlite_retention_keeps_the_oldest_day_not_held_and_everything_newer() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig { samples_retention: Some(Interval::from_millis(5 * 86_400_000)), ..retention(5) };
    let store = common::open_sqlite(dir.path()).await;
    store.migrate().await.unwrap();
    for (day, n) in [("20260112", 3), ("20260113", 4), ("20260114", 5), ("20260116", 6)] {
        store.write_market_ticks((0..n).map(|i| tick(day, i)).collect()).await.unwrap();
        store.write_scalp_ticks((0..n).map(|i| sample(day, i)).collect()).await.unwrap();
    }
    // Five days before noon of the 21st is noon of the 16th: the 12th..14th are due. The
    // 13th has no backup and is not in the archive.
    let not_13th = |d: Day| d.to_string() != "20260113";
    let r = maintain(&store, &cfg, noon("20260121"), &not_13th).await.unwrap();
    assert_eq!(r.retention_removed, 3 + 3, "the 12th's ticks and samples: {r:?}");
    assert_eq!(
        kept(&r),
        [
            ("market_ticks", "20260113"),
            ("market_ticks", "20260114"),
            ("scalp_ticks", "20260113"),
            ("scalp_ticks", "20260114")
        ]
    );
    assert!(r.retention_kept[0].reason.starts_with("not held"), "{r:?}");
    assert!(r.retention_kept[1].reason.contains("20260113"), "{r:?}");
    for table in [Table::MarketTicks, Table::ScalpTicks] {
        assert_eq!(on(&store, table, "20260112").await, 0);
        assert_eq!(on(&store, table, "20260113").await, 4, "not held: kept");
        assert_eq!(on(&store, table, "20260114").await, 5, "held but newer than the 13th: kept");
        assert_eq!(on(&store, table, "20260116").await, 6, "inside the window");
    }
    // Once the 13th is backed up, retention catches up; a day without data (the 15th) holds
    // nothing back.
    let not_15th = |d: Day| d.to_string() != "20260115";
    let r = maintain(&store, &cfg, noon("20260121"), &not_15th).await.unwrap();
    assert_eq!((r.retention_removed, r.retention_kept.len()), (2 * (4 + 5), 0), "{r:?}");
    assert_eq!(on(&store, Table::MarketTicks, "20260116").await, 6);
}

#[tokio::test]
async fn postgres_native_retention_drops_only_held_partitions() {
    let server = common::pg();
    let url = server.create_db("held").unwrap();
    let cfg = StoreConfig { url: Some(url), ..retention(5) };
    let store = Store::open(&cfg, Path::new("/nonexistent")).await.unwrap();
    store.migrate().await.unwrap();
    maintain(&store, &cfg, noon("20260112"), &all_held).await.unwrap();
    store.write_market_ticks((0..3).map(|i| tick("20260112", i)).collect()).await.unwrap();
    store.write_market_ticks((0..4).map(|i| tick("20260113", i)).collect()).await.unwrap();
    // The 14th's partition exists and is empty.

    let not_13th = |d: Day| d.to_string() != "20260113";
    let r = maintain(&store, &cfg, noon("20260120"), &not_13th).await.unwrap();
    assert_eq!(r.retention_removed, 1, "the 12th: {r:?}");
    assert_eq!(kept(&r), [("market_ticks", "20260113")]);
    assert!(!r.partitions.contains(&"market_ticks_20260112".to_string()));
    assert!(r.partitions.contains(&"market_ticks_20260113".to_string()));
    assert!(r.partitions.contains(&"market_ticks_20260114".to_string()), "newer than the 13th");
    assert_eq!(on(&store, Table::MarketTicks, "20260113").await, 4);

    // The 13th backed up; the empty 14th needs no holding.
    let not_14th = |d: Day| d.to_string() != "20260114";
    let r = maintain(&store, &cfg, noon("20260120"), &not_14th).await.unwrap();
    assert_eq!((r.retention_removed, r.retention_kept.len()), (2, 0), "{r:?}");
    assert!(!r.partitions.iter().any(|p| p.as_str() < "market_ticks_20260115" && p.starts_with("market_ticks_")));
    assert_eq!(on(&store, Table::MarketTicks, "20260113").await, 0);
}

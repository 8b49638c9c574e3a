//! The maintenance job on both backends: PostgreSQL gets daily partitions ahead and drops
//! whole days past retention; SQLite deletes rows past retention.

mod common;

use std::path::Path;

use model::settings::Interval;
use model::{Market, Price, Provider, Qty, QualityFlag, Symbol, UtcTime};
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
    let err = maintain(&store, &cfg, noon("20260114")).await.unwrap_err();
    assert!(err.to_string().contains("db migrate"), "{err}");
    store.migrate().await.unwrap();

    let first = maintain(&store, &cfg, noon("20260114")).await.unwrap();
    // Today and 3 days ahead, for market_ticks and scalp_ticks.
    assert_eq!(first.partitions_created, 8);
    assert_eq!(first.retention_removed, 0);
    assert_eq!(first.partitions.len(), 8);
    assert!(first.partitions.contains(&"market_ticks_20260117".to_string()));
    assert!(!first.partitions.contains(&"market_ticks_20260118".to_string()));
    let again = maintain(&store, &cfg, noon("20260114")).await.unwrap();
    assert_eq!((again.partitions_created, again.retention_removed), (0, 0), "a repeated run changes nothing");

    store.write_market_ticks((0..10).map(|i| tick("20260114", i)).collect()).await.unwrap();
    store.write_market_ticks((0..10).map(|i| tick("20260115", i)).collect()).await.unwrap();
    store.write_scalp_ticks((0..10).map(|i| sample("20260114", i)).collect()).await.unwrap();

    // Five days after the 15th ends, the 14th and 15th are past a 5-day tick retention; the
    // 16th is not yet. Samples have no retention and stay.
    let later = maintain(&store, &cfg, noon("20260121")).await.unwrap();
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

    let r = maintain(&store, &cfg, noon("20260120")).await.unwrap();
    // The cut is 5 days before noon of the 20th: the 14th goes, the 16th stays.
    assert_eq!(r.retention_removed, 10);
    assert_eq!(r.partitions_created, 0);
    assert!(r.partitions.is_empty());
    assert_eq!(store.count_day(Table::MarketTicks, parse_day("20260114").unwrap()).await.unwrap(), 0);
    assert_eq!(store.count_day(Table::MarketTicks, parse_day("20260116").unwrap()).await.unwrap(), 7);
    assert_eq!(store.count_day(Table::ScalpTicks, parse_day("20260114").unwrap()).await.unwrap(), 4);
    assert_eq!(maintain(&store, &cfg, noon("20260120")).await.unwrap().retention_removed, 0);
}

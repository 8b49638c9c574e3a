//! PostgreSQL bulk loading: fresh rows go in with one COPY; a batch holding rows already
//! stored falls back to the staging merge and still stores every new row, whether the batch
//! is loaded over one connection or split over several.

mod common;

use std::path::Path;

use model::{Market, Price, Provider, Qty, QualityFlag, Side, Symbol};
use so_store::{Backend, MarketTickRow, RowMeta, ScalpTickRow, Store, StoreConfig};

fn tick(i: u64) -> MarketTickRow {
    let (lo, _) = common::day_bounds("20260114");
    let time = lo.plus_millis(9 * 3_600_000 + i as i64 * 10);
    MarketTickRow {
        provider: Provider::Sim,
        market: Market::KrStocks,
        symbol: Symbol::new(&format!("{:06}", 5930 + (i % 3) * 10)).unwrap(),
        time,
        trade_id: i.to_string(),
        price: Price("70000.5".parse::<rust_decimal::Decimal>().unwrap() + rust_decimal::Decimal::from(i)),
        volume: Qty::from_int(1 + i as i64),
        side: Some(Side::Buy),
        cum_volume: None,
        change: Some(Price("-0.00012345".parse().unwrap())),
        meta: RowMeta {
            schema_version: model::SCHEMA_VERSION.into(),
            receive_time: time.plus_millis(2),
            session_id: "sess_20260114_090000".into(),
            mitigation_level: 0,
            quality_flag: QualityFlag::Normal,
            raw_ref: Some(format!("raw/sim/20260114/09.jsonl#{i}")),
        },
    }
}

fn sample(i: u64) -> ScalpTickRow {
    let t = tick(i);
    ScalpTickRow {
        provider: t.provider,
        market: t.market,
        symbol: t.symbol,
        event_time: t.time,
        bid_price: Some(t.price),
        ask_price: None,
        bid_size: Some(Qty::from_int(3)),
        ask_size: None,
        last_price: Some(t.price),
        volume: None,
        data_age_ms: Some(12),
        sample_interval_ms: 500,
        meta: t.meta,
    }
}

async fn open(
    server: &so_store::testing::PgServer,
    db: &str,
    copy_connections: usize,
    copy_chunk_rows: usize,
) -> Store {
    let url = server.create_db(db).unwrap();
    let cfg = StoreConfig { url: Some(url), copy_connections, copy_chunk_rows, ..StoreConfig::default() };
    let store = Store::open(&cfg, Path::new("/nonexistent")).await.unwrap();
    store.migrate().await.unwrap();
    store.maintain(so_store::parse_day("20260114").unwrap(), 1).await.unwrap();
    store
}

#[tokio::test]
async fn postgres_copy_keeps_new_rows_of_a_batch_with_duplicates() {
    let server = common::pg();
    // One connection and one COPY message per part; three connections streaming 7-row
    // messages, so the duplicate is found in the middle of a stream.
    for (connections, chunk) in [(1, 2_000), (3, 7)] {
        let store = open(&server, &format!("copy{connections}"), connections, chunk).await;
        let Store::Postgres(p) = &store else { unreachable!() };
        let day = so_store::parse_day("20260114").unwrap();

        assert_eq!(store.write_market_ticks((0..100).map(tick).collect()).await.unwrap(), 100);
        // 50 stored rows in the middle of 100 new ones, and one new row twice.
        let mut mixed: Vec<_> = (50..200).map(tick).collect();
        mixed.push(tick(199));
        assert_eq!(store.write_market_ticks(mixed.clone()).await.unwrap(), 100, "{connections} connection(s)");
        assert_eq!(store.write_market_ticks(mixed).await.unwrap(), 0, "a repeated batch is a no-op");
        assert_eq!(store.count_day(so_store::Table::MarketTicks, day).await.unwrap(), 200);
        assert_eq!(p.scalar_i64("SELECT count(*) FROM market_ticks_20260114").await.unwrap(), 200);

        // Exact decimals through the hand-made binary encoding.
        let (lo, hi) = common::day_bounds("20260114");
        let q = so_store::TickQuery {
            symbol: Symbol::new("005930").unwrap(),
            provider: None,
            from: lo,
            to: hi,
            limit: 1_000,
            after: None,
        };
        let got = store.ticks(q.clone()).await.unwrap();
        assert_eq!(got.len(), 67);
        assert_eq!(got[1], tick(3));
        // The newest trade per symbol, whichever part of the batch carried it.
        let lp = store.latest_price(Symbol::new("005940").unwrap(), None).await.unwrap().unwrap();
        assert_eq!((lp.trade_id.as_str(), lp.price), ("199", tick(199).price));

        assert_eq!(store.write_scalp_ticks((0..10).map(sample).collect()).await.unwrap(), 10);
        assert_eq!(store.write_scalp_ticks((5..15).map(sample).collect()).await.unwrap(), 5);
        assert_eq!(store.count_day(so_store::Table::ScalpTicks, day).await.unwrap(), 15);

        // A batch in reverse time order (a late replay) is sorted before it goes in.
        assert_eq!(store.write_market_ticks((200..260).rev().map(tick).collect()).await.unwrap(), 60);
        let got = store.ticks(q.clone()).await.unwrap();
        assert_eq!(got.len(), 87);
        assert!(got.windows(2).all(|w| w[0].time < w[1].time));
        let lp = store.latest_price(Symbol::new("005930").unwrap(), None).await.unwrap().unwrap();
        assert_eq!((lp.trade_id.as_str(), lp.price), ("258", tick(258).price));
    }
}

//! A quality flag read back that this binary does not know is an error naming the value and
//! the table, on both backends and in every query that returns rows with their meta; it is
//! never read as `normal`.

mod common;

use model::{Market, Price, Provider, Qty, QualityFlag, Symbol};
use so_store::{Backend, EventRow, GapRow, MarketTickRow, OverflowRow, RowMeta, SrcRef, Store, StoreError, TickQuery};

const DATE: &str = "20260114";

fn meta() -> RowMeta {
    let (lo, _) = common::day_bounds(DATE);
    RowMeta {
        schema_version: model::SCHEMA_VERSION.into(),
        receive_time: lo.plus_millis(9 * 3_600_000),
        session_id: "sess_20260114_090000".into(),
        mitigation_level: 0,
        quality_flag: QualityFlag::Normal,
        raw_ref: None,
    }
}

/// One row in each table whose meta the queries return, all with the flag `normal`.
async fn write_rows(store: &Store) {
    let (lo, _) = common::day_bounds(DATE);
    let t = lo.plus_millis(9 * 3_600_000);
    let tick = MarketTickRow {
        provider: Provider::Sim,
        market: Market::KrStocks,
        symbol: Symbol::new("005930").unwrap(),
        time: t,
        trade_id: "1".into(),
        price: Price::from_int(70_000),
        volume: Qty::from_int(1),
        side: None,
        cum_volume: None,
        change: None,
        meta: RowMeta { raw_ref: Some(format!("raw/sim/{DATE}/09.jsonl#1")), ..meta() },
    };
    let events_file = format!("system/events/sim/{DATE}.jsonl");
    let gap = GapRow {
        src: SrcRef { file: events_file.clone(), line: 1 },
        provider: Provider::Sim,
        gap_start_ts: t,
        gap_end_ts: t.plus_millis(1_000),
        gap_seconds: 1,
        scope: "provider".into(),
        reason: "disconnect".into(),
        detail: None,
        meta: meta(),
    };
    let overflow = OverflowRow {
        src: SrcRef { file: format!("system/overflow/sim/{DATE}_overflow.jsonl"), line: 1 },
        provider: Provider::Sim,
        ts: t,
        symbol: "000660".into(),
        candidate_score: 1.5,
        cutoff_rank: 41,
        decision_reason: "rank".into(),
        meta: meta(),
    };
    let event = EventRow {
        src: SrcRef { file: events_file, line: 2 },
        provider: Provider::Sim,
        event_time: t,
        event_type: "note".into(),
        body: serde_json::json!({"event_type": "note"}),
        meta: meta(),
    };
    assert_eq!(store.write_market_ticks(vec![tick]).await.unwrap(), 1);
    assert_eq!(store.write_gaps(vec![gap]).await.unwrap(), 1);
    assert_eq!(store.write_overflow(vec![overflow]).await.unwrap(), 1);
    assert_eq!(store.write_events(vec![event]).await.unwrap(), 1);
}

/// The tables read back, with the bogus flag each is given by raw SQL.
const BOGUS: [(&str, &str); 4] = [
    ("market_ticks", "bogus_tick"),
    ("scalp_gaps", "bogus_gap"),
    ("overflow_entries", "bogus_overflow"),
    ("system_events", "bogus_event"),
];

/// Reads every table back through the store API and checks each fails naming its value.
async fn expect_errors(store: &Store) {
    let day = so_store::parse_day(DATE).unwrap();
    let (lo, hi) = common::day_bounds(DATE);
    let q =
        TickQuery { symbol: Symbol::new("005930").unwrap(), provider: None, from: lo, to: hi, limit: 10, after: None };
    let results = [
        store.ticks(q).await.map(|v| v.len()),
        store.gaps(day).await.map(|v| v.len()),
        store.overflow(day).await.map(|v| v.len()),
        store.events(day).await.map(|v| v.len()),
    ];
    for ((table, value), got) in BOGUS.into_iter().zip(results) {
        match got {
            Err(e @ StoreError::UnknownQualityFlag { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(value) && msg.contains(table) && msg.contains("quality_flag"), "{msg}");
                let StoreError::UnknownQualityFlag { table: t, value: v } = e else { unreachable!() };
                assert_eq!((t, v.as_str()), (table, value));
            }
            other => panic!("{table}: expected an unknown quality flag error, got {other:?}"),
        }
    }
}

/// Known flags still read back as themselves.
async fn expect_rows(store: &Store) {
    let day = so_store::parse_day(DATE).unwrap();
    let gaps = store.gaps(day).await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].meta.quality_flag, QualityFlag::Normal);
}

#[tokio::test]
async fn sqlite_refuses_an_unknown_quality_flag() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_sqlite(dir.path()).await;
    store.migrate().await.unwrap();
    write_rows(&store).await;
    expect_rows(&store).await;
    let db = rusqlite::Connection::open(dir.path().join("observer.db")).unwrap();
    for (table, value) in BOGUS {
        let n = db.execute(&format!("UPDATE {table} SET quality_flag = ?1"), [value]).unwrap();
        assert_eq!(n, 1, "{table}");
    }
    expect_errors(&store).await;
}

#[tokio::test]
async fn postgres_refuses_an_unknown_quality_flag() {
    let server = common::pg();
    let store = common::open_pg(&server, "quality").await;
    store.migrate().await.unwrap();
    store.maintain(so_store::parse_day(DATE).unwrap(), 1).await.unwrap();
    write_rows(&store).await;
    expect_rows(&store).await;
    let Store::Postgres(p) = &store else { unreachable!() };
    for (table, value) in BOGUS {
        let sql = format!("WITH u AS (UPDATE {table} SET quality_flag = '{value}' RETURNING 1) SELECT count(*) FROM u");
        assert_eq!(p.scalar_i64(&sql).await.unwrap(), 1, "{table}");
    }
    expect_errors(&store).await;
}

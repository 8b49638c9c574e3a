#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use model::{Price, Provider, Qty, Symbol, UtcTime};
use so_store::testing::PgServer;
use so_store::testing::fixture::DaySummary;
use so_store::{Backend, BarInterval, BarQuery, Store, StoreConfig};

pub fn pg() -> PgServer {
    match PgServer::start() {
        Ok(s) => s,
        Err(e) => panic!("PostgreSQL test server did not start: {e}"),
    }
}

pub async fn open_pg(server: &PgServer, db: &str) -> Store {
    let url = server.create_db(db).expect("createdb");
    let cfg = StoreConfig { url: Some(url), ..StoreConfig::default() };
    Store::open(&cfg, Path::new("/nonexistent")).await.expect("open pg")
}

pub async fn open_sqlite(dir: &Path) -> Store {
    Store::open(&StoreConfig::default(), dir).await.expect("open sqlite")
}

/// 1m bars computed here, independently of the store's builder, from the fixture's samples:
/// (symbol, minute) → (o, h, l, c, volume, coverage, samples).
pub type Expected = BTreeMap<(String, i64), (Price, Price, Price, Price, Qty, f64, u32)>;

pub fn expected_1m(sum: &DaySummary) -> Expected {
    let mut groups: BTreeMap<(String, i64), Vec<&so_store::testing::fixture::Sample>> = BTreeMap::new();
    for s in &sum.samples {
        groups.entry((s.symbol.clone(), s.time.as_millis().div_euclid(60_000))).or_default().push(s);
    }
    let mut out = Expected::new();
    let mut last_vol: BTreeMap<String, Qty> = BTreeMap::new();
    for ((sym, minute), mut v) in groups {
        v.sort_by_key(|s| s.time);
        let prices: Vec<Price> = v.iter().filter_map(|s| s.last_price).collect();
        let vols: Vec<Qty> = v.iter().filter_map(|s| s.volume).collect();
        let prev = last_vol.get(&sym).copied().or(vols.first().copied());
        let volume = match (vols.last(), prev) {
            (Some(l), Some(p)) => Qty(l.0 - p.0),
            _ => Qty::ZERO,
        };
        if let Some(l) = vols.last() {
            last_vol.insert(sym.clone(), *l);
        }
        if prices.is_empty() {
            continue;
        }
        let interval_sum: u64 = v.iter().map(|s| s.interval_ms).sum();
        out.insert(
            (sym, minute),
            (
                prices[0],
                *prices.iter().max().unwrap(),
                *prices.iter().min().unwrap(),
                *prices.last().unwrap(),
                volume,
                (interval_sum as f64 / 60_000.0).min(1.0),
                v.len() as u32,
            ),
        );
    }
    out
}

pub fn day_bounds(date: &str) -> (UtcTime, UtcTime) {
    so_store::day_range(so_store::parse_day(date).unwrap())
}

/// Checks every 1m bar in the store against the independent computation, and the rollups
/// against sums of the expected 1m bars.
pub async fn check_bars(store: &Store, sum: &DaySummary, date: &str) {
    let exp = expected_1m(sum);
    let (lo, hi) = day_bounds(date);
    let symbols: std::collections::BTreeSet<&String> = exp.keys().map(|(s, _)| s).collect();
    let mut seen = 0;
    for s in symbols {
        let q = BarQuery {
            symbol: Symbol::new(s).unwrap(),
            provider: Some(Provider::Sim),
            interval: BarInterval::M1,
            from: lo,
            to: hi,
        };
        let bars = store.bars(q.clone()).await.unwrap();
        for b in &bars {
            let key = (s.clone(), b.bar_time.as_millis() / 60_000);
            let e = exp.get(&key).unwrap_or_else(|| panic!("unexpected bar {key:?}"));
            assert_eq!((b.open, b.high, b.low, b.close), (e.0, e.1, e.2, e.3), "{key:?} OHLC");
            assert_eq!(b.volume, e.4, "{key:?} volume");
            assert!((b.coverage_ratio - e.5).abs() < 1e-9, "{key:?} coverage {} vs {}", b.coverage_ratio, e.5);
            assert_eq!(b.count, e.6, "{key:?} samples");
            seen += 1;
        }
        // A daily bar is the whole day's 1m bars.
        let day = store.bars(BarQuery { interval: BarInterval::D1, ..q.clone() }).await.unwrap();
        assert_eq!(day.len(), 1, "{s}: one daily bar");
        let mine: Vec<_> = exp.iter().filter(|((sy, _), _)| sy == s).map(|(_, v)| v).collect();
        assert_eq!(day[0].open, mine[0].0);
        assert_eq!(day[0].close, mine[mine.len() - 1].3);
        assert_eq!(day[0].high, mine.iter().map(|v| v.1).max().unwrap());
        assert_eq!(day[0].low, mine.iter().map(|v| v.2).min().unwrap());
        assert_eq!(day[0].volume, Qty(mine.iter().map(|v| v.4.0).sum()));
        assert_eq!(day[0].count as usize, mine.len());
        let tens = store.bars(BarQuery { interval: BarInterval::M10, ..q.clone() }).await.unwrap();
        assert_eq!(tens.iter().map(|b| b.count as usize).sum::<usize>(), mine.len());
        let hours = store.bars(BarQuery { interval: BarInterval::H1, ..q }).await.unwrap();
        assert_eq!(hours.iter().map(|b| b.volume.0).sum::<rust_decimal::Decimal>(), day[0].volume.0);
    }
    assert_eq!(seen, exp.len(), "every expected bar is stored");
    // The fixture has a half-empty minute (coverage 0.5) and 1 Hz minutes (coverage 1).
    assert!(exp.values().any(|v| (v.5 - 0.5).abs() < 1e-9));
}

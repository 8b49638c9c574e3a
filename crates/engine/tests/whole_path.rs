//! Issue 14 part 2: extreme and random normalized records through the whole in-process
//! path — observer core → candidate monitor (triggers) → latest book → Track B sampler →
//! archive — must never panic, every record that passes the core must be within the
//! archive's domain, the core's counters must balance, and the archive it leaves must verify.
//! (The ETL/bars leg is `so-store`'s `bars_proptest`; random lines through `verify`,
//! `replay` and `etl` are `random_lines` here and in `so-store`.)
//!
//! Longer runs: `PROPTEST_CASES=20000 cargo test -p so-engine --test whole_path --release`.

use std::sync::Arc;

use model::num::PLAUSIBLE_ABS_MAX;
use model::settings::{Interval, Window};
use model::{Level, Market, MarketEvent, Price, Provider, Qty, Quote, SessionId, Snapshot, Symbol, Tick, UtcTime};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rust_decimal::Decimal;
use so_engine::book::LatestBook;
use so_engine::config::{CalendarConfig, ObserverConfig};
use so_engine::observer::ObserverCore;
use so_engine::pipeline::Events;
use so_engine::sink::Sink;
use so_engine::stats::Stats;
use so_engine::track_b::Sampler;
use so_engine::triggers::{CandidateMonitor, TriggerConfig, TriggerWeights};

const SYMBOLS: [&str; 3] = ["005930", "000660", "035720"];

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::MAX),
        Just(Decimal::MIN),
        Just(Decimal::new(1, 28)),
        Just(-Decimal::new(1, 28)),
        Just(Decimal::ZERO),
        Just(PLAUSIBLE_ABS_MAX),
        Just(PLAUSIBLE_ABS_MAX + Decimal::ONE),
        (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
        (1i64..200_000).prop_map(Decimal::from),
        (1i64..200_000).prop_map(Decimal::from),
    ]
}

#[derive(Debug, Clone)]
struct Input {
    kind: u8,
    symbol: usize,
    numbers: [Decimal; 8],
    /// Event time: an offset from the receive time, or any instant at all.
    event_offset: Result<i64, i64>,
    /// Receive time: the next step of the clock, or any instant at all.
    receive_any: Option<i64>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        0u8..3,
        0usize..SYMBOLS.len(),
        proptest::array::uniform8(decimal()),
        prop_oneof![4 => (-20_000i64..20_000).prop_map(Ok), 1 => any::<i64>().prop_map(Err)],
        prop_oneof![9 => Just(None), 1 => any::<i64>().prop_map(Some)],
    )
        .prop_map(|(kind, symbol, numbers, event_offset, receive_any)| Input {
            kind,
            symbol,
            numbers,
            event_offset,
            receive_any,
        })
}

fn event(i: &Input) -> MarketEvent {
    let n = |k: usize| i.numbers[k];
    let symbol = Symbol::new(SYMBOLS[i.symbol]).unwrap();
    match i.kind {
        0 => MarketEvent::Tick(Tick {
            provider: Provider::Kis,
            market: Market::KrStocks,
            symbol,
            price: Price(n(0)),
            size: Qty(n(1)),
            side: None,
            cum_volume: Some(Qty(n(2))),
            trade_id: None,
        }),
        1 => MarketEvent::Quote(Quote {
            provider: Provider::Kis,
            market: Market::KrStocks,
            symbol,
            bid_price: Price(n(0).min(n(1))),
            bid_size: Qty(n(2)),
            ask_price: Price(n(0).max(n(1))),
            ask_size: Qty(n(3)),
            bids: vec![Level { price: Price(n(4)), size: Qty(n(5)) }],
            asks: vec![],
        }),
        _ => MarketEvent::Snapshot(Snapshot {
            provider: Provider::Kis,
            market: Market::KrStocks,
            symbol,
            last_price: Price(n(0)),
            open: Price(n(1)),
            high: Price(n(2).max(n(3))),
            low: Price(n(2).min(n(3))),
            prev_close: Price(n(4)),
            volume: Qty(n(5)),
            bid_price: None,
            ask_price: None,
        }),
    }
}

fn trigger_config() -> TriggerConfig {
    let iv = |ms: u64| Interval::from_millis(ms);
    TriggerConfig {
        evaluate_interval: iv(10_000),
        baseline_window: iv(3_600_000),
        min_baseline_samples: 2,
        min_volume_interval: iv(1_000),
        max_signal_age: iv(900_000),
        forget_after: iv(7_200_000),
        volume_surge_ratio: 3.0,
        velocity_window: iv(60_000),
        velocity_baseline: iv(600_000),
        velocity_bucket: iv(1_000),
        trade_velocity_ratio: 3.0,
        volatility_ratio: 2.5,
        price_spike_pct: 5.0,
        saturation: 3.0,
        weights: TriggerWeights { volume_surge: 1.0, trade_velocity: 0.85, volatility_spike: 0.7, price_spike: 0.5 },
        manual_include: vec![],
        manual_exclude: vec![],
    }
}

#[test]
fn extreme_records_through_observer_triggers_book_sampler_and_archive() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let t0 = UtcTime::from_kst("2026-01-14T10:00:00".parse().unwrap());
    let session = SessionId::starting_at(t0);
    let stats = Arc::new(Stats::default());
    let (sink, _) =
        Sink::start(dir.path().to_path_buf(), &archive::ArchiveConfig::default(), t0, &session, 1024, stats.clone())
            .unwrap();
    let ocfg = ObserverConfig {
        max_clock_skew: "10s".parse::<Interval>().unwrap(),
        dedupe_capacity: 64,
        limits: Default::default(),
    };
    let cal = CalendarConfig {
        holidays: vec![],
        session: Window { start: jiff::civil::time(9, 0, 0, 0), end: jiff::civil::time(15, 30, 0, 0) },
    };
    let core = ObserverCore::new(&ocfg, &cal, session.clone(), "kis/2", Arc::default(), stats.clone());
    let monitor = CandidateMonitor::new(trigger_config());
    let book = Arc::new(LatestBook::default());
    let events = Events {
        sink: sink.handle.clone(),
        provider: Provider::Kis,
        session: session.clone(),
        stats: stats.clone(),
        mitigation: Arc::default(),
        tap: None,
    };
    let sampler = Sampler::new(Provider::Kis, Market::KrStocks, book.clone(), events, true, 5_000);
    let now = t0;
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    let state = std::cell::RefCell::new((now, core, monitor, sampler));
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let slots: Vec<Symbol> = SYMBOLS.iter().map(|s| Symbol::new(s).unwrap()).collect();
    runner
        .run(&proptest::collection::vec(input(), 1..40), |inputs| {
            // The runner wants a `Fn`: the path's state lives across cases, as in a long run.
            let mut st = state.borrow_mut();
            let (now, core, monitor, sampler) = &mut *st;
            for i in &inputs {
                *now = now.plus_millis(100);
                let received = i.receive_any.map_or(*now, UtcTime::from_millis);
                let at = match i.event_offset {
                    Ok(off) => received.plus_millis(off),
                    Err(any) => UtcTime::from_millis(any),
                };
                let Ok(rec) = core.observe(at, received, event(i), None) else { continue };
                prop_assert_eq!(rec.body.number_beyond(PLAUSIBLE_ABS_MAX), None);
                prop_assert!(rec.meta.implausible().is_none(), "{:?}", rec.meta);
                book.apply(rec.meta.receive_time, &rec.body);
                match &rec.body {
                    MarketEvent::Tick(t) => monitor.on_tick(rec.meta.event_time, t),
                    MarketEvent::Snapshot(s) => monitor.on_snapshot(rec.meta.event_time, s),
                    MarketEvent::Quote(_) => {}
                }
            }
            monitor.on_slots(*now, &slots);
            for c in monitor.evaluate(*now) {
                prop_assert!((0.0..=1.0).contains(&c.score), "{c:?}");
            }
            let frame = serde_json::to_string(&so_engine::track_b::Tick {
                due: *now,
                interval_ms: 500,
                slots: slots.clone(),
                polled: false,
            })
            .unwrap();
            rt.block_on(sampler.sample(&frame, *now, 0)).unwrap();
            Ok(())
        })
        .unwrap();
    let (now, core, monitor, sampler) = state.into_inner();
    drop((core, sampler));
    // Prices within bounds can still have quotients beyond them (a last price of 1e18 over a
    // previous close of 1e-28): those points are skipped and counted, not computed.
    let skipped = monitor.skipped();
    assert_eq!(skipped.volume_difference + skipped.volume_sum, 0, "differences of bounded volumes fit: {skipped:?}");
    rt.block_on(sink.close(now.plus_millis(1000))).unwrap();
    let s = stats.snapshot();
    assert_eq!(s.events_normalized, s.events_passed + s.rejected_validate + s.rejected_guard);
    assert!(s.events_passed > 0 && s.rejected_validate > 0, "{s:?}");
    assert!(s.scalp_written > 0, "{s:?}");
    let report = archive::verify(dir.path(), None).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

//! The candidate monitor's tests; `at`, `config` and `flat` are shared with the slot manager's.

use model::settings::{Checker, Interval, Validate};
use model::{Market, Price, Provider, Qty, Snapshot, Symbol, Tick, UtcTime};
use rust_decimal::Decimal;

use super::signals::velocity_span_buckets;
use super::*;

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
const EPS: f64 = 1e-9;

pub(crate) fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

/// Minutes after a fixed, whole-second instant (09:00 KST on 2026-01-14).
pub(crate) fn at(minutes: i64) -> UtcTime {
    UtcTime::from_millis(1_768_348_800_000 + minutes * MIN)
}

fn iv(ms: i64) -> Interval {
    Interval::from_millis(ms as u64)
}

pub(crate) fn config() -> TriggerConfig {
    TriggerConfig {
        evaluate_interval: iv(10 * SEC),
        baseline_window: iv(60 * MIN),
        min_baseline_samples: 2,
        min_volume_interval: iv(MIN),
        max_signal_age: iv(15 * MIN),
        forget_after: iv(120 * MIN),
        volume_surge_ratio: 3.0,
        velocity_window: iv(MIN),
        velocity_baseline: iv(10 * MIN),
        velocity_bucket: iv(SEC),
        trade_velocity_ratio: 3.0,
        volatility_ratio: 2.5,
        price_spike_pct: 5.0,
        saturation: 3.0,
        weights: TriggerWeights { volume_surge: 1.0, trade_velocity: 0.85, volatility_spike: 0.7, price_spike: 0.5 },
        manual_include: vec![],
        manual_exclude: vec![],
    }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn snap(symbol: &str, last: &str, high: &str, low: &str, prev_close: &str, volume: i64) -> Snapshot {
    Snapshot {
        provider: Provider::Sim,
        market: Market::KrStocks,
        symbol: sym(symbol),
        last_price: Price(d(last)),
        open: Price(d(prev_close)),
        high: Price(d(high)),
        low: Price(d(low)),
        prev_close: Price(d(prev_close)),
        volume: Qty::from_int(volume),
        bid_price: None,
        ask_price: None,
    }
}

/// A flat-priced snapshot: only volume moves.
pub(crate) fn flat(symbol: &str, volume: i64) -> Snapshot {
    snap(symbol, "100", "100", "100", "100", volume)
}

fn tick(symbol: &str, price: &str, cum: Option<i64>) -> Tick {
    Tick {
        provider: Provider::Sim,
        market: Market::KrStocks,
        symbol: sym(symbol),
        price: Price(d(price)),
        size: Qty::from_int(1),
        side: None,
        cum_volume: cum.map(Qty::from_int),
        trade_id: None,
    }
}

/// Issue 14: two cumulative volumes at the ends of `Decimal`'s range, and a price change
/// over a tiny previous close, used to panic (`Subtraction overflowed`) and end
/// `collect`. They are skipped with a counted reason instead.
#[test]
fn overflowing_points_are_skipped_and_counted() {
    let mut m = CandidateMonitor::new(config());
    let (min, max) = (Decimal::MIN.to_string(), Decimal::MAX.to_string());
    m.on_tick(at(0), &Tick { cum_volume: Some(Qty(d(&min))), ..tick("005930", "100", None) });
    m.on_tick(at(2), &Tick { cum_volume: Some(Qty(d(&max))), ..tick("005930", "100", None) });
    assert_eq!(m.skipped().volume_difference, 1);
    // A baseline of two intervals whose volumes each fit but whose sum does not.
    let mut m2 = CandidateMonitor::new(config());
    let k = (Decimal::MAX / Decimal::from(10)).trunc() * Decimal::from(6);
    for (i, v) in [-k, Decimal::ZERO, k, k + Decimal::ONE].into_iter().enumerate() {
        m2.on_tick(at(i as i64 * 2), &Tick { cum_volume: Some(Qty(v)), ..tick("000660", "100", None) });
    }
    m2.evaluate(at(7));
    assert_eq!(m2.skipped(), SkippedPoints { volume_sum: 1, ..Default::default() });
    // A tiny previous close and a huge last price.
    let tiny = "0.0000000000000000000000000001";
    m.on_snapshot(at(3), &snap("035720", tiny, tiny, tiny, tiny, 1));
    m.on_snapshot(at(5), &snap("035720", &max, &max, tiny, tiny, 2));
    m.evaluate(at(6));
    let s = m.skipped();
    assert!(s.price_change >= 1 && s.price_range >= 1, "{s:?}");
}

fn find<'a>(cands: &'a [Candidate], symbol: &str) -> Option<&'a Candidate> {
    cands.iter().find(|c| c.symbol.as_str() == symbol)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < EPS
}

fn problems(cfg: &TriggerConfig) -> Vec<String> {
    let mut c = Checker::default();
    c.section("triggers", |c| cfg.validate(c));
    c.problems.iter().map(|p| p.key.clone()).collect()
}

#[test]
fn volume_surge_fires_on_snapshot_delta_against_baseline() {
    let mut m = CandidateMonitor::new(config());
    // Four quiet 10-minute intervals of 1000 each, then one of 5000 for A.
    for (i, cum) in [0, 1000, 2000, 3000, 4000].into_iter().enumerate() {
        m.on_snapshot(at(10 * i as i64), &flat("A", cum));
        m.on_snapshot(at(10 * i as i64), &flat("B", cum));
    }
    assert!(m.evaluate(at(40)).is_empty(), "steady volume is no signal");
    m.on_snapshot(at(50), &flat("A", 9000));
    m.on_snapshot(at(50), &flat("B", 5000));
    let cands = m.evaluate(at(50));
    assert_eq!(cands.len(), 1, "{cands:?}");
    let a = &cands[0];
    assert_eq!(a.symbol.as_str(), "A");
    assert_eq!(a.trigger, Some(TriggerKind::VolumeSurge));
    assert_eq!(a.fired, vec![TriggerKind::VolumeSurge]);
    assert!(!a.price_spike && !a.manual);
    assert_eq!(a.inputs.interval_volume, Some(Qty::from_int(5000)));
    assert!(close(a.inputs.volume_per_min.unwrap(), 500.0));
    assert!(close(a.inputs.baseline_volume_per_min.unwrap(), 100.0));
    assert!(close(a.inputs.volume_ratio.unwrap(), 5.0));
    // g = min(1, (5 / 3) / 3) = 5/9, weight 1.
    assert!(close(a.score, 5.0 / 9.0), "{}", a.score);
    assert_eq!(a.inputs.sources, vec![Source::Snapshot]);
}

#[test]
fn surge_needs_a_baseline_fresh_data_and_the_same_day() {
    let mut m = CandidateMonitor::new(config());
    m.on_snapshot(at(0), &flat("A", 0));
    m.on_snapshot(at(10), &flat("A", 1000));
    m.on_snapshot(at(20), &flat("A", 9000));
    // One baseline interval is fewer than min_baseline_samples (2).
    assert!(m.evaluate(at(20)).is_empty());
    assert_eq!(m.states[&sym("A")].rates.len(), 2);
    m.on_snapshot(at(30), &flat("A", 10_000));
    m.on_snapshot(at(40), &flat("A", 30_000));
    // Baseline (1000 + 8000 + 1000) / 30 min = 333.3/min, newest 2000/min: ratio 6.
    let a = m.evaluate(at(40));
    assert!(close(a[0].inputs.volume_ratio.unwrap(), 6.0));
    // Fifteen minutes later the newest interval is still fresh; a minute more and it is not.
    assert_eq!(m.evaluate(at(55)).len(), 1);
    assert!(m.evaluate(at(56)).is_empty(), "a stale surge must not fire");
    // Next morning the cumulative volume restarts: yesterday is no baseline.
    m.on_snapshot(at(60), &flat("A", 500));
    m.on_snapshot(at(70), &flat("A", 50_000));
    assert!(m.evaluate(at(70)).is_empty());
    assert_eq!(m.states[&sym("A")].rates.len(), 1);
}

#[test]
fn ranking_volumes_feed_surge_and_position() {
    let mut m = CandidateMonitor::new(config());
    let rank = |a: i64, b: i64| vec![(sym("B"), Qty::from_int(b)), (sym("A"), Qty::from_int(a))];
    // Every 2 minutes: A trades 200, B 1000 (B ranks first).
    for i in 0..4 {
        m.on_ranking(at(2 * i), &rank(200 * i, 1000 * i));
    }
    // A snapshot 30 s after a ranking is closer than min_volume_interval and is skipped.
    m.on_snapshot(at(6).plus_millis(30 * SEC), &flat("A", 700));
    assert_eq!(m.states[&sym("A")].rates.len(), 3);
    m.on_ranking(at(8), &rank(600 + 1200, 4000));
    let cands = m.evaluate(at(8));
    assert_eq!(cands.len(), 1, "{cands:?}");
    let a = &cands[0];
    assert_eq!(a.symbol.as_str(), "A");
    assert_eq!(a.trigger, Some(TriggerKind::VolumeSurge));
    assert!(close(a.inputs.volume_ratio.unwrap(), 6.0), "{:?}", a.inputs);
    assert_eq!(a.inputs.ranking_position, Some(2));
    assert_eq!(a.inputs.sources, vec![Source::Snapshot, Source::Ranking]);
}

/// Ticks at `per_min` a minute, evenly, in (from, to].
fn ticks(m: &mut CandidateMonitor, symbol: &str, from: i64, to: i64, per_min: i64) {
    let gap = MIN / per_min;
    let mut t = at(from).plus_millis(gap);
    while t <= at(to) {
        m.on_tick(t, &tick(symbol, "100", None));
        t = t.plus_millis(gap);
    }
}

#[test]
fn trade_velocity_from_ticks_against_own_baseline() {
    let mut m = CandidateMonitor::new(config());
    m.on_slots(at(0), &[sym("A"), sym("B"), sym("D")]);
    ticks(&mut m, "A", 0, 10, 10);
    ticks(&mut m, "A", 10, 11, 50);
    ticks(&mut m, "B", 0, 11, 10);
    // D was silent for ten minutes: its baseline counts as one trade.
    ticks(&mut m, "D", 10, 11, 2);
    // C joined the slots late: its baseline is not yet watched.
    m.on_slots(at(5), &[sym("A"), sym("B"), sym("C"), sym("D")]);
    ticks(&mut m, "C", 5, 10, 10);
    ticks(&mut m, "C", 10, 11, 50);

    let cands = m.evaluate(at(11));
    let a = find(&cands, "A").expect("A fires");
    assert_eq!(a.trigger, Some(TriggerKind::TradeVelocity));
    assert!(close(a.inputs.trades_per_min.unwrap(), 50.0));
    assert!(close(a.inputs.baseline_trades_per_min.unwrap(), 10.0));
    assert!(close(a.inputs.velocity_ratio.unwrap(), 5.0));
    assert!(close(a.score, 0.85 * 5.0 / 9.0), "{}", a.score);
    assert_eq!(a.inputs.sources, vec![Source::Ticks]);
    assert!(find(&cands, "B").is_none(), "steady trading is no signal");
    assert!(find(&cands, "C").is_none(), "no ratio before both windows were watched");
    let dd = find(&cands, "D").expect("D fires against the one-trade floor");
    assert!(close(dd.inputs.velocity_ratio.unwrap(), 20.0));
    assert!(close(dd.score, 0.85), "saturated: {}", dd.score);
    assert_eq!(cands[0].symbol.as_str(), "D");

    // Leaving the slots forgets the trade history.
    m.on_slots(at(11), &[sym("B")]);
    assert!(m.states[&sym("A")].buckets.is_empty());
    assert!(m.evaluate(at(11)).is_empty());
    // Buckets stay within both windows however long trading goes on.
    ticks(&mut m, "B", 11, 60, 10);
    let span = velocity_span_buckets(&m.cfg) as usize;
    assert!(m.states[&sym("B")].buckets.len() <= span);
}

#[test]
fn tick_cumulative_volume_counts_for_surge() {
    let mut m = CandidateMonitor::new(config());
    for i in 0..=3 {
        m.on_tick(at(i), &tick("A", "100", Some(100 * i)));
    }
    m.on_tick(at(4), &tick("A", "100", Some(300 + 1000)));
    let a = m.evaluate(at(4));
    assert_eq!(a[0].trigger, Some(TriggerKind::VolumeSurge));
    assert!(close(a[0].inputs.volume_ratio.unwrap(), 10.0));
}

#[test]
fn volatility_spike_from_snapshot_ranges() {
    let mut m = CandidateMonitor::new(config());
    // Three 1% intervals (each rises 1% to a new day high), then one reaching 5% above
    // its opening price before settling; volume grows evenly throughout.
    let steps = [
        ("100", "100", "100"),
        ("101", "101", "100"),
        ("102.01", "102.01", "100"),
        ("103.0301", "103.0301", "100"),
        ("104", "108.181605", "100"),
    ];
    for (i, (last, high, low)) in steps.into_iter().enumerate() {
        m.on_snapshot(at(10 * i as i64), &snap("A", last, high, low, "100", 1000 * i as i64));
    }
    let cands = m.evaluate(at(40));
    assert_eq!(cands.len(), 1);
    let a = &cands[0];
    assert_eq!(a.trigger, Some(TriggerKind::VolatilitySpike));
    assert!(close(a.inputs.range_pct.unwrap(), 5.0));
    assert!(close(a.inputs.baseline_range_pct.unwrap(), 1.0));
    assert!(close(a.inputs.volatility_ratio.unwrap(), 5.0));
    assert!(close(a.inputs.change_pct.unwrap(), 4.0));
    assert!(!a.price_spike, "4% is under price_spike_pct");
    // g = min(1, (5 / 2.5) / 3) = 2/3, weight 0.7.
    assert!(close(a.score, 0.7 * 2.0 / 3.0));
}

#[test]
fn a_new_day_low_widens_the_range() {
    let mut m = CandidateMonitor::new(config());
    m.on_snapshot(at(0), &snap("A", "100", "100", "100", "100", 0));
    m.on_snapshot(at(10), &snap("A", "100", "100", "97", "100", 0));
    let st = &m.states[&sym("A")];
    assert!(close(st.moves[0].range_pct, 3.0));
}

#[test]
fn price_spike_is_flagged_without_a_trigger() {
    let mut m = CandidateMonitor::new(config());
    m.on_snapshot(at(0), &snap("UP", "110", "110", "100", "100", 10));
    m.on_snapshot(at(0), &snap("DOWN", "94", "100", "94", "100", 10));
    m.on_snapshot(at(0), &snap("EDGE", "104.99", "105", "100", "100", 10));
    let cands = m.evaluate(at(1));
    assert_eq!(cands.iter().map(|c| c.symbol.as_str()).collect::<Vec<_>>(), ["UP", "DOWN"]);
    let up = &cands[0];
    assert!(up.price_spike && up.trigger.is_none() && up.fired.is_empty());
    assert!(close(up.inputs.change_pct.unwrap(), 10.0));
    // g = min(1, (10 / 5) / 3) = 2/3, weight 0.5.
    assert!(close(up.score, 0.5 * 2.0 / 3.0));
    assert!(close(cands[1].inputs.change_pct.unwrap(), -6.0));
    // A newer trade price moves the change.
    m.on_tick(at(2), &tick("EDGE", "105", None));
    assert!(find(&m.evaluate(at(2)), "EDGE").is_some_and(|c| c.price_spike));
}

fn inputs(volume: Option<f64>, velocity: Option<f64>, volatility: Option<f64>, change: Option<f64>) -> ScoreInputs {
    ScoreInputs {
        volume_ratio: volume,
        velocity_ratio: velocity,
        volatility_ratio: volatility,
        change_pct: change,
        ..ScoreInputs::default()
    }
}

#[test]
fn score_follows_priority_corroboration_and_stays_in_bounds() {
    let m = CandidateMonitor::new(config());
    // Equally strong single signals (twice their threshold) rank by trigger priority.
    let vol = m.judge(sym("V"), inputs(Some(6.0), None, None, None));
    let vel = m.judge(sym("T"), inputs(None, Some(6.0), None, None));
    let vola = m.judge(sym("X"), inputs(None, None, Some(5.0), None));
    assert!(vol.score > vel.score && vel.score > vola.score, "{} {} {}", vol.score, vel.score, vola.score);
    // Corroboration: volume at 1.5× threshold (g 0.5) plus volatility at 2× (g 2/3).
    let both = m.judge(sym("B"), inputs(Some(4.5), None, Some(5.0), Some(-7.5)));
    assert_eq!(both.trigger, Some(TriggerKind::VolumeSurge));
    assert_eq!(both.fired, vec![TriggerKind::VolumeSurge, TriggerKind::VolatilitySpike]);
    assert!(both.price_spike);
    let expected = 1.0 - (1.0 - 0.5) * (1.0 - 0.7 * 2.0 / 3.0) * (1.0 - 0.5 * 0.5);
    assert!(close(both.score, expected), "{} vs {expected}", both.score);
    // Just under a threshold nothing fires.
    let under = m.judge(sym("U"), inputs(Some(2.999), Some(2.999), Some(2.499), Some(4.999)));
    assert!(!under.has_signal() && under.score == 0.0);
    // Huge ratios saturate at 1.
    let huge = m.judge(sym("H"), inputs(Some(1e9), Some(1e9), Some(1e9), Some(1e9)));
    assert!(close(huge.score, 1.0) && huge.score <= 1.0);
    let inf = m.judge(sym("I"), inputs(Some(f64::INFINITY), Some(f64::NAN), None, None));
    assert!(inf.score == 0.0 && inf.trigger.is_none());
}

#[test]
fn manual_include_is_always_a_candidate_and_exclude_wins() {
    let mut cfg = config();
    cfg.manual_include = vec![sym("M"), sym("UP")];
    let mut m = CandidateMonitor::new(cfg);
    m.on_snapshot(at(0), &snap("UP", "110", "110", "100", "100", 10));
    let cands = m.evaluate(at(0));
    assert_eq!(cands.len(), 2);
    let up = find(&cands, "UP").unwrap();
    assert!(up.manual && up.price_spike);
    assert_eq!(up.trigger, Some(TriggerKind::ManualOverride));
    let mm = find(&cands, "M").unwrap();
    assert!(mm.manual && mm.score == 0.0);
    assert_eq!(mm.fired, vec![TriggerKind::ManualOverride]);

    m.set_manual(vec![sym("M"), sym("UP")], vec![sym("M"), sym("UP")]);
    assert_eq!(m.manual_exclude(), [sym("M"), sym("UP")]);
    let cands = m.evaluate(at(0));
    assert_eq!(cands.len(), 1, "an excluded symbol is reported only for its own signals");
    assert!(!cands[0].manual && cands[0].trigger.is_none() && cands[0].price_spike);
}

#[test]
fn quiet_symbols_are_forgotten() {
    let mut m = CandidateMonitor::new(config());
    for i in 0..100 {
        m.on_snapshot(at(0), &flat(&format!("S{i}"), 10));
    }
    m.on_ranking(at(0), &[(sym("S1"), Qty::from_int(10))]);
    m.on_snapshot(at(100), &flat("S7", 20));
    assert_eq!(m.tracked(), 100);
    m.evaluate(at(120));
    assert_eq!(m.tracked(), 100, "exactly forget_after is still remembered");
    m.evaluate(at(121));
    assert_eq!(m.tracked(), 1);
    assert!(m.states.contains_key(&sym("S7")));
    assert!(m.ranking.is_empty());
}

#[test]
fn candidates_sort_by_score_then_symbol() {
    let mut m = CandidateMonitor::new(config());
    for s in ["C", "A", "B"] {
        m.on_snapshot(at(0), &snap(s, "110", "110", "100", "100", 10));
    }
    m.on_snapshot(at(0), &snap("Z", "120", "120", "100", "100", 10));
    let order: Vec<String> = m.evaluate(at(0)).iter().map(|c| c.symbol.to_string()).collect();
    assert_eq!(order, ["Z", "A", "B", "C"]);
}

#[test]
fn config_rejects_nonsense() {
    assert!(problems(&config()).is_empty(), "{:?}", problems(&config()));
    let mut bad = config();
    bad.volume_surge_ratio = 1.0;
    bad.trade_velocity_ratio = f64::NAN;
    bad.volatility_ratio = 0.5;
    bad.price_spike_pct = 0.0;
    bad.saturation = 0.9;
    bad.weights.volume_surge = 0.5;
    bad.weights.price_spike = 1.5;
    bad.min_baseline_samples = 61;
    bad.velocity_bucket = iv(7 * SEC);
    bad.forget_after = iv(MIN);
    bad.manual_include = vec![sym("X")];
    bad.manual_exclude = vec![sym("X")];
    assert_eq!(
        problems(&bad),
        [
            "triggers.volume_surge_ratio",
            "triggers.trade_velocity_ratio",
            "triggers.volatility_ratio",
            "triggers.price_spike_pct",
            "triggers.saturation",
            "triggers.weights.price_spike",
            "triggers.weights.trade_velocity",
            "triggers.min_baseline_samples",
            "triggers.velocity_window",
            "triggers.velocity_baseline",
            "triggers.forget_after",
            "triggers.manual_exclude",
        ]
    );
}

#[test]
fn config_reads_friendly_values_and_rejects_unknown_keys() {
    let text = r#"{
        "evaluate_interval": "10s", "baseline_window": "1h", "min_baseline_samples": 3,
        "min_volume_interval": "1m", "max_signal_age": "15m", "forget_after": "2h",
        "volume_surge_ratio": 3.0, "velocity_window": "1m", "velocity_baseline": "10m",
        "velocity_bucket": "1s", "trade_velocity_ratio": 3.0, "volatility_ratio": 2.5,
        "price_spike_pct": 5.0, "saturation": 3.0,
        "weights": { "volume_surge": 1.0, "trade_velocity": 0.85, "volatility_spike": 0.7, "price_spike": 0.5 }
    }"#;
    let cfg: TriggerConfig = serde_json::from_str(text).unwrap();
    assert_eq!(cfg.baseline_window.as_millis(), 3_600_000);
    assert!(cfg.manual_include.is_empty());
    assert!(problems(&cfg).is_empty());
    let typo = text.replace("\"saturation\"", "\"saturaton\"");
    assert!(serde_json::from_str::<TriggerConfig>(&typo).unwrap_err().to_string().contains("saturaton"));
    assert_eq!(serde_json::to_string(&TriggerKind::TradeVelocity).unwrap(), "\"trade_velocity\"");
}

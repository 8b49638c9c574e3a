//! Writes a small archive day in the real layout, with known contents: trades (raw frames,
//! including a repeated frame and a malformed one), Track B samples at 2 Hz with a hole and a
//! stretch at 1 Hz, Track A snapshots every 10 minutes, system events with gap markers,
//! overflow entries and the universe file.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use model::{
    Market, MarketEvent, Meta, OverflowEntry, Price, Provider, Qty, QualityFlag, RawFrame, RawFrameKind, Record,
    ScalpSample, SessionId, Snapshot, Symbol, SystemEvent, UtcTime,
};

#[derive(Debug, Clone)]
pub struct DaySpec {
    /// `YYYYMMDD`
    pub date: String,
    pub symbols: Vec<String>,
    /// Seoul wall-clock start, whole minutes after 09:00.
    pub start_minute: u32,
    pub minutes: u32,
    /// Trades per symbol per minute.
    pub trades_per_minute: u32,
    pub seed: u64,
}

impl DaySpec {
    pub fn small(date: &str) -> Self {
        DaySpec {
            date: date.to_string(),
            symbols: vec!["005930".into(), "000660".into(), "035720".into()],
            start_minute: 0,
            minutes: 25,
            trades_per_minute: 20,
            seed: 7,
        }
    }
}

/// What was written, for tests to compute expectations independently of the ETL.
#[derive(Debug, Clone, Default)]
pub struct DaySummary {
    /// Distinct trades (the repeated frame counted once).
    pub trades: Vec<Trade>,
    pub samples: Vec<Sample>,
    pub snapshots: usize,
    pub events: usize,
    pub gaps: usize,
    pub overflow: usize,
    pub universe: usize,
    pub raw_lines: usize,
}

#[derive(Debug, Clone)]
pub struct Trade {
    pub symbol: String,
    pub time: UtcTime,
    pub seq: u64,
    pub price: Price,
    pub size: Qty,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub symbol: String,
    pub time: UtcTime,
    pub last_price: Option<Price>,
    pub volume: Option<Qty>,
    pub interval_ms: u64,
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn append(root: &Path, rel: &str, line: &str) -> Result<(), String> {
    let path = root.join(rel);
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut f =
        OpenOptions::new().create(true).append(true).open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{line}").map_err(|e| format!("{}: {e}", path.display()))
}

fn json<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

fn sym(s: &str) -> Result<Symbol, String> {
    Symbol::new(s).map_err(|e| e.to_string())
}

/// Writes the day under `root` and returns what it wrote.
pub fn write_day(root: &Path, spec: &DaySpec) -> Result<DaySummary, String> {
    let day = crate::rows::parse_day(&spec.date)?;
    let (day_start, _) = crate::rows::day_range(day);
    let t0 = day_start.plus_millis((9 * 60 + spec.start_minute as i64) * 60_000);
    let t_end = t0.plus_millis(spec.minutes as i64 * 60_000);
    let session = SessionId::starting_at(t0);
    let meta = |event: UtcTime, recv: UtcTime| Meta::new(event, recv, session.clone());
    let mut rng = Lcg(spec.seed);
    let mut out = DaySummary::default();

    // Trades: per symbol, evenly spread with jitter; price walks in steps of 100 (KRX ticks).
    let mut all_trades: Vec<(UtcTime, Trade, u64)> = Vec::new();
    for (i, s) in spec.symbols.iter().enumerate() {
        let mut price = 50_000 + 10_000 * i as i64;
        let mut cum = 0i64;
        let n = spec.minutes * spec.trades_per_minute;
        let step = 60_000 / spec.trades_per_minute.max(1) as i64;
        for k in 0..n {
            let time = t0.plus_millis(k as i64 * step + (rng.next() % step.max(1) as u64) as i64);
            price += (rng.next() % 5) as i64 * 100 - 200;
            let size = 1 + (rng.next() % 50) as i64;
            cum += size;
            let t = Trade {
                symbol: s.clone(),
                time,
                seq: k as u64 + 1,
                price: Price::from_int(price),
                size: Qty::from_int(size),
            };
            all_trades.push((time, t, cum as u64));
        }
    }
    all_trades.sort_by_key(|(t, tr, _)| (*t, tr.symbol.clone()));
    let mut raw_seq = 0u64;
    let mut write_raw = |root: &Path, recv: UtcTime, frame: &str, out: &mut DaySummary| -> Result<(), String> {
        raw_seq += 1;
        // Written by the line's one encoder (`archive::raw`), as the collector writes it.
        let raw = RawFrame {
            provider: Provider::Sim,
            kind: RawFrameKind::Ws,
            channel: "sim".into(),
            frame: frame.into(),
            receive_time: recv,
        };
        let mut line = Vec::new();
        archive::raw::encode(&mut line, &raw, raw_seq, &meta(recv, recv));
        let line = String::from_utf8(line).map_err(|e| e.to_string())?;
        out.raw_lines += 1;
        append(root, &archive::raw_path(raw.provider, recv), &line)
    };
    for (idx, (time, t, cum)) in all_trades.iter().enumerate() {
        let frame = format!(
            "{{\"t\":\"trade\",\"s\":\"{}\",\"p\":\"{}\",\"q\":\"{}\",\"side\":\"buy\",\"seq\":{},\"cv\":\"{}\",\"ts\":\"{}\"}}",
            t.symbol, t.price, t.size, t.seq, cum, time
        );
        let recv = time.plus_millis(2);
        write_raw(root, recv, &frame, &mut out)?;
        if idx == 5 {
            // The same trade again, as after a reconnect: must load once.
            write_raw(root, recv.plus_millis(1), &frame, &mut out)?;
        }
        if idx == 7 {
            write_raw(root, recv, "{\"t\":\"trade\",\"s\":\"005930\"", &mut out)?;
            let book = format!(
                "{{\"t\":\"book\",\"s\":\"{}\",\"b\":[[\"{}\",\"10\"]],\"a\":[[\"{}\",\"12\"]],\"ts\":\"{}\"}}",
                t.symbol,
                t.price,
                Price(t.price.0 + rust_decimal::Decimal::from(100)),
                time
            );
            write_raw(root, recv, &book, &mut out)?;
        }
        out.trades.push(t.clone());
    }

    // Samples: 2 Hz; minute 3 loses its second half (a hole); minutes 6-7 run at 1 Hz.
    let mut due = t0;
    let mut by_symbol: BTreeMap<&str, Vec<&(UtcTime, Trade, u64)>> = BTreeMap::new();
    for tr in &all_trades {
        by_symbol.entry(tr.1.symbol.as_str()).or_default().push(tr);
    }
    while due < t_end {
        let minute = (due.millis_since(t0) / 60_000) as u32;
        let interval: u64 = if (6..8).contains(&minute) { 1000 } else { 500 };
        let in_hole = minute == 3 && due.millis_since(t0) % 60_000 >= 30_000;
        if !in_hole {
            for s in &spec.symbols {
                let latest = by_symbol.get(s.as_str()).and_then(|v| v.iter().rev().find(|(t, _, _)| *t <= due));
                let sample = ScalpSample {
                    provider: Provider::Sim,
                    market: Market::KrStocks,
                    symbol: sym(s)?,
                    bid_price: None,
                    ask_price: None,
                    bid_size: None,
                    ask_size: None,
                    last_price: latest.map(|(_, t, _)| t.price),
                    volume: latest.map(|(_, _, c)| Qty::from_int(*c as i64)),
                    data_age_ms: latest.map(|(t, _, _)| due.millis_since(*t)),
                    sample_interval_ms: interval,
                };
                let mut m = meta(due, due.plus_millis(3));
                if interval > 500 {
                    m.mitigation_level = 1;
                    m.quality_flag = QualityFlag::Degraded;
                }
                let w = due.as_millis() - due.as_millis().rem_euclid(300_000);
                let k = UtcTime::from_millis(w).kst();
                let rel = format!(
                    "scalp/sim/kr_stocks/{}/{:02}_{:02}_{:02}.jsonl",
                    due.kst_yyyymmdd(),
                    k.hour(),
                    k.minute(),
                    k.second()
                );
                append(root, &rel, &json(&Record { body: sample.clone(), meta: m })?)?;
                out.samples.push(Sample {
                    symbol: s.clone(),
                    time: due,
                    last_price: sample.last_price,
                    volume: sample.volume,
                    interval_ms: interval,
                });
            }
        }
        due = due.plus_millis(interval as i64);
    }

    // Snapshots every 10 minutes.
    let mut at = t0;
    while at < t_end {
        for s in &spec.symbols {
            let trades: Vec<_> = by_symbol.get(s.as_str()).into_iter().flatten().filter(|(t, _, _)| *t <= at).collect();
            let Some(last) = trades.last() else { continue };
            let prices: Vec<Price> = trades.iter().map(|(_, t, _)| t.price).collect();
            let snap = Snapshot {
                provider: Provider::Sim,
                market: Market::KrStocks,
                symbol: sym(s)?,
                last_price: last.1.price,
                open: prices[0],
                high: prices.iter().copied().max().unwrap_or(last.1.price),
                low: prices.iter().copied().min().unwrap_or(last.1.price),
                prev_close: Price::from_int(50_000),
                volume: Qty::from_int(last.2 as i64),
                bid_price: None,
                ask_price: None,
            };
            let rel = format!("swing/sim/kr_stocks/{}/{:02}_00.jsonl", at.kst_yyyymmdd(), at.kst().hour());
            let rec = Record { body: MarketEvent::Snapshot(snap), meta: meta(at, at.plus_millis(40)) };
            append(root, &rel, &json(&rec)?)?;
            out.snapshots += 1;
        }
        at = at.plus_millis(600_000);
    }

    // System events, overflow, universe.
    let ev_rel = format!("system/events/sim/{}.jsonl", spec.date);
    let events = [
        SystemEvent::SessionStart { source: "sim".into(), version: "test".into(), detail: serde_json::Value::Null },
        SystemEvent::gap(t0.plus_millis(210_000), t0.plus_millis(240_000), "scalp", "ws_disconnect", None),
        SystemEvent::ReconnectionEvent {
            timestamp: t0.plus_millis(240_000),
            attempt_no: 2,
            backoff_seconds: 1,
            result: "SUCCESS".into(),
            recovered_slot_list: vec![],
            mitigation_level_after: 0,
        },
        SystemEvent::gap(t0.plus_millis(600_000), t0.plus_millis(605_000), "all", "rate_limit", Some("test".into())),
    ];
    for e in events {
        let gap = matches!(e, SystemEvent::GapMarker { .. });
        append(root, &ev_rel, &json(&Record { body: e, meta: meta(t0, t0) })?)?;
        out.events += 1;
        out.gaps += gap as usize;
    }
    let of_rel = format!("system/overflow/sim/{}_overflow.jsonl", spec.date);
    for (i, s) in spec.symbols.iter().enumerate() {
        let entry = OverflowEntry {
            timestamp: t0.plus_millis(i as i64 * 1000),
            provider: Provider::Sim,
            symbol: sym(s)?,
            candidate_score: 0.5,
            cutoff_rank: 41,
            decision_reason: "slot_full".into(),
        };
        append(root, &of_rel, &json(&Record { body: entry, meta: meta(t0, t0) })?)?;
        out.overflow += 1;
    }
    let symbols = spec
        .symbols
        .iter()
        .map(|s| {
            Ok(model::UniverseEntry {
                symbol: sym(s)?,
                name: format!("name {s}"),
                prev_close: Price::from_int(50_000),
                traded_value_24h: None,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let universe = archive::universe::UniverseFile {
        date: spec.date.clone(),
        market: model::Market::KrStocks,
        provider: Provider::Sim,
        source: "fixture".into(),
        filter: archive::universe::Filter {
            min_prev_close: Price::from_int(1000),
            quote: None,
            min_traded_value_24h: None,
        },
        count: symbols.len(),
        symbols,
    };
    archive::universe::write(root, &universe).map_err(|e| e.to_string())?;
    out.universe = spec.symbols.len();
    Ok(out)
}

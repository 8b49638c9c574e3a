//! Bars built from archived records, identically for every backend (and the SQLite store's
//! rollups, since SQLite cannot compare TEXT decimals numerically).
//!
//! * 1m bars from Track B samples: OHLC of the sampled `last_price`; volume from the
//!   day-cumulative volume the samples carry (last value in the minute minus the last value
//!   before it; for a symbol's first sampled minute, minus the first value in the minute, so a
//!   recording that starts mid-day does not put the whole morning into one bar);
//!   `coverage_ratio` = samples present / samples expected at the rate in force, computed as
//!   Σ sample_interval_ms / 60 000 capped at 1 so a mitigation-lowered rate counts correctly.
//! * rollups (10m, 1h, Seoul 1d) from 1m bars: first open, max high, min low, last close, sum
//!   of volume, mean coverage of the minutes present, `count` = minutes present.
//! * swing 10m bars from Track A snapshots, the same way as 1m bars from samples.
//! * eod_prices from each symbol's last snapshot of the day.

use std::collections::BTreeMap;

use jiff::civil::Date;

use model::{Market, Price, Provider, Qty, Snapshot, Symbol, UtcTime};

use crate::rows::{Bar, BarInterval, BarMeta, EodRow, RowMeta, ScalpTickRow};

/// One priced observation of a symbol at an instant.
#[derive(Debug, Clone)]
pub struct Obs {
    pub time: UtcTime,
    pub price: Option<Price>,
    pub cum_volume: Option<Qty>,
    /// Sampling interval behind this observation (ms); 0 where coverage has no meaning.
    pub interval_ms: u64,
    pub meta: BarMeta,
}

type Key = (Provider, Symbol);

/// Accumulates observations in any order; bars come out sorted by (provider, symbol, time).
#[derive(Debug)]
pub struct BarBuilder {
    size: BarInterval,
    by_symbol: BTreeMap<Key, (Market, Vec<Obs>)>,
}

impl BarBuilder {
    pub fn new(size: BarInterval) -> Self {
        BarBuilder { size, by_symbol: BTreeMap::new() }
    }

    pub fn push(&mut self, provider: Provider, market: Market, symbol: &Symbol, obs: Obs) {
        self.by_symbol.entry((provider, symbol.clone())).or_insert_with(|| (market, Vec::new())).1.push(obs);
    }

    pub fn push_sample(&mut self, row: &ScalpTickRow) {
        let obs = Obs {
            time: row.event_time,
            price: row.last_price,
            cum_volume: row.volume,
            interval_ms: row.sample_interval_ms,
            meta: bar_meta(&row.meta),
        };
        self.push(row.provider, row.market, &row.symbol, obs);
    }

    pub fn push_snapshot(&mut self, s: &Snapshot, event_time: UtcTime, meta: &RowMeta) {
        let obs = Obs {
            time: event_time,
            price: Some(s.last_price),
            cum_volume: Some(s.volume),
            interval_ms: 0,
            meta: bar_meta(meta),
        };
        self.push(s.provider, s.market, &s.symbol, obs);
    }

    /// The bars, sorted. A bar whose volume cannot be computed (a difference outside
    /// `Decimal`'s range: only numbers no market produces, which the ETL refuses first) is
    /// skipped, with a line in `skipped` saying which.
    pub fn finish(mut self, skipped: &mut Vec<String>) -> Vec<Bar> {
        let size = self.size;
        let span_ms = match size {
            BarInterval::M1 => 60_000.0,
            BarInterval::M10 => 600_000.0,
            BarInterval::H1 => 3_600_000.0,
            BarInterval::D1 => 86_400_000.0,
        };
        let mut out = Vec::new();
        for ((provider, symbol), (market, obs)) in &mut self.by_symbol {
            obs.sort_by_key(|o| o.time);
            let mut prev_cum: Option<Qty> = None;
            let mut i = 0;
            while i < obs.len() {
                let bucket = size.bucket(obs[i].time);
                let mut j = i;
                while j < obs.len() && size.bucket(obs[j].time) == bucket {
                    j += 1;
                }
                let group = &obs[i..j];
                i = j;
                let first_cum = group.iter().find_map(|o| o.cum_volume);
                let last_cum = group.iter().rev().find_map(|o| o.cum_volume);
                let volume = match (last_cum, prev_cum.or(first_cum)) {
                    (Some(l), Some(p)) if l.0 >= p.0 => l.0.checked_sub(p.0),
                    (Some(l), _) => l.0.checked_sub(first_cum.unwrap_or(l).0),
                    _ => Some(rust_decimal::Decimal::ZERO),
                };
                if last_cum.is_some() {
                    prev_cum = last_cum;
                }
                let Some(volume) = volume.map(Qty) else {
                    skipped.push(format!("{provider}/{symbol} bar {bucket}: volume difference overflows"));
                    continue;
                };
                let mut prices = group.iter().filter_map(|o| o.price);
                let Some(open) = prices.next() else { continue };
                let (mut high, mut low, mut close) = (open, open, open);
                for p in prices {
                    high = high.max(p);
                    low = low.min(p);
                    close = p;
                }
                let covered = group.iter().fold(0u64, |acc, o| acc.saturating_add(o.interval_ms));
                let coverage = (covered as f64 / span_ms).min(1.0);
                let last = &group[group.len() - 1];
                let meta = BarMeta {
                    session_id: last.meta.session_id.clone(),
                    schema_version: last.meta.schema_version.clone(),
                    mitigation_level: group.iter().map(|o| o.meta.mitigation_level).max().unwrap_or(0),
                    quality_flag: group
                        .iter()
                        .map(|o| o.meta.quality_flag)
                        .max_by_key(|q| q.severity())
                        .unwrap_or_default(),
                };
                out.push(Bar {
                    provider: *provider,
                    market: *market,
                    symbol: symbol.clone(),
                    bar_time: bucket,
                    open,
                    high,
                    low,
                    close,
                    volume: volume.normalize_scale(),
                    coverage_ratio: coverage,
                    count: group.len() as u32,
                    meta: Some(meta),
                });
            }
        }
        out
    }
}

trait NormalizeScale {
    fn normalize_scale(self) -> Self;
}

impl NormalizeScale for Qty {
    /// A difference of `45678` and `45000` is `678`, but of `1.50` and `1.2` is `0.30`;
    /// trailing zeros carry no information and would make equal volumes compare as text
    /// differently across backends.
    fn normalize_scale(self) -> Self {
        Qty(self.0.normalize())
    }
}

pub(crate) fn bar_meta(m: &RowMeta) -> BarMeta {
    BarMeta {
        session_id: m.session_id.clone(),
        schema_version: m.schema_version.clone(),
        mitigation_level: m.mitigation_level,
        quality_flag: m.quality_flag,
    }
}

/// Rolls 1m bars (any order) up to `size`. A group whose summed volume overflows is skipped,
/// with a line in `skipped`.
pub fn rollup(bars: &[Bar], size: BarInterval, skipped: &mut Vec<String>) -> Vec<Bar> {
    let mut groups: BTreeMap<(Provider, Symbol, UtcTime), Vec<&Bar>> = BTreeMap::new();
    for b in bars {
        groups.entry((b.provider, b.symbol.clone(), size.bucket(b.bar_time))).or_default().push(b);
    }
    groups
        .into_iter()
        .filter_map(|((provider, symbol, bar_time), mut g)| {
            g.sort_by_key(|b| b.bar_time);
            let first = g[0];
            let last = g[g.len() - 1];
            let Some(volume) = g.iter().try_fold(Qty::ZERO, |acc, b| acc.0.checked_add(b.volume.0).map(Qty)) else {
                skipped.push(format!("{provider}/{symbol} {size:?} bar {bar_time}: summed volume overflows"));
                return None;
            };
            Some(Bar {
                provider,
                market: first.market,
                symbol,
                bar_time,
                open: first.open,
                high: g.iter().map(|b| b.high).max().unwrap_or(first.high),
                low: g.iter().map(|b| b.low).min().unwrap_or(first.low),
                close: last.close,
                volume: volume.normalize_scale(),
                coverage_ratio: g.iter().map(|b| b.coverage_ratio).sum::<f64>() / g.len() as f64,
                count: g.len() as u32,
                meta: None,
            })
        })
        .collect()
}

/// Each symbol's last snapshot of the day as its end-of-day row.
pub fn eod_rows(snapshots: &[(UtcTime, Snapshot, RowMeta)], day: Date) -> Vec<EodRow> {
    let mut last: BTreeMap<Key, &(UtcTime, Snapshot, RowMeta)> = BTreeMap::new();
    for s in snapshots {
        let key = (s.1.provider, s.1.symbol.clone());
        match last.get(&key) {
            Some(prev) if prev.0 > s.0 => {}
            _ => {
                last.insert(key, s);
            }
        }
    }
    last.into_values()
        .map(|(_, s, meta)| EodRow {
            provider: s.provider,
            market: s.market,
            symbol: s.symbol.clone(),
            trade_date: day,
            open: s.open,
            high: s.high,
            low: s.low,
            close: s.last_price,
            volume: s.volume,
            prev_close: s.prev_close,
            session_id: meta.session_id.clone(),
            schema_version: meta.schema_version.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::QualityFlag;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn meta() -> BarMeta {
        BarMeta {
            session_id: "sess_20260114_100000".into(),
            schema_version: "1.0".into(),
            mitigation_level: 0,
            quality_flag: QualityFlag::Normal,
        }
    }

    fn obs(ms: i64, price: Option<Decimal>, cum: Option<Decimal>, interval_ms: u64) -> Obs {
        Obs {
            time: UtcTime::from_millis(ms),
            price: price.map(Price),
            cum_volume: cum.map(Qty),
            interval_ms,
            meta: meta(),
        }
    }

    const T0: i64 = 1_768_352_400_000; // 2026-01-14T01:00:00Z

    /// Issue 14's ETL reproduction: two samples of a day with cumulative volumes of ∓7.9e28
    /// panicked (`Subtraction overflowed`, exit 101). The bar is skipped with a reason.
    #[test]
    fn overflowing_volumes_skip_the_bar_with_a_reason() {
        let sym = Symbol::new("005930").unwrap();
        let mut b = BarBuilder::new(BarInterval::M1);
        let p = Some(Decimal::from(71900));
        b.push(Provider::Kis, Market::KrStocks, &sym, obs(T0 + 30_000, p, Some(Decimal::MIN), 500));
        b.push(Provider::Kis, Market::KrStocks, &sym, obs(T0 + 90_000, p, Some(Decimal::MAX), u64::MAX));
        let mut skipped = Vec::new();
        let bars = b.finish(&mut skipped);
        assert_eq!(bars.len(), 1, "the first minute has a volume (0): {bars:?}");
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].contains("volume difference overflows"), "{skipped:?}");
        let mut big = bars[0].clone();
        big.volume = Qty(Decimal::MAX);
        let mut other = big.clone();
        other.bar_time = big.bar_time.plus_millis(60_000);
        let r = rollup(&[big, other], BarInterval::H1, &mut skipped);
        assert!(r.is_empty() && skipped.len() == 2 && skipped[1].contains("summed volume"), "{skipped:?}");
    }

    fn decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            Just(Decimal::new(1, 28)),
            Just(Decimal::ZERO),
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
            (0i64..10_000_000).prop_map(Decimal::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Random and extreme observations, in any order, never panic the bars or rollups.
        #[test]
        fn bars_never_panic(
            points in proptest::collection::vec(
                (0i64..86_400_000, proptest::option::of(decimal()), proptest::option::of(decimal()), any::<u64>(), 0usize..2),
                0..60,
            ),
        ) {
            let syms = [Symbol::new("005930").unwrap(), Symbol::new("000660").unwrap()];
            let mut m1 = BarBuilder::new(BarInterval::M1);
            let mut swing = BarBuilder::new(BarInterval::M10);
            for (off, price, cum, interval, s) in points {
                m1.push(Provider::Kis, Market::KrStocks, &syms[s], obs(T0 + off, price, cum, interval));
                swing.push(Provider::Kis, Market::KrStocks, &syms[s], obs(T0 + off, price, cum, 0));
            }
            let mut skipped = Vec::new();
            let bars = m1.finish(&mut skipped);
            for b in &bars {
                prop_assert!(b.low <= b.high && (0.0..=1.0).contains(&b.coverage_ratio));
            }
            for size in [BarInterval::M10, BarInterval::H1, BarInterval::D1] {
                let _ = rollup(&bars, size, &mut skipped);
            }
            let _ = swing.finish(&mut skipped);
        }
    }
}

//! Track B: `scalp_ticks` from the day's samples, and the bars built from them — 1-minute
//! bars and their 10-minute, hourly and daily rollups.

use std::collections::HashSet;
use std::path::PathBuf;

use model::num::PLAUSIBLE_ABS_MAX;
use model::{Record, ScalpSample};

use super::day_load::{DayLoad, key_hash};
use crate::backend::Backend;
use crate::bars::{BarBuilder, rollup};
use crate::error::StoreError;
use crate::rows::{Bar, BarInterval, BarTable, ScalpTickRow, Table};

/// Why a Track B sample line cannot be loaded although it parses: an implausible time or
/// number (issue 14; the engine never writes one, so the line is damaged or forged).
fn implausible_sample(rec: &Record<ScalpSample>) -> Option<String> {
    rec.meta
        .implausible()
        .or_else(|| rec.body.number_beyond(PLAUSIBLE_ABS_MAX).map(|(name, v)| format!("implausible {name} {v}")))
}

/// Loads the day's samples in batches of `cx.batch` rows and returns the 1-minute bars
/// being built from them: the samples are read once, for both. A sample file can hold
/// samples just outside the Seoul day; they are stored, but only the day's count as
/// expected (`count_day` counts by time).
pub(super) async fn load_samples<B: Backend>(
    store: &B,
    cx: &mut DayLoad<'_>,
    files: &[PathBuf],
) -> Result<BarBuilder, StoreError> {
    cx.bar.set_message("scalp");
    let (day_lo, day_hi) = (cx.day_lo, cx.day_hi);
    let mut bars_1m = BarBuilder::new(BarInterval::M1);
    let mut sample_keys: HashSet<u64> = HashSet::new();
    let mut pending: Vec<ScalpTickRow> = Vec::new();
    for path in files {
        let mut rows_here = Vec::new();
        cx.read_lines(path, |cx, n, line| match serde_json::from_str::<Record<ScalpSample>>(line) {
            Ok(rec) => {
                if let Some(why) = implausible_sample(&rec) {
                    return cx.bad(path, n, why);
                }
                cx.line(Table::ScalpTicks);
                let row = ScalpTickRow::from_record(&rec);
                if row.event_time >= day_lo && row.event_time < day_hi {
                    sample_keys.insert(key_hash((row.symbol.as_str(), row.event_time, row.provider)));
                }
                bars_1m.push_sample(&row);
                rows_here.push(row);
            }
            Err(e) => cx.bad(path, n, e),
        })?;
        pending.extend(rows_here);
        while pending.len() >= cx.batch {
            let rest = pending.split_off(cx.batch);
            let n = store.write_scalp_ticks(std::mem::replace(&mut pending, rest)).await?;
            cx.add(Table::ScalpTicks, n);
        }
    }
    let n = store.write_scalp_ticks(std::mem::take(&mut pending)).await?;
    cx.add(Table::ScalpTicks, n);
    cx.expect(Table::ScalpTicks, sample_keys.len() as u64);
    Ok(bars_1m)
}

/// Writes the day's 1-minute bars and the rollups computed from them, then has the
/// database refresh what it computes itself (TimescaleDB's continuous aggregates). Rollups
/// are built from the 1-minute bars, not the samples, so every size agrees with the minutes
/// it covers.
pub(super) async fn load_sample_bars<B: Backend>(
    store: &B,
    cx: &mut DayLoad<'_>,
    bars_1m: BarBuilder,
) -> Result<(), StoreError> {
    let (day_lo, day_hi) = (cx.day_lo, cx.day_hi);
    let in_day = |b: &Bar| b.bar_time >= day_lo && b.bar_time < day_hi;
    let m1: Vec<Bar> = bars_1m.finish(&mut cx.skipped_bars).into_iter().filter(in_day).collect();
    let rollups =
        [(Table::Bars10m, BarInterval::M10), (Table::Bars1h, BarInterval::H1), (Table::Bars1d, BarInterval::D1)];
    for (table, size) in rollups {
        let r = rollup(&m1, size, &mut cx.skipped_bars);
        cx.expect(table, r.len() as u64);
        cx.add_lines(table, m1.len() as u64);
        for chunk in r.chunks(cx.batch) {
            let n = store.write_bars(BarTable::Scalp(size), chunk.to_vec()).await?;
            cx.add(table, n);
        }
    }
    cx.expect(Table::Scalp1mBars, m1.len() as u64);
    cx.add_lines(Table::Scalp1mBars, cx.lines.get(&Table::ScalpTicks).copied().unwrap_or(0));
    for chunk in m1.chunks(cx.batch) {
        let n = store.write_bars(BarTable::Scalp(BarInterval::M1), chunk.to_vec()).await?;
        cx.add(Table::Scalp1mBars, n);
    }
    store.refresh_rollups(cx.day).await
}

//! Track A: 10-minute swing bars and end-of-day prices, both built from the day's
//! snapshots.

use std::path::PathBuf;

use model::num::PLAUSIBLE_ABS_MAX;
use model::{MarketEvent, Record};

use super::day_load::DayLoad;
use crate::backend::Backend;
use crate::bars::{BarBuilder, eod_rows};
use crate::error::StoreError;
use crate::rows::{Bar, BarInterval, BarTable, RowMeta, Table};

/// Reads the day's snapshots once for both tables, then writes the swing bars inside the
/// Seoul day and each symbol's end-of-day row. The bars any builder skipped are reported
/// here, once the last bars are built (see `DayLoad::skipped_bars`).
pub(super) async fn load_snapshots<B: Backend>(
    store: &B,
    cx: &mut DayLoad<'_>,
    files: &[PathBuf],
) -> Result<(), StoreError> {
    cx.bar.set_message("swing");
    let mut swing = BarBuilder::new(BarInterval::M10);
    let mut snaps = Vec::new();
    for path in files {
        cx.read_lines(path, |cx, n, line| match serde_json::from_str::<Record<MarketEvent>>(line) {
            Ok(Record { body, meta })
                if meta.implausible().is_some() || body.number_beyond(PLAUSIBLE_ABS_MAX).is_some() =>
            {
                let why = meta.implausible().or_else(|| {
                    body.number_beyond(PLAUSIBLE_ABS_MAX).map(|(name, v)| format!("implausible {name} {v}"))
                });
                cx.bad(path, n, why.unwrap_or_default())
            }
            Ok(Record { body: MarketEvent::Snapshot(s), meta }) => {
                cx.line(Table::SwingBars10m);
                cx.line(Table::EodPrices);
                let m = RowMeta::from_meta(&meta);
                swing.push_snapshot(&s, meta.event_time, &m);
                snaps.push((meta.event_time, s, m));
            }
            Ok(_) => cx.bad(path, n, "not a snapshot"),
            Err(e) => cx.bad(path, n, e),
        })?;
    }
    let (day_lo, day_hi) = (cx.day_lo, cx.day_hi);
    let in_day = |b: &Bar| b.bar_time >= day_lo && b.bar_time < day_hi;
    let swing_bars: Vec<Bar> = swing.finish(&mut cx.skipped_bars).into_iter().filter(in_day).collect();
    cx.report_skipped_bars();
    cx.expect(Table::SwingBars10m, swing_bars.len() as u64);
    for chunk in swing_bars.chunks(cx.batch) {
        let n = store.write_bars(BarTable::Swing10m, chunk.to_vec()).await?;
        cx.add(Table::SwingBars10m, n);
    }
    let eod = eod_rows(&snaps, cx.day);
    cx.expect(Table::EodPrices, eod.len() as u64);
    let n = store.write_eod(eod).await?;
    cx.add(Table::EodPrices, n);
    Ok(())
}

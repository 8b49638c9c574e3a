//! `market_ticks` from the raw archive: every stream and REST frame re-parsed with its
//! provider's mapper, as the engine parsed it live, so the database holds exactly the trades
//! the frames carried, each pointing back to its frame (`raw_ref`).

use std::collections::HashSet;
use std::path::PathBuf;

use model::num::PLAUSIBLE_ABS_MAX;
use model::{RawFrameKind, Record};

use super::day_load::{DayLoad, key_hash};
use super::files::rel;
use super::{FrameError, parse_frame};
use crate::backend::Backend;
use crate::error::StoreError;
use crate::rows::{MarketTickRow, Table};

/// Loads the trades of the day's raw files, in batches of `cx.batch` rows. A day's raw files
/// can be far larger than memory allows at once, so rows are written as they accumulate;
/// only the hashes of their keys are kept, to count the distinct trades expected.
pub(super) async fn load_ticks<B: Backend>(
    store: &B,
    cx: &mut DayLoad<'_>,
    files: &[PathBuf],
) -> Result<(), StoreError> {
    cx.bar.set_message("raw");
    let mut tick_keys: HashSet<u64> = HashSet::new();
    let mut pending: Vec<MarketTickRow> = Vec::new();
    for path in files {
        let file_rel = rel(cx.root, path);
        let mut rows_here = Vec::new();
        cx.read_lines(path, |cx, n, line| {
            // The line's one decoder (`archive::raw`), as replay uses: it also refuses
            // implausible times.
            let raw = match archive::raw::decode(line.as_bytes()) {
                Ok(r) => r,
                Err(why) => return cx.bad(path, n, why),
            };
            if !matches!(raw.frame.kind, RawFrameKind::Ws | RawFrameKind::Rest) {
                return;
            }
            let frame = raw.frame;
            let events = match parse_frame(&frame) {
                Ok(e) => e,
                Err(FrameError::NoParser) => {
                    *cx.report.unparsed_frames.entry(frame.provider.to_string()).or_default() += 1;
                    return;
                }
                Err(FrameError::Malformed(_)) => {
                    cx.report.malformed_frames += 1;
                    return;
                }
            };
            let raw_ref = archive::raw::raw_ref_in(&file_rel, raw.seq);
            // What the observer core refuses as implausible (issue 14) is no market tick.
            let before = events.len();
            let events: Vec<_> = events
                .into_iter()
                .filter(|(t, ev)| t.is_plausible() && ev.number_beyond(PLAUSIBLE_ABS_MAX).is_none())
                .collect();
            if events.len() < before {
                cx.report.malformed_frames += 1;
            }
            for (event_time, ev) in events {
                let mut meta = raw.meta.clone();
                meta.event_time = event_time;
                meta.raw_ref = Some(raw_ref.clone());
                if let Some(row) = MarketTickRow::from_record(&Record { body: ev, meta }) {
                    cx.line(Table::MarketTicks);
                    tick_keys.insert(key_hash((row.symbol.as_str(), row.time, row.provider, &row.trade_id)));
                    rows_here.push(row);
                }
            }
        })?;
        pending.extend(rows_here);
        while pending.len() >= cx.batch {
            let rest = pending.split_off(cx.batch);
            let n = store.write_market_ticks(std::mem::replace(&mut pending, rest)).await?;
            cx.add(Table::MarketTicks, n);
        }
    }
    let n = store.write_market_ticks(std::mem::take(&mut pending)).await?;
    cx.add(Table::MarketTicks, n);
    cx.expect(Table::MarketTicks, tick_keys.len() as u64);
    Ok(())
}

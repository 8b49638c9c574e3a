//! The system streams: every system event of the day (`system_events`), the gap markers
//! among them (`scalp_gaps`), and the overflow entries (`overflow_entries`). Their rows are
//! keyed by the line they came from (`src_file`, `src_line`), not by content.

use std::path::PathBuf;

use model::{OverflowEntry, Record, SystemEvent};

use super::day_load::DayLoad;
use super::files::rel;
use crate::backend::Backend;
use crate::error::StoreError;
use crate::rows::{EventRow, GapRow, OverflowRow, RowMeta, SrcRef, Table};

/// Loads the day's system events, each kept whole as JSON, and the gap markers among them
/// as `scalp_gaps` rows. An event's provider is the folder its file is in: events are
/// written per provider, and not every event names one in its body.
pub(super) async fn load_events<B: Backend>(
    store: &B,
    cx: &mut DayLoad<'_>,
    files: &[PathBuf],
) -> Result<(), StoreError> {
    cx.bar.set_message("events");
    let (mut events, mut gaps) = (Vec::new(), Vec::new());
    for path in files {
        let file_rel = rel(cx.root, path);
        cx.read_lines(path, |cx, n, line| {
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => return cx.bad(path, n, e),
            };
            let meta = match serde_json::from_value::<model::Meta>(value.clone()) {
                Ok(m) => m,
                Err(e) => return cx.bad(path, n, format_args!("meta: {e}")),
            };
            if let Some(why) = meta.implausible() {
                return cx.bad(path, n, why);
            }
            let Some(provider) = path.parent().and_then(|p| p.file_name()).and_then(|p| p.to_str()?.parse().ok())
            else {
                return cx.bad(path, n, "file is not under system/events/{provider}");
            };
            let event_type = value.get("event_type").and_then(|v| v.as_str()).unwrap_or("unknown").to_string();
            let src = SrcRef { file: file_rel.clone(), line: n };
            let row_meta = RowMeta::from_meta(&meta);
            cx.line(Table::SystemEvents);
            if event_type == "gap_marker" {
                cx.line(Table::ScalpGaps);
                match serde_json::from_value::<SystemEvent>(value.clone()) {
                    Ok(SystemEvent::GapMarker { gap_start_ts, gap_end_ts, .. })
                        if !gap_start_ts.is_plausible() || !gap_end_ts.is_plausible() =>
                    {
                        cx.bad(path, n, format_args!("gap_marker: implausible span {gap_start_ts}..{gap_end_ts}"))
                    }
                    Ok(SystemEvent::GapMarker { gap_start_ts, gap_end_ts, gap_seconds, scope, reason, detail }) => gaps
                        .push(GapRow {
                            src: src.clone(),
                            provider,
                            gap_start_ts,
                            gap_end_ts,
                            gap_seconds,
                            scope,
                            reason,
                            detail,
                            meta: row_meta.clone(),
                        }),
                    Ok(_) => {}
                    Err(e) => cx.bad(path, n, format_args!("gap_marker: {e}")),
                }
            }
            events.push(EventRow {
                src,
                provider,
                event_time: meta.event_time,
                event_type,
                body: value,
                meta: row_meta,
            });
        })?;
    }
    cx.expect(Table::SystemEvents, events.len() as u64);
    cx.expect(Table::ScalpGaps, gaps.len() as u64);
    for chunk in events.chunks(cx.batch) {
        let n = store.write_events(chunk.to_vec()).await?;
        cx.add(Table::SystemEvents, n);
    }
    for chunk in gaps.chunks(cx.batch) {
        let n = store.write_gaps(chunk.to_vec()).await?;
        cx.add(Table::ScalpGaps, n);
    }
    Ok(())
}

/// Loads the day's overflow entries: the candidates Track B could not give a slot, with
/// their score and the cut-off rank, for judging the slot count afterwards.
pub(super) async fn load_overflow<B: Backend>(
    store: &B,
    cx: &mut DayLoad<'_>,
    files: &[PathBuf],
) -> Result<(), StoreError> {
    cx.bar.set_message("overflow");
    let mut overflow = Vec::new();
    for path in files {
        let file_rel = rel(cx.root, path);
        cx.read_lines(path, |cx, n, line| match serde_json::from_str::<Record<OverflowEntry>>(line) {
            Ok(rec) if rec.meta.implausible().is_some() || !rec.body.timestamp.is_plausible() => {
                let why =
                    rec.meta.implausible().unwrap_or_else(|| format!("implausible timestamp {}", rec.body.timestamp));
                cx.bad(path, n, why)
            }
            Ok(rec) => {
                cx.line(Table::OverflowEntries);
                overflow.push(OverflowRow {
                    src: SrcRef { file: file_rel.clone(), line: n },
                    provider: rec.body.provider,
                    ts: rec.body.timestamp,
                    symbol: rec.body.symbol.to_string(),
                    candidate_score: rec.body.candidate_score,
                    cutoff_rank: rec.body.cutoff_rank,
                    decision_reason: rec.body.decision_reason,
                    meta: RowMeta::from_meta(&rec.meta),
                });
            }
            Err(e) => cx.bad(path, n, e),
        })?;
    }
    cx.expect(Table::OverflowEntries, overflow.len() as u64);
    for chunk in overflow.chunks(cx.batch) {
        let n = store.write_overflow(chunk.to_vec()).await?;
        cx.add(Table::OverflowEntries, n);
    }
    Ok(())
}

//! Keeping the reconciliation in the archive: the report of a run appended as an
//! `etl_reconcile` system event of its day.

use std::path::Path;

use model::{Record, UtcTime};

use super::EtlReport;
use crate::error::StoreError;
use crate::rows::{day_range, parse_day};

/// Appends `report` as an `etl_reconcile` system event to its day's `system/events` file,
/// through the archive writer so the file's manifest entry stays right (`verify` passes).
/// The event goes to the first provider with data that day, as the collector does with
/// facts that belong to no provider, stamped inside the day (the last millisecond of a past
/// day) so it lands in that day's file; `receive_time` is when it was written. Returns the
/// file's archive path.
///
/// Refuses while a recording session is open or unfinished (`.session` present): the writer
/// of a running `collect` owns the archive, and after a crash the next `collect` must be the
/// one to find it and write the gap marker.
pub fn record_reconcile(
    root: &Path,
    cfg: &archive::ArchiveConfig,
    report: &EtlReport,
    now: UtcTime,
) -> Result<String, StoreError> {
    let day = parse_day(&report.date).map_err(StoreError::Invalid)?;
    let Some(&provider) = report.providers.first() else {
        return Err(StoreError::Invalid(format!(
            "the archive has no data for {}, so no system/events file to record the reconciliation in",
            report.date
        )));
    };
    if root.join(".session").exists() {
        return Err(StoreError::Invalid(format!(
            "{} has a recording session open or unfinished (.session): the reconciliation is not written \
             into the archive while collect runs, or before collect has recovered after a crash",
            root.display()
        )));
    }
    let (lo, hi) = day_range(day);
    let at = now.clamp(lo, hi.plus_millis(-1));
    let session = model::SessionId::starting_at(now);
    let rec = Record { body: report.to_event(), meta: model::Meta::new(at, now, session.clone()) };
    let line = serde_json::to_vec(&rec).map_err(|e| StoreError::Invalid(format!("encoding the event: {e}")))?;
    let (mut writer, _) = archive::ArchiveWriter::open(root, cfg, now, &session)?;
    let stream = archive::Stream::Events(provider);
    writer.append(stream, at, &line)?;
    writer.close_all(now)?;
    Ok(stream.partition(at, cfg.scalp_window).path)
}

//! A day's files as they are on disk, listed or not: what a backup must find closed.

use std::path::Path;

use crate::stream::partition_date;
use crate::{ArchiveError, fsutil};

/// Every archive line file whose partition date is `date` (`YYYYMMDD`), by its logical
/// name (`X.jsonl`, whichever form is on disk), relative to `root` with `/` separators;
/// sorted, each once.
pub fn files_on_disk(root: &Path, date: &str) -> Result<Vec<String>, ArchiveError> {
    let mut out: Vec<String> = fsutil::archive_files(root)?
        .iter()
        .filter_map(|p| crate::logical_path(p))
        .map(|p| fsutil::rel_string(root, &p))
        .filter(|rel| partition_date(rel) == Some(date))
        .collect();
    out.dedup();
    Ok(out)
}

//! SQLite → SQLite: one consistent snapshot through SQLite's online backup API.
//!
//! The source is opened read-only and a read transaction is held for the whole copy. In WAL
//! mode (the store's) that pins one snapshot: a writer on the source carries on, and the
//! backup never sees its pages, so it neither restarts (which a backup does on every change
//! made through another connection) nor mixes two states. The copy goes to `DST.tmp`, is
//! fsynced, and is renamed over `DST`, so `DST` is always either the old database or the
//! whole new one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{ProgressFn, SyncProgress, SyncReport, TableRows, report, with_suffix};
use crate::error::StoreError;

/// Pages per backup step: 16 MiB at the store's 4 KiB pages, so progress moves and the
/// source's lock is never held long in one call.
const PAGES_PER_STEP: i32 = 4096;
/// A step that found the source busy is retried this often before the copy gives up.
const BUSY_RETRIES: u32 = 1_000;

/// Whether `a` and `b` name the same file (either may not exist yet).
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The canonical path of `p`, or of its directory joined with its name when `p` does not
/// exist yet.
fn resolved(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let name = p.file_name()?;
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(name))
}

pub(super) fn sync(from: &Path, to: &Path, progress: Option<&ProgressFn>) -> Result<SyncReport, StoreError> {
    if !from.is_file() {
        return Err(StoreError::Invalid(format!("source {} does not exist or is not a file", from.display())));
    }
    // READ_ONLY without CREATE: a missing source is an error, never a new empty file, and
    // nothing through this connection can write it.
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError::Invalid(format!("opening source {} read-only: {e}", from.display())))?;
    src.busy_timeout(Duration::from_secs(10))?;
    src.execute_batch("BEGIN DEFERRED")?;
    // The first read starts the transaction's snapshot (and fails here on a file that is not
    // a database, with SQLite's own message).
    let _: i64 = src
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| StoreError::Invalid(format!("reading source {}: {e}", from.display())))?;

    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    }
    let tmp = with_suffix(to, ".tmp");
    remove_with_sidecars(&tmp)?;
    let result = copy_into(&src, &tmp, progress);
    // Ends the read transaction; the source connection only ever read.
    drop(src);
    let (tables, pages) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = remove_with_sidecars(&tmp);
            return Err(e);
        }
    };
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(StoreError::io(&tmp))?;
    // Journals left by the database being replaced would be replayed into the new file.
    for side in ["-wal", "-shm", "-journal"] {
        remove_if_present(&with_suffix(to, side))?;
    }
    std::fs::rename(&tmp, to).map_err(StoreError::io(to))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io(dir))?;
    }
    let bytes = std::fs::metadata(to).map_err(StoreError::io(to))?.len();
    Ok(report("sqlite", tables, bytes, Some(pages)))
}

/// Backs the source's snapshot up into a new file at `tmp`; returns its tables with row
/// counts, and its pages.
fn copy_into(src: &Connection, tmp: &Path, progress: Option<&ProgressFn>) -> Result<(Vec<TableRows>, u64), StoreError> {
    let mut dst = Connection::open(tmp)?;
    {
        let backup = Backup::new(src, &mut dst)?;
        let mut busy = 0;
        loop {
            let step = backup.step(PAGES_PER_STEP)?;
            let p = backup.progress();
            if let Some(f) = progress {
                let total = p.pagecount.max(0) as u64;
                f(SyncProgress::Pages { copied: total.saturating_sub(p.remaining.max(0) as u64), total });
            }
            match step {
                StepResult::Done => break,
                StepResult::More => busy = 0,
                _ => {
                    busy += 1;
                    if busy > BUSY_RETRIES {
                        return Err(StoreError::Invalid("the source stayed locked; try again".into()));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    let names: Vec<String> = {
        let mut st = dst.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY name",
        )?;
        st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    let mut tables = Vec::with_capacity(names.len());
    for table in names {
        let quoted = table.replace('"', "\"\"");
        let rows: i64 = dst.query_row(&format!("SELECT count(*) FROM \"{quoted}\""), [], |r| r.get(0))?;
        tables.push(TableRows { table, rows: rows as u64 });
    }
    let pages: i64 = dst.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    dst.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
    Ok((tables, pages as u64))
}

fn remove_with_sidecars(path: &Path) -> Result<(), StoreError> {
    remove_if_present(path)?;
    for side in ["-wal", "-shm", "-journal"] {
        remove_if_present(&with_suffix(path, side))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(path)(e)),
        _ => Ok(()),
    }
}

//! The few durability idioms the archive relies on.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ArchiveError;

/// A new directory entry (file, subdirectory, rename) survives power loss only once its
/// parent directory has been fsynced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(ArchiveError::io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `create_dir_all` that also fsyncs the parent of every directory it creates.
pub(crate) fn create_dirs_synced(dir: &Path) -> Result<(), ArchiveError> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            // Someone (e.g. a concurrent `verify`-less tool) made it first; fine.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ArchiveError::io(d)(e)),
        }
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces `path` so that a reader (or a crash) sees either the old or the new content,
/// never a mix: write a sibling `.tmp`, fsync it, rename over, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(ArchiveError::io(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(ArchiveError::io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(ArchiveError::io(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Relative path with `/` separators, the form used in manifests and reports.
pub(crate) fn rel_string(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Every `*.jsonl` under the archive's partition trees, sorted for stable reports.
pub(crate) fn archive_files(root: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut out = Vec::new();
    for top in ["raw", "swing", "scalp", "system"] {
        walk(&root.join(top), &mut out)?;
    }
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ArchiveError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ArchiveError::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(ArchiveError::io(dir))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(ArchiveError::io(&path))?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file() && path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    Ok(())
}

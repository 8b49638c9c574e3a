//! The few durability idioms the archive relies on.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ArchiveError;

/// Directories the archive creates, the data dir included: owner and group (a backup or
/// reader account) only. Nothing below is reachable by other local users.
pub const DIR_MODE: u32 = 0o750;
/// Archive files (JSONL, manifests): owner writes, group reads, others nothing.
pub const FILE_MODE: u32 = 0o640;
/// The data dir's lock and session marker: the owner's alone.
pub const PRIVATE_MODE: u32 = 0o600;

/// Options that create a file with `mode` (before the umask, which can only narrow it) and
/// never open one through a symbolic link in its place (`O_NOFOLLOW`).
pub(crate) fn open_options(mode: u32) -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    let _ = mode;
    o
}

/// Takes the "other" permission bits off the data dir (a folder created earlier by hand or
/// by another tool with the umask's 0755), so other local users cannot list or read the
/// archive. Only the owner can change the mode; anyone else's folder is left as it is, with
/// a warning.
pub(crate) fn restrict_root(root: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::metadata(root) else { return };
        let mode = meta.permissions().mode();
        if mode & 0o007 == 0 {
            return;
        }
        let narrowed = mode & 0o7770;
        match fs::set_permissions(root, fs::Permissions::from_mode(narrowed)) {
            Ok(()) => tracing::info!(
                path = %root.display(),
                "data dir was readable by other users (mode {:o}); now {:o}",
                mode & 0o7777,
                narrowed & 0o7777
            ),
            Err(e) => tracing::warn!(
                path = %root.display(),
                error = %e,
                "data dir is readable by other users (mode {:o}) and its mode cannot be changed",
                mode & 0o7777
            ),
        }
    }
    #[cfg(not(unix))]
    let _ = root;
}

/// A new directory entry (file, subdirectory, rename) survives power loss only once its
/// parent directory has been fsynced.
pub fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(ArchiveError::io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `create_dir_all` that also fsyncs the parent of every directory it creates, each created
/// with [`DIR_MODE`].
pub fn create_dirs_synced(dir: &Path) -> Result<(), ArchiveError> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    let mut mkdir = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        mkdir.mode(DIR_MODE);
    }
    for d in missing.iter().rev() {
        match mkdir.create(d) {
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
/// never a mix: write a sibling `.tmp` (created new with `mode`, never through a link),
/// fsync it, rename over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ArchiveError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover of a crash (or a planted link: removing it removes the link, not its target).
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(ArchiveError::io(&tmp)(e)),
        _ => {}
    }
    let mut f = open_options(mode).write(true).create_new(true).open(&tmp).map_err(ArchiveError::io(&tmp))?;
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

/// Every `*.jsonl` and `*.jsonl.zst` (the compressed form) under the archive's partition
/// trees, as named on disk, sorted for stable reports.
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
        } else if ty.is_file() && crate::stream::logical_path(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

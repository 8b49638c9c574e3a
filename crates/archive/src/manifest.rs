//! `manifests/YYYYMMDD.json`: the closed files of one partition date.
//!
//! A file listed here is complete and must never change; a `.jsonl` file that is not listed
//! was open when its collector stopped. A listed file may since have been compressed
//! (`compress`): it is still listed under its `.jsonl` name, so `raw_ref`s stay valid.
//!
//! Several writers edit manifests (the collector closing files, compression, retention), from
//! threads or processes of their own: every edit goes through [`Manifest::update`], which
//! holds `manifests/.lock` around the load-modify-store.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use model::UtcTime;
use serde::{Deserialize, Serialize};

use crate::{ArchiveError, fsutil};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub size: u64,
    pub lines: u64,
    pub sha256: String,
    pub closed_at: UtcTime,
    /// Set once the file is stored compressed (`<name>.zst`, one zstd frame); `size`,
    /// `lines` and `sha256` above stay those of the original bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<Stored>,
}

/// The bytes of a file's stored (compressed) form, as `ls -l` and `sha256sum` see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub date: String,
    /// Keyed by path relative to the data dir with `/` separators; a `BTreeMap` so the file
    /// diffs cleanly between rewrites.
    pub files: BTreeMap<String, ManifestEntry>,
}

pub fn manifest_path(root: &Path, date: &str) -> PathBuf {
    root.join("manifests").join(format!("{date}.json"))
}

/// An exclusive `flock` on `manifests/<name>`, released when dropped. `flock` (unlike
/// `fcntl` locks) excludes other descriptors in the same process too, so threads serialise
/// as processes do.
pub(crate) struct DirLock {
    _file: File,
}

/// Held around every manifest edit.
pub(crate) const MANIFEST_LOCK: &str = ".lock";

impl DirLock {
    /// Waits for the lock.
    pub(crate) fn acquire(root: &Path, name: &str) -> Result<DirLock, ArchiveError> {
        // A mistyped data dir must fail, not be created.
        fs::metadata(root).map_err(ArchiveError::io(root))?;
        let dir = root.join("manifests");
        fsutil::create_dirs_synced(&dir)?;
        let path = dir.join(name);
        // The owner's alone: a reader account holding it would stall the collector.
        let file = fsutil::open_options(fsutil::PRIVATE_MODE)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(ArchiveError::io(&path))?;
        file.lock().map_err(ArchiveError::io(&path))?;
        Ok(DirLock { _file: file })
    }
}

impl Manifest {
    pub fn empty(date: &str) -> Self {
        Manifest { date: date.to_string(), files: BTreeMap::new() }
    }

    /// The manifest of `date`, empty if none has been written yet.
    pub fn load(root: &Path, date: &str) -> Result<Manifest, ArchiveError> {
        let path = manifest_path(root, date);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::empty(date)),
            Err(e) => return Err(ArchiveError::io(&path)(e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| ArchiveError::Manifest { path: path.clone(), reason: e.to_string() })?;
        if m.date != date {
            return Err(ArchiveError::Manifest {
                path,
                reason: format!("says date {:?} but is named for {date}", m.date),
            });
        }
        Ok(m)
    }

    /// Every manifest in the data dir, by date.
    pub fn load_all(root: &Path) -> Result<BTreeMap<String, Manifest>, ArchiveError> {
        let dir = root.join("manifests");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(ArchiveError::io(&dir)(e)),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(ArchiveError::io(&dir))?;
            let name = entry.file_name();
            let Some(date) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
                out.insert(date.to_string(), Manifest::load(root, date)?);
            }
        }
        Ok(out)
    }

    /// Loads the manifest of `date`, lets `edit` change it, and stores it if it changed, all
    /// under the manifest lock, so edits from other threads or processes are never lost.
    /// Nothing is stored if `edit` fails. Keep `edit` short: the collector waits on the same
    /// lock to close files.
    pub fn update<T>(
        root: &Path,
        date: &str,
        edit: impl FnOnce(&mut Manifest) -> Result<T, ArchiveError>,
    ) -> Result<T, ArchiveError> {
        let _lock = DirLock::acquire(root, MANIFEST_LOCK)?;
        let mut m = Manifest::load(root, date)?;
        let before = m.clone();
        let out = edit(&mut m)?;
        if m != before {
            m.store(root)?;
        }
        Ok(out)
    }

    /// Un-lists `files` (keys as in [`Manifest::files`]) from the manifest of `date`, under
    /// the lock; returns the entries removed. The files themselves are the caller's: an
    /// un-listed `.jsonl` left on disk counts as unclosed, and the next collector start
    /// re-lists it.
    pub fn remove_entries(
        root: &Path,
        date: &str,
        files: &[&str],
    ) -> Result<BTreeMap<String, ManifestEntry>, ArchiveError> {
        Manifest::update(root, date, |m| Ok(files.iter().filter_map(|f| m.files.remove_entry(*f)).collect()))
    }

    /// Writes the manifest atomically. Without the lock: use [`Manifest::update`] to edit.
    pub fn store(&self, root: &Path) -> Result<(), ArchiveError> {
        let path = manifest_path(root, &self.date);
        fsutil::create_dirs_synced(&root.join("manifests"))?;
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| ArchiveError::Manifest { path: path.clone(), reason: e.to_string() })?;
        bytes.push(b'\n');
        fsutil::write_atomic(&path, &bytes, fsutil::FILE_MODE)
    }
}

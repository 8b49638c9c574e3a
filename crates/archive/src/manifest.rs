//! `manifests/YYYYMMDD.json`: the closed files of one partition date.
//!
//! A file listed here is complete and must never change; a `.jsonl` file that is not listed
//! was open when its collector stopped.

use std::collections::BTreeMap;
use std::fs;
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

    pub fn store(&self, root: &Path) -> Result<(), ArchiveError> {
        let path = manifest_path(root, &self.date);
        fsutil::create_dirs_synced(&root.join("manifests"))?;
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| ArchiveError::Manifest { path: path.clone(), reason: e.to_string() })?;
        bytes.push(b'\n');
        fsutil::write_atomic(&path, &bytes, fsutil::FILE_MODE)
    }
}

//! Where a package lives and what its three control files say.
//!
//! ```text
//! {backup.dir}/YYYYMMDD/
//!   files/raw/kis/20260114/09.jsonl.zst     one zstd frame per archive file, archive paths kept
//!   files/manifests/20260114.json.zst       the day's archive manifest
//!   files/universe/20260114_kr_stocks.json.zst
//!   MANIFEST.json                           every file: stored and original size and sha256, lines
//!   SHA256SUMS                              GNU format: `sha256sum -c SHA256SUMS` checks the package
//!   SUCCESS.marker                          written last: the manifest's sha256, file count, time
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use model::{Day, UtcTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "MANIFEST.json";
pub const SUMS: &str = "SHA256SUMS";
pub const MARKER: &str = "SUCCESS.marker";
/// The folder inside a package that mirrors the archive.
pub const FILES: &str = "files";
pub const FORMAT: &str = "stock-observer-backup/1";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("no backup package for {date} in {dir} (no {MARKER}: never made, or cut short)")]
    Missing { date: Day, dir: PathBuf },
    /// The day has files a collector still appends to, or a crash left unclosed.
    #[error("{date} is not over: {}{}", .open.iter().take(5).cloned().collect::<Vec<_>>().join(", "), if .open.len() > 5 { format!(" and {} more", .open.len() - 5) } else { String::new() })]
    Open { date: Day, open: Vec<String> },
    #[error("no archive files for {date} in {dir}")]
    NoData { date: Day, dir: PathBuf },
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
}

impl PackageError {
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
        move |source| PackageError::Io { path: path.to_path_buf(), source }
    }
}

/// One stored file of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageFile {
    /// Relative to the package directory, `/` separators (`files/raw/kis/20260114/09.jsonl.zst`).
    pub path: String,
    /// Bytes stored in the package, and their sha256.
    pub size: u64,
    pub sha256: String,
    /// The archive file it restores to, relative to the data dir.
    pub original_path: String,
    pub original_size: u64,
    pub original_sha256: String,
    /// Newline-terminated lines of the original.
    pub lines: u64,
    /// The archive held this file compressed at rest: the stored bytes are its `.zst` as
    /// they were, and a restore puts them back in that form (the archive manifest says so).
    pub at_rest: bool,
}

/// `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    pub format: String,
    pub date: Day,
    /// The edge that recorded the day (`backup.server`).
    pub server: String,
    pub created_at: UtcTime,
    pub compression: String,
    /// Providers with archive files in the package.
    pub providers: Vec<String>,
    /// `gap_marker` events recorded that day, over all providers.
    pub gaps: u64,
    pub files: Vec<PackageFile>,
    /// sha256 of this manifest's compact JSON with this field left out (see [`Self::checksum`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_checksum: Option<String>,
}

impl PackageManifest {
    /// The self-checksum: sha256 over the compact JSON of the manifest without its
    /// `manifest_checksum`. Field order is the struct's, so the bytes are reproducible.
    pub fn checksum(&self) -> String {
        let body = PackageManifest { manifest_checksum: None, ..self.clone() };
        // A struct of strings and numbers: serializing cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    pub fn original_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.original_size).sum()
    }

    pub fn stored_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// `SUCCESS.marker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessMarker {
    /// sha256 of the `MANIFEST.json` file's bytes.
    pub manifest_sha256: String,
    /// Entries in the manifest (stored files).
    pub files: u64,
    pub completed_at: UtcTime,
}

/// A folder of packages, one sub-folder per day.
#[derive(Debug, Clone)]
pub struct Packages {
    dir: PathBuf,
}

impl Packages {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Packages { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn day_dir(&self, date: Day) -> PathBuf {
        self.dir.join(date.to_string())
    }

    /// The marker of `date`'s package; `None` when there is no complete package.
    pub fn marker(&self, date: Day) -> Result<Option<SuccessMarker>, PackageError> {
        let path = self.day_dir(date).join(MARKER);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| PackageError::Invalid { path, reason: format!("not a success marker: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PackageError::io(&path)(e)),
        }
    }

    /// The manifest of `date`'s complete package, checked against the marker and its own
    /// checksum; a package without a marker does not exist.
    pub fn manifest(&self, date: Day) -> Result<(SuccessMarker, PackageManifest), PackageError> {
        let marker = self.marker(date)?.ok_or_else(|| PackageError::Missing { date, dir: self.dir.clone() })?;
        let path = self.day_dir(date).join(MANIFEST);
        let bytes = fs::read(&path).map_err(PackageError::io(&path))?;
        let manifest = parse_manifest(&path, &bytes)?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if sha != marker.manifest_sha256 {
            return Err(PackageError::Invalid {
                path,
                reason: format!("sha256 {sha} is not the {MARKER}'s {}", marker.manifest_sha256),
            });
        }
        Ok((marker, manifest))
    }

    /// Days with a complete package (a `SUCCESS.marker`), oldest first.
    pub fn complete(&self) -> Result<Vec<Day>, PackageError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PackageError::io(&self.dir)(e)),
        };
        let mut days = Vec::new();
        for entry in entries {
            let entry = entry.map_err(PackageError::io(&self.dir))?;
            let Some(day) = entry.file_name().to_str().and_then(|n| n.parse::<Day>().ok()) else { continue };
            if entry.path().join(MARKER).is_file() {
                days.push(day);
            }
        }
        days.sort();
        Ok(days)
    }

    /// The file `rel` of `date`'s complete package, if `rel` names one: a control file or a
    /// stored file listed in the manifest. Anything else (`..`, absolute paths, files of an
    /// unfinished package) is `None`, so a server can hand out exactly what a package holds.
    pub fn file(&self, date: Day, rel: &str) -> Result<Option<PathBuf>, PackageError> {
        let (_, manifest) = match self.manifest(date) {
            Ok(m) => m,
            Err(PackageError::Missing { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let listed = [MANIFEST, SUMS, MARKER].contains(&rel) || manifest.files.iter().any(|f| f.path == rel);
        Ok(listed.then(|| self.day_dir(date).join(rel)))
    }
}

/// Parses `MANIFEST.json` bytes and checks the self-checksum.
pub fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<PackageManifest, PackageError> {
    let invalid = |reason: String| PackageError::Invalid { path: path.to_path_buf(), reason };
    let m: PackageManifest = serde_json::from_slice(bytes).map_err(|e| invalid(format!("does not parse: {e}")))?;
    if m.format != FORMAT {
        return Err(invalid(format!("format {:?}, expected {FORMAT:?}", m.format)));
    }
    let Some(stated) = &m.manifest_checksum else { return Err(invalid("no manifest_checksum".into())) };
    let actual = m.checksum();
    if *stated != actual {
        return Err(invalid(format!("manifest_checksum {stated} does not match its content ({actual})")));
    }
    Ok(m)
}

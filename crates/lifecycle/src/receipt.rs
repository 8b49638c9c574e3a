//! Receipts: a coordinator's word that it holds a verified copy of a day's package
//! (`{backup.dir}/receipts/YYYYMMDD.json`). Retention deletes a day only with one (or with
//! the local package alone, if `retention.proof` says so).

use std::fs;
use std::path::{Path, PathBuf};

use model::{Day, UtcTime};
use serde::{Deserialize, Serialize};

use crate::package::{PackageError, Packages};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub date: Day,
    /// Who holds the copy (the coordinator's `name`).
    pub held_by: String,
    /// sha256 of the `MANIFEST.json` the copy was verified against: it must be this edge's
    /// own package's, so a receipt cannot vouch for data the edge never packed.
    pub manifest_sha256: String,
    pub received_at: UtcTime,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("receipt for {date} names manifest {claimed}, but this edge's package has {actual}")]
    Mismatch { date: Day, claimed: String, actual: String },
}

/// The receipts folder of a backup dir.
#[derive(Debug, Clone)]
pub struct Receipts {
    dir: PathBuf,
}

impl Receipts {
    pub fn of(packages: &Packages) -> Self {
        Receipts { dir: packages.dir().join("receipts") }
    }

    fn path(&self, date: Day) -> PathBuf {
        self.dir.join(format!("{date}.json"))
    }

    /// Records `receipt` after checking it against the local package of its day.
    pub fn record(&self, packages: &Packages, receipt: &Receipt) -> Result<(), ReceiptError> {
        let (marker, _) = packages.manifest(receipt.date)?;
        if !marker.manifest_sha256.eq_ignore_ascii_case(&receipt.manifest_sha256) {
            return Err(ReceiptError::Mismatch {
                date: receipt.date,
                claimed: receipt.manifest_sha256.clone(),
                actual: marker.manifest_sha256,
            });
        }
        archive::create_dirs_synced(&self.dir).map_err(PackageError::from)?;
        let mut bytes = serde_json::to_vec_pretty(receipt).unwrap_or_default();
        bytes.push(b'\n');
        archive::write_atomic(&self.path(receipt.date), &bytes, archive::FILE_MODE).map_err(PackageError::from)?;
        Ok(())
    }

    pub fn load(&self, date: Day) -> Result<Option<Receipt>, PackageError> {
        read_json(&self.path(date))
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, PackageError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PackageError::Invalid { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PackageError::io(path)(e)),
    }
}

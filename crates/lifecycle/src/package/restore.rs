//! Restoring a package into a data dir: the archive day comes back byte for byte, so the
//! archive's own `verify` passes on it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use model::Day;

use super::hashing::{Tee, summarize};
use super::layout::{PackageError, PackageFile};
use super::verify::verify;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub date: Day,
    /// Files written, and files already there with the same content.
    pub written: u64,
    pub already_there: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("the package does not verify; nothing was restored:\n{}", .0.join("\n"))]
    Damaged(Vec<String>),
    #[error("{0} exists with other content; nothing of this file was overwritten")]
    Conflict(PathBuf),
}

/// Restores the package in `dir` into the data dir `to`. Refuses a package that does not
/// verify, and never overwrites a file that differs from the package's.
pub fn restore(dir: &Path, to: &Path) -> Result<Restored, RestoreError> {
    let checked = verify(dir)?;
    let manifest = match checked.manifest {
        Some(m) if checked.problems.is_empty() => m,
        _ => return Err(RestoreError::Damaged(checked.problems.iter().map(ToString::to_string).collect())),
    };
    let mut out = Restored { date: manifest.date, written: 0, already_there: 0, bytes: 0 };
    for f in &manifest.files {
        // A file compressed at rest goes back as its `.zst`, as the archive manifest records it.
        let plain = to.join(&f.original_path);
        let (dest, want) =
            if f.at_rest { (archive::compressed_path(&plain), &f.sha256) } else { (plain, &f.original_sha256) };
        if dest.exists() {
            let have =
                summarize(File::open(&dest).map_err(PackageError::io(&dest))?).map_err(PackageError::io(&dest))?;
            if !have.sha256.eq_ignore_ascii_case(want) {
                return Err(RestoreError::Conflict(dest));
            }
            out.already_there += 1;
            continue;
        }
        restore_file(dir, f, &dest)?;
        out.written += 1;
        out.bytes += f.original_size;
    }
    Ok(out)
}

fn restore_file(dir: &Path, f: &PackageFile, dest: &Path) -> Result<(), RestoreError> {
    let parent = dest.parent().unwrap_or(dest).to_path_buf();
    archive::create_dirs_synced(&parent).map_err(PackageError::from)?;
    let src = dir.join(&f.path);
    let tmp = PathBuf::from(format!("{}.tmp", dest.display()));
    let input = File::open(&src).map_err(PackageError::io(&src))?;
    let mut out = File::options().write(true).create(true).truncate(true).open(&tmp).map_err(PackageError::io(&tmp))?;
    let got = if f.at_rest {
        // Copied as stored; decompressed on the way only to check the original.
        let mut tee = Tee { inner: input, copy: &mut out };
        let got = zstd::Decoder::new(&mut tee).and_then(summarize).map_err(PackageError::io(&src))?;
        std::io::copy(&mut tee, &mut std::io::sink()).map_err(PackageError::io(&tmp))?;
        got
    } else {
        let dec = zstd::Decoder::new(input).map_err(PackageError::io(&src))?;
        summarize(Tee { inner: dec, copy: &mut out }).map_err(PackageError::io(&tmp))?
    };
    if got.size != f.original_size || got.lines != f.lines || !got.sha256.eq_ignore_ascii_case(&f.original_sha256) {
        let _ = fs::remove_file(&tmp);
        return Err(PackageError::Invalid {
            path: src,
            reason: format!("decompressed to sha256 {}, expected {}", got.sha256, f.original_sha256),
        }
        .into());
    }
    out.sync_all().map_err(PackageError::io(&tmp))?;
    drop(out);
    fs::rename(&tmp, dest).map_err(PackageError::io(dest))?;
    archive::sync_dir(&parent).map_err(PackageError::from)?;
    Ok(())
}

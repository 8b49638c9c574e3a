//! Compression at rest. A closed file (listed in its day's manifest, so it never changes
//! again) is stored as one zstd frame, `X.jsonl.zst`, in place of `X.jsonl`; it stays listed
//! under `X.jsonl`, so `raw_ref`s keep naming it, and every reader opens it through
//! [`open_lines`], which reads either form.
//!
//! The steps for one file keep the archive readable wherever a crash stops them:
//!
//! 1. `X.jsonl.zst.tmp` is written (created new, never through a link) while the original
//!    is checked against its entry, fsynced, renamed to `X.jsonl.zst`, and the folder is
//!    fsynced. Until step 2 the plain file is authoritative.
//! 2. Under the manifest lock the entry records the compressed form (`zstd`: size and
//!    sha256 of the `.zst`), and the plain file is removed.
//!
//! The next run settles what a crash left: a `.zst.tmp` is removed; a `.zst` beside a plain
//! file whose entry does not record it is removed and the file compressed again; a plain
//! file beside a `.zst` whose entry records it is removed.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use model::Day;
use sha2::{Digest, Sha256};

use crate::manifest::{DirLock, MANIFEST_LOCK, Manifest, ManifestEntry, Stored};
use crate::stream::{ZSTD_SUFFIX, compressed_path, partition_date};
use crate::{ArchiveError, fsutil};

/// Held for a whole [`compress_day`] run.
const COMPRESS_LOCK: &str = ".compress.lock";

/// Readers' buffer: archive files are read start to end, and large reads keep the disk
/// streaming.
const READ_BUFFER: usize = 1 << 20;

/// What one [`compress_day`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompressReport {
    /// Files compressed by this run.
    pub compressed: u64,
    /// Their total size before compression.
    pub bytes_before: u64,
    /// Their total size after compression.
    pub bytes_after: u64,
    /// Files the manifest already records as compressed.
    pub skipped: u64,
    /// Files an interrupted run had left with a stale form (or a `.zst.tmp`), now cleaned.
    pub leftovers_removed: u64,
}

/// Opens archive line file `path` (`X.jsonl`) for reading, whichever form it is stored in:
/// `X.jsonl` while it exists (it is authoritative while both do), else `X.jsonl.zst`,
/// decompressed as it is read. A path naming the `.zst` itself opens that. A file being
/// compressed meanwhile is still found: the `.zst` exists before the plain file goes.
pub fn open_lines(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    if path.as_os_str().as_encoded_bytes().ends_with(ZSTD_SUFFIX.as_bytes()) {
        return open_zst(path);
    }
    match File::open(path) {
        Ok(f) => Ok(Box::new(BufReader::with_capacity(READ_BUFFER, f))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match open_zst(&compressed_path(path)) {
            // Neither form: report the name the caller asked for.
            Err(z) if z.kind() == io::ErrorKind::NotFound => Err(e),
            other => other,
        },
        Err(e) => Err(e),
    }
}

fn open_zst(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let decoder = zstd::Decoder::new(File::open(path)?)?;
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER, decoder)))
}

/// Compresses every file the manifest of `date` lists that is still plain, at zstd `level`
/// (0 for zstd's default, 3), after settling what an interrupted run left. A file that does
/// not match its manifest entry is never compressed: it is left as it is and named in the
/// error. The run goes on past a failing file and returns the first error; a run that
/// fails can simply be repeated.
///
/// Safe while a collector writes the same data dir (it only touches closed files, and
/// decides under the manifest lock); a second run waits for the first.
pub fn compress_day(root: &Path, date: Day, level: i32) -> Result<CompressReport, ArchiveError> {
    let date = date.to_string();
    // A second run's clean-up would take the first run's fresh `.zst` for a crash's leftover.
    let _run = DirLock::acquire(root, COMPRESS_LOCK)?;
    let mut report = CompressReport::default();
    let mut first_err = None;
    for rel in Manifest::load(root, &date)?.files.into_keys() {
        if !compressible(&rel, &date) {
            tracing::warn!(file = rel, date, "manifest names a file outside the archive layout; not compressed");
            continue;
        }
        if let Err(e) = compress_file(root, &date, &rel, level, &mut report) {
            tracing::error!(error = %e, "archive file not compressed");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(report), Err)
}

/// A line file of `date` in the layout, with no component that could lead out of the data
/// dir (a hand-edited manifest must not make compression remove files elsewhere).
fn compressible(rel: &str, date: &str) -> bool {
    rel.ends_with(".jsonl")
        && partition_date(rel) == Some(date)
        && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn compress_file(
    root: &Path,
    date: &str,
    rel: &str,
    level: i32,
    report: &mut CompressReport,
) -> Result<(), ArchiveError> {
    let forms = Forms::of(root, rel);
    let Forms { plain, zst, tmp, dir } = &forms;
    let Some(entry) = settle(root, date, rel, &forms, report)? else {
        return Ok(());
    };

    // The plain file is closed and never changes, so this, the slow part, runs unlocked.
    let stored = match write_compressed(plain, tmp, &entry, level) {
        Ok(s) => s,
        Err(e) => {
            if let Err(rm) = remove_if_present(tmp) {
                tracing::warn!(error = %rm, "could not remove a partial compressed file; the next run will");
            }
            return Err(e);
        }
    };
    fs::rename(tmp, zst).map_err(ArchiveError::io(zst))?;
    fsutil::sync_dir(dir)?;

    let _lock = DirLock::acquire(root, MANIFEST_LOCK)?;
    let mut m = Manifest::load(root, date)?;
    let on_disk = fs::symlink_metadata(zst).ok().map(|md| md.len());
    match m.files.get_mut(rel) {
        Some(e) if *e == entry && on_disk == Some(stored.size) => {
            let after = stored.size;
            e.zstd = Some(stored);
            m.store(root)?;
            report.compressed += 1;
            report.bytes_before += entry.size;
            report.bytes_after += after;
            // Removed under the lock: a collector reopening the file (a restart inside its
            // window) then finds it either plain and un-marked, or compressed and marked.
            fs::remove_file(plain).map_err(ArchiveError::io(plain))?;
            fsutil::sync_dir(dir)?;
        }
        _ => {
            // Reopened by a collector, or removed by retention, while it was compressed:
            // this `.zst` no longer stands for a closed file.
            tracing::info!(file = rel, "archive file changed while it was compressed; left as it is");
            remove_if_present(zst)?;
            fsutil::sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Under the manifest lock, so a collector reopening the file decides on the same state:
/// cleans what an interrupted run left of `rel`, and returns its entry if the file is still
/// to be compressed.
fn settle(
    root: &Path,
    date: &str,
    rel: &str,
    forms: &Forms,
    report: &mut CompressReport,
) -> Result<Option<ManifestEntry>, ArchiveError> {
    let Forms { plain, zst, tmp, dir } = forms;
    let _lock = DirLock::acquire(root, MANIFEST_LOCK)?;
    let Some(entry) = Manifest::load(root, date)?.files.remove(rel) else {
        // Un-listed since the run started (reopened or removed): not closed any more.
        return Ok(None);
    };
    let mut cleaned = remove_if_present(tmp)?;
    let (has_plain, has_zst) = (exists(plain)?, exists(zst)?);
    if entry.zstd.is_some() {
        if !has_zst {
            return Err(ArchiveError::Refused {
                path: zst.to_path_buf(),
                reason: "the manifest records this compressed form, but it is missing".into(),
            });
        }
        if has_plain {
            fs::remove_file(plain).map_err(ArchiveError::io(plain))?;
            cleaned = true;
        }
        report.skipped += 1;
    } else if has_zst {
        if !has_plain {
            return Err(ArchiveError::Refused {
                path: zst.to_path_buf(),
                reason: "the plain file is gone and the manifest does not record this compressed form".into(),
            });
        }
        fs::remove_file(zst).map_err(ArchiveError::io(zst))?;
        cleaned = true;
    }
    if cleaned {
        fsutil::sync_dir(dir)?;
        report.leftovers_removed += 1;
    }
    Ok(entry.zstd.is_none().then_some(entry))
}

/// Streams `plain` through zstd into `tmp` (fsynced), checking the original bytes against
/// `entry` on the way; a mismatch refuses the file before anything is renamed.
fn write_compressed(plain: &Path, tmp: &Path, entry: &ManifestEntry, level: i32) -> Result<Stored, ArchiveError> {
    // Never through a link planted in place of the file: its target is not archive data.
    let mut src = fsutil::open_options(fsutil::FILE_MODE).read(true).open(plain).map_err(ArchiveError::io(plain))?;
    let len = src.metadata().map_err(ArchiveError::io(plain))?.len();
    if len != entry.size {
        return Err(ArchiveError::Refused {
            path: plain.to_path_buf(),
            reason: format!("size {len} != manifest {}; damaged? run `stock-observer verify`", entry.size),
        });
    }
    let out = fsutil::open_options(fsutil::FILE_MODE)
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(ArchiveError::io(tmp))?;
    let mut enc = zstd::Encoder::new(Hashing::new(out), level).map_err(ArchiveError::io(tmp))?;
    // A checksum in the frame lets `zstd -t` and every reader detect damage by themselves.
    enc.include_checksum(true).map_err(ArchiveError::io(tmp))?;
    // The original size in the frame header: `zstd -l` shows it, readers can size buffers.
    enc.set_pledged_src_size(Some(len)).map_err(ArchiveError::io(tmp))?;
    let (mut size, mut lines, mut hasher) = (0u64, 0u64, Sha256::new());
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::io(plain)(e)),
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        size += n as u64;
        lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        enc.write_all(chunk).map_err(ArchiveError::io(tmp))?;
    }
    let sha = hex::encode(hasher.finalize());
    if size != entry.size || lines != entry.lines || !sha.eq_ignore_ascii_case(&entry.sha256) {
        return Err(ArchiveError::Refused {
            path: plain.to_path_buf(),
            reason: format!(
                "does not match its manifest entry (file: {size} bytes, {lines} lines, sha256 {sha}; \
                 manifest: {} bytes, {} lines, sha256 {}); damaged? run `stock-observer verify`",
                entry.size, entry.lines, entry.sha256
            ),
        });
    }
    let (out, stored) = enc.finish().map_err(ArchiveError::io(tmp))?.finish();
    out.sync_all().map_err(ArchiveError::io(tmp))?;
    Ok(stored)
}

/// Un-lists `rel` so a collector can append to it again (a restart inside the file's
/// window). A compressed file is first restored to its plain form, so the appends continue
/// the original bytes. Under the manifest lock, like compression's own decisions.
pub(crate) fn unlist_for_append(root: &Path, date: &str, rel: &str) -> Result<(), ArchiveError> {
    let _lock = DirLock::acquire(root, MANIFEST_LOCK)?;
    let mut m = Manifest::load(root, date)?;
    let Some(entry) = m.files.remove(rel) else { return Ok(()) };
    let Forms { plain, zst, dir, .. } = Forms::of(root, rel);
    let compressed = entry.zstd.is_some() && exists(&zst)?;
    // A plain file beside a recorded `.zst` holds the same bytes (a crash before its
    // removal): it is kept as it is.
    if compressed && !exists(&plain)? {
        decompress_to(&zst, &plain, &dir)?;
    }
    // Stored only once the plain file is complete: an un-listed `.zst` alone would be lost
    // to recovery, which closes plain files only.
    m.store(root)?;
    if compressed {
        fs::remove_file(&zst).map_err(ArchiveError::io(&zst))?;
        fsutil::sync_dir(&dir)?;
    }
    Ok(())
}

fn decompress_to(zst: &Path, plain: &Path, dir: &Path) -> Result<(), ArchiveError> {
    let tmp = tmp_path(plain);
    remove_if_present(&tmp)?;
    let src = fsutil::open_options(fsutil::FILE_MODE).read(true).open(zst).map_err(ArchiveError::io(zst))?;
    let mut dec = zstd::Decoder::new(src).map_err(ArchiveError::io(zst))?;
    let mut out = fsutil::open_options(fsutil::FILE_MODE)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(ArchiveError::io(&tmp))?;
    let copied = io::copy(&mut dec, &mut out).and_then(|_| out.sync_all());
    if let Err(e) = copied {
        drop(out);
        let _ = fs::remove_file(&tmp);
        return Err(ArchiveError::io(zst)(e));
    }
    drop(out);
    fs::rename(&tmp, plain).map_err(ArchiveError::io(plain))?;
    fsutil::sync_dir(dir)
}

/// The names one archive file has on disk, and its folder.
struct Forms {
    plain: PathBuf,
    zst: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
}

impl Forms {
    fn of(root: &Path, rel: &str) -> Forms {
        let plain = root.join(rel);
        let zst = compressed_path(&plain);
        let tmp = tmp_path(&zst);
        let dir = plain.parent().unwrap_or(root).to_path_buf();
        Forms { plain, zst, tmp, dir }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Whether `path` exists, a link counting as a file (it is never followed).
fn exists(path: &Path) -> Result<bool, ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ArchiveError::io(path)(e)),
    }
}

fn remove_if_present(path: &Path) -> Result<bool, ArchiveError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ArchiveError::io(path)(e)),
    }
}

/// Counts and hashes the bytes that pass through it, read or written: the stored form's
/// size and sha256 come from the same pass that writes or checks it.
pub(crate) struct Hashing<T> {
    inner: T,
    size: u64,
    hasher: Sha256,
}

impl<T> Hashing<T> {
    pub(crate) fn new(inner: T) -> Self {
        Hashing { inner, size: 0, hasher: Sha256::new() }
    }

    pub(crate) fn finish(self) -> (T, Stored) {
        (self.inner, Stored { size: self.size, sha256: hex::encode(self.hasher.finalize()) })
    }
}

impl<T: Read> Read for Hashing<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

impl<T: Write> Write for Hashing<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_layout_files_of_the_day_are_compressed() {
        assert!(compressible("raw/kis/20260114/09.jsonl", "20260114"));
        assert!(!compressible("raw/kis/20260114/09.jsonl", "20260115"));
        assert!(!compressible("raw/../20260114/09.jsonl", "20260114"));
        assert!(!compressible("raw/kis/20260114/09.jsonl.zst", "20260114"));
    }
}

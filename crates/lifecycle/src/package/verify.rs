//! Checking a package the way `pg_verifybackup` checks a base backup: the marker, the
//! manifest's own checksum, then every file (present, size, sha256 of the stored bytes, and
//! the original's sha256 and lines once decompressed), then files that should not be there.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::hashing::{HashingWriter, Tee, summarize};
use super::layout::{
    MANIFEST, MARKER, PackageError, PackageFile, PackageManifest, SUMS, SuccessMarker, parse_manifest,
};

/// One thing wrong with a package: `file: what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.what)
    }
}

#[derive(Debug, Default)]
pub struct Checked {
    /// The manifest, when it could be read and its checksum held.
    pub manifest: Option<PackageManifest>,
    pub marker: Option<SuccessMarker>,
    pub files_checked: u64,
    pub problems: Vec<Problem>,
}

impl Checked {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(file: &str, what: impl Into<String>) -> Problem {
    Problem { file: file.to_string(), what: what.into() }
}

/// Checks the package in `dir`. Only an unreadable `dir` is an error; everything wrong with
/// the package is a [`Problem`].
pub fn verify(dir: &Path) -> Result<Checked, PackageError> {
    fs::read_dir(dir).map_err(PackageError::io(dir))?;
    let mut out = Checked::default();
    let marker_path = dir.join(MARKER);
    match fs::read(&marker_path) {
        Ok(bytes) => match serde_json::from_slice::<SuccessMarker>(&bytes) {
            Ok(m) => out.marker = Some(m),
            Err(e) => out.problems.push(problem(MARKER, format!("does not parse ({e})"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.problems.push(problem(MARKER, "missing: the package was never completed (a crash or a failed run)"))
        }
        Err(e) => out.problems.push(problem(MARKER, e.to_string())),
    }
    let manifest_path = dir.join(MANIFEST);
    let manifest_bytes = match fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) => {
            out.problems.push(problem(
                MANIFEST,
                if e.kind() == std::io::ErrorKind::NotFound { "missing".to_string() } else { e.to_string() },
            ));
            return Ok(out);
        }
    };
    let manifest = match parse_manifest(&manifest_path, &manifest_bytes) {
        Ok(m) => m,
        Err(PackageError::Invalid { reason, .. }) => {
            out.problems.push(problem(MANIFEST, reason));
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    if let Some(marker) = &out.marker {
        let sha = hex::encode(Sha256::digest(&manifest_bytes));
        if !sha.eq_ignore_ascii_case(&marker.manifest_sha256) {
            out.problems.push(problem(
                MANIFEST,
                format!("sha256 {sha} is not the one {MARKER} records ({})", marker.manifest_sha256),
            ));
        }
        if marker.files != manifest.files.len() as u64 {
            out.problems.push(problem(
                MARKER,
                format!("says {} files, the manifest lists {}", marker.files, manifest.files.len()),
            ));
        }
    }
    for f in &manifest.files {
        check_file(dir, f, &mut out);
    }
    check_sums(dir, &manifest, &manifest_bytes, &mut out);
    let listed: BTreeSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).chain([MANIFEST, SUMS, MARKER]).collect();
    let mut present = Vec::new();
    walk(dir, dir, &mut present)?;
    for rel in present {
        if !listed.contains(rel.as_str()) {
            out.problems.push(problem(&rel, "extra file (not in the manifest)"));
        }
    }
    out.problems.sort_by(|a, b| a.file.cmp(&b.file));
    out.manifest = Some(manifest);
    Ok(out)
}

fn check_file(dir: &Path, f: &PackageFile, out: &mut Checked) {
    let path = dir.join(&f.path);
    if f.path.split('/').any(|c| c == ".." || c.is_empty()) || Path::new(&f.path).is_absolute() {
        out.problems.push(problem(&f.path, "path leaves the package"));
        return;
    }
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.problems.push(problem(&f.path, "missing (listed in the manifest)"));
            return;
        }
        Err(e) => {
            out.problems.push(problem(&f.path, e.to_string()));
            return;
        }
    };
    out.files_checked += 1;
    let mut stored = HashingWriter::new(std::io::sink());
    let mut tee = Tee { inner: file, copy: &mut stored };
    // The original is checked as it comes out of the decoder: one read of the file.
    let original = zstd::Decoder::new(&mut tee).and_then(summarize).map_err(|e| e.to_string());
    // Whatever the decoder left (bytes after the frame, or all of it after an error) still
    // counts for the stored file's size and sha256.
    if let Err(e) = std::io::copy(&mut tee, &mut std::io::sink()) {
        out.problems.push(problem(&f.path, e.to_string()));
        return;
    }
    let (_, sha, size) = stored.finish();
    if size != f.size {
        out.problems.push(problem(&f.path, format!("size {size} != manifest {}", f.size)));
    }
    if !sha.eq_ignore_ascii_case(&f.sha256) {
        out.problems.push(problem(&f.path, format!("sha256 mismatch (file {sha}, manifest {})", f.sha256)));
        // A damaged frame says nothing more useful about the original.
        return;
    }
    match original {
        Err(e) => out.problems.push(problem(&f.path, format!("does not decompress: {e}"))),
        Ok(got) => {
            let (osha, osize, lines) = (got.sha256, got.size, got.lines);
            if osize != f.original_size || lines != f.lines || !osha.eq_ignore_ascii_case(&f.original_sha256) {
                out.problems.push(problem(
                    &f.path,
                    format!(
                        "decompresses to {osize} bytes, {lines} lines, sha256 {osha}; the manifest says {} bytes, {} \
                         lines, sha256 {}",
                        f.original_size, f.lines, f.original_sha256
                    ),
                ));
            }
        }
    }
}

/// `SHA256SUMS` must list exactly the manifest's files and the manifest, with their sums.
fn check_sums(dir: &Path, manifest: &PackageManifest, manifest_bytes: &[u8], out: &mut Checked) {
    let text = match fs::read_to_string(dir.join(SUMS)) {
        Ok(t) => t,
        Err(e) => {
            out.problems.push(problem(
                SUMS,
                if e.kind() == std::io::ErrorKind::NotFound { "missing".to_string() } else { e.to_string() },
            ));
            return;
        }
    };
    let mut want: Vec<(String, String)> = manifest.files.iter().map(|f| (f.path.clone(), f.sha256.clone())).collect();
    want.push((MANIFEST.to_string(), hex::encode(Sha256::digest(manifest_bytes))));
    want.sort();
    let mut got: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        match line.split_once("  ") {
            Some((sha, path)) => got.push((path.to_string(), sha.to_string())),
            None => out.problems.push(problem(SUMS, format!("not a `sha256  path` line: {line:?}"))),
        }
    }
    got.sort();
    if got != want {
        out.problems.push(problem(SUMS, "does not list exactly the manifest's files and sums"));
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), PackageError> {
    for entry in fs::read_dir(dir).map_err(PackageError::io(dir))? {
        let entry = entry.map_err(PackageError::io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(PackageError::io(&path))?.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
        }
    }
    Ok(())
}

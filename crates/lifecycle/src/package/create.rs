//! Packing one closed archive day.
//!
//! Every stored file goes temp → fsync → rename → fsync of its directory, then
//! `MANIFEST.json`, then `SHA256SUMS`, and `SUCCESS.marker` last, each the same way. A crash
//! anywhere leaves a day folder without a marker, which does not count as a package and is
//! cleared by the next run; a crash after the marker leaves a complete package.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use archive::Manifest;
use model::{Day, UtcTime};
use sha2::{Digest, Sha256};

use super::hashing::{HashingWriter, Tally, Tee, for_each_chunk};
use super::layout::SuccessMarker;
use super::layout::{FILES, FORMAT, MANIFEST, MARKER, PackageError, PackageFile, PackageManifest, Packages, SUMS};

/// How a package is made (from `backup:` in the configuration).
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The edge's name in manifests and receipts.
    pub server: String,
    /// zstd level (1..=19).
    pub level: i32,
    /// Files compressed at once.
    pub threads: usize,
}

/// A point in packing, reported to the caller's progress callback (which the crash tests
/// also use to stop the packer at each step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first chunk of stored file `index` is in its temporary file.
    Writing {
        index: usize,
    },
    /// Stored file `index` of `total` is renamed into place and its directory fsynced.
    Stored {
        index: usize,
        total: usize,
        original_bytes: u64,
    },
    Manifest,
    Sums,
    Marker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    Created {
        dir: PathBuf,
        manifest: Box<PackageManifest>,
        marker: SuccessMarker,
        elapsed_ms: u64,
    },
    /// A complete package for the day was already there: nothing was written.
    Exists {
        dir: PathBuf,
        marker: SuccessMarker,
    },
}

/// One archive file to pack.
struct Source {
    /// Relative to the data dir, the name it restores to.
    original_path: String,
    /// Where its bytes are now: the plain file, or its compressed-at-rest form.
    on_disk: PathBuf,
    at_rest: bool,
    /// What the archive's manifest says, for closed JSONL files.
    expect: Option<(u64, u64, String)>,
    size_hint: u64,
}

/// Packs `date` of the archive at `root` into `packages`. Refuses a day with files still
/// open (or left unclosed by a crash) and a day with no files; does nothing if the day is
/// already packed.
pub fn create(
    root: &Path,
    date: Day,
    packages: &Packages,
    opts: &PackOptions,
    now: UtcTime,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Packed, PackageError> {
    let dir = packages.day_dir(date);
    if let Some(marker) = packages.marker(date)? {
        return Ok(Packed::Exists { dir, marker });
    }
    let started = Instant::now();
    let sources = sources(root, date)?;
    // A folder without a marker is what a crashed run left: it is not a package, start over.
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(PackageError::io(&dir)(e)),
        _ => {}
    }
    archive::create_dirs_synced(&dir)?;

    let total = sources.len();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<PackageFile, PackageError>>>> = Mutex::new((0..total).map(|_| None).collect());
    let workers = opts.threads.clamp(1, total.max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(src) = sources.get(i) else { break };
                    let r = store_file(&dir, src, opts.level, &|| progress(Step::Writing { index: i }));
                    let failed = r.is_err();
                    if let Ok(f) = &r {
                        progress(Step::Stored { index: i, total, original_bytes: f.original_size });
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    if failed {
                        // The others stop at their next file: the package is abandoned anyway.
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut files = Vec::with_capacity(total);
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match r {
            Some(Ok(f)) => files.push(f),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let mut providers: Vec<String> = files
        .iter()
        .filter_map(|f| f.original_path.strip_prefix("raw/")?.split('/').next().map(str::to_string))
        .collect();
    providers.dedup();
    let mut manifest = PackageManifest {
        format: FORMAT.into(),
        date,
        server: opts.server.clone(),
        created_at: now,
        compression: "zstd".into(),
        providers,
        gaps: count_gaps(root, date)?,
        files,
        manifest_checksum: None,
    };
    manifest.manifest_checksum = Some(manifest.checksum());
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    manifest_bytes.push(b'\n');
    archive::write_atomic(&dir.join(MANIFEST), &manifest_bytes, archive::FILE_MODE)?;
    progress(Step::Manifest);

    let manifest_sha = hex::encode(Sha256::digest(&manifest_bytes));
    let mut sums = String::new();
    for f in &manifest.files {
        sums.push_str(&format!("{}  {}\n", f.sha256, f.path));
    }
    sums.push_str(&format!("{manifest_sha}  {MANIFEST}\n"));
    archive::write_atomic(&dir.join(SUMS), sums.as_bytes(), archive::FILE_MODE)?;
    progress(Step::Sums);

    let marker = SuccessMarker { manifest_sha256: manifest_sha, files: manifest.files.len() as u64, completed_at: now };
    let mut marker_bytes = serde_json::to_vec_pretty(&marker).unwrap_or_default();
    marker_bytes.push(b'\n');
    archive::write_atomic(&dir.join(MARKER), &marker_bytes, archive::FILE_MODE)?;
    progress(Step::Marker);
    Ok(Packed::Created { dir, manifest: Box::new(manifest), marker, elapsed_ms: started.elapsed().as_millis() as u64 })
}

/// The day's files: every closed archive file in its manifest, the manifest itself and the
/// day's universe files. Biggest first, so the last file to finish is a small one.
fn sources(root: &Path, date: Day) -> Result<Vec<Source>, PackageError> {
    let day = date.to_string();
    let manifest = Manifest::load(root, &day)?;
    let open: Vec<String> =
        archive::day::files_on_disk(root, &day)?.into_iter().filter(|rel| !manifest.files.contains_key(rel)).collect();
    if !open.is_empty() {
        return Err(PackageError::Open { date, open });
    }
    if manifest.files.is_empty() {
        return Err(PackageError::NoData { date, dir: root.to_path_buf() });
    }
    let mut out = Vec::new();
    for (rel, entry) in &manifest.files {
        // The plain file is authoritative while both forms exist (a compression in progress).
        let plain = root.join(rel);
        let (on_disk, at_rest) =
            if plain.is_file() { (plain, false) } else { (archive::compressed_path(&plain), true) };
        let expect = Some((entry.size, entry.lines, entry.sha256.clone()));
        out.push(Source { original_path: rel.clone(), on_disk, at_rest, expect, size_hint: entry.size });
    }
    out.push(plain_source(root, &archive::manifest::manifest_path(root, &day))?);
    let universe = root.join("universe");
    if let Ok(entries) = fs::read_dir(&universe) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&format!("{day}_")) && name.ends_with(".json") {
                out.push(plain_source(root, &entry.path())?);
            }
        }
    }
    out.sort_by(|a, b| b.size_hint.cmp(&a.size_hint).then_with(|| a.original_path.cmp(&b.original_path)));
    Ok(out)
}

/// A file outside the manifest's JSONL (the manifest itself, a universe file): checked by
/// nothing but the package's own checksums from here on.
fn plain_source(root: &Path, path: &Path) -> Result<Source, PackageError> {
    let meta = fs::metadata(path).map_err(PackageError::io(path))?;
    let rel = path.strip_prefix(root).unwrap_or(path);
    let original_path = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
    Ok(Source { original_path, on_disk: path.to_path_buf(), at_rest: false, expect: None, size_hint: meta.len() })
}

/// Compresses (or, for a file already compressed at rest, copies) one file into the package
/// and checks its original bytes against the archive manifest on the way.
fn store_file(dir: &Path, src: &Source, level: i32, first_chunk: &dyn Fn()) -> Result<PackageFile, PackageError> {
    let path = format!("{FILES}/{}.zst", src.original_path);
    let dest = dir.join(&path);
    let parent = dest.parent().unwrap_or(dir).to_path_buf();
    archive::create_dirs_synced(&parent)?;
    let tmp = PathBuf::from(format!("{}.tmp", dest.display()));
    let out = File::options().write(true).create_new(true).open(&tmp).map_err(PackageError::io(&tmp))?;
    let mut sink = HashingWriter::new(out);
    let input = File::open(&src.on_disk).map_err(PackageError::io(&src.on_disk))?;
    let mut tally = Tally::default();
    let mut first = true;
    let mut original = |bytes: &[u8]| {
        tally.add(bytes);
        if std::mem::take(&mut first) {
            first_chunk();
        }
    };
    if src.at_rest {
        // Stored as it is; decompressed only to check the original against the manifest.
        let mut tee = Tee { inner: input, copy: &mut sink };
        let dec = zstd::Decoder::new(&mut tee).map_err(PackageError::io(&src.on_disk))?;
        for_each_chunk(dec, |b| {
            original(b);
            Ok(())
        })
        .map_err(PackageError::io(&src.on_disk))?;
        // The decoder stops at the frame's end; copy anything after it too, so the stored
        // bytes are the file's bytes.
        std::io::copy(&mut tee.inner, tee.copy).map_err(PackageError::io(&tmp))?;
    } else {
        let mut enc = zstd::Encoder::new(&mut sink, level).map_err(PackageError::io(&tmp))?;
        // A read error names the archive file, a write error the package file.
        let mut write_failed = false;
        for_each_chunk(&input, |b| {
            original(b);
            enc.write_all(b).inspect_err(|_| write_failed = true)
        })
        .map_err(|e| PackageError::io(if write_failed { &tmp } else { &src.on_disk })(e))?;
        enc.finish().map_err(PackageError::io(&tmp))?;
    }
    let got = tally.finish();
    let (original_sha256, original_size, lines) = (got.sha256, got.size, got.lines);
    if let Some((size, want_lines, sha)) = &src.expect
        && (*size != original_size || *want_lines != lines || !sha.eq_ignore_ascii_case(&original_sha256))
    {
        let _ = fs::remove_file(&tmp);
        return Err(PackageError::Invalid {
            path: src.on_disk.clone(),
            reason: format!(
                "does not match the archive manifest (size {original_size}/{size}, lines {lines}/{want_lines}, \
                 sha256 {original_sha256}/{sha}); run `stock-observer verify` on the data dir"
            ),
        });
    }
    let (out, stored_sha256, bytes) = sink.finish();
    out.sync_all().map_err(PackageError::io(&tmp))?;
    drop(out);
    fs::rename(&tmp, &dest).map_err(PackageError::io(&dest))?;
    archive::sync_dir(&parent)?;
    Ok(PackageFile {
        path,
        size: bytes,
        sha256: stored_sha256,
        original_path: src.original_path.clone(),
        original_size,
        original_sha256,
        lines,
        at_rest: src.at_rest,
    })
}

/// `gap_marker` events recorded for the day, over every provider's events file.
fn count_gaps(root: &Path, date: Day) -> Result<u64, PackageError> {
    let day = date.to_string();
    let mut gaps = 0;
    for rel in archive::day::files_on_disk(root, &day)? {
        if !rel.starts_with("system/events/") {
            continue;
        }
        let path = root.join(&rel);
        let reader = archive::open_lines(&path).map_err(PackageError::io(&path))?;
        for line in std::io::BufRead::lines(reader) {
            let line = line.map_err(PackageError::io(&path))?;
            // verify and replay report damaged lines; here they just do not count.
            if serde_json::from_str::<EventType>(&line).is_ok_and(|e| e.event_type.as_deref() == Some("gap_marker")) {
                gaps += 1;
            }
        }
    }
    Ok(gaps)
}

#[derive(serde::Deserialize)]
struct EventType {
    event_type: Option<String>,
}

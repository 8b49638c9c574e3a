//! Finding where a file stopped being trustworthy, and closing what a crashed collector
//! left open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use model::UtcTime;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

use crate::manifest::{DirLock, MANIFEST_LOCK, Manifest, ManifestEntry};
use crate::stream::partition_date;
use crate::{ArchiveError, fsutil};

/// What `ArchiveWriter::open` found and fixed. The engine turns this into `gap_marker` /
/// recovery events; the archive only reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A previous session did not shut down cleanly (its `.session` marker was still there).
    pub crashed: bool,
    pub previous_session: Option<String>,
    /// The newest `receive_time` known to be on disk; the lost interval starts after it.
    pub last_good: Option<UtcTime>,
    pub repaired: Vec<Repair>,
    /// Relative paths of the files left open by the previous session, now closed.
    pub closed: Vec<String>,
}

/// A file whose torn tail was cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub file: String,
    pub cut_bytes: u64,
    pub kept_lines: u64,
}

/// A file's trustworthy content after any torn tail was cut.
pub(crate) struct Scanned {
    pub size: u64,
    pub lines: u64,
    pub hasher: Sha256,
    pub repair: Option<Repair>,
    pub last_line: Option<Vec<u8>>,
}

pub(crate) fn is_json_object(line: &[u8]) -> bool {
    serde_json::from_slice::<HashMap<String, IgnoredAny>>(line).is_ok()
}

/// Cuts `path` back to the end of its last line that is a complete JSON object, then
/// hashes what remains so appends (or a manifest entry) can continue from it.
pub(crate) fn scan_and_repair(path: &Path, rel: &str) -> Result<Scanned, ArchiveError> {
    let io_err = ArchiveError::io(path);
    // Never through a link planted in place of the file: repair would truncate its target.
    let mut f = crate::fsutil::open_options(crate::fsutil::FILE_MODE)
        .read(true)
        .write(true)
        .open(path)
        .map_err(ArchiveError::io(path))?;
    let len = f.metadata().map_err(ArchiveError::io(path))?.len();
    let (good, last_line) = good_end(&mut f, len).map_err(ArchiveError::io(path))?;
    let (hasher, lines) = hash_prefix(&mut f, good).map_err(ArchiveError::io(path))?;
    let repair = if good < len {
        f.set_len(good).and_then(|()| f.sync_all()).map_err(io_err)?;
        tracing::warn!(
            file = %path.display(),
            cut_bytes = len - good,
            kept_lines = lines,
            "cut torn tail left by an interrupted write"
        );
        Some(Repair { file: rel.to_string(), cut_bytes: len - good, kept_lines: lines })
    } else {
        None
    };
    Ok(Scanned { size: good, lines, hasher, repair, last_line })
}

/// Offset just past the last newline-terminated line that parses as a JSON object, and
/// that line. Reads backwards from the end in growing windows because files can be large
/// while the damage is almost always in the last few bytes.
fn good_end(f: &mut File, len: u64) -> io::Result<(u64, Option<Vec<u8>>)> {
    let mut window: u64 = 64 * 1024;
    // Absolute end (exclusive, just past a '\n') of the candidate line still to check.
    let mut candidate: Option<u64> = None;
    loop {
        let base = len.saturating_sub(window);
        let mut buf = vec![0u8; (len - base) as usize];
        f.seek(SeekFrom::Start(base))?;
        f.read_exact(&mut buf)?;
        let mut end = match candidate {
            Some(c) => (c - base) as usize,
            None => match buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if base == 0 => return Ok((0, None)),
                None => {
                    window *= 2;
                    continue;
                }
            },
        };
        loop {
            let content_end = end - 1;
            let start = match buf[..content_end].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if base == 0 => 0,
                None => break,
            };
            let line = &buf[start..content_end];
            if is_json_object(line) {
                return Ok((base + end as u64, Some(line.to_vec())));
            }
            if start == 0 {
                if base == 0 {
                    return Ok((0, None));
                }
                break;
            }
            end = start;
        }
        candidate = Some(base + end as u64);
        window *= 2;
    }
}

fn hash_prefix(f: &mut File, len: u64) -> io::Result<(Sha256, u64)> {
    f.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut lines = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        f.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        left -= n as u64;
    }
    Ok((hasher, lines))
}

/// Repairs and closes every archive file that no manifest lists. Only plain files can be
/// open: a compressed one was closed (and listed) before it was compressed.
pub(crate) fn recover(root: &Path, now: UtcTime) -> Result<Recovery, ArchiveError> {
    {
        // Under the lock: the `.tmp` of a manifest being stored right now is not stale.
        let _lock = DirLock::acquire(root, MANIFEST_LOCK)?;
        remove_stale_tmp(&root.join("manifests"))?;
    }
    let manifests = Manifest::load_all(root)?;
    let closed: BTreeSet<&str> = manifests.values().flat_map(|m| m.files.keys().map(String::as_str)).collect();
    let mut unclosed: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for path in fsutil::archive_files(root)? {
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let rel = fsutil::rel_string(root, &path);
        if closed.contains(rel.as_str()) {
            continue;
        }
        match partition_date(&rel) {
            Some(date) => unclosed.entry(date.to_string()).or_default().push((path, rel)),
            None => tracing::warn!(file = %path.display(), "ignoring a .jsonl file outside the archive layout"),
        }
    }

    let mut out = Recovery::default();
    for (date, files) in unclosed {
        Manifest::update(root, &date, |m| {
            for (path, rel) in files {
                let scanned = scan_and_repair(&path, &rel)?;
                if let Some(t) = scanned.last_line.as_deref().and_then(receive_time) {
                    out.last_good = Some(out.last_good.map_or(t, |g| g.max(t)));
                }
                out.repaired.extend(scanned.repair);
                let entry = ManifestEntry {
                    size: scanned.size,
                    lines: scanned.lines,
                    sha256: hex::encode(scanned.hasher.finalize()),
                    closed_at: now,
                    zstd: None,
                };
                m.files.insert(rel.clone(), entry);
                out.closed.push(rel);
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn receive_time(line: &[u8]) -> Option<UtcTime> {
    #[derive(serde::Deserialize)]
    struct Rt<'a> {
        #[serde(borrow)]
        receive_time: Option<std::borrow::Cow<'a, str>>,
    }
    let rt: Rt = serde_json::from_slice(line).ok()?;
    UtcTime::parse(&rt.receive_time?).ok()
}

/// A `.tmp` left by a crash during an atomic rewrite; the real file is intact.
pub(crate) fn remove_stale_tmp(dir: &Path) -> Result<(), ArchiveError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ArchiveError::io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(ArchiveError::io(dir))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(&path).map_err(ArchiveError::io(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cut(content: &[u8]) -> (Vec<u8>, Option<Repair>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        File::create(&p).unwrap().write_all(content).unwrap();
        let s = scan_and_repair(&p, "f.jsonl").unwrap();
        let kept = fs::read(&p).unwrap();
        assert_eq!(s.size, kept.len() as u64);
        assert_eq!(s.hasher.finalize().as_slice(), Sha256::digest(&kept).as_slice());
        (kept, s.repair)
    }

    #[test]
    fn keeps_intact_files() {
        let (kept, r) = cut(b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(kept, b"{\"a\":1}\n{\"b\":2}\n");
        assert!(r.is_none());
        assert!(cut(b"").1.is_none());
    }

    #[test]
    fn cuts_torn_and_garbage_tails() {
        let (kept, r) = cut(b"{\"a\":1}\n{\"b\":2}\n{\"c\":");
        assert_eq!(kept, b"{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(r.unwrap().cut_bytes, 5);
        let (kept, _) = cut(b"{\"a\":1}\n{\"b\"\n\0\0\0\n\0\0");
        assert_eq!(kept, b"{\"a\":1}\n");
        let (kept, r) = cut(b"garbage\n");
        assert_eq!(kept, b"");
        assert_eq!(r.unwrap().kept_lines, 0);
    }

    #[test]
    fn backward_scan_crosses_window_boundaries() {
        let mut content = Vec::new();
        let big = "x".repeat(100_000);
        content.extend_from_slice(format!("{{\"big\":\"{big}\"}}\n").as_bytes());
        let good_len = content.len();
        // More bad lines than fit in the first 64 KiB window.
        for _ in 0..20_000 {
            content.extend_from_slice(b"[1]\n");
        }
        content.extend_from_slice(b"{\"torn");
        let (kept, r) = cut(&content);
        assert_eq!(kept.len(), good_len);
        assert_eq!(r.unwrap().kept_lines, 1);
    }
}

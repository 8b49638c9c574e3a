#![allow(dead_code)]

use std::path::Path;

use model::{SessionId, UtcTime};
use sha2::{Digest, Sha256};
use so_archive::{ArchiveConfig, ArchiveWriter, Manifest, Recovery};

/// `s` is a Seoul wall-clock time like `2026-01-14T09:59:59.999`.
pub fn kst(s: &str) -> UtcTime {
    UtcTime::parse(&format!("{s}+09:00")).unwrap()
}

pub fn cfg() -> ArchiveConfig {
    ArchiveConfig {
        buffer_bytes: 64 * 1024,
        io_queue_buffers: 4,
        fsync_interval: "1s".parse().unwrap(),
        scalp_window: "5m".parse().unwrap(),
    }
}

pub fn line(at: UtcTime, n: u64) -> Vec<u8> {
    format!(
        r#"{{"receive_time":"{at}","event_time":"{at}","schema_version":"1.0","session_id":"sess_20260114_090000","mitigation_level":0,"quality_flag":"normal","n":{n}}}"#
    )
    .into_bytes()
}

pub fn open(root: &Path, now: UtcTime) -> (ArchiveWriter, Recovery) {
    open_with(root, &cfg(), now)
}

pub fn open_with(root: &Path, cfg: &ArchiveConfig, now: UtcTime) -> (ArchiveWriter, Recovery) {
    ArchiveWriter::open(root, cfg, now, &SessionId::starting_at(now)).unwrap()
}

pub fn manifest(root: &Path, date: &str) -> Manifest {
    Manifest::load(root, date).unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Asserts that every manifest entry matches the file's bytes, computed independently.
pub fn assert_manifests_match_files(root: &Path) -> u64 {
    let mut checked = 0;
    for m in Manifest::load_all(root).unwrap().values() {
        for (rel, e) in &m.files {
            let bytes = std::fs::read(root.join(rel)).unwrap();
            assert_eq!(e.size, bytes.len() as u64, "{rel}");
            assert_eq!(e.lines, bytes.iter().filter(|&&b| b == b'\n').count() as u64, "{rel}");
            assert_eq!(e.sha256, sha256_hex(&bytes), "{rel}");
            checked += 1;
        }
    }
    checked
}

pub fn count_lines(root: &Path, rel: &str) -> usize {
    std::fs::read(root.join(rel)).unwrap().iter().filter(|&&b| b == b'\n').count()
}

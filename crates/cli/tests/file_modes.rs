//! A whole `collect` run leaves a data dir other local users cannot read (issue 14, part 5):
//! the data dir and archive folders 0750, archive files 0640, the state folder 0700 and the
//! (sim) KIS token cache 0600, whatever the umask would have allowed.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn collect_leaves_nothing_readable_by_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let o = run(cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--duration", "2s", "--data-dir"])
        .arg(&data));
    assert!(o.status.success(), "{}", text(&o));
    let raw = jsonl_files_under(&data.join("raw"));
    assert!(!raw.is_empty());
    for d in [&data, &data.join("raw"), &data.join("manifests")] {
        assert_eq!(mode(d) & !archive::DIR_MODE, 0, "{} is {:o}", d.display(), mode(d));
    }
    for f in raw.iter().chain(jsonl_files_under(&data.join("system")).iter()) {
        assert_eq!(mode(f) & !archive::FILE_MODE, 0, "{} is {:o}", f.display(), mode(f));
    }
    // The day's universe is archive data too, whatever the umask.
    let universe = data.join("universe");
    assert_eq!(mode(&universe) & !archive::DIR_MODE, 0, "{} is {:o}", universe.display(), mode(&universe));
    let file = universe.join("20260114_kr_stocks.json");
    assert_eq!(mode(&file) & !archive::FILE_MODE, 0, "{} is {:o}", file.display(), mode(&file));
    let state = data.join("state");
    assert_eq!(mode(&state) & 0o077, 0, "state folder is {:o}", mode(&state));
    let caches: Vec<_> = std::fs::read_dir(&state).unwrap().flatten().map(|e| e.path()).collect();
    assert!(!caches.is_empty(), "the sim run keeps a KIS token cache");
    for c in &caches {
        assert_eq!(mode(c) & 0o077, 0, "{} is {:o}", c.display(), mode(c));
    }
}

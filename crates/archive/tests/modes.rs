//! File modes and links (issue 14, part 5): the data dir and everything the archive creates
//! are closed to other local users whatever the umask allows, and the archive never writes
//! through a symbolic link planted in the data dir.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::*;
use model::{Market, Provider};
use so_archive::{DIR_MODE, FILE_MODE, PRIVATE_MODE, Stream};

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every file and folder under `dir`.
fn tree(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            tree(&p, out);
        }
    }
}

#[test]
fn the_data_dir_and_its_files_are_closed_to_other_users() {
    assert_eq!((DIR_MODE, FILE_MODE, PRIVATE_MODE), (0o750, 0o640, 0o600));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let t = kst("2026-01-14T09:00:00.000");
    let (mut w, _) = open(&root, t);
    w.append(Stream::Raw(Provider::Sim), t, &line(t, 1)).unwrap();
    w.append(Stream::Swing(Provider::Sim, Market::KrStocks), t, &line(t, 2)).unwrap();
    w.close_all(kst("2026-01-14T10:00:00.000")).unwrap();
    let mut all = vec![root.clone()];
    tree(&root, &mut all);
    assert!(all.iter().any(|p| p.ends_with("manifests/20260114.json")), "{all:?}");
    for p in &all {
        let m = mode(p);
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() {
            // The umask may narrow the mode further; it can never widen it.
            assert_eq!(m & !DIR_MODE, 0, "{} is {m:o}", p.display());
        } else if name == ".lock" || name == ".session" {
            assert_eq!(m & !PRIVATE_MODE, 0, "{} is {m:o}", p.display());
        } else {
            assert_eq!(m & !FILE_MODE, 0, "{} is {m:o}", p.display());
        }
        assert_eq!(m & 0o007, 0, "{} is open to other users: {m:o}", p.display());
    }
}

#[test]
fn a_data_dir_made_by_hand_loses_its_world_bits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let (w, _) = open(&root, kst("2026-01-14T09:00:00.000"));
    assert_eq!(mode(&root), 0o750);
    drop(w);
}

#[test]
fn links_planted_in_the_data_dir_are_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let victim = dir.path().join("victim");
    fs::write(&victim, "victim").unwrap();
    fs::create_dir(&root).unwrap();
    // The session marker's temporary file and the lock, as links to the victim.
    symlink(&victim, root.join(".session.tmp")).unwrap();
    symlink(&victim, root.join(".lock")).unwrap();
    let t = kst("2026-01-14T09:00:00.000");
    assert!(
        so_archive::ArchiveWriter::open(&root, &cfg(), t, &model::SessionId::starting_at(t)).is_err(),
        "a linked lock was opened"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "victim");
    fs::remove_file(root.join(".lock")).unwrap();
    let (mut w, _) = open(&root, t);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "victim", "the session marker went through the link");
    assert!(fs::symlink_metadata(root.join(".session")).unwrap().file_type().is_file());
    // An hour file replaced by a link: the append fails instead of writing the victim.
    let rel = "raw/sim/20260114/09.jsonl";
    fs::create_dir_all(root.join("raw/sim/20260114")).unwrap();
    symlink(&victim, root.join(rel)).unwrap();
    let _ = w.append(Stream::Raw(Provider::Sim), t, &line(t, 1));
    let _ = w.close_all(kst("2026-01-14T10:00:00.000"));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "victim", "an archive line went through the link");
}

//! Compression at rest (`compress_day`) and reading both forms back (`open_lines`, `verify`).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use model::{Day, Market, Provider};
use so_archive::{
    ArchiveError, CompressReport, Manifest, ManifestEntry, Stream, compress_day, compressed_path, logical_files,
    open_lines, verify,
};

const SIM: Provider = Provider::Sim;
const KR: Market = Market::KrStocks;
const DATE: &str = "20260114";

fn day() -> Day {
    DATE.parse().unwrap()
}

/// A closed day: raw 09 and 10, one swing hour, two scalp windows, the day's events file.
/// Returns every file's original bytes by manifest key.
fn closed_day(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    for i in 0..200u64 {
        let t = kst("2026-01-14T09:50:00.000").plus_millis(i as i64 * 6_000);
        for s in [Stream::Raw(SIM), Stream::Swing(SIM, KR), Stream::Scalp(SIM, KR), Stream::Events(SIM)] {
            w.append(s, t, &line(t, i)).unwrap();
        }
    }
    w.close_all(kst("2026-01-14T11:00:00.000")).unwrap();
    let m = manifest(root, DATE);
    assert_eq!(m.files.len(), 9, "{:?}", m.files.keys());
    m.files.keys().map(|rel| (rel.clone(), fs::read(root.join(rel)).unwrap())).collect()
}

fn read_all(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    open_lines(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn zst(root: &Path, rel: &str) -> PathBuf {
    compressed_path(&root.join(rel))
}

fn tool(name: &str) -> bool {
    Command::new("which").arg(name).output().is_ok_and(|o| o.status.success())
}

fn assert_verifies(root: &Path, files: u64, lines: u64) {
    let report = verify(root, None).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.files, report.lines), (files, lines));
}

#[test]
fn a_compressed_day_reads_and_verifies_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let originals = closed_day(root);
    let before = verify(root, None).unwrap();
    assert!(before.ok(), "{:?}", before.problems);

    let report = compress_day(root, day(), 3).unwrap();
    let total: u64 = originals.values().map(|b| b.len() as u64).sum();
    assert_eq!((report.compressed, report.skipped, report.bytes_before), (9, 0, total));
    assert!(report.bytes_after < report.bytes_before / 3, "{report:?}");

    let m = manifest(root, DATE);
    let mut after = 0;
    for (rel, bytes) in &originals {
        let e = &m.files[rel];
        // The entry keeps describing the original; `zstd` describes the file on disk.
        assert_eq!((e.size, e.sha256.as_str()), (bytes.len() as u64, sha256_hex(bytes).as_str()));
        let stored = e.zstd.as_ref().unwrap();
        let zbytes = fs::read(zst(root, rel)).unwrap();
        assert_eq!((stored.size, stored.sha256.as_str()), (zbytes.len() as u64, sha256_hex(&zbytes).as_str()));
        after += stored.size;
        assert!(!root.join(rel).exists(), "{rel} kept beside its compressed form");
        // Readers find the file by its manifest name.
        assert_eq!(&read_all(&root.join(rel)), bytes, "{rel}");
        if tool("sha256sum") {
            let out = Command::new("sha256sum").arg(zst(root, rel)).output().unwrap();
            assert!(String::from_utf8(out.stdout).unwrap().starts_with(&stored.sha256), "{rel}");
        }
        // Stored as the zstd CLI writes it: anyone can decompress an archive file by hand.
        if tool("zstd") {
            let out = Command::new("zstd").arg("-dc").arg(zst(root, rel)).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(&out.stdout, bytes, "{rel}");
        }
    }
    assert_eq!(after, report.bytes_after);
    assert_verifies(root, before.files, before.lines);

    // A collector start finds nothing open: compressed files were closed.
    let now = kst("2026-01-15T09:00:00.000");
    let (w, rec) = open(root, now);
    assert!(rec.closed.is_empty() && rec.repaired.is_empty(), "{rec:?}");
    w.close_all(now).unwrap();
    assert_eq!(manifest(root, DATE), m);

    // Nothing left to do.
    let again = compress_day(root, day(), 3).unwrap();
    assert_eq!(again, CompressReport { skipped: 9, ..CompressReport::default() });
    assert_eq!(manifest(root, DATE), m);
}

#[test]
fn a_flipped_byte_in_a_compressed_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    closed_day(root);
    compress_day(root, day(), 3).unwrap();
    let rel = "raw/sim/20260114/09.jsonl";
    let path = zst(root, rel);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&path, &bytes).unwrap();

    let report = verify(root, None).unwrap();
    let shown = format!("{rel}.zst");
    assert!(!report.problems.is_empty());
    assert!(report.problems.iter().all(|p| p.file == shown), "{:?}", report.problems);
    assert!(report.problems.iter().any(|p| p.to_string().starts_with(&format!("{shown}: sha256 mismatch"))));
}

#[test]
fn a_damaged_original_is_never_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let originals = closed_day(root);
    let rel = "swing/sim/kr_stocks/20260114/09_00.jsonl";
    let mut bytes = originals[rel].clone();
    bytes[20] ^= 0x01;
    fs::write(root.join(rel), &bytes).unwrap();

    let err = compress_day(root, day(), 3).unwrap_err();
    assert!(matches!(&err, ArchiveError::Refused { path, .. } if path.ends_with(rel)), "{err}");
    assert!(err.to_string().contains("does not match its manifest entry"), "{err}");
    // Left exactly as it was; every other file was compressed.
    assert_eq!(fs::read(root.join(rel)).unwrap(), bytes);
    assert!(!zst(root, rel).exists());
    assert!(!root.join(format!("{rel}.zst.tmp")).exists());
    let m = manifest(root, DATE);
    assert!(m.files[rel].zstd.is_none());
    assert_eq!(m.files.values().filter(|e| e.zstd.is_some()).count(), 8);
}

#[test]
fn leftovers_of_an_interrupted_run_are_settled() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let originals = closed_day(root);
    let before = verify(root, None).unwrap();
    let (a, b, c) =
        ("raw/sim/20260114/09.jsonl", "raw/sim/20260114/10.jsonl", "swing/sim/kr_stocks/20260114/09_00.jsonl");

    // A crash after the rename, before the manifest update: a complete `.zst` beside the
    // plain file, which stays authoritative. Another crash left a torn `.zst` (impossible
    // through the rename, but a hand copy might), and one a `.zst.tmp`.
    fs::write(zst(root, a), zstd::encode_all(&originals[a][..], 3).unwrap()).unwrap();
    fs::write(zst(root, b), b"\x28\xb5\x2f\xfd torn").unwrap();
    fs::write(root.join(format!("{c}.zst.tmp")), b"partial").unwrap();
    // Each file is read once, in its plain form.
    assert_verifies(root, before.files, before.lines);
    let listed = logical_files(fs::read_dir(root.join("raw/sim/20260114")).unwrap().map(|e| e.unwrap().path()));
    assert_eq!(listed, [root.join(a), root.join(b)]);
    assert_eq!(read_all(&root.join(b)), originals[b]);

    let report = compress_day(root, day(), 3).unwrap();
    assert_eq!((report.compressed, report.leftovers_removed), (9, 3), "{report:?}");
    assert!(!root.join(format!("{c}.zst.tmp")).exists());
    assert_verifies(root, before.files, before.lines);
    assert_eq!(read_all(&root.join(b)), originals[b]);

    // A crash after the manifest update, before the plain file was removed.
    fs::write(root.join(a), &originals[a]).unwrap();
    assert_verifies(root, before.files, before.lines);
    let report = compress_day(root, day(), 3).unwrap();
    assert_eq!(report, CompressReport { skipped: 9, leftovers_removed: 1, ..CompressReport::default() });
    assert!(!root.join(a).exists());
    assert_verifies(root, before.files, before.lines);
}

#[test]
fn verify_names_compressed_files_that_contradict_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let originals = closed_day(root);
    compress_day(root, day(), 3).unwrap();
    let (a, b) = ("raw/sim/20260114/09.jsonl", "raw/sim/20260114/10.jsonl");
    fs::remove_file(zst(root, a)).unwrap();
    // The plain file restored by hand: its content is right, but the manifest says compressed.
    fs::write(root.join(b), &originals[b]).unwrap();
    fs::remove_file(zst(root, b)).unwrap();
    let stray = "raw/sim/20260114/12.jsonl";
    fs::write(zst(root, stray), zstd::encode_all(&originals[a][..], 3).unwrap()).unwrap();
    let report = verify(root, None).unwrap();
    let got: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            format!("{a}.zst: missing file (listed in manifest)"),
            format!("{b}.zst: missing file (the manifest records the file as compressed)"),
            format!("{stray}.zst: compressed file not listed in any manifest"),
        ]
    );
    // Recovery closes plain files only: the stray `.zst` is neither repaired nor listed.
    let stray_bytes = fs::read(zst(root, stray)).unwrap();
    let (w, rec) = open(root, kst("2026-01-15T09:00:00.000"));
    assert!(rec.closed.is_empty() && rec.repaired.is_empty(), "{rec:?}");
    w.close_all(kst("2026-01-15T09:00:00.000")).unwrap();
    assert_eq!(fs::read(zst(root, stray)).unwrap(), stray_bytes);
    assert!(!manifest(root, DATE).files.contains_key(stray));
}

#[test]
fn reopening_a_compressed_file_restores_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rel = "raw/sim/20260114/09.jsonl";
    let (mut w, _) = open(root, kst("2026-01-14T09:00:00.000"));
    let t = kst("2026-01-14T09:10:00.000");
    w.append(Stream::Raw(SIM), t, &line(t, 1)).unwrap();
    w.close_all(t).unwrap();
    let first = fs::read(root.join(rel)).unwrap();
    compress_day(root, day(), 3).unwrap();
    assert!(!root.join(rel).exists());

    // A restart inside the hour: the appends continue the original bytes.
    let t2 = kst("2026-01-14T09:20:00.000");
    let (mut w, _) = open(root, t2);
    w.append(Stream::Raw(SIM), t2, &line(t2, 2)).unwrap();
    assert!(!zst(root, rel).exists());
    w.close_all(t2).unwrap();
    let bytes = fs::read(root.join(rel)).unwrap();
    assert!(bytes.starts_with(&first));
    let e = &manifest(root, DATE).files[rel];
    assert_eq!((e.lines, e.size, e.zstd.is_none()), (2, bytes.len() as u64, true));
    assert_verifies(root, 1, 2);
}

#[test]
fn old_manifests_load_and_unknown_fields_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("manifests")).unwrap();
    let entry = r#""raw/sim/20260114/09.jsonl": {"size": 1, "lines": 1, "sha256": "ab", "closed_at": "2026-01-14T01:00:00.000Z""#;
    fs::write(root.join("manifests/20260114.json"), format!(r#"{{"date": "20260114", "files": {{{entry}}}}}}}"#))
        .unwrap();
    let m = Manifest::load(root, DATE).unwrap();
    assert_eq!(m.files["raw/sim/20260114/09.jsonl"].zstd, None);
    // Stored again, an uncompressed entry is written exactly as before.
    m.store(root).unwrap();
    assert!(!fs::read_to_string(root.join("manifests/20260114.json")).unwrap().contains("zstd"));
    fs::write(
        root.join("manifests/20260114.json"),
        format!(r#"{{"date": "20260114", "files": {{{entry}, "zstd": {{"size": 1, "sha256": "ab", "x": 1}}}}}}}}"#),
    )
    .unwrap();
    assert!(Manifest::load(root, DATE).is_err());
}

#[test]
fn concurrent_manifest_updates_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let entry = ManifestEntry {
        size: 0,
        lines: 0,
        sha256: sha256_hex(b""),
        closed_at: kst("2026-01-14T10:00:00.000"),
        zstd: None,
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (root, entry) = (root.clone(), entry.clone());
            std::thread::spawn(move || {
                for i in 0..8 {
                    Manifest::update(&root, DATE, |m| {
                        m.files.insert(format!("raw/sim/20260114/{t}{i}.jsonl"), entry.clone());
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(manifest(&root, DATE).files.len(), 32);
    let removed =
        Manifest::remove_entries(&root, DATE, &["raw/sim/20260114/00.jsonl", "raw/sim/20260114/99.jsonl"]).unwrap();
    assert_eq!(removed.keys().collect::<Vec<_>>(), ["raw/sim/20260114/00.jsonl"]);
    assert_eq!(manifest(&root, DATE).files.len(), 31);
}

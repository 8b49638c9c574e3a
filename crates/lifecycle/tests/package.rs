mod common;

use std::fs;

use common::*;
use model::SessionId;
use so_lifecycle::package::{self, MANIFEST, MARKER, PackOptions, PackageError, Packages, Packed, SUMS};

fn opts() -> PackOptions {
    PackOptions { server: "edge-1".into(), level: 3, threads: 2 }
}

#[test]
fn a_day_packs_verifies_with_coreutils_and_restores_byte_for_byte() {
    let tmp = tempdir();
    let (root, out) = (tmp.path().join("data"), tmp.path().join("backups"));
    let d = day("20260114");
    write_day(&root, d, 500, &[]);
    let packages = Packages::new(&out);
    let now = at(d.plus(1), 21, 0);
    let Packed::Created { dir, manifest, marker, .. } =
        package::create(&root, d, &packages, &opts(), now, &|_| {}).unwrap()
    else {
        panic!("expected a new package")
    };
    assert_eq!(dir, out.join("20260114"));
    // Every closed archive file of the day, the day's manifest and its universe file.
    let archived = archive::Manifest::load(&root, "20260114").unwrap();
    let mut originals: Vec<&str> = manifest.files.iter().map(|f| f.original_path.as_str()).collect();
    originals.sort();
    let mut want: Vec<String> = archived.files.keys().cloned().collect();
    want.extend(["manifests/20260114.json".to_string(), "universe/20260114_kr_stocks.json".to_string()]);
    want.sort();
    assert_eq!(originals, want);
    assert_eq!(manifest.providers, ["kis", "upbit"]);
    assert_eq!(manifest.gaps, 1);
    assert_eq!(marker.files, manifest.files.len() as u64);
    let ratio = manifest.original_bytes() as f64 / manifest.stored_bytes() as f64;
    assert!(ratio > 3.0, "JSONL compresses: {ratio}");

    let checked = package::verify(&dir).unwrap();
    assert!(checked.ok(), "{:?}", checked.problems);
    let (ok, text) = run(&dir, "sha256sum", &["--strict", "-c", SUMS]);
    assert!(ok, "sha256sum -c: {text}");
    assert_eq!(text.matches(": OK").count(), manifest.files.len() + 1, "{text}");

    // The package alone brings the day back: archive verify passes, the bytes are the same.
    let restored = tmp.path().join("restored");
    let r = package::restore(&dir, &restored).unwrap();
    assert_eq!(r.written, manifest.files.len() as u64);
    let report = archive::verify(&restored, Some("20260114")).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    for f in &manifest.files {
        assert_eq!(fs::read(root.join(&f.original_path)).unwrap(), fs::read(restored.join(&f.original_path)).unwrap());
    }
    // Restoring again finds everything in place.
    assert_eq!(package::restore(&dir, &restored).unwrap().already_there, manifest.files.len() as u64);

    // A second run is a no-op: the package is there.
    let again = package::create(&root, d, &packages, &opts(), now, &|_| {}).unwrap();
    assert!(matches!(again, Packed::Exists { .. }));
    assert_eq!(packages.complete().unwrap(), [d]);
}

#[test]
fn verify_names_a_flipped_byte_a_deleted_file_an_extra_file_and_a_tampered_manifest() {
    let tmp = tempdir();
    let (root, out) = (tmp.path().join("data"), tmp.path().join("backups"));
    let d = day("20260114");
    write_day(&root, d, 200, &[]);
    let packages = Packages::new(&out);
    package::create(&root, d, &packages, &opts(), at(d.plus(1), 21, 0), &|_| {}).unwrap();
    let dir = packages.day_dir(d);
    let flipped = "files/raw/kis/20260114/09.jsonl.zst";
    let deleted = "files/raw/upbit/20260114/10.jsonl.zst";
    let mut bytes = fs::read(dir.join(flipped)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(dir.join(flipped), bytes).unwrap();
    fs::remove_file(dir.join(deleted)).unwrap();
    fs::write(dir.join("files/stray.txt"), b"not ours").unwrap();

    let checked = package::verify(&dir).unwrap();
    let problems: Vec<String> = checked.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("files/raw/kis/20260114/09.jsonl.zst: sha256 mismatch"), "{problems:#?}");
    assert_eq!(problems[1], "files/raw/upbit/20260114/10.jsonl.zst: missing (listed in the manifest)");
    assert_eq!(problems[2], "files/stray.txt: extra file (not in the manifest)");
    // coreutils agrees on the two damaged files.
    let (ok, text) = run(&dir, "sha256sum", &["-c", SUMS]);
    assert!(!ok);
    assert!(text.contains("09.jsonl.zst: FAILED") && text.contains("10.jsonl.zst: FAILED open or read"), "{text}");

    // A manifest edited by hand fails its own checksum (and the marker's sha256).
    let text = fs::read_to_string(dir.join(MANIFEST)).unwrap().replacen("edge-1", "edge-2", 1);
    fs::write(dir.join(MANIFEST), text).unwrap();
    let problems: Vec<String> = package::verify(&dir).unwrap().problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("MANIFEST.json: manifest_checksum"), "{problems:#?}");

    // Without its marker a package does not exist, whatever else is there.
    fs::remove_file(dir.join(MARKER)).unwrap();
    assert!(packages.complete().unwrap().is_empty());
    let problems = package::verify(&dir).unwrap().problems;
    assert!(problems.iter().any(|p| p.file == MARKER && p.what.starts_with("missing")), "{problems:?}");
    assert!(matches!(packages.manifest(d), Err(PackageError::Missing { .. })));
    assert!(package::restore(&dir, &tmp.path().join("r")).is_err());
}

#[test]
fn an_open_day_a_missing_day_and_a_damaged_archive_file_are_refused_without_a_marker() {
    let tmp = tempdir();
    let (root, out) = (tmp.path().join("data"), tmp.path().join("backups"));
    let packages = Packages::new(&out);
    let d = day("20260114");
    let now = at(d, 21, 0);

    // The day is not over: a collector still has its files open.
    let session = SessionId::starting_at(at(d, 9, 0));
    let (mut w, _) = archive::ArchiveWriter::open(&root, &cfg(), at(d, 9, 0), &session).unwrap();
    let t = at(d, 9, 1);
    let line = format!(
        r#"{{"schema_version":"1.0","event_time":"{t}","receive_time":"{t}","session_id":"{session}","mitigation_level":0,"quality_flag":"normal"}}"#
    );
    w.append(archive::Stream::Raw(model::Provider::Kis), t, line.as_bytes()).unwrap();
    w.append(archive::Stream::Raw(model::Provider::Kis), at(d, 10, 1), line.as_bytes()).unwrap();
    w.sync().unwrap();
    let e = package::create(&root, d, &packages, &opts(), now, &|_| {}).unwrap_err();
    assert_eq!(e.to_string(), "20260114 is not over: raw/kis/20260114/10.jsonl");
    assert!(packages.marker(d).unwrap().is_none());
    w.close_all(at(d, 23, 0)).unwrap();

    // A day with nothing recorded.
    let e = package::create(&root, d.plus(1), &packages, &opts(), now, &|_| {}).unwrap_err();
    assert!(matches!(e, PackageError::NoData { .. }), "{e}");

    // A closed file changed after it was listed: no package for damaged data.
    let raw = root.join("raw/kis/20260114/09.jsonl");
    let mut bytes = fs::read(&raw).unwrap();
    bytes[5] ^= 0x20;
    fs::write(&raw, bytes).unwrap();
    let e = package::create(&root, d, &packages, &opts(), now, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("raw/kis/20260114/09.jsonl: does not match the archive manifest"), "{e}");
    assert!(packages.marker(d).unwrap().is_none());
    assert!(packages.complete().unwrap().is_empty());
}

#[test]
fn a_day_compressed_at_rest_packs_its_zst_files_as_they_are_and_restores() {
    let tmp = tempdir();
    let (root, out) = (tmp.path().join("data"), tmp.path().join("backups"));
    let d = day("20260114");
    write_day(&root, d, 300, &[]);
    let plain_raw = fs::read(root.join("raw/kis/20260114/09.jsonl")).unwrap();
    let report = archive::compress_day(&root, d, 3).unwrap();
    assert!(report.compressed > 0);
    let zst = fs::read(root.join("raw/kis/20260114/09.jsonl.zst")).unwrap();
    let packages = Packages::new(&out);
    let Packed::Created { dir, manifest, .. } =
        package::create(&root, d, &packages, &opts(), at(d.plus(2), 21, 0), &|_| {}).unwrap()
    else {
        panic!("expected a new package")
    };
    // The compressed form is stored byte for byte; the manifest still names the original.
    assert_eq!(fs::read(dir.join("files/raw/kis/20260114/09.jsonl.zst")).unwrap(), zst);
    let f = manifest.files.iter().find(|f| f.original_path == "raw/kis/20260114/09.jsonl").unwrap();
    assert_eq!(f.original_size, plain_raw.len() as u64);
    assert!(package::verify(&dir).unwrap().ok());
    let restored = tmp.path().join("restored");
    package::restore(&dir, &restored).unwrap();
    // Back in the form the archive manifest records, byte for byte.
    assert_eq!(fs::read(restored.join("raw/kis/20260114/09.jsonl.zst")).unwrap(), zst);
    assert!(!restored.join("raw/kis/20260114/09.jsonl").exists());
    let report = archive::verify(&restored, Some("20260114")).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

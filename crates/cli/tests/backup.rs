//! The backup commands on a real recorded day: `backup create` packs it, `sha256sum -c`
//! and `backup verify` check it, `backup restore` brings it back so `verify` passes, and a
//! `kill -9` at each step of packing leaves either no SUCCESS.marker or a valid package. A
//! full disk while packing leaves no marker and the archive untouched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cmd, copy_of_recording, run, text};

const DAY: &str = "20260114";

fn archive_ok(data: &Path) {
    let out = run(cmd().args(["verify", "--date", DAY, "--data-dir"]).arg(data));
    assert!(out.status.success(), "the archive must stay intact: {}", text(&out));
}

#[test]
fn create_verify_with_coreutils_restore_and_report_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = copy_of_recording(tmp.path());
    let out = run(cmd().args(["backup", "create", "--date", DAY, "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("packed {DAY}:")), "{}", text(&out));
    let pkg = data.join("backups").join(DAY);
    for f in ["MANIFEST.json", "SHA256SUMS", "SUCCESS.marker"] {
        assert!(pkg.join(f).is_file(), "{f}");
    }
    let sums = Command::new("sha256sum").args(["--strict", "-c", "SHA256SUMS"]).current_dir(&pkg).output().unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    let out = run(cmd().args(["backup", "verify"]).arg(&pkg));
    assert!(out.status.success() && text(&out).contains("backup verify OK"), "{}", text(&out));
    // Packing again is a no-op.
    let out = run(cmd().args(["backup", "create", "--date", DAY, "--data-dir"]).arg(&data));
    assert!(out.status.success() && text(&out).contains("packed already"), "{}", text(&out));

    // Restored into an empty dir, the archive's own verify passes on the day.
    let restored = tmp.path().join("restored");
    let out = run(cmd().args(["backup", "restore"]).arg(&pkg).arg("--to").arg(&restored));
    assert!(out.status.success(), "{}", text(&out));
    archive_ok(&restored);
    let replay_src = std::fs::read(data.join("manifests").join(format!("{DAY}.json"))).unwrap();
    assert_eq!(std::fs::read(restored.join("manifests").join(format!("{DAY}.json"))).unwrap(), replay_src);

    // A flipped byte and a deleted file are each named.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("MANIFEST.json")).unwrap()).unwrap();
    let files: Vec<String> =
        manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect();
    let (flip, gone) = (&files[0], &files[1]);
    let mut bytes = std::fs::read(pkg.join(flip)).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(pkg.join(flip), bytes).unwrap();
    std::fs::remove_file(pkg.join(gone)).unwrap();
    let out = run(cmd().args(["backup", "verify"]).arg(&pkg));
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains(&format!("{flip}: sha256 mismatch")), "{t}");
    assert!(t.contains(&format!("{gone}: missing (listed in the manifest)")), "{t}");
    assert!(t.contains("backup verify FAILED: 2 problem(s)"), "{t}");
    // A damaged package is not restored.
    let out = run(cmd().args(["backup", "restore"]).arg(&pkg).arg("--to").arg(tmp.path().join("r2")));
    assert!(!out.status.success() && text(&out).contains("does not verify"), "{}", text(&out));

    // A day not recorded, and a bad date, are refused clearly.
    let out = run(cmd().args(["backup", "create", "--date", "20260115", "--data-dir"]).arg(&data));
    assert!(!out.status.success() && text(&out).contains("no archive files for 20260115"), "{}", text(&out));
    let out = run(cmd().args(["backup", "create", "--date", "2026-01-14", "--data-dir"]).arg(&data));
    assert!(!out.status.success() && text(&out).contains("not a date in YYYYMMDD form"), "{}", text(&out));
}

/// The state letter of a process in /proc (`T` once it has stopped itself).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

#[test]
fn kill_9_at_each_step_of_packing_leaves_no_marker_or_a_valid_package() {
    let tmp = tempfile::tempdir().unwrap();
    let data = copy_of_recording(tmp.path());
    let pkg = data.join("backups").join(DAY);
    for step in ["writing:0", "stored:0", "writing:1", "stored:2", "manifest", "sums", "marker"] {
        let mut child = cmd()
            .args(["backup", "create", "--date", DAY, "--data-dir"])
            .arg(&data)
            .env("STOCK_OBSERVER_TEST_STOP_AT", step)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while state(child.id()) != Some('T') {
            assert!(child.try_wait().unwrap().is_none(), "{step}: the packer ended before the step");
            assert!(Instant::now() < deadline, "{step}: the packer never reached the step");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let verified = run(cmd().args(["backup", "verify"]).arg(&pkg));
        if step == "marker" {
            assert!(verified.status.success(), "{step}: {}", text(&verified));
        } else {
            assert!(!pkg.join("SUCCESS.marker").exists(), "{step}: a marker without a finished package");
            assert!(text(&verified).contains("SUCCESS.marker: missing"), "{step}: {}", text(&verified));
            let listed = run(cmd().args(["backup", "list", "--data-dir"]).arg(&data));
            assert!(text(&listed).contains("no packages"), "{step}: {}", text(&listed));
        }
        archive_ok(&data);
        // The next run finishes the job (or finds it done).
        let out = run(cmd().args(["backup", "create", "--date", DAY, "--data-dir"]).arg(&data));
        assert!(out.status.success(), "{step}: {}", text(&out));
        let verified = run(cmd().args(["backup", "verify"]).arg(&pkg));
        assert!(verified.status.success(), "{step}: {}", text(&verified));
        std::fs::remove_dir_all(&pkg).unwrap();
    }
}

#[test]
fn a_full_disk_while_packing_leaves_no_marker_and_the_archive_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = copy_of_recording(tmp.path());
    let out_dir = tmp.path().join("small");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&out_dir).output().unwrap();
    assert!(
        mounted.status.success(),
        "this test mounts a small tmpfs (needs root, as CI has): {}",
        String::from_utf8_lossy(&mounted.stderr)
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(out_dir.clone());
    let out = run(cmd().args(["backup", "create", "--date", DAY, "--data-dir"]).arg(&data).arg("--out").arg(&out_dir));
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("No space left on device"), "{t}");
    assert!(!out_dir.join(DAY).join("SUCCESS.marker").exists());
    archive_ok(&data);
}

/// `retention run` by hand on a day ~11 months old (the recording's date, against the real
/// clock): unbacked, it is kept and reported; with a verified copy (`retention.proof:
/// package`) it goes, every deletion is a `retention_deleted` event in system/lifecycle/,
/// and the archive still verifies.
#[test]
fn retention_run_keeps_an_unbacked_day_and_deletes_a_backed_one_with_events() {
    let tmp = tempfile::tempdir().unwrap();
    let data = copy_of_recording(tmp.path());
    let dry = run(cmd().args(["retention", "run", "--dry-run", "--data-dir"]).arg(&data));
    let t = text(&dry);
    assert!(dry.status.success(), "{t}");
    assert!(t.contains(&format!("kept {DAY} (raw_cap_10d): no verified copy")), "{t}");
    let out = run(cmd().args(["backup", "create", "--date", DAY, "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
    // The default proof also wants a coordinator's receipt: still kept.
    let dry = run(cmd().args(["retention", "run", "--dry-run", "--data-dir"]).arg(&data));
    assert!(text(&dry).contains(&format!("kept {DAY}")), "{}", text(&dry));

    let out = run(cmd()
        .args(["retention", "run", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__RETENTION__PROOF", "package")
        // The rules by age, not the pressure of whatever else fills the test machine's disk.
        .env("STOCK_OBSERVER__RETENTION__DISK_HIGH_WATER_PERCENT", "100"));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for rule in ["raw_3d", "swing_30d", "scalp_30d", "system_30d"] {
        assert!(t.contains(&format!("deleted {DAY} ({rule})")), "{rule}: {t}");
    }
    assert!(!data.join("raw").join("kis").join(DAY).exists());
    assert!(!data.join("manifests").join(format!("{DAY}.json")).exists(), "an emptied manifest goes too");
    let events = common::lines_under(&data.join("system").join("lifecycle"));
    let deleted: Vec<&serde_json::Value> = events.iter().filter(|e| e["event_type"] == "retention_deleted").collect();
    assert_eq!(deleted.len(), 4, "{events:#?}");
    for e in &deleted {
        assert_eq!(e["date"], DAY);
        assert!(e["bytes"].as_u64().unwrap() > 0 && !e["files"].as_array().unwrap().is_empty(), "{e}");
    }
    // What is left (today's lifecycle file, the package) verifies; the package still holds the day.
    let out = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
    let out = run(cmd().args(["backup", "verify"]).arg(data.join("backups").join(DAY)));
    assert!(out.status.success(), "{}", text(&out));
}

//! A full disk while recording: `collect` keeps running, refuses or loses only what could
//! not be written, writes an `archive` gap marker once writes are durable again, shuts down
//! cleanly, and the archive verifies. The disk is a small tmpfs mounted for the test and
//! filled to the last byte by a filler file, then freed.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{cmd, lines_under, text};

/// Unmounts on drop, so a failing assertion does not leave the mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(at).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .expect("running mount");
    // No silent skip: without a mount there is no full disk to test.
    assert!(
        out.status.success(),
        "this test mounts a small tmpfs to fill it (needs root, as CI has): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Mount(at.to_path_buf())
}

/// Writes until the file system refuses: the disk is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
                break;
            }
        }
    }
    written
}

#[test]
fn a_full_disk_is_survived_marked_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _mount = mount_tmpfs(&mnt, "256m");
    let data = mnt.join("data");
    let child = cmd()
        .args(["collect", "--data-dir"])
        .arg(&data)
        .args(["--speed", "60", "--start", "2026-11-23T09:40", "--duration", "16s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let filler = mnt.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    std::thread::sleep(Duration::from_secs(4));
    std::fs::remove_file(&filler).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "collect must survive a full disk:\n{log}");
    // One error per failure streak, not one per line.
    let errors = log.lines().filter(|l| l.contains("archive write failed")).count();
    assert!((1..=3).contains(&errors), "{errors} 'archive write failed' logs:\n{log}");

    let events = lines_under(&data.join("system/events"));
    let marks: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "gap_marker" && e["scope"] == "archive" && e["reason"] == "archive_write_failed")
        .collect();
    assert!(!marks.is_empty(), "no archive gap marker:\n{log}");
    for m in &marks {
        let detail = m["detail"].as_str().unwrap();
        assert!(detail.contains("No space left on device"), "{detail}");
        let (a, b) = (m["gap_start_ts"].as_str().unwrap(), m["gap_end_ts"].as_str().unwrap());
        assert!(a < b, "{m}");
    }
    // The loss is counted, not hidden, and the markers account for all of it.
    let summary = log.lines().find(|l| l.contains("archive lines")).expect("exit summary");
    let number_before = |text: &str, key: &str| -> u64 {
        let head = &text[..text.find(key).unwrap_or_else(|| panic!("{key:?} in {text}"))];
        head.trim_end().rsplit([' ', '(']).next().unwrap().parse().unwrap()
    };
    let (failed, lost) = (number_before(summary, " failed,"), number_before(summary, " lost in failed writes"));
    assert!(failed + lost > 0, "{summary}");
    let mut spans = std::collections::BTreeSet::new();
    let (mut refused_marked, mut lost_marked) = (0, 0);
    for m in &marks {
        if spans.insert((m["gap_start_ts"].to_string(), m["gap_end_ts"].to_string())) {
            let detail = m["detail"].as_str().unwrap();
            refused_marked += number_before(detail, " line(s) refused");
            lost_marked += number_before(detail, " accepted then lost");
        }
    }
    assert_eq!((refused_marked, lost_marked), (failed, lost), "markers vs summary: {summary}");
    // Recording went on after the disk had room again: data after the last marker.
    let last_mark = marks.iter().map(|m| m["gap_end_ts"].as_str().unwrap().to_string()).max().unwrap();
    let scalp = lines_under(&data.join("scalp"));
    assert!(scalp.iter().any(|s| s["receive_time"].as_str().unwrap() > last_mark.as_str()), "nothing recorded after");

    let v = common::run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(v.status.success(), "{}", text(&v));
}

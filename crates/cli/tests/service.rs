//! Running as a service: the sd_notify messages a `collect` sends to systemd, the unit file
//! as `systemd-analyze verify` reads it, and the compose files as YAML.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, cmd, text};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().parent().unwrap()
}

#[test]
fn collect_notifies_ready_then_watchdog_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let stop = m == "STOPPING=1";
            got.push(m);
            if stop {
                break;
            }
        }
        got
    });
    let out = cmd()
        .args(["collect", "--duration", "4s", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let got = reader.join().unwrap();
    eprintln!("notifications: {got:?}");
    assert_eq!(got.first().map(String::as_str), Some("READY=1"), "{got:?}");
    assert_eq!(got.last().map(String::as_str), Some("STOPPING=1"), "{got:?}");
    let middle = &got[1..got.len() - 1];
    assert!(middle.len() >= 2 && middle.iter().all(|m| m == "WATCHDOG=1"), "{got:?}");
}

#[test]
fn the_unit_file_verifies_without_warnings() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/stock-observer.service")).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=30",
        "Restart=always",
        "User=stock-observer",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/stock-observer",
        "CapabilityBoundingSet=\n",
        "EnvironmentFile=-/etc/stock-observer/env",
        "Environment=APP_ENV=production",
        "ExecStart=/usr/local/bin/stock-observer collect --data-dir /var/lib/stock-observer\n",
    ] {
        assert!(unit.contains(key), "unit file lacks {key:?}");
    }
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stock-observer.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/stock-observer", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; tools/test-deps.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for bad in ["Unknown", "ignoring", "Invalid", "Failed", "not executable"] {
        assert!(!stderr.contains(bad), "systemd-analyze verify: {stderr}");
    }
}

#[test]
fn the_compose_files_are_yaml_with_the_five_services() {
    let files = ["docker-compose.yml", "docker-compose.prod.yml", "docker-compose.dev.yml"];
    let base = std::fs::read_to_string(repo().join("deploy/docker-compose.yml")).unwrap();
    for s in
        ["collector:", "postgres:", "redis:", "prometheus:", "grafana:", "timescale/timescaledb:latest-pg15", "redis:7"]
    {
        assert!(base.contains(s), "docker-compose.yml lacks {s}");
    }
    // Every directory the services mount from the repository is there.
    for line in base.lines().map(str::trim).filter(|l| l.starts_with("- ./")) {
        let host = line.trim_start_matches("- ./").split(':').next().unwrap();
        assert!(repo().join("deploy").join(host).is_dir(), "docker-compose.yml mounts a missing deploy/{host}");
    }
    // Parsed when python3 has PyYAML; otherwise only the text checks above run.
    let has_yaml = Command::new("python3").args(["-c", "import yaml"]).output().is_ok_and(|o| o.status.success());
    if !has_yaml {
        eprintln!("python3 with PyYAML not found: compose files not parsed");
        return;
    }
    for f in files {
        let path = repo().join("deploy").join(f);
        let out = Command::new("python3")
            .args(["-c", "import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); assert isinstance(d.get('services'), dict), 'no services'"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

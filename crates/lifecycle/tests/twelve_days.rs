//! Twelve recorded days on tokio's virtual clock, with the real schedule: packing at 21:00,
//! compression and retention every hour, a coordinator's receipts at 21:30. One day is an
//! anomaly day, one day's backup fails (a damaged file), and at the end the disk fills. The
//! test lists, by hand, every deletion the rules allow and when; the run must make exactly
//! those.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use archive::DiskUsage;
use common::*;
use model::{Clock, Day, SystemEvent, UtcTime};
use so_lifecycle::config::{BackupConfig, CompressionConfig, Proof, RetentionConfig};
use so_lifecycle::package::Packages;
use so_lifecycle::receipt::{Receipt, Receipts};
use so_lifecycle::schedule::{self, DiskGauge};
use so_lifecycle::upkeep::Upkeep;
use tokio::sync::{mpsc, watch};

fn upkeep(root: &std::path::Path) -> Upkeep {
    let backup = BackupConfig {
        enabled: true,
        at: "21:00".parse().unwrap(),
        dir: None,
        server: "edge-1".into(),
        zstd_level: 3,
        threads: 1,
        lookback_days: 7,
        keep_packages_days: 10,
    };
    let compression = CompressionConfig { enabled: true, after: "24h".parse().unwrap(), zstd_level: 3 };
    let retention = RetentionConfig {
        enabled: true,
        interval: "1h".parse().unwrap(),
        raw_days: 3,
        raw_anomaly_days: 7,
        raw_cap_days: 10,
        swing_days: 5,
        scalp_days: 4,
        system_days: 8,
        proof: Proof::PackageAndReceipt,
        disk_high_water_percent: 85.0,
        floor: "48h".parse().unwrap(),
    };
    Upkeep::new(root, backup, compression, retention)
}

/// (Seoul day of the deletion, day deleted, rule)
type Deleted = (Day, Day, String);

#[tokio::test(start_paused = true)]
async fn twelve_days_delete_exactly_what_the_rules_allow() {
    let tmp = tempdir();
    let root = tmp.path().join("data");
    let d1 = day("20260105");
    let d = |n: i32| d1.plus(n - 1);
    let clock = Clock::on_tokio_time(at(d1, 8, 0));
    let job = Arc::new(upkeep(&root));
    let usage: Arc<Mutex<Option<DiskUsage>>> = Arc::new(Mutex::new(Some(DiskUsage { used: 40, avail: 60 })));
    let gauge: DiskGauge = {
        let usage = usage.clone();
        Arc::new(move || *usage.lock().unwrap())
    };
    let (tx, mut rx) = mpsc::channel(10_000);
    let (stop_tx, stop) = watch::channel(false);
    let runner = tokio::spawn(schedule::run(job.clone(), clock, gauge, tx, std::future::ready(()), stop));
    let packages = Packages::new(root.join("backups"));
    let receipts = Receipts::of(&packages);

    for n in 1..=12 {
        clock.sleep_until(at(d(n), 9, 0)).await;
        let (r, day) = (root.clone(), d(n));
        // Day 3 is an anomaly day; day 1's raw file is damaged after it closed, so its
        // backup fails every time it is tried.
        let events = if n == 3 {
            vec![SystemEvent::AnomalyDay {
                condition: "ws_reconnects".into(),
                value: 25.0,
                threshold: 20.0,
                date: day.to_string(),
            }]
        } else {
            Vec::new()
        };
        tokio::task::spawn_blocking(move || {
            write_day(&r, day, 60, &events);
            if n == 1 {
                let raw = r.join(format!("raw/kis/{day}/10.jsonl"));
                let mut bytes = std::fs::read(&raw).unwrap();
                bytes[3] ^= 0x01;
                std::fs::write(&raw, bytes).unwrap();
            }
        })
        .await
        .unwrap();
        // The coordinator: a receipt for each package it has not acknowledged yet.
        clock.sleep_until(at(d(n), 21, 30)).await;
        for date in packages.complete().unwrap() {
            if receipts.load(date).unwrap().is_none() {
                let (marker, _) = packages.manifest(date).unwrap();
                let r = Receipt {
                    date,
                    held_by: "central".into(),
                    manifest_sha256: marker.manifest_sha256,
                    received_at: clock.now(),
                };
                receipts.record(&packages, &r).unwrap();
            }
        }
    }
    clock.sleep_until(at(d(12), 23, 30)).await;

    let mut events: Vec<(UtcTime, SystemEvent)> = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let deleted: BTreeSet<Deleted> = events
        .iter()
        .filter_map(|(t, e)| match e {
            SystemEvent::RetentionDeleted { date, rule, .. } => Some((Day::of(*t), *date, rule.clone())),
            _ => None,
        })
        .collect();

    // Every deletion the rules allow, by hand. A day is backed from 21:30 the day after (its
    // package at 21:00, the receipt at 21:30); each rule deletes on the first pass of the
    // day its period ends (00:00), which the 48 h floor allows.
    let mut want: BTreeSet<Deleted> = BTreeSet::new();
    for k in 2..=12 {
        let mut rule = |after: i32, name: &str| {
            if k + after <= 12 {
                want.insert((d(k + after), d(k), name.to_string()));
            }
        };
        if k == 3 {
            rule(7, "raw_7d_anomaly");
        } else {
            rule(3, "raw_3d");
        }
        rule(5, "swing_5d");
        rule(4, "scalp_4d");
        rule(8, "system_8d");
        rule(10, "package_10d");
    }
    assert_eq!(deleted, want, "deleted (left) vs the rules (right)");
    // Each deletion names its files and bytes.
    for (_, e) in &events {
        if let SystemEvent::RetentionDeleted { files, bytes, rule, .. } = e {
            assert!(!files.is_empty() && (*bytes > 0 || rule.starts_with("package_")), "{e:?}");
        }
    }

    // Day 1 never got a verified copy: its backup failed each day it was tried (an anomaly
    // day), and its raw files are still here; past the 10-day cap that is an alert, once a day.
    let failed: Vec<Day> = events
        .iter()
        .filter(|(_, e)| matches!(e, SystemEvent::BackupFailed { date, .. } if *date == d1))
        .map(|(t, _)| Day::of(*t))
        .collect();
    assert_eq!(failed, (2..=8).map(d).collect::<Vec<_>>(), "tried while within backup.lookback_days");
    assert!(events.iter().any(|(_, e)| matches!(e, SystemEvent::AnomalyDay { condition, date, .. }
        if condition == "backup_create_failed" && *date == d1.to_string())));
    let held: Vec<Day> = events
        .iter()
        .filter(|(_, e)| matches!(e, SystemEvent::RetentionHeld { date, .. } if *date == d1))
        .map(|(t, _)| Day::of(*t))
        .collect();
    assert_eq!(held, [d(11), d(12)]);
    assert!(root.join(format!("raw/kis/{d1}/10.jsonl")).exists());
    // Old days were compressed in place and packed before that (day 2: on day 4).
    assert!(events.iter().any(|(t, e)| matches!(e, SystemEvent::ArchiveCompressed { date, .. }
        if *date == d(2) && Day::of(*t) == d(4))));
    let created: BTreeSet<Day> = events
        .iter()
        .filter_map(|(_, e)| match e {
            SystemEvent::BackupCreated { date, .. } => Some(*date),
            _ => None,
        })
        .collect();
    assert_eq!(created, (2..=11).map(d).collect());

    // The disk fills: the oldest backed-up days go, whatever their age, but nothing of the
    // newest 48 h and nothing unbacked; what cannot be freed is reported.
    *usage.lock().unwrap() = Some(DiskUsage { used: 99 * (1 << 30), avail: 1 << 30 });
    clock.sleep_until(at(d(13), 0, 30)).await;
    let mut pressure = Vec::new();
    while let Ok((_, e)) = rx.try_recv() {
        pressure.push(e);
    }
    let raw_days: BTreeSet<String> = std::fs::read_dir(root.join("raw/kis"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // At 00:30 on day 13 the floor keeps days 12 and 11 (ended within 48 h); day 1 is
    // unbacked; day 10 went by its own rule at 00:00.
    assert_eq!(raw_days, [d(1), d(11), d(12)].iter().map(ToString::to_string).collect());
    assert!(
        pressure.iter().any(|e| matches!(e, SystemEvent::RetentionDeleted { rule, .. } if rule == "disk_pressure"))
    );
    let report = pressure.iter().find_map(|e| match e {
        SystemEvent::DiskPressure { detail, .. } => Some(detail.clone()),
        _ => None,
    });
    assert!(report.is_some_and(|d| d.contains("only unbacked data or data newer than 48h remain")), "{pressure:#?}");

    stop_tx.send(true).unwrap();
    runner.await.unwrap();
}

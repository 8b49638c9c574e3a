//! Backup-first retention (seed 001 §2.8, seed 000 §4.3).
//!
//! Raw days are kept `raw_days` (3), or `raw_anomaly_days` (7) when an `anomaly_day` event
//! names them; derived files follow their own periods. Nothing is deleted without a verified
//! copy (`retention.proof`), nothing newer than `retention.floor` (48 h) is ever deleted, and
//! an unbacked raw day past `raw_cap_days` is kept and reported rather than deleted. Under
//! disk pressure the oldest backed-up days go first, whatever their age.
//!
//! [`plan`] decides from what is on disk and a clock reading; [`apply`] deletes. The caller
//! turns both into system events.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::BufRead;
use std::path::Path;

use archive::{DiskUsage, Manifest};
use model::{Day, SystemEvent, UtcTime};

use crate::config::{Proof, RetentionConfig};
use crate::package::{PackageError, Packages};
use crate::receipt::Receipts;

/// Which retention period a file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Raw,
    Swing,
    Scalp,
    System,
}

impl Kind {
    fn of(rel: &str) -> Option<Kind> {
        Some(match rel.split('/').next()? {
            "raw" => Kind::Raw,
            "swing" => Kind::Swing,
            "scalp" => Kind::Scalp,
            "system" => Kind::System,
            _ => return None,
        })
    }
}

/// One archive day as retention sees it.
#[derive(Debug, Clone)]
pub struct DayState {
    pub day: Day,
    /// Closed files by kind: path relative to the data dir (the manifest's name) and bytes on disk.
    pub files: BTreeMap<Kind, Vec<(String, u64)>>,
    pub anomaly: bool,
    /// A verified copy exists under `retention.proof`.
    pub backed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub day: Day,
    pub rule: String,
    pub files: Vec<String>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub day: Day,
    pub rule: String,
    pub reason: String,
    /// An alert condition: an unbacked raw day past the cap.
    pub alert: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pressure {
    pub usage: DiskUsage,
    pub mark: f64,
    /// Bytes the plan frees under the pressure rule, and what it would have needed.
    pub freed: u64,
    pub needed: u64,
    /// `retention.floor`, for the report.
    pub floor: model::settings::Interval,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub deletions: Vec<Deletion>,
    pub held: Vec<Held>,
    pub pressure: Option<Pressure>,
}

impl Plan {
    /// The system events that record this plan once applied.
    pub fn events(&self) -> Vec<SystemEvent> {
        let mut out: Vec<SystemEvent> = self
            .deletions
            .iter()
            .map(|d| SystemEvent::RetentionDeleted {
                date: d.day,
                rule: d.rule.clone(),
                files: d.files.clone(),
                bytes: d.bytes,
            })
            .collect();
        out.extend(self.held.iter().filter(|h| h.alert).map(|h| SystemEvent::RetentionHeld {
            date: h.day,
            rule: h.rule.clone(),
            reason: h.reason.clone(),
        }));
        if let Some(p) = &self.pressure {
            let detail = if p.freed >= p.needed {
                format!("deleted the oldest backed-up days: {} bytes", p.freed)
            } else {
                format!(
                    "needed {} bytes, could free {}: only unbacked data or data newer than {} remain; recording continues",
                    p.needed, p.freed, p.floor
                )
            };
            out.push(SystemEvent::DiskPressure {
                used_percent: p.usage.percent(),
                high_water_percent: p.mark,
                freed_bytes: p.freed,
                detail,
            });
        }
        out
    }
}

/// Reads what retention needs from the data dir and the package folder.
pub fn survey(root: &Path, packages: &Packages, proof: Proof) -> Result<Vec<DayState>, PackageError> {
    let anomalies = anomaly_days(root)?;
    let receipts = Receipts::of(packages);
    let mut days = Vec::new();
    for (date, manifest) in Manifest::load_all(root)? {
        let Ok(day) = date.parse::<Day>() else { continue };
        let mut files: BTreeMap<Kind, Vec<(String, u64)>> = BTreeMap::new();
        for (rel, entry) in &manifest.files {
            let Some(kind) = Kind::of(rel) else { continue };
            let plain = root.join(rel);
            let bytes = fs::metadata(&plain)
                .or_else(|_| fs::metadata(archive::compressed_path(&plain)))
                .map_or(entry.size, |m| m.len());
            files.entry(kind).or_default().push((rel.clone(), bytes));
        }
        // The universe goes with the raw files: replay needs both.
        for rel in universe_files(root, day) {
            let bytes = fs::metadata(root.join(&rel)).map_or(0, |m| m.len());
            files.entry(Kind::Raw).or_default().push((rel, bytes));
        }
        let package = packages.marker(day)?.is_some();
        let receipt = receipts.load(day)?.is_some();
        let backed = match proof {
            Proof::PackageAndReceipt => package && receipt,
            Proof::Receipt => receipt,
            Proof::Package => package,
        };
        days.push(DayState { day, files, anomaly: anomalies.contains(&day), backed });
    }
    Ok(days)
}

fn universe_files(root: &Path, day: Day) -> Vec<String> {
    let prefix = format!("{day}_");
    let Ok(entries) = fs::read_dir(root.join("universe")) else { return Vec::new() };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        .map(|n| format!("universe/{n}"))
        .collect();
    out.sort();
    out
}

/// Days named by an `anomaly_day` event in any events or lifecycle file (a failed backup of
/// day D is written on a later day and names D).
fn anomaly_days(root: &Path) -> Result<BTreeSet<Day>, PackageError> {
    #[derive(serde::Deserialize)]
    struct Line {
        event_type: Option<String>,
        date: Option<String>,
    }
    let mut out = BTreeSet::new();
    let mut files = Vec::new();
    for dir in ["system/events", "system/lifecycle"] {
        collect_files(&root.join(dir), &mut files);
    }
    for path in archive::logical_files(files) {
        let reader = archive::open_lines(&path).map_err(PackageError::io(&path))?;
        for line in reader.split(b'\n') {
            let line = line.map_err(PackageError::io(&path))?;
            // A cheap filter first: these files are mostly other events.
            if memchr::memmem::find(&line, b"anomaly_day").is_none() {
                continue;
            }
            if let Ok(Line { event_type: Some(t), date: Some(d) }) = serde_json::from_slice::<Line>(&line)
                && t == "anomaly_day"
                && let Ok(day) = d.parse()
            {
                out.insert(day);
            }
        }
    }
    Ok(out)
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Decides what to delete as of `now`. `usage` is the disk's state (None: unknown, no
/// pressure rule); `local_packages` the days with a local package and whether a receipt
/// exists for it; `packages_keep_days` is `backup.keep_packages_days`.
pub fn plan(
    days: &[DayState],
    cfg: &RetentionConfig,
    now: UtcTime,
    usage: Option<DiskUsage>,
    local_packages: &[(Day, bool)],
    packages_keep_days: u32,
) -> Plan {
    let today = Day::of(now);
    // A day is inside the floor while any of it is younger than `floor`.
    let floor_start = UtcTime::from_millis(now.as_millis() - cfg.floor.as_millis() as i64);
    let protected = |d: Day| d.end() > floor_start;
    let mut out = Plan::default();
    let mut deleted: BTreeSet<(Day, Kind)> = BTreeSet::new();
    for d in days {
        let age = d.day.days_until(today);
        for (&kind, files) in &d.files {
            let (keep, rule) = match kind {
                Kind::Raw if d.anomaly => (cfg.raw_anomaly_days, format!("raw_{}d_anomaly", cfg.raw_anomaly_days)),
                Kind::Raw => (cfg.raw_days, format!("raw_{}d", cfg.raw_days)),
                Kind::Swing => (cfg.swing_days, format!("swing_{}d", cfg.swing_days)),
                Kind::Scalp => (cfg.scalp_days, format!("scalp_{}d", cfg.scalp_days)),
                Kind::System => (cfg.system_days, format!("system_{}d", cfg.system_days)),
            };
            if files.is_empty() || age < i64::from(keep) || protected(d.day) {
                continue;
            }
            if d.backed {
                deleted.insert((d.day, kind));
                out.deletions.push(deletion(d.day, &rule, files));
            } else if kind == Kind::Raw {
                let alert = age >= i64::from(cfg.raw_cap_days);
                let reason = if alert {
                    format!(
                        "no verified copy ({:?}) and {age} days old, past the {}-day cap: kept, back it up",
                        cfg.proof, cfg.raw_cap_days
                    )
                } else {
                    format!("no verified copy ({:?}) yet: kept", cfg.proof)
                };
                let rule = if alert { format!("raw_cap_{}d", cfg.raw_cap_days) } else { rule };
                out.held.push(Held { day: d.day, rule, reason, alert });
            }
        }
    }
    // Local packages: deleted once a coordinator holds a copy and they are old enough.
    for &(day, receipt) in local_packages {
        if receipt && day.days_until(today) >= i64::from(packages_keep_days) && !protected(day) {
            out.deletions.push(Deletion {
                day,
                rule: format!("package_{packages_keep_days}d"),
                files: vec![format!("backups/{day}")],
                bytes: 0,
            });
        }
    }

    if let Some(usage) = usage.filter(|u| u.percent() > cfg.disk_high_water_percent) {
        let needed = usage.above(cfg.disk_high_water_percent);
        let planned: u64 = out.deletions.iter().map(|d| d.bytes).sum();
        let mut freed = 0u64;
        // Oldest first; whole days, every kind not already going.
        for d in days.iter().filter(|d| d.backed && !protected(d.day)) {
            if planned + freed >= needed {
                break;
            }
            for (&kind, files) in &d.files {
                if files.is_empty() || deleted.contains(&(d.day, kind)) {
                    continue;
                }
                let del = deletion(d.day, "disk_pressure", files);
                freed += del.bytes;
                out.deletions.push(del);
            }
        }
        out.pressure = Some(Pressure {
            usage,
            mark: cfg.disk_high_water_percent,
            freed: planned + freed,
            needed,
            floor: cfg.floor,
        });
    }
    out
}

fn deletion(day: Day, rule: &str, files: &[(String, u64)]) -> Deletion {
    Deletion {
        day,
        rule: rule.to_string(),
        files: files.iter().map(|(f, _)| f.clone()).collect(),
        bytes: files.iter().map(|(_, b)| b).sum(),
    }
}

/// Carries out `plan`'s deletions: files (either form), their manifest entries (the manifest
/// itself once empty), emptied folders, and local packages. Returns what was deleted.
pub fn apply(root: &Path, packages: &Packages, plan: &Plan) -> Result<Vec<Deletion>, PackageError> {
    let mut done = Vec::new();
    for d in &plan.deletions {
        if d.rule.starts_with("package_") {
            let dir = packages.day_dir(d.day);
            fs::remove_dir_all(&dir).map_err(PackageError::io(&dir))?;
            archive::sync_dir(packages.dir())?;
            done.push(d.clone());
            continue;
        }
        // The manifest first: a crash between the two leaves files that are unlisted, which
        // verify reports and the next collector start re-lists; never a listed file missing.
        let date = d.day.to_string();
        let listed: Vec<&str> = d.files.iter().map(String::as_str).collect();
        Manifest::remove_entries(root, &date, &listed)?;
        if Manifest::load(root, &date)?.files.is_empty() {
            remove(&archive::manifest::manifest_path(root, &date))?;
        }
        for rel in &d.files {
            remove(&root.join(rel))?;
            remove(&archive::compressed_path(&root.join(rel)))?;
            if let Some(parent) = root.join(rel).parent() {
                prune_empty(root, parent);
            }
        }
        done.push(d.clone());
    }
    Ok(done)
}

fn remove(path: &Path) -> Result<(), PackageError> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                archive::sync_dir(dir)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PackageError::io(path)(e)),
    }
}

/// Removes `dir` and its parents up to (not including) `root` while they are empty.
fn prune_empty(root: &Path, dir: &Path) {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        cur = d.parent();
    }
}

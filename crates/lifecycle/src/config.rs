//! The `backup:`, `compression:` and `retention:` sections of the configuration.

use std::path::{Path, PathBuf};

use model::settings::{Checker, Interval, Validate};
use serde::{Deserialize, Serialize};

/// zstd's own bounds for the levels worth using (negative "fast" levels left out).
const MAX_ZSTD_LEVEL: i32 = 19;
const MAX_THREADS: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Whether `collect` packs finished days on its schedule.
    pub enabled: bool,
    /// Seoul time at which `collect` packs every finished day that has no package yet
    /// (seed 001 §2.9: 21:00). A day is finished at midnight, when its daily files close.
    pub at: jiff::civil::Time,
    /// Where packages go; relative paths are under the data dir. Null = `{data dir}/backups`.
    pub dir: Option<PathBuf>,
    /// This edge's name in package manifests and receipts.
    pub server: String,
    pub zstd_level: i32,
    /// Files compressed at once.
    pub threads: usize,
    /// How many days back the schedule looks for an unpacked finished day.
    pub lookback_days: u32,
    /// Local packages are deleted this many days after their day, once a receipt says a
    /// coordinator holds a verified copy (never before).
    pub keep_packages_days: u32,
}

impl BackupConfig {
    /// The package folder for the data dir `data_dir`.
    pub fn dir_for(&self, data_dir: &Path) -> PathBuf {
        match &self.dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => data_dir.join(d),
            None => data_dir.join("backups"),
        }
    }
}

impl Validate for BackupConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("zstd_level", self.zstd_level, 1, MAX_ZSTD_LEVEL);
        c.range("threads", self.threads, 1, MAX_THREADS);
        c.range("lookback_days", self.lookback_days, 1, 366);
        c.range("keep_packages_days", self.keep_packages_days, 1, 3660);
        c.check(
            !self.server.is_empty() && self.server.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)),
            "server",
            format_args!("{:?} must be a non-empty name of letters, digits, '-', '_' or '.'", self.server),
        );
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// Whether `collect` compresses closed archive files in place.
    pub enabled: bool,
    /// A closed file is compressed once its day ended at least this long ago.
    pub after: Interval,
    pub zstd_level: i32,
}

impl Validate for CompressionConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("zstd_level", self.zstd_level, 1, MAX_ZSTD_LEVEL);
    }
}

/// What counts as a verified copy before retention may delete a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// A complete local package and a coordinator's receipt for it (the default).
    PackageAndReceipt,
    /// A coordinator's receipt alone (the local package may be gone).
    Receipt,
    /// A complete local package alone: for a single machine whose `backup.dir` is another disk.
    Package,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Whether `collect` runs retention on its schedule.
    pub enabled: bool,
    /// How often `collect` runs it (market clock).
    pub interval: Interval,
    /// Raw days are kept this many days (seed 001 §2.8: 3), on anomaly days `raw_anomaly_days` (7).
    pub raw_days: u32,
    pub raw_anomaly_days: u32,
    /// Past this age an unbacked raw day is an alert condition (it is still kept).
    pub raw_cap_days: u32,
    /// Derived files: Track A snapshots, Track B samples, system events and overflow.
    pub swing_days: u32,
    pub scalp_days: u32,
    pub system_days: u32,
    pub proof: Proof,
    /// Above this share of the disk in use, the oldest backed-up days go first, whatever their age.
    pub disk_high_water_percent: f64,
    /// The newest data never deleted, even under disk pressure (seed 000 §4.3: 48 h).
    pub floor: Interval,
}

impl Validate for RetentionConfig {
    fn validate(&self, c: &mut Checker) {
        c.range("raw_days", self.raw_days, 1, 3660);
        c.check(
            self.raw_anomaly_days >= self.raw_days,
            "raw_anomaly_days",
            format_args!("{} must be at least raw_days ({})", self.raw_anomaly_days, self.raw_days),
        );
        c.check(
            self.raw_cap_days >= self.raw_anomaly_days,
            "raw_cap_days",
            format_args!("{} must be at least raw_anomaly_days ({})", self.raw_cap_days, self.raw_anomaly_days),
        );
        for (name, v) in
            [("swing_days", self.swing_days), ("scalp_days", self.scalp_days), ("system_days", self.system_days)]
        {
            c.range(name, v, 1, 3660);
        }
        // The anomaly_day events that extend a raw day live in the system files.
        c.check(
            self.system_days >= self.raw_anomaly_days,
            "system_days",
            format_args!("{} must be at least raw_anomaly_days ({})", self.system_days, self.raw_anomaly_days),
        );
        c.check(
            0.0 < self.disk_high_water_percent && self.disk_high_water_percent <= 100.0,
            "disk_high_water_percent",
            format_args!("{} must be above 0 and at most 100", self.disk_high_water_percent),
        );
        c.check(
            self.floor.as_millis() >= 48 * 3_600_000,
            "floor",
            format_args!("{} is shorter than 48h (seed 000 §4.3 keeps at least 48 h of raw data)", self.floor),
        );
        c.check(self.interval.as_millis() >= 1_000, "interval", format_args!("{} is shorter than 1s", self.interval));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(f: impl FnOnce(&mut Checker)) -> Vec<String> {
        let mut c = Checker::default();
        f(&mut c);
        c.problems.iter().map(ToString::to_string).collect()
    }

    fn retention() -> RetentionConfig {
        RetentionConfig {
            enabled: true,
            interval: "1h".parse().unwrap(),
            raw_days: 3,
            raw_anomaly_days: 7,
            raw_cap_days: 10,
            swing_days: 30,
            scalp_days: 30,
            system_days: 30,
            proof: Proof::PackageAndReceipt,
            disk_high_water_percent: 85.0,
            floor: "48h".parse().unwrap(),
        }
    }

    #[test]
    fn retention_rules_that_contradict_the_seeds_are_refused_by_key() {
        assert!(problems(|c| c.section("retention", |c| retention().validate(c))).is_empty());
        let bad = RetentionConfig {
            raw_anomaly_days: 2,
            raw_cap_days: 1,
            system_days: 1,
            disk_high_water_percent: 0.0,
            floor: "24h".parse().unwrap(),
            ..retention()
        };
        let p = problems(|c| c.section("retention", |c| bad.validate(c)));
        let keys: Vec<&str> = p.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "retention.raw_anomaly_days",
                "retention.raw_cap_days",
                "retention.system_days",
                "retention.disk_high_water_percent",
                "retention.floor"
            ],
            "{p:#?}"
        );
        assert!(p.iter().any(|p| p.contains("seed 000 §4.3")), "{p:#?}");
    }

    #[test]
    fn backup_names_and_levels_are_checked() {
        let ok = BackupConfig {
            enabled: true,
            at: "21:00".parse().unwrap(),
            dir: None,
            server: "edge-1".into(),
            zstd_level: 3,
            threads: 2,
            lookback_days: 7,
            keep_packages_days: 10,
        };
        assert!(problems(|c| ok.validate(c)).is_empty());
        let bad = BackupConfig { server: "edge 1/..".into(), zstd_level: 0, threads: 0, ..ok.clone() };
        let p = problems(|c| c.section("backup", |c| bad.validate(c)));
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[2].starts_with("backup.server:"), "{p:#?}");
        let data = Path::new("/srv/data");
        assert_eq!(ok.dir_for(data), data.join("backups"));
        let rel = BackupConfig { dir: Some("pkg".into()), ..ok.clone() };
        assert_eq!(rel.dir_for(data), data.join("pkg"));
        let abs = BackupConfig { dir: Some("/mnt/other".into()), ..ok };
        assert_eq!(abs.dir_for(data), Path::new("/mnt/other"));
    }
}

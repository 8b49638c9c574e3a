//! The lifecycle jobs one edge runs on its data dir — pack finished days, compress old
//! files, apply retention — each as one call that returns the system events recording what
//! it did. [`crate::schedule`] calls them on the clock; the CLI calls them by hand.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use archive::DiskUsage;
use model::{Day, SystemEvent, UtcTime};

use crate::config::{BackupConfig, CompressionConfig, RetentionConfig};
use crate::package::{self, PackOptions, PackageError, Packages, Packed, Step};
use crate::retention::{self, Plan};

/// What an edge's lifecycle jobs work on.
#[derive(Debug, Clone)]
pub struct Upkeep {
    pub root: PathBuf,
    pub packages: Packages,
    pub backup: BackupConfig,
    pub compression: CompressionConfig,
    pub retention: RetentionConfig,
    /// (Seoul day, held day, rule) already reported: a held day is an alert once a day,
    /// not once per retention pass.
    reported: Arc<Mutex<BTreeSet<(Day, Day, String)>>>,
}

impl Upkeep {
    pub fn new(
        root: &Path,
        backup: BackupConfig,
        compression: CompressionConfig,
        retention: RetentionConfig,
    ) -> Upkeep {
        let packages = Packages::new(backup.dir_for(root));
        Upkeep { root: root.to_path_buf(), packages, backup, compression, retention, reported: Arc::default() }
    }

    pub fn pack_options(&self) -> PackOptions {
        PackOptions { server: self.backup.server.clone(), level: self.backup.zstd_level, threads: self.backup.threads }
    }

    /// Packs `date`, recording the outcome: `backup_created`, or `backup_failed` with an
    /// `anomaly_day` for the day (seed 001 §2.8 lists a failed backup).
    pub fn pack(
        &self,
        date: Day,
        now: UtcTime,
        progress: &(dyn Fn(Step) + Sync),
    ) -> (Result<Packed, PackageError>, Vec<SystemEvent>) {
        let r = package::create(&self.root, date, &self.packages, &self.pack_options(), now, progress);
        let events = match &r {
            Ok(Packed::Created { manifest, marker, elapsed_ms, .. }) => vec![SystemEvent::BackupCreated {
                date,
                files: manifest.files.len() as u64,
                original_bytes: manifest.original_bytes(),
                stored_bytes: manifest.stored_bytes(),
                manifest_sha256: marker.manifest_sha256.clone(),
                elapsed_ms: *elapsed_ms,
            }],
            Ok(Packed::Exists { .. }) => Vec::new(),
            Err(e) => failure_events(date, "create", e.to_string()),
        };
        (r, events)
    }

    /// `backup.at`: packs every finished day of the last `backup.lookback_days` that has
    /// archive files and no package. A day is finished once its Seoul midnight has passed
    /// (its daily system files close then).
    pub fn pack_finished_days(&self, now: UtcTime) -> Vec<SystemEvent> {
        let today = Day::of(now);
        let mut events = Vec::new();
        for back in (1..=self.backup.lookback_days as i32).rev() {
            let date = today.plus(-back);
            let has_data = archive::manifest::manifest_path(&self.root, &date.to_string()).is_file();
            match self.packages.marker(date) {
                Ok(None) if has_data => {}
                Ok(_) => continue,
                Err(e) => {
                    events.extend(failure_events(date, "create", e.to_string()));
                    continue;
                }
            }
            let (r, ev) = self.pack(date, now, &|_| {});
            match r {
                Ok(_) => tracing::info!(%date, "backup package written"),
                Err(e) => tracing::error!(%date, error = %e, "backup package failed"),
            }
            events.extend(ev);
        }
        events
    }

    /// Compresses the closed files of every day that ended at least `compression.after` ago.
    pub fn compress_old_days(&self, now: UtcTime) -> Vec<SystemEvent> {
        if !self.compression.enabled {
            return Vec::new();
        }
        let days = match archive::Manifest::load_all(&self.root) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "compression skipped: manifests unreadable");
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        for date in days.keys().filter_map(|d| d.parse::<Day>().ok()) {
            if date.end().plus(self.compression.after.get()) > now {
                continue;
            }
            match archive::compress_day(&self.root, date, self.compression.zstd_level) {
                Ok(r) if r.compressed > 0 => events.push(SystemEvent::ArchiveCompressed {
                    date,
                    files: r.compressed,
                    bytes_before: r.bytes_before,
                    bytes_after: r.bytes_after,
                }),
                Ok(_) => {}
                Err(e) => tracing::error!(%date, error = %e, "compression failed; the files stay as they are"),
            }
        }
        events
    }

    /// Plans retention as of `now`; applies it unless `dry_run`. The events record what
    /// was deleted (or, for a dry run, nothing is recorded: the plan is the report).
    pub fn retention(
        &self,
        now: UtcTime,
        usage: Option<DiskUsage>,
        dry_run: bool,
    ) -> Result<(Plan, Vec<SystemEvent>), PackageError> {
        let days = retention::survey(&self.root, &self.packages, self.retention.proof)?;
        let receipts = crate::receipt::Receipts::of(&self.packages);
        let mut local = Vec::new();
        for day in self.packages.complete()? {
            local.push((day, receipts.load(day)?.is_some()));
        }
        let plan = retention::plan(&days, &self.retention, now, usage, &local, self.backup.keep_packages_days);
        if dry_run {
            return Ok((plan, Vec::new()));
        }
        let done = retention::apply(&self.root, &self.packages, &plan)?;
        let mut applied = Plan { deletions: done, ..plan };
        {
            let mut seen = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
            let today = Day::of(now);
            seen.retain(|(on, _, _)| *on == today);
            applied.held.retain(|h| !h.alert || seen.insert((today, h.day, h.rule.clone())));
        }
        let events = applied.events();
        Ok((applied, events))
    }
}

/// `backup_failed` and an `anomaly_day` for the day: seed 001 §2.8 lists a failed backup
/// (or pull) as an anomaly-day condition.
pub fn failure_events(date: Day, stage: &str, reason: String) -> Vec<SystemEvent> {
    vec![
        SystemEvent::BackupFailed { date, stage: stage.to_string(), reason },
        SystemEvent::AnomalyDay {
            condition: format!("backup_{stage}_failed"),
            value: 1.0,
            threshold: 0.0,
            date: date.to_string(),
        },
    ]
}

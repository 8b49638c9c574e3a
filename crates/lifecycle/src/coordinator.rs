//! The central backup coordinator (seed 001 §2.12, Phase 3.4): pulls every edge's packages
//! after the edge's backup time, with retries; keeps one copy per edge and day
//! (`{dir}/{edge}/YYYYMMDD/`), aggregates each day across edges
//! (`{dir}/aggregate/YYYYMMDD.json`), keeps each edge's health and last good backup
//! (`{dir}/status.json`), and sends each edge a receipt for every copy it verified, which is
//! what lets the edge's retention delete the day. Failed pulls are system events (and
//! anomaly days) in the coordinator's own archive (`{dir}/system/lifecycle/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use archive::{ArchiveConfig, ArchiveWriter, Stream};
use jiff::civil::{DateTime, Time};
use model::settings::{Checker, Interval, Validate};
use model::{Clock, Day, Meta, Record, SessionId, SystemEvent, UtcTime};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::package::{PackageError, Packages};
use crate::pull::{Edge, PullError, Pulled};
use crate::receipt::{Receipt, Receipts};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// This coordinator's name: `held_by` in the receipts it sends.
    pub name: String,
    /// Where copies, aggregates, status and the coordinator's own events go.
    pub dir: PathBuf,
    /// How many days back each round looks for packages it does not hold yet.
    pub lookback_days: u32,
    /// Pull this long after an edge's `backup_at`.
    pub pull_after: Interval,
    /// A failed pull is tried again this many times, this far apart.
    pub retries: u32,
    pub retry_interval: Interval,
    /// Connect and read timeout of each request.
    pub timeout: Interval,
    pub edges: Vec<EdgeConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    pub name: String,
    /// The edge's HTTP listener, e.g. `http://10.0.0.5:9464`.
    pub url: String,
    /// The environment variable holding this edge's `backup:read` key (never the key itself).
    pub key_env: String,
    /// The edge's `backup.at` (Seoul).
    pub backup_at: Time,
}

impl Validate for CoordinatorConfig {
    fn validate(&self, c: &mut Checker) {
        c.check(!self.name.is_empty(), "name", "must not be empty");
        c.range("lookback_days", self.lookback_days, 1, 3660);
        c.range("retries", self.retries, 0, 100);
        c.check(!self.edges.is_empty(), "edges", "list at least one edge");
        let mut names = std::collections::BTreeSet::new();
        for (i, e) in self.edges.iter().enumerate() {
            c.section(&format!("edges[{i}]"), |c| {
                let name_ok =
                    !e.name.is_empty() && e.name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
                c.check(name_ok, "name", format_args!("{:?} must be letters, digits, '-', '_' or '.'", e.name));
                c.check(names.insert(e.name.clone()), "name", format_args!("{:?} is listed twice", e.name));
                let url_ok = e.url.starts_with("http://") || e.url.starts_with("https://");
                c.check(url_ok, "url", format_args!("{:?} must start with http:// or https://", e.url));
                c.check(!e.key_env.is_empty(), "key_env", "name the environment variable holding the key");
            });
        }
    }
}

/// One edge's state as `status.json` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeHealth {
    pub url: String,
    pub reachable: bool,
    pub last_contact: Option<UtcTime>,
    pub last_error: Option<String>,
    /// The newest day this coordinator holds a verified copy of.
    pub last_good_backup: Option<Day>,
    pub days_held: u64,
}

/// `aggregate/YYYYMMDD.json`: one day across every edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub date: Day,
    pub servers: Vec<ServerDay>,
    /// Edges with no verified copy of the day.
    pub missing: Vec<String>,
    pub files: u64,
    pub original_bytes: u64,
    pub gaps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDay {
    pub server: String,
    pub manifest_sha256: String,
    pub providers: Vec<String>,
    pub files: u64,
    pub original_bytes: u64,
    pub stored_bytes: u64,
    pub gaps: u64,
}

/// What one round did for one edge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeRound {
    pub pulled: Vec<Day>,
    pub receipts: Vec<Day>,
    pub failed: Vec<(Option<Day>, String)>,
}

pub struct Coordinator {
    cfg: CoordinatorConfig,
    edges: Vec<(EdgeConfig, Edge)>,
    health: Mutex<BTreeMap<String, EdgeHealth>>,
    /// `None` once closed.
    events: Mutex<Option<ArchiveWriter>>,
    /// Told of each event once recorded (alerts).
    observer: std::sync::OnceLock<EventObserver>,
}

/// Told of each event the coordinator records, after it is on disk.
pub type EventObserver = Box<dyn Fn(UtcTime, &SystemEvent) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("edge {edge}: environment variable {var} (its key_env) is not set")]
    MissingKey { edge: String, var: String },
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Package(#[from] PackageError),
}

impl Coordinator {
    /// Reads each edge's key from its `key_env` and opens the coordinator's own archive.
    pub fn open(cfg: CoordinatorConfig, now: UtcTime) -> Result<Coordinator, CoordinatorError> {
        let mut edges = Vec::new();
        for e in &cfg.edges {
            let key = std::env::var(&e.key_env)
                .ok()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| CoordinatorError::MissingKey { edge: e.name.clone(), var: e.key_env.clone() })?;
            let edge = Edge { base: e.url.clone(), key: key.into(), timeout: cfg.timeout.get() };
            edges.push((e.clone(), edge));
        }
        let (writer, _) = ArchiveWriter::open(&cfg.dir, &ArchiveConfig::default(), now, &SessionId::starting_at(now))?;
        let health = Mutex::new(load_status(&cfg.dir));
        Ok(Coordinator { cfg, edges, health, events: Mutex::new(Some(writer)), observer: std::sync::OnceLock::new() })
    }

    fn copies(&self, edge: &str) -> Packages {
        Packages::new(self.cfg.dir.join(edge))
    }

    /// Pulls, verifies and acknowledges every package of `edge` (index) from the last
    /// `lookback_days` that this coordinator does not hold yet, trying each failure again
    /// `retries` times.
    pub async fn round(&self, index: usize, clock: &Clock) -> EdgeRound {
        let (ecfg, edge) = &self.edges[index];
        let copies = self.copies(&ecfg.name);
        let sent = Receipts::of(&copies);
        let mut out = EdgeRound::default();
        let mut tries = 0;
        let listing = loop {
            match edge.list().await {
                Ok(l) => break Ok(l),
                Err(e) if tries < self.cfg.retries => {
                    tries += 1;
                    tracing::warn!(edge = %ecfg.name, error = %e, "listing failed; retrying");
                    clock.sleep(self.cfg.retry_interval.get()).await;
                }
                Err(e) => break Err(e),
            }
        };
        let now = clock.now();
        let oldest = Day::of(now).plus(-(self.cfg.lookback_days as i32));
        let listing = match listing {
            Ok(l) => l,
            Err(e) => {
                // The day the edge should have packed by now is the one at risk.
                let due = expected_day(ecfg, &self.cfg, now);
                self.failed(ecfg, due, &e, now, &mut out);
                return out;
            }
        };
        let listed: Vec<Day> = listing.iter().map(|(d, _)| *d).filter(|d| *d >= oldest).collect();
        if let Some(due) = expected_day(ecfg, &self.cfg, now)
            && due >= oldest
            && !listed.contains(&due)
            && copies.marker(due).ok().flatten().is_none()
        {
            let e = PullError::NoPackage { url: ecfg.url.clone(), date: due };
            self.failed(ecfg, Some(due), &e, now, &mut out);
        }
        for date in listed {
            let mut tries = 0;
            let pulled = loop {
                match edge.pull(date, &copies, clock.now()).await {
                    Ok(p) => break Ok(p),
                    // A refused key or a mismatch will not change by waiting.
                    Err(e @ (PullError::Refused { .. } | PullError::Mismatch(_))) => break Err(e),
                    Err(e) if tries < self.cfg.retries => {
                        tries += 1;
                        tracing::warn!(edge = %ecfg.name, %date, error = %e, "pull failed; retrying");
                        clock.sleep(self.cfg.retry_interval.get()).await;
                    }
                    Err(e) => break Err(e),
                }
            };
            let marker = match pulled {
                Ok(Pulled::Copied { marker, files, bytes, resumed, .. }) => {
                    tracing::info!(edge = %ecfg.name, %date, files, bytes, resumed, "package pulled and verified");
                    out.pulled.push(date);
                    marker
                }
                Ok(Pulled::Held { marker }) => marker,
                Err(e) => {
                    self.failed(ecfg, Some(date), &e, clock.now(), &mut out);
                    continue;
                }
            };
            if sent.load(date).ok().flatten().is_some() {
                continue;
            }
            let receipt = Receipt {
                date,
                held_by: self.cfg.name.clone(),
                manifest_sha256: marker.manifest_sha256,
                received_at: clock.now(),
            };
            match edge.receipt(&receipt).await {
                Ok(()) => {
                    // Remembered so the edge is told once, not every round.
                    if let Err(e) = sent.record(&copies, &receipt) {
                        tracing::error!(edge = %ecfg.name, %date, error = %e, "receipt sent but not recorded here");
                    }
                    self.record(
                        clock.now(),
                        vec![SystemEvent::BackupReceipt {
                            date,
                            held_by: format!("{} (sent to {})", self.cfg.name, ecfg.name),
                            manifest_sha256: receipt.manifest_sha256,
                        }],
                    );
                    out.receipts.push(date);
                }
                Err(e) => self.failed(ecfg, Some(date), &e, clock.now(), &mut out),
            }
        }
        let held = copies.complete().unwrap_or_default();
        self.update_health(ecfg, clock.now(), None, &held);
        for date in held.iter().filter(|d| **d >= oldest) {
            if let Err(e) = self.aggregate(*date) {
                tracing::error!(%date, error = %e, "aggregate not written");
            }
        }
        out
    }

    fn failed(&self, ecfg: &EdgeConfig, date: Option<Day>, e: &PullError, now: UtcTime, out: &mut EdgeRound) {
        let reason = format!("edge {}: {e}", ecfg.name);
        tracing::error!("{reason}");
        out.failed.push((date, reason.clone()));
        let held = self.copies(&ecfg.name).complete().unwrap_or_default();
        self.update_health(ecfg, now, Some(reason.clone()), &held);
        if let Some(date) = date {
            self.record(now, crate::upkeep::failure_events(date, "pull", reason));
        }
    }

    fn update_health(&self, ecfg: &EdgeConfig, now: UtcTime, error: Option<String>, held: &[Day]) {
        let mut all = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let h = all.entry(ecfg.name.clone()).or_default();
        h.url = ecfg.url.clone();
        let unreachable = error.as_deref().is_some_and(|e| !e.contains(": 4") && !e.contains("no complete package"));
        h.reachable = !unreachable;
        if !unreachable {
            h.last_contact = Some(now);
        }
        h.last_error = error;
        h.last_good_backup = held.last().copied();
        h.days_held = held.len() as u64;
        let mut bytes = serde_json::to_vec_pretty(&*all).unwrap_or_default();
        bytes.push(b'\n');
        if let Err(e) = archive::write_atomic(&self.cfg.dir.join("status.json"), &bytes, archive::FILE_MODE) {
            tracing::error!(error = %e, "status.json not written");
        }
    }

    /// Each edge's health and last good backup.
    pub fn health(&self) -> BTreeMap<String, EdgeHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Rebuilds `aggregate/YYYYMMDD.json` from the verified copies held.
    pub fn aggregate(&self, date: Day) -> Result<Aggregate, PackageError> {
        let mut agg =
            Aggregate { date, servers: Vec::new(), missing: Vec::new(), files: 0, original_bytes: 0, gaps: 0 };
        for (ecfg, _) in &self.edges {
            match self.copies(&ecfg.name).manifest(date) {
                Ok((marker, m)) => {
                    agg.files += m.files.len() as u64;
                    agg.original_bytes += m.original_bytes();
                    agg.gaps += m.gaps;
                    agg.servers.push(ServerDay {
                        server: ecfg.name.clone(),
                        manifest_sha256: marker.manifest_sha256,
                        providers: m.providers.clone(),
                        files: m.files.len() as u64,
                        original_bytes: m.original_bytes(),
                        stored_bytes: m.stored_bytes(),
                        gaps: m.gaps,
                    });
                }
                Err(PackageError::Missing { .. }) => agg.missing.push(ecfg.name.clone()),
                Err(e) => return Err(e),
            }
        }
        let dir = self.cfg.dir.join("aggregate");
        archive::create_dirs_synced(&dir)?;
        let mut bytes = serde_json::to_vec_pretty(&agg).unwrap_or_default();
        bytes.push(b'\n');
        archive::write_atomic(&dir.join(format!("{date}.json")), &bytes, archive::FILE_MODE)?;
        Ok(agg)
    }

    /// Sets who is told of each recorded event (once; a second call is ignored).
    pub fn observe(&self, f: EventObserver) {
        let _ = self.observer.set(f);
    }

    /// Appends `events` to the coordinator's own `system/lifecycle/` and makes them durable.
    fn record(&self, at: UtcTime, events: Vec<SystemEvent>) {
        let mut guard = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(w) = guard.as_mut() else {
            tracing::error!(?events, "coordinator events after close: not recorded");
            return;
        };
        let session = SessionId::starting_at(at);
        for e in &events {
            let line =
                serde_json::to_vec(&Record { body: e, meta: Meta::new(at, at, session.clone()) }).unwrap_or_default();
            if let Err(err) = w.append(Stream::Lifecycle, at, &line) {
                tracing::error!(error = %err, event = ?e, "coordinator event not recorded");
            }
        }
        if let Err(err) = w.sync() {
            tracing::error!(error = %err, "coordinator events not synced");
        }
        drop(guard);
        if let Some(tell) = self.observer.get() {
            events.iter().for_each(|e| tell(at, e));
        }
    }

    /// Closes the coordinator's own archive files.
    pub fn close(&self, now: UtcTime) -> Result<(), archive::ArchiveError> {
        match self.events.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(w) => w.close_all(now).map(|_| ()),
            None => Ok(()),
        }
    }

    pub fn edges(&self) -> usize {
        self.edges.len()
    }

    /// Runs until `stop`: a round for every edge now, then one at each edge's
    /// `backup_at + pull_after`, every day.
    pub async fn run(self: Arc<Self>, clock: Clock, stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.edges.len() {
            let (me, mut stop) = (self.clone(), stop.clone());
            tasks.spawn(async move {
                loop {
                    me.round(i, &clock).await;
                    let next = next_pull(&me.edges[i].0, &me.cfg, clock.now());
                    tokio::select! {
                        _ = clock.sleep_until(next) => {}
                        _ = model::stopped(&mut stop) => return,
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// The edge's pull time (`backup_at + pull_after`) on `day`.
fn pull_time(e: &EdgeConfig, cfg: &CoordinatorConfig, day: Day) -> UtcTime {
    UtcTime::from_kst(DateTime::from_parts(day.date(), e.backup_at)).plus(cfg.pull_after.get())
}

/// The next pull time strictly after `now`.
pub fn next_pull(e: &EdgeConfig, cfg: &CoordinatorConfig, now: UtcTime) -> UtcTime {
    let today = Day::of(now);
    let t = pull_time(e, cfg, today);
    if t > now { t } else { pull_time(e, cfg, today.plus(1)) }
}

/// The newest day the edge should have packed by `now`: its backup run on day D packs D-1
/// (a day is finished at midnight).
fn expected_day(e: &EdgeConfig, cfg: &CoordinatorConfig, now: UtcTime) -> Option<Day> {
    let today = Day::of(now);
    let ran_today = pull_time(e, cfg, today) <= now;
    Some(if ran_today { today.plus(-1) } else { today.plus(-2) })
}

fn load_status(dir: &Path) -> BTreeMap<String, EdgeHealth> {
    std::fs::read(dir.join("status.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

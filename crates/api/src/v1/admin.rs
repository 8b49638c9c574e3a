//! Operations an `admin` key may start (seed 004 §8): compress the database's old chunks,
//! refresh its rollups, pack a day's backup, load a day from the archive. Each runs as a job
//! in the background — a backup or an ETL outlasts any request timeout — and answers `202`
//! with the job, whose state `GET /api/v1/admin/jobs/{id}` reports. One job of a kind runs at
//! a time; the newest job of each kind is kept, so the list is bounded by the kinds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use model::{Day, UtcTime};
use store::{Backend, EtlOptions, Mode};

use super::ApiState;
use super::params::Params;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Compress,
    Refresh,
    Backup,
    Etl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: u64,
    pub kind: JobKind,
    pub state: JobState,
    pub started: UtcTime,
    pub finished: Option<UtcTime>,
    /// The parameters it runs with.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    /// What it did (`succeeded`), e.g. the ETL's reconciliation.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Why it failed (`failed`).
    pub error: Option<String>,
}

/// The newest job of each kind.
#[derive(Debug, Default)]
pub struct Jobs {
    next: AtomicU64,
    latest: Mutex<BTreeMap<JobKind, Job>>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<JobKind, Job>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new running job of `kind`, unless one runs.
    fn start(&self, kind: JobKind, request: serde_json::Value, now: UtcTime) -> Result<Job, ApiError> {
        let mut latest = self.lock();
        if let Some(j) = latest.get(&kind).filter(|j| j.state == JobState::Running) {
            return Err(ApiError::conflict(format!(
                "a {} job (id {}) is running since {}; see /api/v1/admin/jobs/{}",
                kind.as_str(),
                j.id,
                j.started,
                j.id
            )));
        }
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let job = Job {
            id,
            kind,
            state: JobState::Running,
            started: now,
            finished: None,
            request,
            result: None,
            error: None,
        };
        latest.insert(kind, job.clone());
        Ok(job)
    }

    fn finish(&self, kind: JobKind, id: u64, outcome: Result<serde_json::Value, String>, now: UtcTime) {
        let mut latest = self.lock();
        let Some(job) = latest.get_mut(&kind).filter(|j| j.id == id) else { return };
        job.finished = Some(now);
        match outcome {
            Ok(result) => {
                tracing::info!(id, kind = kind.as_str(), "admin job succeeded");
                (job.state, job.result) = (JobState::Succeeded, Some(result));
            }
            Err(e) => {
                tracing::error!(id, kind = kind.as_str(), error = %e, "admin job failed");
                (job.state, job.error) = (JobState::Failed, Some(e));
            }
        }
    }
}

impl JobKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::Compress => "compress",
            JobKind::Refresh => "refresh",
            JobKind::Backup => "backup",
            JobKind::Etl => "etl",
        }
    }
}

type Work = std::pin::Pin<Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send>>;

/// Registers the job and runs `work` in the background: 202 with the job and its address.
fn launch(s: &Arc<ApiState>, kind: JobKind, request: serde_json::Value, work: Work) -> Result<Response, ApiError> {
    let job = s.jobs.start(kind, request, s.clock.now())?;
    tracing::info!(id = job.id, kind = kind.as_str(), request = %job.request, "admin job started");
    let (state, id) = (s.clone(), job.id);
    tokio::spawn(async move {
        let outcome = work.await;
        state.jobs.finish(kind, id, outcome, state.clock.now());
    });
    let location = format!("/api/v1/admin/jobs/{}", job.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(job)).into_response())
}

fn required_day(p: &Params) -> Result<Day, ApiError> {
    p.day("date")?.ok_or_else(|| ApiError::bad_request("date: required (YYYYMMDD)"))
}

/// `POST /api/v1/admin/compress?older_than=RFC3339`: compresses TimescaleDB chunks that end
/// before `older_than` (default: now). Other modes compress nothing: 409.
#[utoipa::path(
    post,
    path = "/api/v1/admin/compress",
    tag = "operations",
    summary = "Compress old TimescaleDB chunks (a job)",
    params(
        ("older_than" = Option<model::UtcTime>, Query, description = "Chunks ending before this (default: now)")
    ),
    responses(
        (status = 202, description = "Started; see Location", body = Job),
        (status = 409, description = "The mode compresses nothing, or a compress job runs", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn compress(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let older_than = p.time("older_than")?.unwrap_or_else(|| s.clock.now());
    timescale_only(&s, "compresses nothing (the archive's zstd packages are its compact copy)")?;
    let store = s.store.clone();
    let work: Work = Box::pin(async move {
        match store.compress(older_than).await {
            Ok(n) => Ok(serde_json::json!({ "compressed_chunks": n.unwrap_or(0) })),
            Err(e) => Err(e.to_string()),
        }
    });
    launch(&s, JobKind::Compress, serde_json::json!({ "older_than": older_than }), work)
}

/// `POST /api/v1/admin/refresh?date=YYYYMMDD`: refreshes the continuous aggregates (10m, 1h,
/// 1d bars) over a Seoul day (default: today). Only TimescaleDB has them: 409 otherwise
/// (`etl` writes the rollups there).
#[utoipa::path(
    post,
    path = "/api/v1/admin/refresh",
    tag = "operations",
    summary = "Refresh the continuous aggregates over a day (a job)",
    params(
        ("date" = Option<model::Day>, Query, description = "Seoul day YYYYMMDD (default: today)")
    ),
    responses(
        (status = 202, description = "Started; see Location", body = Job),
        (status = 409, description = "The mode has no continuous aggregates, or a refresh job runs", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn refresh(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = p.day("date")?.unwrap_or_else(|| Day::of(s.clock.now()));
    timescale_only(&s, "has no continuous aggregates: `etl` writes its rollups")?;
    let store = s.store.clone();
    let work: Work = Box::pin(async move {
        store
            .refresh_rollups(date.date())
            .await
            .map(|()| serde_json::json!({ "date": date }))
            .map_err(|e| e.to_string())
    });
    launch(&s, JobKind::Refresh, serde_json::json!({ "date": date }), work)
}

fn timescale_only(s: &ApiState, why: &str) -> Result<(), ApiError> {
    match s.store.mode() {
        Mode::Timescale => Ok(()),
        m => Err(ApiError::conflict(format!("the database ({} mode) {why}", m.as_str()))),
    }
}

/// `POST /api/v1/admin/backup?date=YYYYMMDD`: packs the day's archive into a verified backup
/// package, as `stock-observer backup create` does (a package already there is kept).
#[utoipa::path(
    post,
    path = "/api/v1/admin/backup",
    tag = "operations",
    summary = "Pack a day's backup package (a job)",
    params(
        ("date" = model::Day, Query, description = "The Seoul day to pack, YYYYMMDD")
    ),
    responses(
        (status = 202, description = "Started; see Location", body = Job),
        (status = 409, description = "No backup configuration, or a backup job runs", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn backup(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = required_day(&p)?;
    let Some(upkeep) = s.upkeep.clone() else {
        return Err(ApiError::conflict("this server has no backup configuration"));
    };
    let now = s.clock.now();
    let work: Work = Box::pin(async move {
        let packed = tokio::task::spawn_blocking(move || upkeep.pack(date, now, &|_| ()))
            .await
            .map_err(|e| format!("the backup task ended abnormally: {e}"))?;
        let (result, events) = packed;
        for e in &events {
            tracing::info!(event = ?e, "backup via /api/v1/admin/backup");
        }
        match result {
            Ok(lifecycle::package::Packed::Created { dir, manifest, marker, elapsed_ms }) => Ok(serde_json::json!({
                "created": true,
                "dir": dir,
                "files": manifest.files.len(),
                "original_bytes": manifest.original_bytes(),
                "stored_bytes": manifest.stored_bytes(),
                "manifest_sha256": marker.manifest_sha256,
                "elapsed_ms": elapsed_ms,
            })),
            Ok(lifecycle::package::Packed::Exists { dir, marker }) => Ok(serde_json::json!({
                "created": false,
                "dir": dir,
                "manifest_sha256": marker.manifest_sha256,
            })),
            Err(e) => Err(e.to_string()),
        }
    });
    launch(&s, JobKind::Backup, serde_json::json!({ "date": date }), work)
}

/// `POST /api/v1/admin/etl?date=YYYYMMDD`: loads the archive day into the database and
/// reconciles every table, as `stock-observer etl` does.
#[utoipa::path(
    post,
    path = "/api/v1/admin/etl",
    tag = "operations",
    summary = "Load a day from the archive and reconcile (a job)",
    params(
        ("date" = model::Day, Query, description = "The archive day to load, YYYYMMDD")
    ),
    responses(
        (status = 202, description = "Started; see Location", body = Job),
        (status = 409, description = "An etl job runs", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn etl(State(s): State<Arc<ApiState>>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref())?;
    let date = required_day(&p)?;
    let (store, root, batch_rows) = (s.store.clone(), s.data_dir.clone(), s.etl_batch_rows);
    let work: Work = Box::pin(async move {
        let opts = EtlOptions { date: date.to_string(), batch_rows, progress: false };
        match store::run_etl(&*store, &root, &opts).await {
            Ok(report) if report.ok => Ok(report.to_event_body()),
            Ok(report) => Err(format!("the day does not reconcile: {}", report.to_event_body())),
            Err(e) => Err(e.to_string()),
        }
    });
    launch(&s, JobKind::Etl, serde_json::json!({ "date": date }), work)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    /// The newest job of each kind.
    pub jobs: Vec<Job>,
}

/// `GET /api/v1/admin/jobs`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/jobs",
    tag = "operations",
    summary = "The newest admin job of each kind",
    responses(
        (status = 200, description = "Jobs", body = JobList),
        crate::error::Refusals
    )
)]
pub async fn jobs(State(s): State<Arc<ApiState>>) -> Json<JobList> {
    Json(JobList { jobs: s.jobs.lock().values().cloned().collect() })
}

/// `GET /api/v1/admin/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/jobs/{id}",
    tag = "operations",
    summary = "One admin job",
    params(
        ("id" = u64, Path, description = "A job id")
    ),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job (only the newest of each kind is kept)", body = crate::error::ErrorBody),
        crate::error::Refusals
    )
)]
pub async fn job(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> Result<Json<Job>, ApiError> {
    let id: u64 = id.parse().map_err(|_| ApiError::bad_request(format!("id: {id:?} is not a job id")))?;
    s.jobs
        .lock()
        .values()
        .find(|j| j.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job {id} (only the newest job of each kind is kept)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_of_a_kind_runs_at_a_time_and_the_newest_is_kept() {
        let jobs = Jobs::default();
        let t = UtcTime::from_millis(0);
        let a = jobs.start(JobKind::Etl, serde_json::json!({}), t).unwrap();
        let e = jobs.start(JobKind::Etl, serde_json::json!({}), t).unwrap_err();
        assert_eq!(e.code, "conflict");
        assert!(e.message.contains(&format!("id {}", a.id)), "{}", e.message);
        // Another kind runs beside it.
        let b = jobs.start(JobKind::Backup, serde_json::json!({}), t).unwrap();
        assert_ne!(a.id, b.id);
        jobs.finish(JobKind::Etl, a.id, Err("no archive".into()), t);
        let c = jobs.start(JobKind::Etl, serde_json::json!({}), t).unwrap();
        assert!(c.id > b.id);
        // A finish for a job that was superseded changes nothing.
        jobs.finish(JobKind::Etl, a.id, Ok(serde_json::json!({})), t);
        let latest = jobs.lock();
        assert_eq!((latest[&JobKind::Etl].id, latest[&JobKind::Etl].state), (c.id, JobState::Running));
        assert_eq!(latest.len(), 2);
    }
}

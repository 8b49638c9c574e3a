//! The pull source of backups (seed 001 §2.9, §5.2): a coordinator with a `backup:read`
//! key lists this edge's complete packages, downloads their files (resuming a cut transfer
//! with `Range`), and posts a receipt once it holds a verified copy.
//!
//! ```text
//! GET  /api/v1/backup/packages                    {"packages": [{date, manifest_sha256, files, completed_at}]}
//! GET  /api/v1/backup/packages/{date}/{*path}     one file of a complete package (Range, ETag)
//! POST /api/v1/backup/packages/{date}/receipt     {"held_by", "manifest_sha256"} → 204
//! ```
//!
//! Only what [`Packages::file`] names is served: a package without its `SUCCESS.marker`, a
//! path not in its manifest (`..`, absolute, anything percent-encoded into one) is 404.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use lifecycle::package::{MANIFEST, PackageError, Packages};
pub use lifecycle::receipt::Receipt;
use lifecycle::receipt::{ReceiptError, Receipts};
use model::{Day, UtcTime};

use crate::auth;
use crate::error::ApiError;
use crate::keys::{Caller, KeyStore, Scope};

/// Called after a receipt is recorded (e.g. to write a `backup_receipt` system event).
pub type ReceiptHook = Arc<dyn Fn(&Receipt) + Send + Sync>;

/// What the backup routes serve, and who may use them.
#[derive(Clone)]
pub struct BackupRoutes {
    pub packages: Packages,
    pub keys: Arc<KeyStore>,
    pub on_receipt: Option<ReceiptHook>,
}

impl BackupRoutes {
    /// The packages under `backup_dir` (`{data_dir}/backups` unless configured otherwise),
    /// guarded by `keys`.
    pub fn new(backup_dir: impl Into<PathBuf>, keys: Arc<KeyStore>) -> Self {
        BackupRoutes { packages: Packages::new(backup_dir), keys, on_receipt: None }
    }

    pub fn on_receipt(mut self, hook: impl Fn(&Receipt) + Send + Sync + 'static) -> Self {
        self.on_receipt = Some(Arc::new(hook));
        self
    }
}

/// One entry of `GET /api/v1/backup/packages`: the day's `SUCCESS.marker`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSummary {
    pub date: Day,
    pub manifest_sha256: String,
    pub files: u64,
    pub completed_at: UtcTime,
}

/// `GET /api/v1/backup/packages`: complete packages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageList {
    pub packages: Vec<PackageSummary>,
}

/// Body of `POST …/{date}/receipt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    pub held_by: String,
    pub manifest_sha256: String,
}

const MAX_HELD_BY_CHARS: usize = 200;
/// Bytes read from disk per body chunk: large enough that a 100s-of-MB file is not
/// thousands of blocking-pool round trips, small enough per connection.
const CHUNK: usize = 128 * 1024;

/// The three routes, each needing a `backup:read` (or `admin`) key, and a JSON 404 for
/// anything else.
pub fn router(routes: BackupRoutes) -> Router {
    let keys = routes.keys.clone();
    let r = Router::new()
        .route("/api/v1/backup/packages", get(list))
        .route("/api/v1/backup/packages/{date}/receipt", post(receipt))
        .route("/api/v1/backup/packages/{date}/{*path}", get(file))
        .with_state(Arc::new(routes));
    auth::guard(r, keys, Scope::BackupRead).fallback(|| async { ApiError::not_found("no such route") })
}

type St = State<Arc<BackupRoutes>>;

fn parse_date(s: &str) -> Result<Day, ApiError> {
    s.parse::<Day>().map_err(|e| ApiError::bad_request(format!("date: {e}")))
}

fn path_error(e: PathRejection) -> ApiError {
    ApiError::bad_request(format!("path: {}", e.body_text()))
}

/// Runs blocking package I/O off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "backup route task failed");
        ApiError::internal("the request failed; see the server's log")
    })?
}

fn package_error(date: Day, e: PackageError) -> ApiError {
    match e {
        PackageError::Missing { .. } => ApiError::not_found(format!("no complete backup package for {date}")),
        e => {
            tracing::error!(%date, error = %e, "backup package cannot be served");
            ApiError::internal(format!(
                "the backup package for {date} cannot be read or fails its checks; see the server's log"
            ))
        }
    }
}

async fn list(State(r): St) -> Result<Json<PackageList>, ApiError> {
    blocking(move || {
        let days = r.packages.complete().map_err(|e| {
            tracing::error!(error = %e, "backup packages cannot be listed");
            ApiError::internal("the backup folder cannot be read; see the server's log")
        })?;
        let mut out = Vec::with_capacity(days.len());
        for date in days {
            match r.packages.marker(date) {
                Ok(Some(m)) => out.push(PackageSummary {
                    date,
                    manifest_sha256: m.manifest_sha256,
                    files: m.files,
                    completed_at: m.completed_at,
                }),
                // Removed since the folder was read.
                Ok(None) => {}
                // One damaged package must not hide the others from the coordinator.
                Err(e) => tracing::warn!(%date, error = %e, "backup package left out of the list"),
            }
        }
        Ok(Json(PackageList { packages: out }))
    })
    .await
}

/// The bytes a `Range` header asks for, of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (`N-`, `N-M`, `-SUFFIX`). Anything else, several ranges included, is
/// ignored and the whole file served, as RFC 9110 §14.2 allows.
fn requested(range: Option<&HeaderValue>, len: u64) -> Span {
    let Some(spec) = range.and_then(|v| v.to_str().ok()) else { return Span::Whole };
    let spec = spec.trim();
    let Some(set) = spec.get(..6).filter(|u| u.eq_ignore_ascii_case("bytes=")).map(|_| &spec[6..]) else {
        return Span::Whole;
    };
    if set.contains(',') {
        return Span::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return Span::Whole };
    let num =
        |s: &str| if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse::<u64>().ok() };
    match (first.trim(), last.trim()) {
        ("", suffix) => match num(suffix) {
            None => Span::Whole,
            Some(0) => Span::Unsatisfiable,
            Some(_) if len == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part(len - n.min(len), len - 1),
        },
        (first, "") => match num(first) {
            None => Span::Whole,
            Some(f) if f >= len => Span::Unsatisfiable,
            Some(f) => Span::Part(f, len - 1),
        },
        (first, last) => match (num(first), num(last)) {
            (Some(f), Some(l)) if f > l || f >= len => Span::Unsatisfiable,
            (Some(f), Some(l)) => Span::Part(f, l.min(len - 1)),
            _ => Span::Whole,
        },
    }
}

/// `count` bytes of `file` from its current position, read as the client takes them.
fn stream(file: tokio::fs::File, count: u64) -> Body {
    let chunks = futures_util::stream::try_unfold((file, count), |(mut f, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; left.min(CHUNK as u64) as usize];
        let got = f.read(&mut buf).await?;
        if got == 0 {
            // Content-Length is already sent: failing cuts the connection, so the client
            // sees a short transfer rather than a complete-looking wrong one.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "package file shrank while being served"));
        }
        buf.truncate(got);
        Ok(Some((Bytes::from(buf), (f, left - got as u64))))
    });
    Body::from_stream(chunks)
}

async fn file(
    State(r): St,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((date, rel)) = path.map_err(path_error)?;
    let date = parse_date(&date)?;
    let packages = r.packages.clone();
    let (path, etag) = blocking(move || {
        let Some(path) = packages.file(date, &rel).map_err(|e| package_error(date, e))? else {
            return Err(ApiError::not_found(format!("no file {rel:?} in a complete backup package for {date}")));
        };
        // The sha256 a puller checks the file against anyway: the manifest's (for
        // MANIFEST.json itself, the marker's).
        let (marker, manifest) = packages.manifest(date).map_err(|e| package_error(date, e))?;
        let etag = if rel == MANIFEST {
            Some(marker.manifest_sha256)
        } else {
            manifest.files.into_iter().find(|f| f.path == rel).map(|f| f.sha256)
        };
        Ok((path, etag))
    })
    .await?;

    let open_error = |e: io::Error| {
        tracing::error!(path = %path.display(), error = %e, "backup file cannot be read");
        ApiError::internal("the file cannot be read; see the server's log")
    };
    let mut f = tokio::fs::File::open(&path).await.map_err(open_error)?;
    let len = f.metadata().await.map_err(open_error)?.len();

    let span = requested(headers.get(header::RANGE), len);
    let mut res = match span {
        Span::Unsatisfiable => {
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {len} bytes"),
            )
            .into_response();
            res.headers_mut().insert(header::CONTENT_RANGE, hv(format!("bytes */{len}")));
            return Ok(res);
        }
        Span::Whole => {
            let mut res = Response::new(stream(f, len));
            res.headers_mut().insert(header::CONTENT_LENGTH, hv(len.to_string()));
            res
        }
        Span::Part(first, last) => {
            f.seek(io::SeekFrom::Start(first)).await.map_err(open_error)?;
            let count = last - first + 1;
            let mut res = Response::new(stream(f, count));
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = res.headers_mut();
            h.insert(header::CONTENT_LENGTH, hv(count.to_string()));
            h.insert(header::CONTENT_RANGE, hv(format!("bytes {first}-{last}/{len}")));
            res
        }
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(sha) = etag {
        h.insert(header::ETAG, hv(format!("\"{sha}\"")));
    }
    Ok(res)
}

/// A header value from text made here (digits, hex, `bytes`, `/`, `-`): always valid.
fn hv(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn receipt(
    State(r): St,
    caller: Option<Extension<Caller>>,
    date: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(date) = date.map_err(path_error)?;
    let date = parse_date(&date)?;
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    let req: ReceiptRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let held_by = req.held_by.trim().to_string();
    if held_by.is_empty() || held_by.chars().count() > MAX_HELD_BY_CHARS || held_by.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "held_by: must be 1 to {MAX_HELD_BY_CHARS} characters, no control characters"
        )));
    }
    let sha = req.manifest_sha256.to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("manifest_sha256: must be 64 hex digits"));
    }
    // Wall time: a receipt is an event of the real world, whatever the recording's clock.
    let receipt = Receipt { date, held_by, manifest_sha256: sha, received_at: model::Clock::real().now() };
    let recorded = receipt.clone();
    let packages = r.packages.clone();
    blocking(move || {
        Receipts::of(&packages).record(&packages, &recorded).map_err(|e| match e {
            ReceiptError::Mismatch { .. } => ApiError::conflict(e.to_string()),
            ReceiptError::Package(e) => package_error(date, e),
        })
    })
    .await?;
    let key_id = caller.as_ref().map_or("-", |Extension(c)| c.id.as_str());
    tracing::info!(%date, held_by = %receipt.held_by, %key_id, "backup receipt recorded");
    if let Some(hook) = &r.on_receipt {
        hook(&receipt);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str, len: u64) -> Span {
        requested(Some(&HeaderValue::from_str(s).unwrap()), len)
    }

    #[test]
    fn ranges() {
        assert_eq!(requested(None, 10), Span::Whole);
        assert_eq!(req("bytes=0-", 10), Span::Part(0, 9));
        assert_eq!(req("bytes=4-", 10), Span::Part(4, 9));
        assert_eq!(req("bytes=9-", 10), Span::Part(9, 9));
        assert_eq!(req("bytes=10-", 10), Span::Unsatisfiable);
        assert_eq!(req("bytes=2-5", 10), Span::Part(2, 5));
        assert_eq!(req("bytes=2-500", 10), Span::Part(2, 9));
        assert_eq!(req("bytes=5-2", 10), Span::Unsatisfiable);
        assert_eq!(req("bytes=-3", 10), Span::Part(7, 9));
        assert_eq!(req("bytes=-30", 10), Span::Part(0, 9));
        assert_eq!(req("bytes=-0", 10), Span::Unsatisfiable);
        assert_eq!(req("bytes=0-", 0), Span::Unsatisfiable);
        assert_eq!(req("Bytes=1-1", 10), Span::Part(1, 1));
        for ignored in ["bytes=1-2,4-5", "items=0-1", "bytes=a-", "bytes=+1-2", "bytes", "bytes=-"] {
            assert_eq!(req(ignored, 10), Span::Whole, "{ignored}");
        }
    }
}

//! Pulling an edge's package over HTTP (seed 001 §2.9 "Pull", §5.2 backup-only access).
//!
//! The edge serves its complete packages read-only under `/api/v1/backup/packages/` to a key
//! of scope `backup:read`. A pull fetches the marker and the manifest first, then each file
//! into `NAME.part`, resuming a cut transfer with `Range: bytes=N-`, checks each file's size
//! and sha256 against the edge's manifest, verifies the whole copy like `backup verify`, and
//! only then writes its own `SUCCESS.marker`. A package already held is not fetched again.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use model::{Day, UtcTime};
use sha2::{Digest, Sha256};

use crate::package::hashing::{HashingWriter, summarize};
use crate::package::layout::parse_manifest;
use crate::package::{MANIFEST, MARKER, PackageError, PackageManifest, Packages, SUMS, SuccessMarker, verify};
use crate::receipt::Receipt;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    /// 401/403: the key is missing, wrong, revoked or of another scope.
    #[error("{url}: {status} — the edge refused the key (needs an unrevoked key of scope backup:read)")]
    Refused { url: String, status: u16 },
    #[error("{url}: the edge has no complete package for {date}")]
    NoPackage { url: String, date: Day },
    #[error("{0}")]
    Mismatch(String),
    #[error("the pulled copy does not verify:\n{}", .0.join("\n"))]
    Damaged(Vec<String>),
    #[error(transparent)]
    Package(#[from] PackageError),
}

impl From<archive::ArchiveError> for PullError {
    fn from(e: archive::ArchiveError) -> Self {
        PullError::Package(e.into())
    }
}

/// The edge to pull from.
#[derive(Clone)]
pub struct Edge {
    /// `http://host:port` of the edge's listener.
    pub base: String,
    /// A `backup:read` key. Never logged, never in an error.
    pub key: secrecy::SecretString,
    pub timeout: Duration,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").field("base", &self.base).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// Files fetched (`resumed` of them from a partial copy) and bytes transferred.
    Copied { files: u64, resumed: u64, bytes: u64, manifest: Box<PackageManifest>, marker: SuccessMarker },
    /// This copy already has the package with the same manifest: nothing was fetched.
    Held { marker: SuccessMarker },
}

impl Edge {
    fn client(&self) -> Result<reqwest::Client, PullError> {
        reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .read_timeout(self.timeout)
            .build()
            .map_err(|e| PullError::Http { url: self.base.clone(), reason: e.to_string() })
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/api/v1/backup/packages{tail}", self.base.trim_end_matches('/'))
    }

    fn get(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        use secrecy::ExposeSecret;
        client.get(url).bearer_auth(self.key.expose_secret())
    }

    /// The days the edge has complete packages for.
    pub async fn list(&self) -> Result<Vec<(Day, String)>, PullError> {
        #[derive(serde::Deserialize)]
        struct Listing {
            packages: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            date: Day,
            manifest_sha256: String,
        }
        let client = self.client()?;
        let url = self.url("");
        let bytes = fetch(self.get(&client, &url), &url).await?;
        let listing: Listing =
            serde_json::from_slice(&bytes).map_err(|e| PullError::Http { url: url.clone(), reason: e.to_string() })?;
        Ok(listing.packages.into_iter().map(|e| (e.date, e.manifest_sha256)).collect())
    }

    /// Tells the edge this copy is verified, so its retention may delete the day.
    pub async fn receipt(&self, receipt: &Receipt) -> Result<(), PullError> {
        use secrecy::ExposeSecret;
        let client = self.client()?;
        let url = self.url(&format!("/{}/receipt", receipt.date));
        let body = serde_json::json!({ "held_by": receipt.held_by, "manifest_sha256": receipt.manifest_sha256 });
        let resp = client
            .post(&url)
            .bearer_auth(self.key.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| PullError::Http { url: url.clone(), reason: without_url(&e) })?;
        check(&url, resp.status().as_u16(), receipt.date)?;
        Ok(())
    }

    /// Pulls `date`'s package into `copies` (the folder `{copies}/YYYYMMDD/`).
    pub async fn pull(&self, date: Day, copies: &Packages, now: UtcTime) -> Result<Pulled, PullError> {
        let client = self.client()?;
        let base = self.url(&format!("/{date}/"));
        let marker_url = format!("{base}{MARKER}");
        let marker_bytes = match fetch(self.get(&client, &marker_url), &marker_url).await {
            Err(PullError::Http { reason, .. }) if reason.starts_with("404") => {
                return Err(PullError::NoPackage { url: self.base.clone(), date });
            }
            other => other?,
        };
        let edge_marker: SuccessMarker = serde_json::from_slice(&marker_bytes)
            .map_err(|e| PullError::Mismatch(format!("{marker_url}: not a success marker: {e}")))?;
        if let Some(mine) = copies.marker(date)? {
            if mine.manifest_sha256 == edge_marker.manifest_sha256 {
                return Ok(Pulled::Held { marker: mine });
            }
            return Err(PullError::Mismatch(format!(
                "{date}: this copy holds manifest {}, the edge now serves {}; move the old copy aside to pull again",
                mine.manifest_sha256, edge_marker.manifest_sha256
            )));
        }
        let manifest_url = format!("{base}{MANIFEST}");
        let manifest_bytes = fetch(self.get(&client, &manifest_url), &manifest_url).await?;
        let sha = hex::encode(Sha256::digest(&manifest_bytes));
        if sha != edge_marker.manifest_sha256 {
            return Err(PullError::Mismatch(format!(
                "{manifest_url}: sha256 {sha} is not the marker's {}",
                edge_marker.manifest_sha256
            )));
        }
        let dir = copies.day_dir(date);
        let manifest = parse_manifest(&dir.join(MANIFEST), &manifest_bytes)?;
        if manifest.date != date {
            return Err(PullError::Mismatch(format!("{manifest_url}: the manifest is for {}", manifest.date)));
        }
        archive::create_dirs_synced(&dir)?;
        let (mut files, mut resumed, mut bytes) = (0u64, 0u64, 0u64);
        for f in &manifest.files {
            let dest = safe_join(&dir, &f.path)?;
            if let Ok(have) = File::open(&dest).and_then(summarize)
                && have.size == f.size
                && have.sha256 == f.sha256
            {
                continue;
            }
            let (got, was_resumed) = self.fetch_file(&client, &format!("{base}{}", f.path), &dest, f.size).await?;
            if got.0 != f.sha256 || got.1 != f.size {
                return Err(PullError::Mismatch(format!(
                    "{}: fetched {} bytes with sha256 {}, the edge's manifest says {} bytes, {}",
                    f.path, got.1, got.0, f.size, f.sha256
                )));
            }
            files += 1;
            resumed += u64::from(was_resumed);
            bytes += f.size;
        }
        let sums_url = format!("{base}{SUMS}");
        let sums = fetch(self.get(&client, &sums_url), &sums_url).await?;
        archive::write_atomic(&dir.join(SUMS), &sums, archive::FILE_MODE)?;
        archive::write_atomic(&dir.join(MANIFEST), &manifest_bytes, archive::FILE_MODE)?;
        // The whole copy, as `backup verify` checks it, before it counts as held.
        let checked = verify(&dir)?;
        let real: Vec<String> = checked.problems.iter().filter(|p| p.file != MARKER).map(ToString::to_string).collect();
        if !real.is_empty() {
            return Err(PullError::Damaged(real));
        }
        let marker = SuccessMarker { manifest_sha256: sha, files: manifest.files.len() as u64, completed_at: now };
        let mut marker_bytes = serde_json::to_vec_pretty(&marker).unwrap_or_default();
        marker_bytes.push(b'\n');
        archive::write_atomic(&dir.join(MARKER), &marker_bytes, archive::FILE_MODE)?;
        Ok(Pulled::Copied { files, resumed, bytes, manifest: Box::new(manifest), marker })
    }

    /// Downloads `url` to `dest` through `dest.part`, continuing a partial `.part` with a
    /// range request. Returns (sha256, size) of the whole file and whether it resumed.
    async fn fetch_file(
        &self,
        client: &reqwest::Client,
        url: &str,
        dest: &Path,
        size: u64,
    ) -> Result<((String, u64), bool), PullError> {
        let part = PathBuf::from(format!("{}.part", dest.display()));
        if let Some(parent) = dest.parent() {
            archive::create_dirs_synced(parent)?;
        }
        let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        // A part as long as the file, or longer, cannot be continued: start over.
        let start = if have < size { have } else { 0 };
        let mut req = self.get(client, url);
        if start > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={start}-"));
        }
        let mut resp =
            req.send().await.map_err(|e| PullError::Http { url: url.to_string(), reason: without_url(&e) })?;
        let status = resp.status().as_u16();
        let resumed = start > 0 && status == 206;
        if status == 401 || status == 403 {
            return Err(PullError::Refused { url: url.to_string(), status });
        }
        if !(status == 200 || resumed) {
            return Err(PullError::Http { url: url.to_string(), reason: format!("{status} (expected 200 or 206)") });
        }
        // Hash what is already there, then append the rest; a 200 replaces the part.
        let mut out = HashingWriter::new(
            File::options()
                .create(true)
                .append(resumed)
                .write(true)
                .truncate(!resumed)
                .open(&part)
                .map_err(PackageError::io(&part))?,
        );
        if resumed {
            // The prefix already on disk counts in the file's sha256.
            let mut prefix = File::open(&part).map_err(PackageError::io(&part))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut prefix, &mut buf).map_err(PackageError::io(&part))?;
                if n == 0 {
                    break;
                }
                out.absorb(&buf[..n]);
            }
        }
        loop {
            let chunk =
                resp.chunk().await.map_err(|e| PullError::Http { url: url.to_string(), reason: without_url(&e) })?;
            let Some(chunk) = chunk else { break };
            out.write_all(&chunk).map_err(PackageError::io(&part))?;
        }
        let (file, sha, n) = out.finish();
        file.sync_all().map_err(PackageError::io(&part))?;
        drop(file);
        fs::rename(&part, dest).map_err(PackageError::io(dest))?;
        if let Some(parent) = dest.parent() {
            archive::sync_dir(parent)?;
        }
        Ok(((sha, n), resumed))
    }
}

/// `dir/rel`, refusing a manifest path that would leave `dir`.
fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf, PullError> {
    let ok = !rel.is_empty()
        && !rel.starts_with('/')
        && rel.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
    if ok { Ok(dir.join(rel)) } else { Err(PullError::Mismatch(format!("manifest path {rel:?} leaves the package"))) }
}

async fn fetch(req: reqwest::RequestBuilder, url: &str) -> Result<Vec<u8>, PullError> {
    let resp = req.send().await.map_err(|e| PullError::Http { url: url.to_string(), reason: without_url(&e) })?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        return Err(PullError::Refused { url: url.to_string(), status });
    }
    if status != 200 {
        return Err(PullError::Http { url: url.to_string(), reason: format!("{status}") });
    }
    let bytes = resp.bytes().await.map_err(|e| PullError::Http { url: url.to_string(), reason: without_url(&e) })?;
    Ok(bytes.to_vec())
}

fn check(url: &str, status: u16, date: Day) -> Result<(), PullError> {
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(PullError::Refused { url: url.to_string(), status }),
        404 => Err(PullError::NoPackage { url: url.to_string(), date }),
        409 => Err(PullError::Mismatch(format!("{url}: 409: the edge's package is not the one this copy verified"))),
        s => Err(PullError::Http { url: url.to_string(), reason: format!("{s}") }),
    }
}

/// reqwest's error text without the URL it carries (we name the URL ourselves).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

//! `replay`: feeds archived raw frames back through normalization, the observer core and
//! the tracks' in-band steps, and writes the swing and scalp records they yield. Because
//! everything a derived record depends on is in the raw archive (frames, receive times,
//! sequence numbers, session and mitigation level, Track B's clock frames), a replay with
//! the same mappers reproduces the original swing and scalp files byte for byte. Samples a
//! live run sampled down (each in its overflow ledger) are present in a replay.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use archive::Stream;
use archive::lines::MAX_LINE_BYTES;
use archive::raw::RawRefs;
use model::{MarketEvent, Provider, SessionId, UtcTime};

use crate::book::LatestBook;
use crate::config::EngineConfig;
use crate::observer::ObserverCore;
use crate::pipeline::Events;
use crate::router::{Route, Router};
use crate::sink::{Sink, SinkError};
use crate::stats::Stats;
use crate::track_b::Sampler;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the output folder must differ from the archive being replayed ({0})")]
    SameDir(PathBuf),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub frames: u64,
    pub swing: u64,
    pub scalp: u64,
    pub rejected: u64,
    pub malformed: u64,
    /// Archive lines that are not raw-archive lines (torn, edited, random bytes, times
    /// outside the archive's domain): skipped, so the replay of the rest goes on.
    pub bad_lines: u64,
    /// The first of them, as `file:line: why`.
    pub bad_line_samples: Vec<String>,
    /// Providers whose frames this build has no mapper for.
    pub skipped: Vec<String>,
}

/// Bad lines quoted in the report; the rest are counted.
const MAX_BAD_LINE_SAMPLES: usize = 20;

impl ReplayReport {
    fn bad(&mut self, path: &Path, line: usize, why: impl std::fmt::Display) {
        self.bad_lines += 1;
        if self.bad_line_samples.len() < MAX_BAD_LINE_SAMPLES {
            self.bad_line_samples.push(format!("{}:{line}: {why}", path.display()));
        }
    }
}

/// The archive line files under `dir`, each once by its plain name whether it is stored
/// plain or compressed (open with `archive::open_lines`), in path order: hour order within
/// a day, whichever hours are compressed.
fn jsonl_files(dir: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(ReplayError::Io { path: dir.to_path_buf(), source }),
    };
    // Symbolic links are not followed: the archive writer never makes one.
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for (p, kind) in entries.flatten().filter_map(|e| Some((e.path(), e.file_type().ok()?))) {
        if kind.is_dir() {
            dirs.push(p);
        } else if kind.is_file() {
            files.push(p);
        }
    }
    let mut paths: Vec<(PathBuf, bool)> = dirs.into_iter().map(|d| (d, true)).collect();
    paths.extend(archive::logical_files(files).into_iter().map(|f| (f, false)));
    paths.sort();
    for (p, is_dir) in paths {
        if is_dir {
            out.extend(jsonl_files(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Replays `archive/raw` into `out` (a fresh archive folder).
pub async fn replay(archive: &Path, out: &Path, cfg: &EngineConfig) -> Result<ReplayReport, ReplayError> {
    if archive.canonicalize().ok() == out.canonicalize().ok() && out.exists() {
        return Err(ReplayError::SameDir(out.to_path_buf()));
    }
    let raw = archive.join("raw");
    let skews = session_skews(archive);
    let mut report = ReplayReport::default();
    let stats = Arc::new(Stats::default());
    let mut sink: Option<Sink> = None;
    let mut last = UtcTime::from_millis(0);

    let mut providers: Vec<PathBuf> = match std::fs::read_dir(&raw) {
        Ok(e) => e.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect(),
        Err(source) => return Err(ReplayError::Io { path: raw, source }),
    };
    providers.sort();
    for dir in providers {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some((pid, mapper)) = name.parse::<Provider>().ok().and_then(|p| providers::mapper(p).map(|m| (p, m)))
        else {
            report.skipped.push(name);
            continue;
        };
        let mitigation = Arc::new(AtomicU8::new(0));
        let book = Arc::new(LatestBook::default());
        let mut refs = RawRefs::default();
        // Per session: the router (an observer core per route, the subscriptions) and Track B.
        let mut state: Option<(SessionId, Router, Sampler)> = None;
        let (mut passed, mut refused) = (Vec::new(), Vec::new());
        for path in jsonl_files(&dir)? {
            let io = |source| ReplayError::Io { path: path.clone(), source };
            let mut reader = archive::open_lines(&path).map_err(io)?;
            let mut buf = Vec::new();
            let mut i = 0;
            // A last line without its newline is read like any other (a torn one does not
            // parse and is reported); a line past the bound is damage.
            while let Some(read) =
                archive::lines::read_line(&mut reader, &mut buf, MAX_LINE_BYTES, |_| {}).map_err(io)?
            {
                i += 1;
                if read.too_long {
                    report.bad(&path, i, format_args!("line of {} bytes, longer than {MAX_LINE_BYTES}", read.bytes));
                    continue;
                }
                let bytes = buf.strip_suffix(b"\r").unwrap_or(&buf);
                let l = match archive::raw::decode(bytes) {
                    Ok(l) => l,
                    Err(why) => {
                        report.bad(&path, i, why);
                        continue;
                    }
                };
                let rt = l.meta.receive_time;
                last = last.max(rt);
                if sink.is_none() {
                    let (s, _) = Sink::start(
                        out.to_path_buf(),
                        &cfg.archive,
                        rt,
                        &l.meta.session_id,
                        cfg.pipeline.archive_capacity,
                        stats.clone(),
                    )?;
                    sink = Some(s);
                }
                let Some(handle) = sink.as_ref().map(|s| s.handle.clone()) else { continue };
                mitigation.store(l.meta.mitigation_level, Relaxed);
                if state.as_ref().is_none_or(|(s, ..)| *s != l.meta.session_id) {
                    let session = l.meta.session_id.clone();
                    let mut observer = cfg.observer.clone();
                    if let Some(ms) = skews.get(session.as_str()) {
                        observer.max_clock_skew = model::settings::Interval::from_millis(*ms);
                    }
                    let (calendar, core_mitigation, core_stats) =
                        (cfg.calendar.clone(), mitigation.clone(), stats.clone());
                    let core_session = session.clone();
                    let router = Router::new(
                        mapper,
                        Box::new(move || {
                            ObserverCore::new(
                                &observer,
                                &calendar,
                                core_session.clone(),
                                mapper.version,
                                core_mitigation.clone(),
                                core_stats.clone(),
                            )
                        }),
                    );
                    let events = Events {
                        sink: handle.clone(),
                        provider: pid,
                        session: session.clone(),
                        stats: stats.clone(),
                        mitigation: mitigation.clone(),
                        tap: None,
                    };
                    let stale_after = cfg.tracks.scalp.stale_after.as_millis() as i64;
                    let sampler = Sampler::new(pid, mapper.market, book.clone(), events, true, stale_after);
                    state = Some((session, router, sampler));
                }
                let Some((_, router, sampler)) = state.as_mut() else { continue };
                report.frames += 1;
                let route = Route::of(l.frame.kind, l.meta.quality_flag);
                if route == Route::Clock {
                    sampler.sample(&l.frame.frame, rt, l.meta.mitigation_level).await?;
                    report.scalp = stats.scalp_written.load(Relaxed);
                    continue;
                }
                passed.clear();
                refused.clear();
                if router.normalize(route, &l.frame, l.seq, &mut refs, &mut passed, &mut refused).is_err() {
                    report.malformed += 1;
                    continue;
                }
                report.rejected += refused.len() as u64;
                for rec in passed.drain(..) {
                    match route {
                        Route::Swing => {
                            if let MarketEvent::Snapshot(_) = &rec.body {
                                let stream = Stream::Swing(rec.body.provider(), rec.body.market());
                                handle.write(stream, rt, &rec).await?;
                                report.swing += 1;
                            }
                        }
                        // Gap evidence went to the event log, not to swing.
                        Route::Evidence | Route::Clock => {}
                        Route::Stream | Route::Book => book.apply(rec.meta.receive_time, &rec.body),
                    }
                }
            }
        }
    }
    if let Some(s) = sink {
        s.close(last).await?;
    }
    Ok(report)
}

/// The skew allowance each session ran with (its session_start event), so replay validates
/// timestamps exactly as the live run did, whatever its clock speed.
fn session_skews(archive: &Path) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(providers) = std::fs::read_dir(archive.join("system/events")) else { return out };
    for dir in providers.flatten() {
        for file in jsonl_files(&dir.path()).unwrap_or_default() {
            let mut text = String::new();
            if archive::open_lines(&file).and_then(|mut r| r.read_to_string(&mut text)).is_err() {
                continue;
            }
            for line in text.lines().filter(|l| l.contains("\"session_start\"")) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                if let (Some(s), Some(ms)) = (v["session_id"].as_str(), v["detail"]["max_clock_skew_ms"].as_u64()) {
                    out.insert(s.to_string(), ms);
                }
            }
        }
    }
    out
}

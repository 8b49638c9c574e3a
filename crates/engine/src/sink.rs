//! The archive sink: one thread owns the `ArchiveWriter` (synchronous file I/O, fsync) and
//! takes lines from a bounded channel. Producers serialize records themselves so the JSON
//! work is spread over the tasks that make them.
//!
//! Policies when the channel is full: market data and system events wait (back-pressure to
//! the source: nothing is dropped); Track B samples are sampled down and each one not kept
//! goes to the overflow ledger (see `track_b`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use archive::{ArchiveConfig, ArchiveWriter, Recovery, Stream};
use model::{Meta, Provider, Record, SessionId, SystemEvent, UtcTime};

use crate::stats::{Stats, inc};

enum Msg {
    Line { stream: Stream, at: UtcTime, line: Vec<u8> },
    Housekeep(UtcTime),
    Sync,
    Close { now: UtcTime, reply: oneshot::Sender<Result<(), archive::ArchiveError>> },
}

#[derive(Clone)]
pub struct SinkHandle {
    tx: mpsc::Sender<Msg>,
    stats: Arc<Stats>,
}

/// The channel is full; the caller decides what that means for its data.
#[derive(Debug)]
pub struct Full;

pub struct Sink {
    pub handle: SinkHandle,
    thread: JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("archive sink stopped unexpectedly")]
    Gone,
}

impl Sink {
    /// Opens the archive (running crash recovery) and starts the writer thread.
    pub fn start(
        root: PathBuf,
        cfg: &ArchiveConfig,
        now: UtcTime,
        session: &SessionId,
        capacity: usize,
        stats: Arc<Stats>,
    ) -> Result<(Sink, Recovery), SinkError> {
        let (mut writer, recovery) = ArchiveWriter::open(&root, cfg, now, session)?;
        let (tx, mut rx) = mpsc::channel::<Msg>(capacity);
        let thread_stats = stats.clone();
        let session = session.clone();
        let thread = std::thread::Builder::new()
            .name("archive-sink".into())
            .spawn(move || {
                let stats = thread_stats;
                let mut health = WriteHealth::new(session);
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Msg::Line { stream, at, line } => {
                            health.saw(stream, at);
                            match writer.append(stream, at, &line) {
                                Ok(()) => stats.saved(stream.provider(), line.len() as u64 + 1),
                                Err(e) => {
                                    health.failed(&e);
                                    inc(&stats.lines_failed);
                                }
                            }
                        }
                        Msg::Housekeep(now) => {
                            health.at = health.at.max(now);
                            if let Err(e) = writer.close_expired(now) {
                                health.failed(&e);
                            }
                        }
                        Msg::Sync => {
                            // Wall time on purpose: disk latency is a property of the machine,
                            // whatever the market clock's speed.
                            let started = std::time::Instant::now();
                            let synced = writer.sync();
                            stats.gauges.sink_beat_unix_ms.store(unix_ms_now(), Relaxed);
                            let ms = started.elapsed().as_millis() as u64;
                            stats.gauges.write_latency_ms.fetch_max(ms, Relaxed);
                            let lost = writer.lines_lost();
                            stats.lines_lost.store(lost, Relaxed);
                            match synced {
                                Ok(()) => health.durable(&mut writer, &stats, lost),
                                Err(e) => health.failed(&e),
                            }
                        }
                        Msg::Close { now, reply } => {
                            health.at = health.at.max(now);
                            // Evidence first, while the files are still open.
                            let synced = writer.sync();
                            let lost = writer.lines_lost();
                            stats.lines_lost.store(lost, Relaxed);
                            if synced.is_ok() {
                                health.durable(&mut writer, &stats, lost);
                            }
                            let _ = reply.send(writer.close_all(now).map(|_| ()));
                            return;
                        }
                    }
                    stats.files_open.store(writer.open_files() as u64, Relaxed);
                    stats.files_closed.store(writer.files_closed(), Relaxed);
                    stats.gauges.archive_queue.store(rx.len() as u64, Relaxed);
                }
                // Every handle dropped without Close: the process is going down uncleanly;
                // leave the files for start-up recovery rather than pretend a clean close.
                let _ = writer.sync();
            })
            .map_err(|e| archive::ArchiveError::Io { path: root.clone(), source: e })?;
        Ok((Sink { handle: SinkHandle { tx, stats }, thread }, recovery))
    }

    /// Closes every file (manifest entries) and ends the writer thread.
    pub async fn close(self, now: UtcTime) -> Result<(), SinkError> {
        let (reply, rx) = oneshot::channel();
        self.handle.tx.send(Msg::Close { now, reply }).await.map_err(|_| SinkError::Gone)?;
        let result = rx.await.map_err(|_| SinkError::Gone)?;
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
        result.map_err(SinkError::from)
    }
}

/// The archive's write failures as the sink sees them: one error log per streak, and when
/// writes are durable again, an `archive` gap marker in every provider's event log from the
/// last durable moment to the recovery, with the lines lost.
struct WriteHealth {
    session: SessionId,
    /// Newest time seen on the sink's messages (market clock).
    at: UtcTime,
    /// `at` when the last sync succeeded: everything before it is on disk.
    durable_at: Option<UtcTime>,
    /// `lines_lost` and `lines_failed` at the last successful sync: a marker counts from there.
    lost_mark: u64,
    refused_mark: u64,
    streak: Option<Streak>,
    /// Indexed by provider: whether it has records in this session (a flag, not a set:
    /// this is set on every line).
    providers: Vec<bool>,
}

struct Streak {
    since: UtcTime,
    first_error: String,
    failures: u64,
}

impl WriteHealth {
    fn new(session: SessionId) -> Self {
        let at = UtcTime::from_millis(0);
        WriteHealth {
            session,
            at,
            durable_at: None,
            lost_mark: 0,
            refused_mark: 0,
            streak: None,
            providers: vec![false; Provider::ALL.len()],
        }
    }

    fn saw(&mut self, stream: Stream, at: UtcTime) {
        self.at = self.at.max(at);
        if let Some(p) = stream.provider() {
            self.providers[p as usize] = true;
        }
    }

    fn failed(&mut self, e: &archive::ArchiveError) {
        match &mut self.streak {
            Some(s) => s.failures += 1,
            None => {
                tracing::error!(error = %e, "archive write failed; recording continues and the loss will be marked");
                self.streak =
                    Some(Streak { since: self.durable_at.unwrap_or(self.at), first_error: e.to_string(), failures: 1 });
            }
        }
    }

    /// A sync succeeded: writes are durable again. Ends a failure streak with its evidence.
    fn durable(&mut self, writer: &mut ArchiveWriter, stats: &Stats, lost_now: u64) {
        let refused_now = stats.lines_failed.load(Relaxed);
        let Some(s) = self.streak.take() else {
            (self.durable_at, self.lost_mark, self.refused_mark) = (Some(self.at), lost_now, refused_now);
            mark_durable(stats);
            return;
        };
        let (lost, refused) = (lost_now - self.lost_mark, refused_now - self.refused_mark);
        let detail = format!(
            "archive writes failed after the last durable write at {} ({} failures, first: {}): {refused} \
             line(s) refused, {lost} accepted then lost",
            s.since, s.failures, s.first_error
        );
        let event = SystemEvent::gap(s.since, self.at, "archive", "archive_write_failed", Some(detail));
        let gap_seconds = self.at.millis_since(s.since).max(0) / 1000;
        for &p in Provider::ALL.iter().filter(|p| self.providers[**p as usize]) {
            let rec = Record { body: &event, meta: Meta::new(self.at, self.at, self.session.clone()) };
            let line = SinkHandle::encode(&rec);
            if let Err(e) = writer.append(Stream::Events(p), self.at, &line) {
                // Still failing after all: keep the streak open and try again next sync.
                tracing::error!(error = %e, "could not write the archive gap marker");
                self.streak = Some(s);
                return;
            }
            inc(&stats.lines_published);
            stats.saved(Some(p), line.len() as u64 + 1);
            inc(&stats.system_events);
            inc(&stats.gaps);
            stats.gauges.push_gap(gap_seconds);
        }
        tracing::warn!(since = %s.since, failures = s.failures, refused, lost, "archive writes recovered; gap marker written");
        (self.durable_at, self.lost_mark, self.refused_mark) = (Some(self.at), lost_now, refused_now);
        mark_durable(stats);
    }
}

/// Writes are durable as of now (wall clock: alerting compares it with the time of day).
fn mark_durable(stats: &Stats) {
    stats.gauges.durable_unix_ms.store(unix_ms_now(), Relaxed);
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl SinkHandle {
    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        // Our record types serialize infallibly (no maps with non-string keys, no I/O).
        serde_json::to_vec(value).unwrap_or_else(|e| format!("{{\"serialize_error\":\"{e}\"}}").into_bytes())
    }

    /// Waits for room: used for everything that must not be dropped.
    pub async fn write<T: Serialize>(&self, stream: Stream, at: UtcTime, value: &T) -> Result<(), SinkError> {
        self.write_line(stream, at, Self::encode(value)).await
    }

    /// Waits for room; `line` is one JSON document already encoded (see `archive::raw::encode`).
    pub async fn write_line(&self, stream: Stream, at: UtcTime, line: Vec<u8>) -> Result<(), SinkError> {
        inc(&self.stats.lines_published);
        self.tx.send(Msg::Line { stream, at, line }).await.map_err(|_| SinkError::Gone)
    }

    /// Never waits: for data with a sample-down policy.
    pub fn try_write<T: Serialize>(&self, stream: Stream, at: UtcTime, value: &T) -> Result<(), Full> {
        let permit = self.tx.try_reserve().map_err(|_| Full)?;
        inc(&self.stats.lines_published);
        permit.send(Msg::Line { stream, at, line: Self::encode(value) });
        Ok(())
    }

    pub async fn housekeep(&self, now: UtcTime) {
        let _ = self.tx.send(Msg::Housekeep(now)).await;
    }

    pub async fn sync(&self) {
        let _ = self.tx.send(Msg::Sync).await;
    }
}

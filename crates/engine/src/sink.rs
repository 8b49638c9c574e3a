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
use model::{SessionId, UtcTime};

use crate::stats::{Stats, add, inc};

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
        let thread = std::thread::Builder::new()
            .name("archive-sink".into())
            .spawn(move || {
                let stats = thread_stats;
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Msg::Line { stream, at, line } => match writer.append(stream, at, &line) {
                            Ok(()) => {
                                inc(&stats.lines_saved);
                                add(&stats.bytes_saved, line.len() as u64 + 1);
                            }
                            Err(e) => {
                                inc(&stats.lines_failed);
                                tracing::error!(error = %e, "archive append failed");
                            }
                        },
                        Msg::Housekeep(now) => {
                            if let Err(e) = writer.close_expired(now) {
                                tracing::error!(error = %e, "closing expired archive files failed");
                            }
                        }
                        Msg::Sync => {
                            // Wall time on purpose: disk latency is a property of the machine,
                            // whatever the market clock's speed.
                            let started = std::time::Instant::now();
                            if let Err(e) = writer.sync() {
                                tracing::error!(error = %e, "archive fsync failed");
                            }
                            let ms = started.elapsed().as_millis() as u64;
                            stats.gauges.write_latency_ms.fetch_max(ms, Relaxed);
                        }
                        Msg::Close { now, reply } => {
                            let _ = reply.send(writer.close_all(now).map(|_| ()));
                            return;
                        }
                    }
                    stats.files_open.store(writer.open_files() as u64, Relaxed);
                    stats.files_closed.store(writer.files_closed(), Relaxed);
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

impl SinkHandle {
    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        // Our record types serialize infallibly (no maps with non-string keys, no I/O).
        serde_json::to_vec(value).unwrap_or_else(|e| format!("{{\"serialize_error\":\"{e}\"}}").into_bytes())
    }

    /// Waits for room: used for everything that must not be dropped.
    pub async fn write<T: Serialize>(&self, stream: Stream, at: UtcTime, value: &T) -> Result<(), SinkError> {
        self.write_line(stream, at, Self::encode(value)).await
    }

    /// Waits for room; `line` is one JSON document already encoded (see `pipeline::encode_raw_line`).
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

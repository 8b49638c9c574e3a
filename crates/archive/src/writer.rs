use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use model::settings::Interval;
use model::{SessionId, UtcTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::io::{Io, Target, count_lost};
use crate::manifest::{Manifest, ManifestEntry};
use crate::recovery::{self, Recovery};
use crate::stream::{Partition, Stream};
use crate::{ArchiveConfig, ArchiveError, compress, fsutil};

/// Contents of `.session`: its presence at start-up means the previous run did not reach
/// `close_all`.
#[derive(Serialize, Deserialize)]
struct SessionMarker {
    session_id: String,
    started_at: UtcTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseSummary {
    /// Files closed by this `close_all` call.
    pub files_closed: usize,
    /// Totals over the writer's life.
    pub bytes_written: u64,
    pub lines_written: u64,
}

struct OpenFile {
    slot: usize,
    rel: String,
    path: PathBuf,
    date: String,
    end: UtcTime,
    /// The file, its hash and write errors, shared with the I/O thread.
    target: Arc<Target>,
    buf: Vec<u8>,
    size: u64,
    lines: u64,
    unsynced: bool,
}

impl OpenFile {
    /// Hands the buffer to the I/O thread (a write error there surfaces here, at the next
    /// flush, or at the next sync at the latest).
    fn flush(&mut self, io: &Io) -> Result<(), ArchiveError> {
        self.target.check()?;
        if !self.buf.is_empty() {
            let capacity = self.buf.capacity();
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(capacity));
            io.write(&self.target, full);
            self.unsynced = true;
        }
        Ok(())
    }

    /// fsync; the caller has flushed and drained the I/O thread.
    fn sync(&mut self) -> Result<(), ArchiveError> {
        self.target.check()?;
        if self.unsynced {
            self.target.file().sync_data().map_err(ArchiveError::io(&self.path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    fn finish(
        mut self,
        io: &Io,
        lost: &AtomicU64,
        closed_at: UtcTime,
    ) -> Result<(String, String, ManifestEntry), ArchiveError> {
        if let Err(e) = self.flush(io) {
            count_lost(lost, &self.buf);
            return Err(e);
        }
        io.drain();
        self.target.check()?;
        self.target.file().sync_all().map_err(ArchiveError::io(&self.path))?;
        let entry =
            ManifestEntry { size: self.size, lines: self.lines, sha256: self.target.sha256(), closed_at, zstd: None };
        Ok((self.rel, self.date, entry))
    }
}

/// Sole writer of one data directory. Synchronous `std::fs` I/O: the engine runs it on a
/// dedicated thread and drives `sync` / `close_expired` from its clock.
pub struct ArchiveWriter {
    root: PathBuf,
    lock: Option<File>,
    buffer_bytes: usize,
    scalp_window: Interval,
    slots: Vec<Option<Box<OpenFile>>>,
    /// Per slot, the end of the last window closed in this session: a record stamped
    /// earlier (clock stepped back, late delivery) goes to the next window instead of
    /// reopening a file this session already closed.
    floor: Vec<UtcTime>,
    open_count: usize,
    bytes_written: u64,
    lines_written: u64,
    files_closed: u64,
    finished: bool,
    io: Io,
    /// Lines accepted by `append` and then lost to a failed write or fsync.
    lost: Arc<AtomicU64>,
    /// A file was dropped unlisted after a failure this session (`close_all` closes it).
    poisoned: bool,
    /// Per slot, the file whose write failed since the last `sync`: appends to the slot are
    /// refused at once until then, instead of reopening (and rescanning) the file for every
    /// line while the disk is full.
    blocked: Vec<Option<PathBuf>>,
}

impl ArchiveWriter {
    /// Locks `root`, repairs and closes whatever a previous run left open, and marks a
    /// session as running.
    pub fn open(
        root: &Path,
        cfg: &ArchiveConfig,
        now: UtcTime,
        session: &SessionId,
    ) -> Result<(ArchiveWriter, Recovery), ArchiveError> {
        fsutil::create_dirs_synced(root)?;
        fsutil::restrict_root(root);
        let lock_path = root.join(".lock");
        let lock = fsutil::open_options(fsutil::PRIVATE_MODE)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(ArchiveError::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ArchiveError::Locked { path: root.to_path_buf() });
            }
            Err(TryLockError::Error(e)) => return Err(ArchiveError::io(&lock_path)(e)),
        }

        let session_path = root.join(".session");
        let previous = match fs::read(&session_path) {
            Ok(bytes) => Some(serde_json::from_slice::<SessionMarker>(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ArchiveError::io(&session_path)(e)),
        };
        let mut recovery = recovery::recover(root, now)?;
        recovery.crashed = previous.is_some();
        if let Some(Some(marker)) = previous {
            recovery.previous_session = Some(marker.session_id);
            if recovery.last_good.is_none() {
                recovery.last_good = Some(marker.started_at);
            }
        }

        let marker = SessionMarker { session_id: session.as_str().to_string(), started_at: now };
        let bytes = serde_json::to_vec(&marker)
            .map_err(|e| ArchiveError::Io { path: session_path.clone(), source: e.into() })?;
        fsutil::write_atomic(&session_path, &bytes, fsutil::PRIVATE_MODE)?;

        let slots = Stream::slot_count();
        let writer = ArchiveWriter {
            root: root.to_path_buf(),
            lock: Some(lock),
            buffer_bytes: cfg.buffer_bytes,
            scalp_window: cfg.scalp_window,
            slots: (0..slots).map(|_| None).collect(),
            floor: vec![UtcTime::from_millis(i64::MIN); slots],
            open_count: 0,
            bytes_written: 0,
            lines_written: 0,
            files_closed: 0,
            finished: false,
            io: Io::start(cfg.io_queue_buffers)?,
            lost: Arc::default(),
            poisoned: false,
            blocked: vec![None; slots],
        };
        Ok((writer, recovery))
    }

    /// Appends `line` (one JSON document, no trailing newline) to the file of `stream`
    /// covering `at`, rotating first if `at` is past the open window.
    #[inline]
    pub fn append(&mut self, stream: Stream, at: UtcTime, line: &[u8]) -> Result<(), ArchiveError> {
        // A newline inside a record would split it into two broken lines.
        if line.is_empty() || memchr::memchr(b'\n', line).is_some() {
            return Err(self.bad_line(stream, at, line));
        }
        let slot = stream.slot();
        if let Some(path) = &self.blocked[slot] {
            return Err(blocked_error(path));
        }
        let f = match self.slots[slot].take() {
            Some(f) if at < f.end => self.slots[slot].insert(f),
            old => {
                let f = self.rotate(stream, old, at)?;
                self.slots[slot].insert(f)
            }
        };
        f.buf.extend_from_slice(line);
        f.buf.push(b'\n');
        let n = line.len() as u64 + 1;
        f.size += n;
        f.lines += 1;
        self.bytes_written += n;
        self.lines_written += 1;
        if f.buf.len() >= self.buffer_bytes
            && let Err(e) = f.flush(&self.io)
        {
            self.poison(slot);
            return Err(e);
        }
        Ok(())
    }

    #[cold]
    fn bad_line(&self, stream: Stream, at: UtcTime, line: &[u8]) -> ArchiveError {
        let slot = stream.slot();
        let path = match &self.slots[slot] {
            Some(f) if at < f.end => f.path.clone(),
            _ => {
                let part = stream.partition(at.max(self.floor[slot]), self.scalp_window);
                self.root.join(part.path)
            }
        };
        ArchiveError::BadLine { path, reason: if line.is_empty() { "empty line" } else { "contains a newline" } }
    }

    /// Closes `old` (if any) and opens the partition for `at`.
    #[cold]
    fn rotate(
        &mut self,
        stream: Stream,
        old: Option<Box<OpenFile>>,
        at: UtcTime,
    ) -> Result<Box<OpenFile>, ArchiveError> {
        if let Some(old) = old {
            self.open_count -= 1;
            self.close_batch([old], at)?;
        }
        let slot = stream.slot();
        let part = stream.partition(at.max(self.floor[slot]), self.scalp_window);
        let f = self.open_partition(slot, part)?;
        self.open_count += 1;
        Ok(f)
    }

    fn open_partition(&mut self, slot: usize, part: Partition) -> Result<Box<OpenFile>, ArchiveError> {
        let path = self.root.join(&part.path);
        // Un-list a file closed earlier (a restart within its window) before touching it,
        // so a crash from here on leaves it "unclosed" and recovery re-closes it.
        compress::unlist_for_append(&self.root, &part.date, &part.path)?;
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        fsutil::create_dirs_synced(&parent)?;
        let (size, lines, hasher) = if path.exists() {
            let s = recovery::scan_and_repair(&path, &part.path)?;
            (s.size, s.lines, s.hasher)
        } else {
            (0, 0, Sha256::new())
        };
        let file = fsutil::open_options(fsutil::FILE_MODE)
            .create(true)
            .append(true)
            .open(&path)
            .map_err(ArchiveError::io(&path))?;
        if size == 0 {
            fsutil::sync_dir(&parent)?;
        }
        Ok(Box::new(OpenFile {
            slot,
            rel: part.path,
            path: path.clone(),
            date: part.date,
            end: part.end,
            target: Target::new(path, file, hasher, self.lost.clone()),
            buf: Vec::with_capacity(self.buffer_bytes),
            size,
            lines,
            unsynced: false,
        }))
    }

    /// Closes files and records them, rewriting each touched manifest once. Keeps going
    /// past a failing file so one bad file does not leave the others open; returns the
    /// first error. Manifests are edited under their lock rather than cached, so that
    /// compression or retention editing them between closes is not overwritten.
    fn close_batch(
        &mut self,
        files: impl IntoIterator<Item = Box<OpenFile>>,
        closed_at: UtcTime,
    ) -> Result<usize, ArchiveError> {
        let mut first_err = None;
        let mut by_date: BTreeMap<String, Vec<(String, ManifestEntry)>> = BTreeMap::new();
        for f in files {
            let (slot, end) = (f.slot, f.end);
            self.floor[slot] = self.floor[slot].max(end);
            match f.finish(&self.io, &self.lost, closed_at) {
                Ok((rel, date, entry)) => by_date.entry(date).or_default().push((rel, entry)),
                Err(e) => {
                    self.poisoned = true;
                    tracing::error!(error = %e, "could not close archive file; recovery will close it at next start");
                    first_err.get_or_insert(e);
                }
            }
        }
        let mut closed = 0;
        for (date, entries) in by_date {
            let n = entries.len();
            let stored = Manifest::update(&self.root, &date, |m| {
                m.files.extend(entries);
                Ok(())
            });
            match stored {
                Ok(()) => closed += n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.files_closed += closed as u64;
        match first_err {
            Some(e) => Err(e),
            None => Ok(closed),
        }
    }

    /// Closes every file whose window has ended by `now`, so an hour's file is complete at
    /// the hour even when no later record arrives.
    pub fn close_expired(&mut self, now: UtcTime) -> Result<usize, ArchiveError> {
        let mut expired = Vec::new();
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|f| f.end <= now)
                && let Some(f) = slot.take()
            {
                expired.push(f);
            }
        }
        if expired.is_empty() {
            return Ok(0);
        }
        self.open_count -= expired.len();
        self.close_batch(expired, now)
    }

    /// Hands every buffer to the OS and fsyncs every file with unsynced data.
    ///
    /// Also the retry point after a failure: a stream whose file failed since the last call
    /// takes appends again from here on, and this call still reports the failure, so `Ok`
    /// means every line appended since the previous successful call is on disk.
    pub fn sync(&mut self) -> Result<(), ArchiveError> {
        let mut first_err = None;
        for path in self.blocked.iter_mut().filter_map(Option::take) {
            first_err.get_or_insert(blocked_error(&path));
        }
        for slot in 0..self.slots.len() {
            if let Some(f) = self.slots[slot].as_mut()
                && let Err(e) = f.flush(&self.io)
            {
                self.poison(slot);
                first_err.get_or_insert(e);
            }
        }
        self.io.drain();
        for slot in 0..self.slots.len() {
            if let Some(f) = self.slots[slot].as_mut()
                && let Err(e) = f.sync()
            {
                self.poison(slot);
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// After a failed write or fsync the file's content is unknown (and a retried fsync
    /// can falsely succeed), so it is dropped unlisted: the next append to its stream, or
    /// the next start, rescans it and cuts any torn tail.
    fn poison(&mut self, slot: usize) {
        if let Some(f) = self.slots[slot].take() {
            self.open_count -= 1;
            self.poisoned = true;
            self.blocked[slot] = Some(f.path.clone());
            count_lost(&self.lost, &f.buf);
            tracing::error!(file = %f.path.display(), "archive file failed; left unclosed for rescan");
        }
    }

    /// Lines accepted by [`ArchiveWriter::append`] and then lost because writing or
    /// fsyncing their file failed (a full disk, an I/O error): evidence for a gap marker.
    /// Exact right after [`ArchiveWriter::sync`], which waits for the I/O thread.
    pub fn lines_lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Clean shutdown: closes every file, removes `.session`, releases the lock.
    pub fn close_all(mut self, now: UtcTime) -> Result<CloseSummary, ArchiveError> {
        let files: Vec<_> = self.slots.iter_mut().filter_map(Option::take).collect();
        self.open_count = 0;
        let mut files_closed = self.close_batch(files, now)?;
        if self.poisoned {
            // Files dropped after a failure and not reopened since: repair and list them
            // now, so a clean shutdown leaves nothing for the next start to close.
            files_closed += recovery::recover(&self.root, now)?.closed.len();
        }
        let session_path = self.root.join(".session");
        match fs::remove_file(&session_path) {
            Ok(()) => fsutil::sync_dir(&self.root)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io(&session_path)(e)),
        }
        if let Some(lock) = self.lock.take() {
            // Closing the descriptor releases the lock too; unlocking first just makes it
            // explicit and immediate.
            let _ = lock.unlock();
        }
        self.finished = true;
        Ok(CloseSummary { files_closed, bytes_written: self.bytes_written, lines_written: self.lines_written })
    }

    /// Stops as a power cut would: buffered lines are discarded and nothing is closed or
    /// fsynced. For tests of crash recovery (here and in the engine).
    pub fn abandon(mut self) {
        for f in self.slots.iter_mut().flatten() {
            f.buf.clear();
        }
        self.finished = true;
    }

    pub fn open_files(&self) -> usize {
        self.open_count
    }
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }
    pub fn lines_written(&self) -> u64 {
        self.lines_written
    }
    pub fn files_closed(&self) -> u64 {
        self.files_closed
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn blocked_error(path: &Path) -> ArchiveError {
    let why = "a write to this file failed; the stream takes lines again after the next sync";
    ArchiveError::Io { path: path.to_path_buf(), source: std::io::Error::other(why) }
}

impl Drop for ArchiveWriter {
    /// Without `close_all` this is a crash as far as the archive is concerned: no manifest
    /// entries, `.session` stays. Handing buffers to the OS still saves those lines.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for f in self.slots.iter_mut().flatten() {
            if let Err(e) = f.flush(&self.io) {
                tracing::error!(error = %e, "could not flush archive buffer while dropping the writer");
            }
        }
    }
}

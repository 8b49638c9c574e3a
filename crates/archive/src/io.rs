//! The archive's I/O thread: hashes full buffers and writes them to their files, so the
//! collector's thread never waits on the page cache or the disk.
//!
//! Buffered `write(2)` into ext4 and starting write-out cost about as much CPU as making
//! the lines themselves, and write-out blocks whenever the device queue is full. Done on
//! the writer's thread they serialise "make lines" and "put them on disk"; here they
//! overlap. Durability stays where it was: [`crate::ArchiveWriter::sync`] and file close
//! wait for this thread to drain ([`Io::drain`]) and then fsync.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::ArchiveError;

/// One open archive file as the I/O thread sees it.
pub(crate) struct Target {
    path: PathBuf,
    file: File,
    /// Covers exactly the bytes written to `file` (seeded with its repaired content).
    hasher: Mutex<Sha256>,
    /// First write error; after it nothing more is written (the file's content is unknown).
    error: Mutex<Option<std::io::Error>>,
    failed: AtomicBool,
    /// The writer's count of lines lost to failed writes.
    lost: Arc<AtomicU64>,
}

impl Target {
    pub(crate) fn new(path: PathBuf, file: File, hasher: Sha256, lost: Arc<AtomicU64>) -> Arc<Target> {
        Arc::new(Target {
            path,
            file,
            hasher: Mutex::new(hasher),
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
            lost,
        })
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The first write error, if any, as the writer reports it.
    pub(crate) fn check(&self) -> Result<(), ArchiveError> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        let e = slot.take().unwrap_or_else(|| std::io::Error::other("an earlier write to this file failed"));
        Err(ArchiveError::io(&self.path)(e))
    }

    /// Hex sha256 of everything written; call after [`Io::drain`].
    pub(crate) fn sha256(&self) -> String {
        let h = self.hasher.lock().unwrap_or_else(PoisonError::into_inner).clone();
        hex::encode(h.finalize())
    }

    fn write(&self, buf: &[u8]) {
        if self.failed.load(Ordering::Acquire) {
            count_lost(&self.lost, buf);
            return;
        }
        match (&self.file).write_all(buf) {
            Ok(()) => {
                self.hasher.lock().unwrap_or_else(PoisonError::into_inner).update(buf);
                start_writeback(&self.file);
            }
            Err(e) => {
                // Part of the buffer may be in the file; recovery cuts a torn last line,
                // so every line of it counts as lost.
                count_lost(&self.lost, buf);
                *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                self.failed.store(true, Ordering::Release);
            }
        }
    }
}

/// Adds the lines of `buf` (whole lines, each ending in a newline) to `lost`.
pub(crate) fn count_lost(lost: &AtomicU64, buf: &[u8]) {
    lost.fetch_add(memchr::memchr_iter(b'\n', buf).count() as u64, Ordering::Relaxed);
}

enum Job {
    Write(Arc<Target>, Vec<u8>),
    /// Answered once every job queued before it is done.
    Drain(SyncSender<()>),
}

pub(crate) struct Io {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Io {
    /// `queue` full buffers may wait for the thread; beyond that the writer waits, so
    /// memory stays bounded when the disk is slower than the market.
    pub(crate) fn start(queue: usize) -> Result<Io, ArchiveError> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let thread = std::thread::Builder::new()
            .name("archive-io".into())
            .spawn(move || run(rx))
            .map_err(|e| ArchiveError::io(std::path::Path::new("archive-io thread"))(e))?;
        Ok(Io { tx: Some(tx), thread: Some(thread) })
    }

    pub(crate) fn write(&self, t: &Arc<Target>, buf: Vec<u8>) {
        if let Some(tx) = &self.tx
            && let Err(std::sync::mpsc::SendError(Job::Write(t, buf))) = tx.send(Job::Write(t.clone(), buf))
        {
            // The thread is gone (it only ends when we drop the sender, or by a panic):
            // write inline rather than lose the lines.
            t.write(&buf);
        }
    }

    /// Waits until every buffer handed over so far is written.
    pub(crate) fn drain(&self) {
        let (done_tx, done_rx) = sync_channel(1);
        if let Some(tx) = &self.tx
            && tx.send(Job::Drain(done_tx)).is_ok()
        {
            let _ = done_rx.recv();
        }
    }
}

impl Drop for Io {
    /// Finishes the queued writes: lines handed over are on their way to the OS, as
    /// `write(2)` would have put them.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<Job>) {
    for job in rx {
        match job {
            Job::Write(t, buf) => t.write(&buf),
            Job::Drain(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Asks the kernel to start writing the file's dirty pages now, so the periodic fsync
/// finds little left to do. A failure is harmless (the next fsync writes everything and
/// reports any error), so the result is ignored.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid open descriptor; offset 0 and length 0 mean the
    // whole file; SYNC_FILE_RANGE_WRITE only initiates write-out.
    #[allow(unsafe_code)]
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_in_order_and_the_hash_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let t = Target::new(path.clone(), file, Sha256::new(), Arc::default());
        let io = Io::start(1).unwrap();
        let mut expect = Vec::new();
        for i in 0..100 {
            let line = format!("{{\"n\":{i}}}\n").into_bytes();
            expect.extend_from_slice(&line);
            io.write(&t, line);
        }
        io.drain();
        t.check().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expect);
        assert_eq!(t.sha256(), hex::encode(Sha256::digest(&expect)));
    }

    #[test]
    fn a_failed_write_is_reported_with_the_file_and_nothing_after_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.jsonl");
        std::fs::write(&path, b"").unwrap();
        // A read-only descriptor: every write fails (EBADF), as a full disk's would.
        let file = File::open(&path).unwrap();
        let lost = Arc::new(AtomicU64::new(0));
        let t = Target::new(path.clone(), file, Sha256::new(), lost.clone());
        let io = Io::start(4).unwrap();
        io.write(&t, b"{\"n\":1}\n{\"n\":2}\n".to_vec());
        io.write(&t, b"{\"n\":3}\n".to_vec());
        io.drain();
        assert_eq!(lost.load(Ordering::Relaxed), 3, "every line of the failed and later buffers");
        let err = t.check().unwrap_err().to_string();
        assert!(err.contains("b.jsonl"), "{err}");
        // Reported once with its cause, then still refused.
        assert!(t.check().is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}

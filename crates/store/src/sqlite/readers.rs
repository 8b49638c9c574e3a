//! The reader connections: a few threads, each owning one connection, taking reads from one
//! queue. WAL lets them read beside each other and beside the writer.
//!
//! Why not `spawn_blocking` on one shared connection (what reads did before): under the API's
//! load (100 clients asking for a latest price, docs/benchmarks.md "bench api") every read
//! woke a blocking-pool thread, the pool grew to one thread per request in flight, and those
//! threads queued on the connection's lock: waking, handing over and sleeping cost more CPU
//! than the queries. Here a busy reader takes the next read without sleeping, the queue
//! waits as futures, not threads, and reads run side by side on as many connections.
//!
//! Point reads (one row by its key: the latest price) skip the queue: they run on the calling
//! thread ([`Readers::read_point`]), on connections that never wait for a lock.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::error::StoreError;

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// The reader threads; dropping the last handle closes the queue and waits for them to close
/// their connections, so a store dropped is a file closed (tests and `db sync` rely on it).
pub(super) struct Readers {
    /// `None` only while dropping.
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    /// Idle connections for [`Readers::read_point`]: as many as threads ever read points at
    /// once (the async workers), opened on first need.
    points: Mutex<Vec<Connection>>,
    path: PathBuf,
    open: fn(&Path) -> Result<Connection, StoreError>,
}

impl Readers {
    /// `n` connections to `path`, opened now (an error is the caller's at once), each on its
    /// own thread.
    pub(super) fn open(
        path: &Path,
        n: usize,
        open: fn(&Path) -> Result<Connection, StoreError>,
    ) -> Result<Arc<Readers>, StoreError> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let conn = open(path)?;
            let rx = rx.clone();
            let t = std::thread::Builder::new()
                .name(format!("sqlite-read-{i}"))
                .spawn(move || serve(&conn, &rx))
                .map_err(|e| StoreError::Task(format!("starting a SQLite reader thread: {e}")))?;
            threads.push(t);
        }
        Ok(Arc::new(Readers { jobs: Some(tx), threads, points: Mutex::default(), path: path.to_path_buf(), open }))
    }

    /// Runs `f` on a reader connection and returns its result.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c| {
            // A panicking read (a bug) answers as an error and leaves the thread serving.
            let r = catch_unwind(AssertUnwindSafe(|| f(c)))
                .unwrap_or_else(|_| Err(StoreError::Task("a SQLite read panicked".into())));
            let _ = tx.send(r);
        });
        if self.jobs.as_ref().is_none_or(|jobs| jobs.send(job).is_err()) {
            return Err(StoreError::Task("the SQLite reader threads have stopped".into()));
        }
        rx.await.map_err(|_| StoreError::Task("a SQLite reader thread stopped during a read".into()))?
    }
}

impl Readers {
    /// Runs `f`, a read of one row by an indexed key, on the calling thread, falling back to
    /// the reader threads when the database is locked.
    ///
    /// Why on the caller's (an async worker's) thread: such a read takes microseconds, less
    /// than handing it to a reader thread and back (two wake-ups, and on a busy 2-core
    /// machine a wait for the woken thread's time slice, which was the tail of
    /// `GET /api/v1/latest`'s latency in docs/benchmarks.md "bench api"). It cannot hold the
    /// worker longer: these connections have no busy timeout, so a lock (a checkpoint that
    /// resets the WAL, recovery after a crash) answers SQLITE_BUSY at once and the read goes
    /// to the queue, where waiting is allowed. Only for reads bounded by an index to a row or
    /// a few; anything that scans belongs on [`Readers::read`].
    pub(super) async fn read_point<T: Send + 'static>(
        &self,
        f: impl Fn(&Connection) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        let idle = self.points.lock().map_err(|_| StoreError::Task("point readers poisoned".into()))?.pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = (self.open)(&self.path)?;
                c.busy_timeout(std::time::Duration::ZERO)?;
                c
            }
        };
        let r = f(&conn);
        if let Ok(mut idle) = self.points.lock() {
            idle.push(conn);
        }
        match r {
            Err(StoreError::Sqlite(e)) if is_busy(&e) => self.read(move |c| f(c)).await,
            r => r,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// A reader thread: the next job, until the queue closes.
fn serve(conn: &Connection, jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held while waiting, so one idle reader waits on the queue and the
        // others on the lock; a job wakes one of them, never all.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(conn),
            Err(_) => return,
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.jobs.take();
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            // A store dropped inside a read (a job holding its last handle) cannot wait for
            // its own thread; that one closes its connection when the job returns.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn open(path: &Path) -> Result<Connection, StoreError> {
        Ok(Connection::open(path)?)
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    fn busy() -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        ))
    }

    #[tokio::test]
    async fn a_point_read_runs_on_the_callers_thread_and_reuses_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::open(&dir.path().join("t.db"), 2, open).unwrap();
        let me = thread_name();
        for _ in 0..3 {
            let ran_on =
                readers.read_point(|c| Ok((thread_name(), c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))).await;
            assert_eq!(ran_on.unwrap(), (me.clone(), 1));
        }
        assert_eq!(readers.points.lock().unwrap().len(), 1, "one caller at a time needs one connection");
    }

    #[tokio::test]
    async fn a_point_read_that_meets_a_lock_is_retried_on_a_reader_thread_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::open(&dir.path().join("t.db"), 2, open).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let r = readers
            .read_point(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
                0 => Err(busy()),
                _ => Ok(thread_name()),
            })
            .await;
        assert!(r.as_deref().unwrap().starts_with("sqlite-read-"), "retried on {r:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Any other error is the caller's, not retried.
        let r = readers.read_point(|_| Err::<(), _>(StoreError::Task("bad row".into()))).await;
        assert!(matches!(r, Err(StoreError::Task(m)) if m == "bad row"));
    }
}

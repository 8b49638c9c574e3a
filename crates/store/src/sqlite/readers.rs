//! The reader connections: a few threads, each owning one connection, taking reads from one
//! queue. WAL lets them read beside each other and beside the writer.
//!
//! Why not `spawn_blocking` on one shared connection (what reads did before): under the API's
//! load (100 clients asking for a latest price, docs/benchmarks.md "bench api") every read
//! woke a blocking-pool thread, the pool grew to one thread per request in flight, and those
//! threads queued on the connection's lock: waking, handing over and sleeping cost more CPU
//! than the queries. Here a busy reader takes the next read without sleeping, the queue
//! waits as futures, not threads, and reads run side by side on as many connections.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
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
        Ok(Arc::new(Readers { jobs: Some(tx), threads }))
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

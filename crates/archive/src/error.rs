use std::io;
use std::path::PathBuf;

/// Every variant names the file it is about, so an operator reading a log line knows where
/// to look without a backtrace.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "another collector is using data dir {} (its lock file .lock is held); \
         stop it or point this run at a different data dir",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("{}: refusing to append line: {reason}", path.display())]
    BadLine { path: PathBuf, reason: &'static str },
    /// A closed file that does not match its manifest entry (or whose forms on disk
    /// contradict it): left as it is for an operator to look at.
    #[error("{}: not compressed: {reason}", path.display())]
    Refused { path: PathBuf, reason: String },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ArchiveError {
        let path = path.into();
        move |source| ArchiveError::Io { path, source }
    }
}

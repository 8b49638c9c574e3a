//! The crash-safe, partitioned JSONL archive (DESIGN.md "Archive layout").
//!
//! One [`ArchiveWriter`] owns a data directory (enforced by an exclusive lock on
//! `.lock`), appends one JSON document per line to hourly / windowed / daily partition files
//! named after the Asia/Seoul wall clock of the caller-supplied receive time, and records
//! every closed file (size, line count, sha256) in `manifests/YYYYMMDD.json`. A file that
//! is not in a manifest was open when a collector stopped; [`ArchiveWriter::open`] repairs
//! and closes such files, and [`verify`] checks a whole archive against its manifests.
//! [`compress_day`] stores a day's closed files compressed; [`open_lines`] reads a file in
//! either form.
//!
//! The writer never reads a clock: every time it uses is passed in, so the engine can drive
//! it with the simulated clock in tests.

mod compress;
mod config;
pub mod day;
mod disk;
mod error;
mod fsutil;
mod io;
pub mod lines;
pub mod manifest;
pub mod raw;
mod recovery;
mod stream;
pub mod universe;
mod verify;
mod writer;

pub use compress::{CompressReport, compress_day, open_lines};
pub use config::ArchiveConfig;
pub use disk::{DiskUsage, disk_usage};
pub use error::ArchiveError;
pub use fsutil::{DIR_MODE, FILE_MODE, PRIVATE_MODE, create_dirs_synced, sync_dir, write_atomic};
pub use manifest::{Manifest, ManifestEntry, Stored};
pub use recovery::{Recovery, Repair};
pub use stream::{Partition, Stream, ZSTD_SUFFIX, compressed_path, logical_files, logical_path, raw_path};
pub use verify::{VerifyProblem, VerifyReport, collector_running, verify};
pub use writer::{ArchiveWriter, CloseSummary};

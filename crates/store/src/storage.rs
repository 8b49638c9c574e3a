//! How much room the data takes, for `/api/v1/db` (seed 004 §8: compression ratio, chunk and
//! partition sizes): read from the database's own catalogue, never estimated.

use serde::Serialize;

/// One table, daily partition (native PostgreSQL), chunk (TimescaleDB) or the database file
/// (SQLite's tables, from its `dbstat` table).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relation {
    pub name: String,
    /// The table a partition or chunk belongs to.
    pub parent: Option<String>,
    /// On-disk bytes, indexes and TOAST included.
    pub bytes: u64,
    /// A TimescaleDB chunk that is compressed.
    pub compressed: bool,
}

/// TimescaleDB's compression of the compressed hypertables, summed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compression {
    pub chunks: u64,
    pub compressed_chunks: u64,
    /// Bytes of the compressed chunks before and after compression.
    pub before_bytes: u64,
    pub after_bytes: u64,
    /// `before_bytes / after_bytes`; `None` until a chunk is compressed.
    pub ratio: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Storage {
    /// Every relation that holds rows, largest first.
    pub relations: Vec<Relation>,
    pub total_bytes: u64,
    /// `None` where the mode compresses nothing (SQLite, native PostgreSQL).
    pub compression: Option<Compression>,
}

impl Storage {
    pub fn new(mut relations: Vec<Relation>, compression: Option<Compression>) -> Storage {
        relations.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        let total_bytes = relations.iter().map(|r| r.bytes).sum();
        Storage { relations, total_bytes, compression }
    }
}

impl Compression {
    pub fn new(chunks: u64, compressed_chunks: u64, before_bytes: u64, after_bytes: u64) -> Compression {
        let ratio = (after_bytes > 0).then(|| before_bytes as f64 / after_bytes as f64);
        Compression { chunks, compressed_chunks, before_bytes, after_bytes, ratio }
    }
}

/// The PostgreSQL connection pool now (seed 004 §8 "pool status").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    /// `store.pool_size`.
    pub max_size: usize,
    /// Connections open.
    pub size: usize,
    /// Open and idle.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

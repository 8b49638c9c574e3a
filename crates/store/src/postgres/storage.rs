//! Partition and chunk sizes from the catalogue, TimescaleDB's compression statistics, and
//! the manual compression `/api/v1/admin/compress` asks for.

use super::{PgStore, ts};
use crate::error::StoreError;
use crate::storage::{Compression, Relation, Storage};
use model::UtcTime;

/// The hypertables migration 003 turns compression on for.
const COMPRESSED: [&str; 3] = ["market_ticks", "scalp_ticks", "scalp_1m_bars"];

pub(super) async fn storage(pg: &PgStore) -> Result<Storage, StoreError> {
    let c = pg.client().await?;
    let size = |b: i64| b.max(0) as u64;
    if !pg.is_timescale() {
        // Plain tables, and each daily partition under its parent (the parent itself is empty).
        let rows = c
            .query(
                "SELECT c.relname::text, p.relname::text, pg_total_relation_size(c.oid)
                 FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
                 LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
                 LEFT JOIN pg_class p ON p.oid = i.inhparent
                 WHERE c.relkind = 'r'",
                &[],
            )
            .await?;
        let relations = rows.iter().map(|r| Relation {
            name: r.get(0),
            parent: r.get(1),
            bytes: size(r.get(2)),
            compressed: false,
        });
        return Ok(Storage::new(relations.collect(), None));
    }
    let mut relations = Vec::new();
    let chunks = c
        .query(
            "SELECT s.chunk_schema || '.' || s.chunk_name, ch.hypertable_name::text, s.total_bytes,
                    coalesce(ch.is_compressed, false)
             FROM timescaledb_information.hypertables h
             CROSS JOIN LATERAL chunks_detailed_size(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass) s
             JOIN timescaledb_information.chunks ch ON ch.chunk_schema = s.chunk_schema AND ch.chunk_name = s.chunk_name",
            &[],
        )
        .await?;
    relations.extend(chunks.iter().map(|r| Relation {
        name: r.get(0),
        parent: r.get(1),
        bytes: size(r.get(2)),
        compressed: r.get(3),
    }));
    let tables = c
        .query(
            "SELECT c.relname::text, pg_total_relation_size(c.oid) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
             WHERE c.relkind = 'r'
               AND c.relname NOT IN (SELECT hypertable_name FROM timescaledb_information.hypertables)",
            &[],
        )
        .await?;
    relations.extend(tables.iter().map(|r| Relation {
        name: r.get(0),
        parent: None,
        bytes: size(r.get(1)),
        compressed: false,
    }));
    let mut total = Compression::new(0, 0, 0, 0);
    for table in COMPRESSED {
        let r = c
            .query_one(
                "SELECT coalesce(sum(total_chunks), 0)::bigint, coalesce(sum(number_compressed_chunks), 0)::bigint,
                        coalesce(sum(before_compression_total_bytes), 0)::bigint,
                        coalesce(sum(after_compression_total_bytes), 0)::bigint
                 FROM hypertable_compression_stats($1::text::regclass)",
                &[&table],
            )
            .await?;
        let (n, k, before, after): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        total = Compression::new(
            total.chunks + size(n),
            total.compressed_chunks + size(k),
            total.before_bytes + size(before),
            total.after_bytes + size(after),
        );
    }
    Ok(Storage::new(relations, Some(total)))
}

/// Compresses every not yet compressed chunk of the compressed hypertables whose range ends
/// before `older_than`; `None` where the mode has no compression.
pub(super) async fn compress(pg: &PgStore, older_than: UtcTime) -> Result<Option<u64>, StoreError> {
    if !pg.is_timescale() {
        return Ok(None);
    }
    let c = pg.client().await?;
    let mut n = 0;
    for table in COMPRESSED {
        let r = c
            .query_one(
                // show_chunks would list compressed chunks again, and compress_chunk returns
                // them again: count only what this call compresses.
                "SELECT count(compress_chunk(format('%I.%I', chunk_schema, chunk_name)::regclass))::bigint
                 FROM timescaledb_information.chunks
                 WHERE hypertable_name = $1 AND NOT is_compressed AND range_end <= $2::timestamptz",
                &[&table, &ts(older_than)],
            )
            .await?;
        n += r.get::<_, i64>(0).max(0) as u64;
    }
    Ok(Some(n))
}

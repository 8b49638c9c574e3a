//! Table sizes from SQLite's `dbstat` virtual table (compiled into the bundled library).

use super::SqliteStore;
use crate::error::StoreError;
use crate::storage::{Relation, Storage};

pub(super) async fn storage(db: &SqliteStore) -> Result<Storage, StoreError> {
    db.read(|c| {
        // Indexes count towards their table, as pg_total_relation_size counts them.
        let mut st = c.prepare_cached(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d
             LEFT JOIN sqlite_schema m ON m.name = d.name
             GROUP BY 1 ORDER BY 1",
        )?;
        let relations = st
            .query_map([], |r| {
                Ok(Relation {
                    name: r.get(0)?,
                    parent: None,
                    bytes: r.get::<_, i64>(1)?.max(0) as u64,
                    compressed: false,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Storage::new(relations, None))
    })
    .await
}

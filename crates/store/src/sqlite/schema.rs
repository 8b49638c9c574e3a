//! Migrations and their bookkeeping on SQLite: each numbered file in one IMMEDIATE
//! transaction (a concurrent migrator waits, then finds it applied), and the read-only status.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use crate::error::StoreError;
use crate::migrate::{self, Applied, MigrateReport, Migration, StatusReport};

impl SqliteStore {
    /// Applies `files` (tests use their own lists; `migrate` uses the embedded ones).
    pub async fn migrate_files(&self, files: Vec<Migration>) -> Result<MigrateReport, StoreError> {
        self.write(move |c| migrate_sqlite(c, &files)).await
    }

    pub async fn status_files(&self, files: Vec<Migration>) -> Result<StatusReport, StoreError> {
        // Read-only, like PostgreSQL's: status never creates the bookkeeping table.
        self.read(move |c| {
            let bookkept: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
                [],
                |r| r.get(0),
            )?;
            let applied = if bookkept { read_applied(c)? } else { Vec::new() };
            Ok(migrate::plan("sqlite", &files, &applied))
        })
        .await
    }

    /// Names of the user tables, for tests that check a failed migration left nothing behind.
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            let names = st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok(names)
        })
        .await
    }
}

fn read_applied(c: &Connection) -> Result<Vec<Applied>, StoreError> {
    let mut st = c.prepare("SELECT version, name, checksum, mode, skipped, applied_at FROM schema_migrations")?;
    let rows = st
        .query_map([], |r| {
            Ok(Applied {
                version: r.get(0)?,
                name: r.get(1)?,
                checksum: r.get(2)?,
                mode: r.get(3)?,
                skipped: r.get::<_, i64>(4)? != 0,
                applied_at: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn migrate_sqlite(c: &mut Connection, files: &[Migration]) -> Result<MigrateReport, StoreError> {
    c.execute_batch(migrate::SQLITE_BOOTSTRAP)?;
    let status = migrate::plan("sqlite", files, &read_applied(c)?);
    if let Some(p) = status.problem() {
        return Err(p);
    }
    let mut report = MigrateReport { mode: "sqlite".into(), ..Default::default() };
    for f in files {
        // IMMEDIATE takes the write lock first, so a concurrent migrator waits and then sees
        // the file as applied instead of running it twice.
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: Option<i64> = tx
            .query_row("SELECT version FROM schema_migrations WHERE version = ?1", [f.version], |r| r.get(0))
            .optional()?;
        if done.is_some() {
            continue;
        }
        tx.execute_batch(&f.sql).map_err(|e| StoreError::MigrationFailed {
            version: f.version,
            name: f.name.clone(),
            why: e.to_string(),
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, mode, skipped, applied_at)
             VALUES (?1, ?2, ?3, 'sqlite', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            params![f.version, f.name, f.checksum()],
        )?;
        tx.commit()?;
        report.applied.push(migrate::label(f));
    }
    Ok(report)
}

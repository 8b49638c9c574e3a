//! Migrations and their bookkeeping on PostgreSQL: applying the numbered files under an
//! advisory lock, one transaction each, deciding native or TimescaleDB mode once, and the
//! read-only status. Also the small introspection calls tests and `db status` use.

use super::PgStore;
use crate::backend::Mode;
use crate::config::TimescaleChoice;
use crate::error::StoreError;
use crate::migrate::{self, Applied, MigrateReport, Migration, StatusReport};

/// Serializes migrators across processes (`pg_advisory_lock` key; arbitrary, fixed).
const MIGRATION_LOCK: i64 = 0x736f_6d69_6772;

impl PgStore {
    async fn read_applied(c: &tokio_postgres::Client) -> Result<Vec<Applied>, StoreError> {
        let rows = c
            .query(
                "SELECT version, name, checksum, mode, skipped,
                        to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                 FROM schema_migrations ORDER BY version",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Applied {
                version: r.get::<_, i32>(0) as u32,
                name: r.get(1),
                checksum: r.get(2),
                mode: r.get(3),
                skipped: r.get(4),
                applied_at: r.get(5),
            })
            .collect())
    }

    /// The mode recorded by earlier migrations, else the one this server and config call for.
    async fn decide_mode(&self, c: &tokio_postgres::Client, applied: &[Applied]) -> Result<Mode, StoreError> {
        if let Some(a) = applied.first() {
            return Ok(if a.mode == "timescale" { Mode::Timescale } else { Mode::Native });
        }
        let available: bool = c
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')", &[])
            .await?
            .get(0);
        match (self.timescale, available) {
            (TimescaleChoice::Off, _) | (TimescaleChoice::Auto, false) => Ok(Mode::Native),
            (_, true) => Ok(Mode::Timescale),
            (TimescaleChoice::Require, false) => Err(StoreError::Invalid(
                "store.timescale is `require` but the server does not offer the timescaledb extension".into(),
            )),
        }
    }

    pub async fn migrate_files(&self, files: Vec<Migration>) -> Result<MigrateReport, StoreError> {
        let mut c = self.client().await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
        let result = self.migrate_locked(&mut c, &files).await;
        // Unlock whatever happened; the pool reuses this session.
        let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
        let report = result?;
        unlock?;
        Ok(report)
    }

    async fn migrate_locked(
        &self,
        c: &mut deadpool_postgres::Object,
        files: &[Migration],
    ) -> Result<MigrateReport, StoreError> {
        c.batch_execute(migrate::POSTGRES_BOOTSTRAP).await?;
        let applied = Self::read_applied(c).await?;
        let mode = self.decide_mode(c, &applied).await?;
        let status = migrate::plan(mode.as_str(), files, &applied);
        if let Some(p) = status.problem() {
            return Err(p);
        }
        let mut report = MigrateReport { mode: mode.as_str().into(), ..Default::default() };
        for f in files {
            if applied.iter().any(|a| a.version == f.version) {
                continue;
            }
            let skip = f.only_mode().is_some_and(|m| m != mode.as_str());
            let tx = c.transaction().await?;
            if !skip {
                tx.batch_execute(&f.sql).await.map_err(|e| StoreError::MigrationFailed {
                    version: f.version,
                    name: f.name.clone(),
                    why: StoreError::from(e).to_string(),
                })?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, mode, skipped) VALUES ($1, $2, $3, $4, $5)",
                &[&(f.version as i32), &f.name, &f.checksum(), &mode.as_str(), &skip],
            )
            .await?;
            tx.commit().await?;
            if skip { report.skipped.push(migrate::label(f)) } else { report.applied.push(migrate::label(f)) }
        }
        self.set_mode(mode);
        Ok(report)
    }

    pub async fn status_files(&self, files: Vec<Migration>) -> Result<StatusReport, StoreError> {
        let c = self.client().await?;
        // Read-only: a database never migrated has no bookkeeping table yet, and status must
        // not create it (it also runs as a read-only role, e.g. behind the API).
        let bookkept: bool = c.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
        let applied = if bookkept { Self::read_applied(&c).await? } else { Vec::new() };
        let mode = self.decide_mode(&c, &applied).await?;
        if !applied.is_empty() {
            self.set_mode(mode);
        }
        Ok(migrate::plan(mode.as_str(), &files, &applied))
    }

    /// User tables and functions, for tests that check a failed migration left nothing behind.
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'
                 UNION ALL SELECT proname::text || '()' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'public' ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Runs arbitrary read-only SQL returning one bigint; for tests and `db status`.
    pub async fn scalar_i64(&self, sql: &str) -> Result<i64, StoreError> {
        let c = self.client().await?;
        Ok(c.query_one(sql, &[]).await?.get(0))
    }
}

//! Numbered SQL migrations, embedded in the binary so it works from any directory.
//!
//! Each backend applies pending files in version order, each in one transaction together with
//! its `schema_migrations` row, and refuses to run when a file it already applied has changed
//! (checksums are sha256 of the file text). A PostgreSQL file whose first lines say
//! `-- so:mode native` or `-- so:mode timescale` applies only in that mode; in the other mode
//! it is recorded as skipped, so every mode has a complete, checkable ledger.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub sql: String,
}

impl Migration {
    pub fn new(version: u32, name: &str, sql: &str) -> Self {
        Migration { version, name: name.to_string(), sql: sql.to_string() }
    }

    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// The mode named by a `-- so:mode X` line among the leading comments, if any.
    pub fn only_mode(&self) -> Option<&str> {
        self.sql
            .lines()
            .take_while(|l| l.trim_start().starts_with("--") || l.trim().is_empty())
            .find_map(|l| l.trim_start().strip_prefix("--")?.trim().strip_prefix("so:mode")?.split_whitespace().next())
    }
}

macro_rules! embed {
    ($dir:literal; $($version:literal $file:literal),+ $(,)?) => {
        vec![$(Migration::new(
            $version,
            // `NNN_name`: the name is what follows the number.
            $file.split_once('_').map_or($file, |(_, name)| name),
            include_str!(concat!("../../../migrations/", $dir, "/", $file, ".sql")),
        )),+]
    };
}

/// Bootstrap SQL creating `schema_migrations`; idempotent, run before every plan.
pub(crate) const SQLITE_BOOTSTRAP: &str = include_str!("../../../migrations/sqlite/000_schema_migrations.sql");
pub(crate) const POSTGRES_BOOTSTRAP: &str = include_str!("../../../migrations/postgres/000_schema_migrations.sql");

/// The SQLite migrations compiled into this binary (`migrations/sqlite`).
pub fn sqlite_migrations() -> Vec<Migration> {
    embed!("sqlite"; 1 "001_core", 2 "002_alerts")
}

/// The PostgreSQL migrations compiled into this binary (`migrations/postgres`).
pub fn postgres_migrations() -> Vec<Migration> {
    embed!("postgres"; 1 "001_core", 2 "002_native_partitions", 3 "003_timescale", 4 "004_staging", 5 "005_identifier_collation", 6 "006_alerts")
}

/// What the ledger says about one migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum MigrationState {
    Applied {
        applied_at: String,
    },
    /// Recorded without running: it targets the other PostgreSQL mode.
    Skipped {
        mode: String,
    },
    Pending,
    /// Applied, but the file in this binary differs from what ran.
    Changed {
        recorded: String,
        current: String,
    },
    /// In the database, not in this binary.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    pub version: u32,
    pub name: String,
    #[serde(flatten)]
    pub state: MigrationState,
}

/// `db status`: the storage mode and every migration's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// `sqlite`, `native` (PostgreSQL with daily range partitions) or `timescale`.
    pub mode: String,
    pub migrations: Vec<MigrationStatus>,
}

impl StatusReport {
    pub fn pending(&self) -> usize {
        self.migrations.iter().filter(|m| m.state == MigrationState::Pending).count()
    }

    /// The first problem that must stop `migrate` and any use of the database.
    pub fn problem(&self) -> Option<StoreError> {
        self.migrations.iter().find_map(|m| match &m.state {
            MigrationState::Changed { recorded, current } => Some(StoreError::MigrationChanged {
                version: m.version,
                name: m.name.clone(),
                recorded: recorded.clone(),
                current: current.clone(),
            }),
            MigrationState::Unknown => Some(StoreError::UnknownMigration { version: m.version, name: m.name.clone() }),
            _ => None,
        })
    }
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub version: u32,
    pub name: String,
    pub checksum: String,
    pub mode: String,
    pub skipped: bool,
    pub applied_at: String,
}

/// Compares the ledger with the embedded files.
pub(crate) fn plan(mode: &str, files: &[Migration], applied: &[Applied]) -> StatusReport {
    let mut out = Vec::new();
    for f in files {
        let state = match applied.iter().find(|a| a.version == f.version) {
            None => MigrationState::Pending,
            Some(a) if a.checksum != f.checksum() => {
                MigrationState::Changed { recorded: a.checksum.clone(), current: f.checksum() }
            }
            Some(a) if a.skipped => MigrationState::Skipped { mode: a.mode.clone() },
            Some(a) => MigrationState::Applied { applied_at: a.applied_at.clone() },
        };
        out.push(MigrationStatus { version: f.version, name: f.name.clone(), state });
    }
    for a in applied.iter().filter(|a| !files.iter().any(|f| f.version == a.version)) {
        out.push(MigrationStatus { version: a.version, name: a.name.clone(), state: MigrationState::Unknown });
    }
    out.sort_by_key(|m| m.version);
    StatusReport { mode: mode.to_string(), migrations: out }
}

/// What `migrate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    pub mode: String,
    /// `NNN_name` of each file run now.
    pub applied: Vec<String>,
    /// `NNN_name` of each file recorded as skipped now (other mode).
    pub skipped: Vec<String>,
}

pub(crate) fn label(m: &Migration) -> String {
    format!("{:03}_{}", m.version, m.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_are_ordered_and_modes_parse() {
        for files in [sqlite_migrations(), postgres_migrations()] {
            let versions: Vec<u32> = files.iter().map(|m| m.version).collect();
            let mut sorted = versions.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(versions, sorted);
        }
        let pg = postgres_migrations();
        assert_eq!(pg[0].only_mode(), None);
        assert_eq!(pg[1].only_mode(), Some("native"));
        assert_eq!(pg[2].only_mode(), Some("timescale"));
        assert_eq!(pg[4].only_mode(), Some("native"));
    }
}

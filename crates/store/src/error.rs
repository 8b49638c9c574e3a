use std::path::PathBuf;

/// Everything the store can fail at. Messages name the table, file or migration involved and
/// never include connection secrets (URLs are reported without their password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("postgres pool: {0}")]
    Pool(String),
    #[error("invalid store url {url}: {why}")]
    Url { url: String, why: String },
    #[error(
        "migration {version:03}_{name} was changed after it was applied (recorded sha256 {recorded}, file now {current}); \
         restore the file or write a new migration"
    )]
    MigrationChanged { version: u32, name: String, recorded: String, current: String },
    #[error("migration {version:03}_{name} failed (nothing of it was applied): {why}")]
    MigrationFailed { version: u32, name: String, why: String },
    #[error(
        "the database has migration {version:03}_{name} that this binary does not know; is it older than the database?"
    )]
    UnknownMigration { version: u32, name: String },
    #[error("schema is not migrated ({pending} pending); run `stock-observer db migrate`")]
    NotMigrated { pending: usize },
    #[error("archive: {0}")]
    Archive(#[from] archive::ArchiveError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {why}")]
    Line { path: PathBuf, line: u64, why: String },
    #[error("bad value in column {column}: {why}")]
    Decode { column: &'static str, why: String },
    /// A `quality_flag` read back that this binary does not know: the row was written by
    /// something else, or by a newer binary. Never read as `normal`.
    #[error(
        "unknown quality flag {value:?} in {table}.quality_flag (this binary knows normal, degraded, gap, stale \
         and no_data)"
    )]
    UnknownQualityFlag { table: &'static str, value: String },
    #[error("{0}")]
    Invalid(String),
    /// An external program (`pg_dump`, `pg_restore`, `psql`) failed; `stderr` has secrets
    /// masked.
    #[error("{tool} failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") })]
    Tool { tool: &'static str, status: String, stderr: String },
    #[error(
        "{tool} not found ({searched}): install PostgreSQL's client programs (Debian: apt-get install \
         postgresql-client; pg_dump at least as new as the source's server)"
    )]
    ToolMissing { tool: &'static str, searched: String },
    #[error("background task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for StoreError {
    /// A row-mapping closure can only fail with a rusqlite error; a [`StoreError`] it had to
    /// wrap (a value that does not decode) comes back out as itself.
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(i, t, cause) => match cause.downcast::<StoreError>() {
                Ok(inner) => *inner,
                Err(cause) => StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(i, t, cause)),
            },
            e => StoreError::Sqlite(e),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // `{:#}`-style detail: the server's message, not just "db error".
        let msg = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => {
                let msg = model::errors::with_causes(&e);
                let hint = tls_hint(&msg);
                msg + hint
            }
        };
        StoreError::Postgres(msg)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        let mut msg = model::errors::with_causes(&e);
        if msg.ends_with("password missing") {
            msg.push_str(&format!(" (the server asks for one: set {} or PGPASSWORD)", crate::pgconn::PASSWORD_ENV));
        }
        msg.push_str(tls_hint(&msg));
        StoreError::Pool(msg)
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Task(e.to_string())
    }
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

/// What to do about a TLS failure (`sslmode`, see `pgconn`).
fn tls_hint(msg: &str) -> &'static str {
    if msg.contains("server does not support TLS") {
        " (store.url's sslmode is require, the default for a non-loopback host, and the server \
         offers no TLS: enable ssl on the server, or add ?sslmode=disable to store.url on a \
         trusted network)"
    } else if msg.contains("invalid peer certificate") {
        " (the server's certificate does not verify against the system trust store: add its CA \
         to store.tls_ca_file)"
    } else {
        ""
    }
}

//! Opening a PostgreSQL store: the URL's settings, the password from the environment, TLS,
//! and the deadpool pool (which connects lazily, on first use).

use std::sync::atomic::AtomicU8;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::{MODE_UNKNOWN, PgStore};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::pgconn::{PASSWORD_ENV, PgUrl, SslMode, shown_url, tls_connector};

impl PgStore {
    /// Builds the pool; no connection is made until the first call. The password comes from
    /// [`PASSWORD_ENV`] or `PGPASSWORD`, never from the URL (refused) or the config. TLS
    /// follows the URL's `sslmode` ([`crate::pgconn`]).
    pub async fn connect(url: &str, cfg: &StoreConfig) -> Result<Self, StoreError> {
        let bad = |why: String| StoreError::Url { url: shown_url(url), why };
        let PgUrl { config: mut pg, sslmode, loopback } = PgUrl::parse(url).map_err(bad)?;
        let shown = PgUrl { config: pg.clone(), sslmode, loopback }.display();
        if let Some(pw) = std::env::var(PASSWORD_ENV).ok().or_else(|| std::env::var("PGPASSWORD").ok()) {
            pg.password(pw);
        }
        if !loopback && sslmode != SslMode::Require {
            tracing::warn!(
                url = %shown,
                "store: sslmode={sslmode} to a non-loopback host: the password and the data may cross the network unencrypted"
            );
        }
        let tls = tls_connector(sslmode, cfg.tls_ca_file.as_deref()).map_err(bad)?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(cfg.connect_timeout.get());
        }
        pg.application_name("stock-observer");
        if !cfg.synchronous_commit {
            // Commits return before their WAL is flushed. A server crash can lose the last
            // few hundred milliseconds of committed rows but never corrupts anything; the
            // archive holds every row and `etl` puts them back (docs/storage.md).
            pg.options("-c synchronous_commit=off");
        }
        let pg_connect_timeout = pg.get_connect_timeout().copied();
        let mgr = Manager::from_config(pg, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            // A new connection gets as long as one attempt is allowed (the URL's or ours).
            .create_timeout(pg_connect_timeout)
            .wait_timeout(Some(cfg.pool_wait_timeout.get()))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(PgStore {
            pool,
            url: shown,
            timescale: cfg.timescale,
            mode: AtomicU8::new(MODE_UNKNOWN),
            copy_connections: cfg.copy_connections.clamp(1, cfg.pool_size.max(1)),
            copy_chunk_rows: cfg.copy_chunk_rows.max(1),
        })
    }
}

use std::path::PathBuf;

use model::settings::{Checker, Interval, Validate};
use serde::{Deserialize, Serialize};

use crate::pgconn;

/// How PostgreSQL stores time series.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimescaleChoice {
    /// TimescaleDB when the server offers the extension, native partitions otherwise.
    #[default]
    Auto,
    /// Refuse to migrate a server without TimescaleDB.
    Require,
    /// Native partitions even when TimescaleDB is available.
    Off,
}

/// The `store` section of the configuration.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user@host:port/db[?sslmode=…]` (password from
    /// [`PASSWORD_ENV`](pgconn::PASSWORD_ENV) or `PGPASSWORD`, never here: a URL with one is
    /// refused), `sqlite:///path/observer.db`, or absent for the embedded SQLite file
    /// `<data-dir>/observer.db`. `sslmode` defaults to `disable` for a loopback host,
    /// `require` (certificate verified) for any other ([`crate::pgconn`]).
    pub url: Option<String>,
    /// PostgreSQL TLS: PEM certificates trusted besides the system store (a private CA or a
    /// self-signed server certificate).
    pub tls_ca_file: Option<PathBuf>,
    /// Rows per write transaction (ETL and live sink). Each costs a handful of round trips
    /// and, on PostgreSQL, one transaction per COPY connection.
    pub batch_rows: usize,
    /// PostgreSQL connections in the pool.
    pub pool_size: usize,
    /// PostgreSQL: give up a connection attempt after this long (unless the URL sets
    /// `connect_timeout`), so a server that drops packets is reported instead of awaited.
    pub connect_timeout: Interval,
    /// PostgreSQL: a caller waits this long for a free pooled connection before it fails.
    pub pool_wait_timeout: Interval,
    /// PostgreSQL: a tick batch is split over this many connections loading in parallel
    /// (at most `pool_size`).
    pub copy_connections: usize,
    /// PostgreSQL: rows per COPY message. The server parses one message while the next is
    /// encoded, so smaller messages overlap more; each costs a channel hop and a syscall.
    pub copy_chunk_rows: usize,
    /// PostgreSQL: `false` commits store writes with `synchronous_commit = off` (a server
    /// crash may lose the last moments of committed rows, which `etl` restores from the
    /// archive); `true` waits for every commit's WAL flush.
    pub synchronous_commit: bool,
    pub timescale: TimescaleChoice,
    /// Native mode: daily partitions created this many days ahead by maintenance.
    pub partitions_ahead_days: u32,
    /// Keep market_ticks this long (absent: forever). The archive stays the source of truth.
    pub ticks_retention: Option<Interval>,
    /// Keep scalp_ticks this long (absent: forever).
    pub samples_retention: Option<Interval>,
    pub live_sink: LiveSinkConfig,
}

/// Writing ticks and samples to the database while recording (`store.live_sink`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveSinkConfig {
    pub enabled: bool,
    /// Rows the sink holds before it drops new ones (recording never waits for the database).
    pub queue_rows: usize,
    /// A partial batch is written after this long.
    pub flush_interval: Interval,
    /// After a failed write, batches are dropped (and counted) for this long before the next
    /// attempt, so a dead database costs one connection attempt per interval.
    pub retry_after: Interval,
}

impl Default for LiveSinkConfig {
    fn default() -> Self {
        LiveSinkConfig {
            enabled: false,
            queue_rows: 100_000,
            flush_interval: Interval::from_millis(1_000),
            retry_after: Interval::from_millis(5_000),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            tls_ca_file: None,
            batch_rows: 50_000,
            pool_size: 4,
            connect_timeout: Interval::from_millis(5_000),
            pool_wait_timeout: Interval::from_millis(30_000),
            copy_connections: 2,
            copy_chunk_rows: 2_000,
            synchronous_commit: false,
            timescale: TimescaleChoice::Auto,
            partitions_ahead_days: 7,
            ticks_retention: None,
            samples_retention: None,
            live_sink: LiveSinkConfig::default(),
        }
    }
}

impl Validate for StoreConfig {
    fn validate(&self, c: &mut Checker) {
        if let Some(url) = &self.url {
            let problem = if pgconn::has_password(url) {
                Some(pgconn::password_refusal())
            } else if url.starts_with("sqlite://") {
                None
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                pgconn::PgUrl::parse(url).err()
            } else {
                Some("expected postgres://, postgresql:// or sqlite://".into())
            };
            if let Some(why) = problem {
                c.check(false, "url", why);
            }
        }
        if let Some(p) = &self.tls_ca_file {
            c.check(p.is_file(), "tls_ca_file", format_args!("{} is not a file", p.display()));
        }
        c.range("batch_rows", self.batch_rows, 1, 1_000_000);
        c.range("pool_size", self.pool_size, 1, 64);
        c.range("copy_connections", self.copy_connections, 1, self.pool_size.max(1));
        c.range("copy_chunk_rows", self.copy_chunk_rows, 1, 1_000_000);
        c.range("partitions_ahead_days", self.partitions_ahead_days, 1, 366);
        c.section("live_sink", |c| {
            c.range("queue_rows", self.live_sink.queue_rows, 1, 10_000_000);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgconn::PASSWORD_ENV;

    fn problems(cfg: &StoreConfig) -> Vec<String> {
        let mut c = Checker::default();
        c.section("store", |c| cfg.validate(c));
        c.problems.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn default_is_valid_and_bad_values_name_the_key() {
        assert!(problems(&StoreConfig::default()).is_empty());
        let bad = StoreConfig { url: Some("postgres://u:secret@h/db".into()), batch_rows: 0, ..StoreConfig::default() };
        let p = problems(&bad);
        assert!(
            p.iter().any(|m| m.starts_with("store.url:") && !m.contains("secret") && m.contains(PASSWORD_ENV)),
            "{p:?}"
        );
        for url in
            ["postgres://u@h/db?password=secret", "postgresql://h/db?user=u&password=secret", "sqlite://u:secret@/x"]
        {
            let p = problems(&StoreConfig { url: Some(url.into()), ..StoreConfig::default() });
            assert!(
                p.iter().any(|m| m.starts_with("store.url:") && m.contains(PASSWORD_ENV) && !m.contains("secret")),
                "{url}: {p:?}"
            );
        }
        let p = problems(&StoreConfig {
            url: Some("postgres://u@h/db?sslmode=sometimes".into()),
            ..StoreConfig::default()
        });
        assert!(p.iter().any(|m| m.starts_with("store.url:") && m.contains("sslmode")), "{p:?}");
        assert!(problems(&bad).iter().any(|m| m.starts_with("store.batch_rows:")));
        let unknown = serde_json::from_str::<StoreConfig>(r#"{"urll":"x"}"#);
        assert!(unknown.is_err());
    }
}

//! PostgreSQL → PostgreSQL: `pg_dump --format=custom` of the source, streamed through
//! `pg_restore --clean --if-exists --single-transaction` into `psql` at the destination.
//!
//! The programs get their connection as a libpq key/value string built from the parsed URL
//! (so no password can be in it: URLs with one are refused) and their password in
//! `PGPASSWORD` of their own environment, never on a command line. Nothing is written to
//! disk: the dump is relayed through this process only to count its bytes.
//!
//! pg_restore writes its script to psql instead of connecting itself (`-d`) for one reason:
//! its `--clean` drops a partition's primary key before the partitioned table's, which
//! PostgreSQL refuses ("cannot drop inherited constraint"), so a second sync into a
//! database with `market_ticks` partitions would always fail. The relay puts a `DROP TABLE`
//! of each partitioned table the source has right after the script's `BEGIN`, which takes
//! the partitions along first; everything else is pg_restore's own clean and restore. The
//! script is one transaction (`--single-transaction`, psql stops at the first error), so a
//! failure anywhere, a dump cut short included, leaves the destination as it was.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_postgres::config::Host;

use super::{ProgressFn, SyncOptions, SyncProgress, SyncReport, TableRows, report};
use crate::error::StoreError;
use crate::pgconn::{PASSWORD_ENV, PgUrl, SslMode, tls_connector};

/// The source's password, when it differs from the destination's (which, as for every store
/// connection, comes from [`PASSWORD_ENV`] or `PGPASSWORD`). Without it the source uses the
/// same password, or libpq's `~/.pgpass`.
pub const FROM_PASSWORD_ENV: &str = "SO_SYNC_FROM_PASSWORD";

/// libpq's default port.
const DEFAULT_PORT: u16 = 5432;
/// Debian's bundle of the system's trusted certificates: libpq before 16 cannot be told to
/// use the system store, and `sslmode=require` here means a verified certificate.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Bytes between progress reports.
const PROGRESS_EVERY: u64 = 8 << 20;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether two URLs reach the same database: a host:port in common (any loopback name or
/// Unix socket counting as this machine) and the same database name.
pub(super) fn same_database(a: &PgUrl, b: &PgUrl) -> bool {
    let ea = endpoints(&a.config);
    let eb = endpoints(&b.config);
    ea.iter().any(|e| eb.contains(e)) && dbname(&a.config) == dbname(&b.config)
}

fn endpoints(c: &tokio_postgres::Config) -> Vec<(String, u16)> {
    let ports = c.get_ports();
    c.get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => {
                    let bare = h.trim_start_matches('[').trim_end_matches(']');
                    if bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                    {
                        "this machine".to_string()
                    } else {
                        bare.to_ascii_lowercase()
                    }
                }
                Host::Unix(_) => "this machine".to_string(),
            };
            let port = ports.get(i).or(if ports.len() == 1 { ports.first() } else { None });
            (host, port.copied().unwrap_or(DEFAULT_PORT))
        })
        .collect()
}

/// The database name libpq would use: the URL's, else the user name.
fn dbname(c: &tokio_postgres::Config) -> Option<String> {
    c.get_dbname().or(c.get_user()).map(str::to_string).or_else(|| env("USER"))
}

/// A libpq key/value connection string for `url`: hosts, ports, user, database, options,
/// TLS. No password.
fn conninfo(url: &PgUrl, opts: &SyncOptions) -> String {
    let c = &url.config;
    let mut kv: Vec<(&str, String)> = Vec::new();
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        kv.push(("host", hosts.join(",")));
    }
    if !c.get_hostaddrs().is_empty() {
        kv.push(("hostaddr", c.get_hostaddrs().iter().map(IpAddr::to_string).collect::<Vec<_>>().join(",")));
    }
    if !c.get_ports().is_empty() {
        kv.push(("port", c.get_ports().iter().map(u16::to_string).collect::<Vec<_>>().join(",")));
    }
    if let Some(u) = c.get_user() {
        kv.push(("user", u.to_string()));
    }
    if let Some(d) = c.get_dbname() {
        kv.push(("dbname", d.to_string()));
    }
    if let Some(o) = c.get_options() {
        kv.push(("options", o.to_string()));
    }
    // libpq waits at least 2 s, and treats 0 as forever.
    if let Some(t) = c.get_connect_timeout().copied().or(opts.connect_timeout) {
        kv.push(("connect_timeout", t.as_secs().max(2).to_string()));
    }
    kv.push(("application_name", "stock-observer-sync".into()));
    match url.sslmode {
        SslMode::Disable => kv.push(("sslmode", "disable".into())),
        SslMode::Prefer => kv.push(("sslmode", "prefer".into())),
        SslMode::Require => {
            kv.push(("sslmode", "verify-full".into()));
            let root = match &opts.tls_ca_file {
                Some(f) => f.display().to_string(),
                None if Path::new(SYSTEM_CA_BUNDLE).is_file() => SYSTEM_CA_BUNDLE.to_string(),
                None => "system".into(),
            };
            kv.push(("sslrootcert", root));
        }
    }
    kv.iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The program `name` in `dir`, or on the `PATH`.
fn tool(name: &'static str, dir: Option<&Path>) -> Result<PathBuf, StoreError> {
    let dirs: Vec<PathBuf> = match dir {
        Some(d) => vec![d.to_path_buf()],
        None => std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default(),
    };
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()).ok_or_else(|| StoreError::ToolMissing {
        tool: name,
        searched: match dir {
            Some(d) => format!("in {}", d.display()),
            None => "on the PATH".into(),
        },
    })
}

/// The programs' environment: only the password meant for that side.
fn command(exe: &Path, password: Option<&str>) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env_remove("PGPASSWORD").env_remove(PASSWORD_ENV).env_remove(FROM_PASSWORD_ENV);
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    cmd
}

/// Drains a child's stderr on a thread so that neither program blocks on a full pipe.
fn drain(child: &mut Child) -> Option<JoinHandle<String>> {
    let mut err = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    }))
}

/// A program's stderr as it may be shown: every password replaced.
fn masked(stderr: String, secrets: &[&str]) -> String {
    let mut s = stderr.trim_end().to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        s = s.replace(secret, "********");
    }
    s
}

pub(super) async fn sync(from: &PgUrl, to: &PgUrl, opts: &SyncOptions) -> Result<SyncReport, StoreError> {
    let to_password = env(PASSWORD_ENV).or_else(|| env("PGPASSWORD"));
    let from_password = env(FROM_PASSWORD_ENV).or_else(|| to_password.clone());
    let dir = opts.tools_dir.as_deref();
    let tools =
        Tools { pg_dump: tool("pg_dump", dir)?, pg_restore: tool("pg_restore", dir)?, psql: tool("psql", dir)? };
    let prelude = {
        let (client, conn) = connect(from, from_password.clone(), opts, "source").await?;
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'p' AND NOT c.relispartition AND n.nspname !~ '^(pg_|information_schema$)'
                 ORDER BY 1, 2",
                &[],
            )
            .await?;
        drop(client);
        let _ = conn.await;
        rows.iter()
            .map(|r| format!("DROP TABLE IF EXISTS {}.{};\n", ident(r.get(0)), ident(r.get(1))))
            .collect::<String>()
    };
    let dump = (conninfo(from, opts), from_password);
    let restore = (conninfo(to, opts), to_password.clone());
    let progress = opts.progress.clone();
    let bytes = tokio::task::spawn_blocking(move || pipe(&tools, dump, restore, &prelude, progress.as_ref())).await??;
    let tables = table_rows(to, to_password, opts).await?;
    Ok(report("postgres", tables, bytes, None))
}

/// A quoted SQL identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

struct Tools {
    pg_dump: PathBuf,
    pg_restore: PathBuf,
    psql: PathBuf,
}

/// A connection string and the password for it.
type Side = (String, Option<String>);

/// A finished program: its exit, and its stderr with passwords masked.
struct Ran {
    tool: &'static str,
    status: std::io::Result<ExitStatus>,
    stderr: String,
}

impl Ran {
    fn failed(&self) -> bool {
        !matches!(&self.status, Ok(s) if s.success())
    }

    /// Failed only because the next program quit and closed the pipe it was writing to.
    fn lost_its_reader(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        matches!(&self.status, Ok(s) if s.signal() == Some(13)) || self.stderr.contains("Broken pipe")
    }

    fn error(self) -> StoreError {
        let status = match self.status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let stderr = if self.stderr.is_empty() { String::new() } else { format!("{}\n", self.stderr) };
        StoreError::Tool { tool: self.tool, status, stderr: format!("{stderr}(the destination is unchanged)") }
    }
}

/// Runs pg_dump | pg_restore | psql; returns the bytes of the dump.
fn pipe(
    tools: &Tools,
    dump: Side,
    restore: Side,
    prelude: &str,
    progress: Option<&ProgressFn>,
) -> Result<u64, StoreError> {
    let secrets: Vec<String> = [&dump.1, &restore.1].into_iter().flatten().cloned().collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let spawn_failed = |tool: &'static str| {
        move |e: std::io::Error| StoreError::Tool {
            tool,
            status: format!("could not start: {e}"),
            stderr: String::new(),
        }
    };
    // pg_dump only reads: a read-only role at the source is enough. Owners and grants are the
    // source's business; the destination's objects belong to whoever restores them. `-w`:
    // a missing password is an error, never a prompt on the terminal.
    let dumper = command(&tools.pg_dump, dump.1.as_deref())
        .args(["--format=custom", "--no-owner", "--no-privileges", "--no-password", "--dbname"])
        .arg(&dump.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_failed("pg_dump"))?;
    let mut children: Vec<Child> = Vec::new();
    let spawn = |cmd: &mut Command, tool: &'static str, children: &mut Vec<Child>| match cmd.spawn() {
        Ok(c) => Ok(c),
        Err(e) => {
            for c in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            Err(spawn_failed(tool)(e))
        }
    };
    children.push(dumper);
    let restorer = spawn(
        command(&tools.pg_restore, None)
            .args(["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction", "--file=-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "pg_restore",
        &mut children,
    )?;
    children.push(restorer);
    let psql = spawn(
        command(&tools.psql, restore.1.as_deref())
            .args(["--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--dbname"])
            .arg(&restore.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        "psql",
        &mut children,
    )?;
    children.push(psql);
    let errs: Vec<Option<JoinHandle<String>>> = children.iter_mut().map(drain).collect();
    let (Some(dump_out), Some(restore_in), Some(script), Some(psql_in)) =
        (children[0].stdout.take(), children[1].stdin.take(), children[1].stdout.take(), children[2].stdin.take())
    else {
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        return Err(StoreError::Task("a pipe to pg_dump, pg_restore or psql was not set up".into()));
    };
    let counting = {
        let progress = progress.cloned();
        std::thread::spawn(move || relay_dump(dump_out, restore_in, progress.as_ref()))
    };
    let injected = relay_script(script, psql_in, prelude);
    let bytes = counting.join().unwrap_or(0);
    let mut ran = Vec::new();
    for ((mut child, err), tool) in children.into_iter().zip(errs).zip(["pg_dump", "pg_restore", "psql"]) {
        let status = child.wait();
        let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
        ran.push(Ran { tool, status, stderr: masked(stderr, &secrets) });
    }
    // Refusing the script stopped the programs: that is the cause, not their broken pipes.
    if let Err(why) = injected {
        return Err(StoreError::Invalid(why));
    }
    // Otherwise the first program that failed on its own is the cause; the ones before it in
    // the pipe died of the broken pipe it left.
    let failed: Vec<Ran> = ran.into_iter().filter(Ran::failed).collect();
    let cause = failed.iter().position(|r| !r.lost_its_reader()).unwrap_or(0);
    match failed.into_iter().nth(cause) {
        Some(first) => Err(first.error()),
        None => Ok(bytes),
    }
}
/// Copies pg_dump's output into pg_restore's input; returns the bytes.
fn relay_dump(mut out: impl Read, mut input: impl Write, progress: Option<&ProgressFn>) -> u64 {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    let mut reported = 0u64;
    let mut last = Instant::now();
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if input.write_all(&buf[..n]).is_err() {
            // pg_restore quit; dropping `out` stops pg_dump with a broken pipe.
            break;
        }
        total += n as u64;
        if let Some(f) = progress
            && (total - reported >= PROGRESS_EVERY || last.elapsed() >= Duration::from_secs(1))
        {
            f(SyncProgress::Bytes(total));
            reported = total;
            last = Instant::now();
        }
    }
    if let Some(f) = progress {
        f(SyncProgress::Bytes(total));
    }
    // Dropping `input` closes pg_restore's stdin: the end of the dump.
    total
}

/// How far into the script its `BEGIN` may be (it follows a few comment lines).
const SCRIPT_HEAD_MAX: usize = 1 << 20;

/// Copies pg_restore's script into psql, with `prelude` right after its `BEGIN;` line.
/// Nothing reaches psql before that line is found, so a script that would run outside a
/// transaction is never run at all.
fn relay_script(script: impl Read, mut psql: impl Write, prelude: &str) -> Result<(), String> {
    let mut script = std::io::BufReader::with_capacity(256 << 10, script);
    let mut head = Vec::new();
    loop {
        let from = head.len();
        match std::io::BufRead::read_until(&mut script, b'\n', &mut head) {
            // No script at all: pg_restore failed, and says why.
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
        if head[from..].trim_ascii_end() == b"BEGIN;" {
            break;
        }
        if head.len() > SCRIPT_HEAD_MAX {
            return Err("pg_restore's script does not begin a transaction; nothing was run".into());
        }
    }
    // A failed write means psql quit, and says why.
    if psql.write_all(&head).is_ok() && psql.write_all(prelude.as_bytes()).is_ok() {
        let _ = std::io::copy(&mut script, &mut psql);
    }
    Ok(())
}

/// One connection to `url` with the store's TLS rules, its driver task to await after use.
async fn connect(
    url: &PgUrl,
    password: Option<String>,
    opts: &SyncOptions,
    side: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
    let mut config = url.config.clone();
    if let Some(pw) = password {
        config.password(pw);
    }
    if config.get_connect_timeout().is_none()
        && let Some(t) = opts.connect_timeout
    {
        config.connect_timeout(t);
    }
    config.application_name("stock-observer-sync");
    let tls = tls_connector(url.sslmode, opts.tls_ca_file.as_deref())
        .map_err(|why| StoreError::Url { url: url.display(), why })?;
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| StoreError::Invalid(format!("the {side} {}: {}", url.display(), StoreError::from(e))))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, task))
}

/// Every user table at the destination with its exact row count (a partitioned table or a
/// hypertable counted once, with its partitions or chunks).
async fn table_rows(to: &PgUrl, password: Option<String>, opts: &SyncOptions) -> Result<Vec<TableRows>, StoreError> {
    let (client, conn) = connect(to, password, opts, "destination").await?;
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^(pg_|_?timescaledb)'
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    let mut tables = Vec::with_capacity(rows.len());
    for r in rows {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        let n: i64 =
            client.query_one(&format!("SELECT count(*) FROM {}.{}", ident(&schema), ident(&name)), &[]).await?.get(0);
        let table = if schema == "public" { name } else { format!("{schema}.{name}") };
        tables.push(TableRows { table, rows: n as u64 });
    }
    drop(client);
    let _ = conn.await;
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> PgUrl {
        PgUrl::parse(s).unwrap()
    }

    #[test]
    fn the_same_database_is_recognised_through_loopback_names_and_default_ports() {
        assert!(same_database(&url("postgres://a@localhost/db"), &url("postgres://b@127.0.0.1:5432/db")));
        assert!(same_database(&url("postgres://a@[::1]:5433/db"), &url("postgres://a@localhost:5433/db")));
        assert!(same_database(&url("postgres://a@DB.example.com/db"), &url("postgres://a@db.example.com:5432/db")));
        assert!(!same_database(&url("postgres://a@localhost/db"), &url("postgres://a@localhost/db2")));
        assert!(!same_database(&url("postgres://a@localhost:5433/db"), &url("postgres://a@localhost/db")));
        assert!(!same_database(&url("postgres://a@prod.example.com/db"), &url("postgres://a@localhost/db")));
        // No database name: libpq uses the user's name.
        assert!(same_database(&url("postgres://obs@localhost"), &url("postgres://x@localhost/obs")));
    }

    #[test]
    fn conninfo_carries_the_settings_quoted_and_no_password() {
        let opts = SyncOptions { connect_timeout: Some(Duration::from_secs(5)), ..SyncOptions::default() };
        let c = conninfo(&url("postgres://o%27b@db.example.com:6543/market"), &opts);
        assert!(c.contains("host='db.example.com'") && c.contains("port='6543'"), "{c}");
        assert!(c.contains(r"user='o\'b'") && c.contains("dbname='market'"), "{c}");
        assert!(c.contains("sslmode='verify-full'") && c.contains("sslrootcert="), "{c}");
        assert!(c.contains("connect_timeout='5'") && !c.contains("password"), "{c}");
        let local = conninfo(&url("postgres://o@127.0.0.1/market"), &opts);
        assert!(local.contains("sslmode='disable'") && !local.contains("sslrootcert"), "{local}");
    }

    #[test]
    fn stderr_is_shown_with_passwords_masked() {
        let s = masked("FATAL: bad password hunter2 for user\n".into(), &["hunter2", ""]);
        assert_eq!(s, "FATAL: bad password ******** for user");
    }
}

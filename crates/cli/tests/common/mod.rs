//! Helpers for tests that run the real `stock-observer` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_stock-observer");

/// A command with a clean environment for the binary: no broker credentials, the HTTP
/// listener on an ephemeral port so parallel tests never collide, quieter logs, and no
/// machine readings driving mitigation: tests count samples, and a busy test machine must
/// not lower the Hz under them (fault scripts still force readings).
pub fn cmd() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("STOCK_OBSERVER__") || k.starts_with("KIS_") || k == "APP_ENV" {
            c.env_remove(k);
        }
    }
    c.env("STOCK_OBSERVER__HTTP__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env("STOCK_OBSERVER__MITIGATION__WATCH", "[]");
    c
}

pub fn run(c: &mut Command) -> Output {
    c.output().expect("run stock-observer")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every `.jsonl` file under `dir`, recursively, in path order (none if `dir` is missing).
pub fn jsonl_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            out.extend(jsonl_files_under(&p));
        } else if p.extension().is_some_and(|e| e == "jsonl") {
            out.push(p);
        }
    }
    out
}

/// Every JSON line of every `.jsonl` file under `dir`.
pub fn lines_under(dir: &Path) -> Vec<Value> {
    jsonl_files_under(dir).iter().flat_map(|p| lines_of(p)).collect()
}

/// Every JSON line of the file at `p`.
pub fn lines_of(p: &Path) -> Vec<Value> {
    let body = std::fs::read_to_string(p).unwrap();
    body.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", p.display())))
        .collect()
}

pub fn count_lines_under(dir: &Path) -> usize {
    lines_under(dir).len()
}

/// Milliseconds of the RFC 3339 time at `key` of `v`.
pub fn ms(v: &Value, key: &str) -> i64 {
    let s = v[key].as_str().unwrap_or_else(|| panic!("{key} missing in {v}"));
    model::UtcTime::parse(s).unwrap().as_millis()
}

/// Milliseconds of `hhmmss` (Seoul time) on `day` (YYYY-MM-DD).
pub fn kst_ms_on(day: &str, hhmmss: &str) -> i64 {
    model::UtcTime::from_kst(format!("{day}T{hhmmss}").parse().unwrap()).as_millis()
}

/// A GET on the collector's HTTP surface; the whole response, head included.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Starts `c` (a `collect`) in the background and returns it with the `host:port` it serves
/// `/health` on; its stderr is drained so it never blocks on a full pipe.
pub fn spawn_serving(c: &mut Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child =
        c.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).spawn().expect("starting collect");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let addr = http_addr(&mut lines);
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// The `host:port` a running `collect` prints for `/health`, read from its stderr lines.
pub fn http_addr(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    loop {
        let l = lines.next().expect("collect exited before serving health").unwrap();
        if let Some(rest) = l.strip_prefix("health: http://") {
            break rest.split('/').next().unwrap().to_string();
        }
    }
}

/// Starts `c` (a `serve`) in the background and returns it with the `host:port` of its
/// `/api/v1` and the rest of its stderr, which the caller must keep reading (or drop).
pub fn spawn_api(
    c: &mut Command,
) -> (std::process::Child, String, std::io::Lines<std::io::BufReader<std::process::ChildStderr>>) {
    use std::io::BufRead;
    let mut child =
        c.stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).spawn().expect("starting serve");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let addr = loop {
        let l = lines.next().expect("serve exited before printing its address").unwrap();
        if let Some(rest) = l.strip_prefix("serving /api/v1 on http://") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    (child, addr, lines)
}

/// One recorded sim session of 2026-01-14 (KIS and Upbit, six market minutes), made once
/// per test binary; each test works on its own copy ([`copy_of_recording`]).
pub fn recorded() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep().join("data");
        let out = run(cmd()
            .args(["collect", "--speed", "120", "--start", "2026-01-14T10:00", "--until", "10:06", "--data-dir"])
            .arg(&dir)
            .env("STOCK_OBSERVER__PROVIDERS__UPBIT__ENABLED", "true")
            // The fixture must not depend on the test machine: a disk over the anomaly mark
            // would make its day an anomaly day, and retention keep it longer.
            .env("STOCK_OBSERVER__ANOMALY__MAX_DISK_PERCENT", "100"));
        assert!(out.status.success(), "{}", text(&out));
        dir
    })
}

/// A copy of [`recorded`] at `to/data`.
pub fn copy_of_recording(to: &Path) -> PathBuf {
    let data = to.join("data");
    std::fs::create_dir_all(to).unwrap();
    assert!(Command::new("cp").arg("-a").arg(recorded()).arg(&data).status().unwrap().success());
    data
}

/// Runs `promtool` (Debian's `prometheus` package; .ci/run installs it) with `stdin`.
/// A machine without it fails the test, saying how to install it: the metrics and
/// alert-rule checks are never skipped.
pub fn promtool(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install it (Debian: apt-get install prometheus, with a \
                 /usr/sbin/policy-rc.d that exits 101 so the server does not start; .ci/run does this)"
            )
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// `promtool check metrics` accepts `body` (a `/metrics` body) without a single lint warning.
pub fn assert_promtool_accepts_metrics(body: &str) {
    let o = promtool(&["check", "metrics"], body);
    let said = text(&o);
    assert!(o.status.success() && said.trim().is_empty(), "promtool check metrics: {}\n{said}\n{body}", o.status);
}

/// The body of a GET on the collector's HTTP surface (head dropped).
pub fn http_body(addr: &str, path: &str) -> String {
    let response = http_get(addr, path);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response head: {response}"));
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

/// The value of `series` in a `/metrics` body: a name, with its labels as exposed
/// (`stock_observer_slots_assigned{provider="kis",market="kr_stocks"}`).
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A new API key of `scope` for the data dir `data` (`stock-observer apikey create` prints
/// only the key on stdout).
pub fn api_key(data: &Path, scope: &str) -> String {
    let out = run(cmd().args(["apikey", "create", "--scope", scope, "--data-dir"]).arg(data));
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

//! The dashboard at `/` in a real browser: Debian's headless Chromium, driven by
//! `tools/browser/dashboard.mjs` (playwright-core), against a running `collect` whose
//! database holds a recorded morning with a disconnect. The page must sign in through its
//! form, draw candles, sparklines fed by the live stream, the providers' status and the
//! day's gaps, in Korean time although the browser's zone is New York, with no console or
//! page error and no request leaving 127.0.0.1. Nothing is skipped: a machine without
//! Chromium or the script's packages fails, saying how to install them (tools/test-deps.sh).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::*;
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Signs the dashboard's session cookies in this test (the server refuses sessions without one).
const JWT_SECRET: &str = "dashboard-test-secret-0123456789abcdef";
/// A large cap the simulated market always lists and the slots always hold at 10:00.
const SYMBOL: &str = "005930";

/// The collector, stopped with Ctrl-C even when an assertion fails first.
struct Collector(Child);

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn tools_browser() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/browser")
}

/// A GET with extra header lines; (status, head, body).
fn get(addr: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

#[test]
fn the_dashboard_signs_in_and_renders_live_data_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (bash tools/test-deps.sh does, as make test and CI do)"
    );
    assert!(
        tools_browser().join("node_modules/playwright-core").exists(),
        "tools/browser has no node_modules: run bash tools/test-deps.sh (npm ci there)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // A morning with a disconnect at 10:02 on both venues, loaded into the database: the
    // candles (bars are built by the ETL) and the day's gaps and overflow come from it.
    let out = run(cmd()
        .args(["collect", "--speed", "120", "--start", "2026-01-14T10:00", "--until", "10:06"])
        .args(["--fault", "ws_disconnect@10:02:00+30s", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__PROVIDERS__UPBIT__ENABLED", "true")
        // The day must not become an anomaly day on a full test machine.
        .env("STOCK_OBSERVER__ANOMALY__MAX_DISK_PERCENT", "100"));
    assert!(out.status.success(), "{}", text(&out));
    let out = run(cmd().args(["etl", "--date", "20260114", "--migrate", "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
    let key = api_key(&data, "admin");

    // The same day, live: the page's status, stream and sparklines come from this run.
    let (child, addr) = spawn_serving(
        cmd()
            .args(["collect", "--start", "2026-01-14T10:07", "--duration", "10m", "--data-dir"])
            .arg(&data)
            .env("STOCK_OBSERVER__PROVIDERS__UPBIT__ENABLED", "true")
            .env("STOCK_OBSERVER__ANOMALY__MAX_DISK_PERCENT", "100")
            .env("STOCK_OBSERVER__STORE__LIVE_SINK__ENABLED", "true")
            .env("STOCK_OBSERVER_JWT_SECRET", JWT_SECRET),
    );
    let collector = Collector(child);

    // The page and its assets over the wire: the policy, the types, the validators.
    let (status, head, page) = get(&addr, "/", "");
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "content-security-policy"), Some("default-src 'self'"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"), "{head}");
    assert!(String::from_utf8_lossy(&page).contains("<form id=\"login-form\""));
    for (path, ty) in [
        ("/assets/dashboard.js", "text/javascript; charset=utf-8"),
        ("/assets/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ("/assets/dashboard.css", "text/css; charset=utf-8"),
        ("/assets/uPlot.min.css", "text/css; charset=utf-8"),
    ] {
        let (status, head, body) = get(&addr, path, "");
        assert_eq!((status, header(&head, "content-type")), (200, Some(ty)), "{path}: {head}");
        assert!(!body.is_empty(), "{path}");
        let etag = header(&head, "etag").unwrap_or_else(|| panic!("{path} has no ETag: {head}")).to_string();
        let (status, head, body) = get(&addr, path, &format!("If-None-Match: {etag}\r\n"));
        assert_eq!((status, body.len()), (304, 0), "{path} with its ETag: {head}");
    }
    // What the candle chart will show must be there, or a blank chart would look like a page bug.
    let (status, _, bars) = get(&addr, &format!("/api/v1/bars/{SYMBOL}?interval=1m"), &format!("X-API-Key: {key}\r\n"));
    let bars: Value = serde_json::from_slice(&bars).unwrap();
    assert!(status == 200 && bars["bars"].as_array().is_some_and(|b| !b.is_empty()), "{status} {bars}");

    let shot = dir.path().join("dashboard.png");
    let out = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(tools_browser())
        .env("DASHBOARD_URL", format!("http://{addr}/"))
        .env("DASHBOARD_API_KEY", &key)
        .env("DASHBOARD_SYMBOL", SYMBOL)
        .env("DASHBOARD_SCREENSHOT", &shot)
        .env("CHROMIUM", CHROMIUM)
        // Both venues' disconnects.
        .env("DASHBOARD_MIN_GAPS", "2")
        .output()
        .expect("running node (Debian's nodejs; bash tools/test-deps.sh installs it)");
    let said = text(&out);
    let report: Value = said
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("the browser script printed no report: {said}"));
    assert!(out.status.success() && report["ok"] == true, "the dashboard failed in Chromium: {report:#}");
    let seen = &report["seen"];
    assert!(seen["candles"].as_u64() > Some(0), "{seen:#}");
    // The recording's bars are of 10:00 to 10:05 Seoul time (01:0x UTC, 20:0x the day before
    // in New York, the browser's zone): the page must label them in Seoul time.
    let first = seen["first_candle_kst"].as_str().unwrap();
    assert!(first.starts_with("2026-01-14 10:0"), "first candle at {first} (Seoul time expected): {seen:#}");
    assert!(seen["sparklines"].as_u64() > Some(0) && seen["samples"].as_u64() > Some(0), "{seen:#}");
    assert!(seen["gaps"].as_u64() >= Some(2) && seen["overflow"].as_u64() > Some(0), "{seen:#}");
    let providers: Vec<&str> = seen["providers"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(providers, ["kis / kr_stocks", "upbit / crypto"], "{seen:#}");
    assert!(seen["clock"].as_str().unwrap().starts_with("2026-01-14 10:"), "{seen:#}");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 0), "no screenshot");
    // Refreshing docs/dashboard.png: run this test with the variable set to its path.
    if let Some(to) = std::env::var_os("STOCK_OBSERVER_DASHBOARD_SCREENSHOT") {
        std::fs::copy(&shot, to).unwrap();
    }
    drop(collector);
}

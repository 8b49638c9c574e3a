//! `/api/v1` from the binary: `collect` serves it beside `/health` (its status is /health's
//! figures, its ticks what the live sink stored), and `serve` answers over a data dir
//! without collecting and refuses a public address with no key.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn get_json(addr: &str, path: &str, key: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status: u16 = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn collect_serves_api_v1_with_the_recorded_ticks_and_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = api_key(&data, "read");
    let (mut child, addr) = spawn_serving(
        cmd()
            .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00"])
            .arg("--data-dir")
            .arg(&data)
            .env("STOCK_OBSERVER__STORE__LIVE_SINK__ENABLED", "true"),
    );

    // The live sink stores trades as they come; /api/v1 reads them back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let latest = loop {
        let (status, body) = get_json(&addr, "/api/v1/latest/005930", &key);
        if status == 200 {
            break body;
        }
        // Until the first trade is stored: 404; before the schema is migrated: 503.
        assert!(status == 404 || status == 503, "{status} {body}");
        assert!(Instant::now() < deadline, "no trade of 005930 reached /api/v1 in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(latest["price"].is_string(), "prices are decimal strings: {latest}");
    let (status, ticks) = get_json(&addr, "/api/v1/ticks/005930?limit=5", &key);
    assert_eq!(status, 200, "{ticks}");
    assert!(!ticks["ticks"].as_array().unwrap().is_empty());

    let health: Value = serde_json::from_str(&http_body(&addr, "/health")).unwrap();
    let (status, st) = get_json(&addr, "/api/v1/status", &key);
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["session_id"], health["session_id"]);
    // Per provider, adding up to the run's figures.
    let per = st["per_provider"].as_array().unwrap();
    assert!(!per.is_empty(), "{st}");
    let sum = |k: &str| per.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("slot_capacity"), st["slot_capacity"].as_u64().unwrap(), "{st}");
    assert_eq!(sum("universe"), st["universe"].as_u64().unwrap(), "{st}");
    assert_eq!(get_json(&addr, "/api/v1/status", "so_0000000000000000_nope").0, 401);

    // Slots inside collect: each running provider with its counts and its newest decision,
    // read from the archive's events file (the live sink does not load events) once the
    // archive has written it out.
    let deadline = Instant::now() + Duration::from_secs(15);
    let slots = loop {
        let (status, slots) = get_json(&addr, "/api/v1/slots", &key);
        assert_eq!(status, 200, "{slots}");
        if slots["providers"].as_array().unwrap().iter().any(|p| p["decided_at"].is_string()) {
            break slots;
        }
        assert!(Instant::now() < deadline, "no slot decision reached /api/v1/slots in 15 s: {slots}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let providers = slots["providers"].as_array().unwrap();
    let running: Vec<&Value> = providers.iter().filter(|p| p["capacity"].is_u64()).collect();
    assert!(!running.is_empty(), "{slots}");
    for p in &running {
        assert!(p["assigned"].as_u64().unwrap() <= p["capacity"].as_u64().unwrap(), "{slots}");
        assert!(p["connection"].is_string(), "{slots}");
        // The decision is read from the archive while the day is not loaded yet.
        if p["assigned"].as_u64() > Some(0) {
            assert!(p["decided_at"].is_string() && !p["symbols"].as_array().unwrap().is_empty(), "{slots}");
        }
    }
    assert!(slots["hz"].is_number() && slots["level"].is_u64(), "{slots}");

    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_answers_without_collecting_and_refuses_a_public_address_with_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = run(cmd()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__HTTP__ALLOW_REMOTE", "true"));
    let t = text(&out);
    assert!(!out.status.success() && t.contains("refusing to serve /api/v1 on 0.0.0.0:0 with no API key"), "{t}");

    let key = api_key(&data, "read");
    let out = run(cmd().args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data));
    let t = text(&out);
    assert!(!out.status.success() && t.contains("migration(s) pending: run `stock-observer db migrate"), "{t}");
    let out = run(cmd().args(["db", "migrate", "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
    let (mut child, addr, _log) = spawn_api(cmd().args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data));
    let (status, body) = get_json(&addr, "/api/v1/gaps?date=20260114", &key);
    assert_eq!((status, body["gaps"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let (status, body) = get_json(&addr, "/api/v1/status", &key);
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no collector runs in this process"));
    let _ = child.kill();
    let _ = child.wait();
}

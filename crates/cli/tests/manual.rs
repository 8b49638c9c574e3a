//! Manual override (seed 001 §2.5, trigger 4) changed while recording: edit the config file,
//! send SIGHUP, and the symbol gets a slot at the next decision. A broken edit is refused
//! with a message and recording goes on.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{cmd, lines_under};

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(sig: &str, pid: u32) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn sighup_applies_a_changed_manual_override_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("observer.yaml");
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/observer.yaml")).unwrap();
    std::fs::write(&config, &base).unwrap();
    let mut child = cmd()
        .args(["collect", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["--speed", "60", "--start", "2026-11-23T10:00", "--duration", "40s"])
        .env("STOCK_OBSERVER__SIM__SYMBOLS", "300")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The last universe symbol: not among the first slots, and quiet enough not to win one
    // on its own score before the override.
    let uni = data.join("universe/20261123_kr_stocks.json");
    wait_for("the universe file", Duration::from_secs(30), || uni.exists());
    let u: serde_json::Value = serde_json::from_slice(&std::fs::read(&uni).unwrap()).unwrap();
    let pick = u["symbols"].as_array().unwrap().last().unwrap()["symbol"].as_str().unwrap().to_string();

    // A broken edit first: refused, nothing changes, recording goes on.
    std::fs::write(&config, base.replace("manual_include: []", "manual_include: 5")).unwrap();
    signal("-HUP", child.id());
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait().unwrap().is_none(), "a bad reload must not stop the run");

    std::fs::write(&config, base.replace("manual_include: []", &format!("manual_include: [\"{pick}\"]"))).unwrap();
    signal("-HUP", child.id());
    let events = data.join("system/events/kis");
    let holds_slot = || {
        lines_under(&events).iter().any(|e| {
            e["event_type"] == "slot_decision"
                && e["added"].as_array().is_some_and(|a| a.iter().any(|s| s == pick.as_str()))
                && e["slots"].as_array().is_some_and(|a| a.iter().any(|s| s == pick.as_str()))
        })
    };
    wait_for("the override's slot decision", Duration::from_secs(30), holds_slot);
    std::thread::sleep(Duration::from_secs(2)); // some samples of the new slot
    signal("-INT", child.id()); // Ctrl-C: a clean shutdown
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("SIGHUP: configuration not reloaded") && stderr.contains("manual_include"), "{stderr}");
    assert!(stderr.contains(&format!("manual override include [\"{pick}\"]")), "{stderr}");
    // Its samples are recorded from then on.
    let sampled = lines_under(&data.join("scalp")).iter().any(|s| s["symbol"] == pick.as_str());
    assert!(sampled, "{pick} must be sampled once it holds a slot");
}

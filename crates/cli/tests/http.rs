//! The HTTP surface at start-up (issue 14, part 3): a non-loopback `http.listen` is refused
//! unless `http.allow_remote`, and a taken port costs the HTTP surface, not the recording.
//! `/metrics` of a two-provider run passes promtool's lint and names every series the
//! alerting rules (deploy/prometheus/rules.yml) read (issue 17).

mod common;

use common::*;

#[test]
fn a_non_loopback_listen_is_refused_without_allow_remote() {
    for sub in [&["config"][..], &["collect", "--speed", "60", "--duration", "1s", "--data-dir", "/nonexistent/never"]]
    {
        let o = run(cmd().args(sub).env("STOCK_OBSERVER__HTTP__LISTEN", "0.0.0.0:9464"));
        let t = text(&o);
        assert!(!o.status.success(), "{sub:?}: {t}");
        assert!(t.contains("http.listen") && t.contains("0.0.0.0:9464"), "{sub:?} names the key and value: {t}");
        assert!(t.contains("no authentication") && t.contains("STOCK_OBSERVER__HTTP__ALLOW_REMOTE"), "{sub:?}: {t}");
    }
    let o = run(cmd()
        .args(["config"])
        .env("STOCK_OBSERVER__HTTP__LISTEN", "0.0.0.0:9464")
        .env("STOCK_OBSERVER__HTTP__ALLOW_REMOTE", "true"));
    assert!(o.status.success(), "allowed explicitly: {}", text(&o));
}

#[test]
fn http_limits_are_validated_at_start_up() {
    let o = run(cmd().args(["config"]).env("STOCK_OBSERVER__HTTP__MAX_REQUEST_HEAD_BYTES", "100"));
    let t = text(&o);
    assert!(!o.status.success() && t.contains("http.max_request_head_bytes"), "{t}");
    let o = run(cmd().args(["config"]).env("STOCK_OBSERVER__HTTP__MAX_CONNECTIONS", "0"));
    let t = text(&o);
    assert!(!o.status.success() && t.contains("http.max_connections"), "{t}");
}

#[test]
fn a_taken_port_is_a_warning_and_collect_keeps_recording() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let o = run(cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--duration", "2s", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__HTTP__LISTEN", &addr));
    let t = text(&o);
    assert!(o.status.success(), "collect failed on a taken port: {t}");
    assert!(t.contains("WARN") && t.contains(&format!("cannot listen on {addr}")), "warned: {t}");
    assert!(t.contains("recording continues without /health and /metrics"), "{t}");
    assert!(!t.contains("health: http://"), "no HTTP surface claimed: {t}");
    assert!(count_lines_under(&data.join("raw")) > 0, "recorded: {t}");
    drop(taken);
}

/// The families a `/metrics` body declares (`# TYPE` lines), each with its type.
fn families(body: &str) -> Vec<(&str, &str)> {
    body.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' ')).collect()
}

#[test]
fn metrics_follow_prometheus_conventions_per_provider_and_cover_the_alert_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_serving(
        cmd()
            .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--duration", "60s", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("STOCK_OBSERVER__PROVIDERS__UPBIT__ENABLED", "true"),
    );
    // Both providers started and sampling.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let body = loop {
        let body = http_body(&addr, "/metrics");
        let slots = |p: &str, m: &str| {
            metric(&body, &format!("stock_observer_slots_assigned{{provider=\"{p}\",market=\"{m}\"}}")).unwrap_or(0.0)
        };
        if slots("kis", "kr_stocks") > 0.0 && slots("upbit", "crypto") > 0.0 {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "both providers never sampled:\n{body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();

    assert_promtool_accepts_metrics(&body);
    // Every family is declared once, with help; counters (and only they) end in _total.
    let declared = families(&body);
    let mut names: Vec<&str> = declared.iter().map(|(n, _)| *n).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), declared.len(), "a family declared twice:\n{body}");
    for (name, kind) in &declared {
        assert!(body.contains(&format!("# HELP {name} ")), "{name} has no help");
        assert_eq!(*kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        assert!(name.starts_with("stock_observer_") || name.starts_with("process_"), "{name}: no prefix");
    }
    // Series of one provider are labelled, never summed over providers.
    for family in [
        "stock_observer_connection_state",
        "stock_observer_stream_disconnected_seconds",
        "stock_observer_universe_symbols",
        "stock_observer_slots_assigned",
        "stock_observer_slots_streaming",
        "stock_observer_slot_capacity",
        "stock_observer_frame_queue_length",
        "stock_observer_frame_queue_bytes",
        "stock_observer_archive_lines_saved_total",
        "stock_observer_archive_saved_bytes_total",
    ] {
        for p in ["kis", "upbit"] {
            let labelled = format!("{family}{{provider=\"{p}\"");
            assert!(body.lines().any(|l| l.starts_with(&labelled)), "no {labelled}…}} series:\n{body}");
        }
        assert!(!body.lines().any(|l| l.starts_with(&format!("{family} "))), "{family} without provider");
    }
    // One connection state per provider, the current one.
    for p in ["kis", "upbit"] {
        let states: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with(&format!("stock_observer_connection_state{{provider=\"{p}\"")))
            .collect();
        assert_eq!(states.len(), 5, "{states:?}");
        assert_eq!(states.iter().filter(|l| l.ends_with(" 1")).count(), 1, "{states:?}");
    }
    for gauge in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
        "stock_observer_archive_files_open",
        "stock_observer_data_filesystem_used_bytes",
        "stock_observer_data_filesystem_avail_bytes",
        "stock_observer_archive_last_durable_write_timestamp_seconds",
    ] {
        assert!(metric(&body, gauge).is_some_and(|v| v > 0.0), "{gauge} missing or 0:\n{body}");
    }
    // Nothing was backed up yet in a fresh data dir: 0, not absent (the alert needs it).
    assert_eq!(metric(&body, "stock_observer_backup_last_success_timestamp_seconds"), Some(0.0));

    // Every series the alerting rules read exists: a misspelt name would never fire.
    let rules =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus/rules.yml")).unwrap();
    let read: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| ["stock_observer_", "process_"].iter().any(|p| t.len() > p.len() && t.starts_with(p)))
        .collect();
    assert!(read.len() >= 15, "{read:?}");
    for name in read {
        assert!(names.contains(&name), "rules.yml reads {name}, which /metrics does not have");
    }
}

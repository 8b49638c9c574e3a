//! The HTTP surface at start-up (issue 14, part 3): a non-loopback `http.listen` is refused
//! unless `http.allow_remote`, and a taken port costs the HTTP surface, not the recording.

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

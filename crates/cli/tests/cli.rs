//! The command line a user meets: help, bad input, bad config, verify's exit code.

mod common;

use common::*;

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["collect", "--help"],
        vec!["verify", "--help"],
        vec!["bench", "pipeline", "--help"],
        vec!["config", "--help"],
    ] {
        let o = run(cmd().args(&sub));
        assert!(o.status.success(), "{sub:?}: {}", text(&o));
        assert!(text(&o).contains("Usage"), "{sub:?}");
    }
}

#[test]
fn bench_pipeline_passes_every_tick_for_each_provider() {
    // Small runs of the benchmark docs/benchmarks.md records, so a mapper change (a KIS trade
    // record now also yields its quote) cannot break the command unnoticed.
    for (provider, per_frame) in [("kis", "1"), ("kis", "3"), ("sim", "1")] {
        let dir = tempfile::tempdir().unwrap();
        let o = run(cmd()
            .args(["bench", "pipeline", "--ticks", "3000", "--provider", provider, "--records-per-frame", per_frame])
            .arg("--data-dir")
            .arg(dir.path().join("bench")));
        let t = text(&o);
        assert!(o.status.success(), "{provider} x{per_frame}: {t}");
        assert!(t.contains("bench pipeline: 3000 ticks"), "{t}");
    }
}

#[test]
fn bench_api_checks_every_answer_and_reports_both_routes() {
    // A short run of the benchmark docs/benchmarks.md records: the server it starts must
    // refuse a keyless request, answer exactly what was seeded, and the report must count
    // answers (a run with errors exits non-zero).
    let dir = tempfile::tempdir().unwrap();
    let o = run(cmd()
        .args([
            "bench",
            "api",
            "--clients",
            "4",
            "--duration",
            "1s",
            "--warmup",
            "1s",
            "--ticks",
            "2000",
            "--symbols",
            "3",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("bench")));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let report: serde_json::Value =
        serde_json::from_str(t.lines().find(|l| l.starts_with('{')).expect("JSON line")).unwrap();
    for route in ["latest", "bars 1d, 1 year"] {
        let r = &report[route];
        assert_eq!(r["errors"], 0, "{route}: {t}");
        assert!(r["requests"].as_u64().unwrap() > 0, "{route}: no answers: {t}");
        assert!(r["p99_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap(), "{route}: {t}");
    }
}

#[test]
fn bad_flags_get_one_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["collect", "--speed", "0"], "must be a number above 0"),
        (&["collect", "--speed", "fast"], "must be a number above 0"),
        (&["collect", "--duration", "soon"], "not a duration"),
        (&["collect", "--until", "25:00"], "HH:MM"),
        (&["collect", "--start", "2026-13-01T09:00"], "YYYY-MM-DDTHH:MM"),
        (&["collect", "--bogus"], "unexpected argument"),
        (&["verify", "--date", "2026-01-14"], "YYYYMMDD"),
        (&["collect", "--config", "/nonexistent/observer.yaml"], "/nonexistent/observer.yaml not found"),
    ];
    for (args, want) in cases {
        let o = run(cmd().args(*args));
        assert!(!o.status.success(), "{args:?} succeeded");
        let t = text(&o);
        assert!(t.contains(want), "{args:?}: expected {want:?} in:\n{t}");
        assert!(!t.contains("panicked"), "{args:?} panicked:\n{t}");
    }
}

#[test]
fn bad_config_values_name_source_key_and_value() {
    let o = run(cmd().args(["config"]).env("STOCK_OBSERVER__ARCHIVE__SCALP_WINDOW", "7m"));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("STOCK_OBSERVER__ARCHIVE__SCALP_WINDOW") && t.contains("archive.scalp_window"), "{t}");
    let o = run(cmd().args(["config"]).env("APP_ENV", "prod"));
    assert!(!o.status.success() && text(&o).contains("local, development, staging, production"), "{}", text(&o));
    for env in ["local", "development", "staging"] {
        let o = run(cmd().args(["config"]).env("APP_ENV", env));
        assert!(o.status.success() && text(&o).contains(&format!("configs/{env}.yaml")), "{}", text(&o));
    }
    let o = run(cmd().args(["config"]).env("APP_ENV", "production"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("\"09:30:00\""), "production overlay sets the seed's Track B window");
}

#[test]
fn slots_the_stream_cannot_carry_are_refused_before_anything_is_recorded() {
    // 41 slots + full books for 5 of them = 46 registrations on a 41-registration session.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = run(cmd()
        .args(["collect", "--speed", "60", "--duration", "20s", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__PROVIDERS__KIS__ORDERBOOK_SLOTS", "5"));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("tracks.scalp.slots 41 does not fit") && t.contains("= 46") && t.contains("at most 36 slot(s) fit"),
        "{t}"
    );
    assert!(lines_under(&data).is_empty(), "nothing may be recorded for a configuration that cannot be met");
    // What fits runs: 36 slots, the top 5 with full books.
    let o = run(cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--duration", "3s", "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__PROVIDERS__KIS__ORDERBOOK_SLOTS", "5")
        .env("STOCK_OBSERVER__TRACKS__SCALP__SLOTS", "36"));
    assert!(o.status.success(), "{}", text(&o));
    let raw = lines_under(&data.join("raw"));
    let books = raw.iter().filter(|l| l["kind"] == "sent" && l["channel"] == "H0STASP0").count();
    assert_eq!(books, 5, "full books for the top 5 slots only");
}

#[test]
fn an_unreachable_or_wrong_database_is_named_with_the_reason() {
    // A port nobody listens on: the error must say why, not only "error connecting".
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://observer@127.0.0.1:{port}/ticks");
    // The documented password variable is taken as a secret, not refused as an unknown setting.
    let o = run(cmd()
        .args(["db", "status", "--url", &url, "--data-dir"])
        .arg(dir.path())
        .env("STOCK_OBSERVER__STORE__PASSWORD", "pw-not-to-echo"));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains(&format!("127.0.0.1:{port}")) && t.to_lowercase().contains("refused"), "{t}");
    assert!(!t.contains("panicked") && !t.contains("pw-not-to-echo"), "{t}");

    let o =
        run(cmd().args(["db", "migrate", "--url", "mysql://observer@localhost/ticks", "--data-dir"]).arg(dir.path()));
    assert!(!o.status.success());
    assert!(text(&o).contains("expected postgres://, postgresql:// or sqlite://"), "{}", text(&o));
}

#[test]
fn a_database_password_comes_from_the_environment_and_is_never_echoed() {
    let pg = store::testing::PgServer::start_with_password("s3cret-pw")
        .unwrap_or_else(|e| panic!("PostgreSQL could not start: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let db = |sub: &str, password: Option<&str>| {
        let mut c = cmd();
        c.args(["db", sub, "--url", &pg.url(), "--data-dir"]).arg(dir.path()).env_remove("PGPASSWORD");
        if let Some(pw) = password {
            c.env("STOCK_OBSERVER__STORE__PASSWORD", pw);
        }
        run(&mut c)
    };

    let o = db("status", None);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("password missing") && text(&o).contains("STOCK_OBSERVER__STORE__PASSWORD"),
        "{}",
        text(&o)
    );

    let o = db("status", Some("wrong-pw"));
    assert!(!o.status.success());
    assert!(text(&o).contains("password authentication failed"), "{}", text(&o));
    assert!(!text(&o).contains("wrong-pw"), "{}", text(&o));

    for sub in ["migrate", "status"] {
        let o = db(sub, Some("s3cret-pw"));
        assert!(o.status.success(), "{sub}: {}", text(&o));
        assert!(text(&o).contains("005_identifier_collation"), "{sub}: {}", text(&o));
        assert!(!text(&o).contains("s3cret-pw"), "{sub}: {}", text(&o));
    }
}

#[test]
fn a_second_collector_is_told_what_is_in_its_way() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let (data, other) = (dir.path().join("data"), dir.path().join("other"));
    let collect = |data: &std::path::Path, duration: &str| {
        let mut c = cmd();
        c.args(["collect", "--speed", "60", "--duration", duration, "--data-dir"])
            .arg(data)
            .env("STOCK_OBSERVER__HTTP__LISTEN", &listen);
        c
    };
    let mut first =
        collect(&data, "60s").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let lock = data.join(".lock");
    while !std::fs::File::open(&lock)
        .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
    {
        assert!(std::time::Instant::now() < deadline, "the first collector never took its lock");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Same data dir (and port): the data dir is what is in the way.
    let o = run(&mut collect(&data, "2s"));
    assert!(!o.status.success());
    assert!(text(&o).contains("another collector is using data dir"), "{}", text(&o));
    // Another data dir, same port: the port is named, with how to choose another, and the
    // run records without its HTTP surface (issue 14: a port conflict is a warning).
    let o = run(&mut collect(&other, "2s"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("cannot listen on {listen}")) && text(&o).contains("STOCK_OBSERVER__HTTP__LISTEN"),
        "{}",
        text(&o)
    );
    assert!(count_lines_under(&other.join("raw")) > 0, "the second data dir was recorded: {}", text(&o));

    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn incomplete_credentials_are_refused_without_echoing_them() {
    let o = run(cmd().args(["collect", "--duration", "1s"]).env("KIS_APP_KEY", "PSsecretKEY123"));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("KIS_APP_SECRET"), "{t}");
    assert!(!t.contains("PSsecretKEY123"), "secret echoed: {t}");
}

#[test]
fn verify_fails_on_a_missing_data_dir_and_a_damaged_file() {
    let o = run(cmd().args(["verify", "--data-dir", "/nonexistent/data"]));
    assert!(!o.status.success() && text(&o).contains("does not exist"));

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let o = run(cmd()
        .args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--duration", "2s", "--data-dir"])
        .arg(&data));
    assert!(o.status.success(), "{}", text(&o));
    assert!(run(cmd().args(["verify", "--data-dir"]).arg(&data)).status.success());
    let raw = data.join("raw/kis/20260114/10.jsonl");
    let mut bytes = std::fs::read(&raw).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&raw, bytes).unwrap();
    let o = run(cmd().args(["verify", "--data-dir"]).arg(&data));
    assert!(!o.status.success());
    assert!(text(&o).contains("raw/kis/20260114/10.jsonl") && text(&o).contains("sha256"), "{}", text(&o));
}

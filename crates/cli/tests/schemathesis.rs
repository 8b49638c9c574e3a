//! schemathesis (`st run … --checks all`, fixed seed) against `stock-observer serve` over an
//! ETL-loaded fixture day, twice: with an admin key (every route reachable; no 5xx, every
//! response matches the OpenAPI document, auth not ignored) and with no credential (every
//! call 401: tools/schemathesis/hooks.py). `make test-deps` installs schemathesis into
//! tools/schemathesis/.venv; this test fails, never skips, when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const DATE: &str = "20260114";
/// Fixed, so a failure reproduces.
const SEED: &str = "1";
const EXAMPLES: &str = "20";
/// A test secret for dashboard sessions, so `POST /api/v1/session` is exercised too.
const JWT_SECRET: &str = "schemathesis-test-secret-0123456789abcdef";

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/schemathesis")
}

fn st() -> PathBuf {
    let st = tools().join(".venv/bin/st");
    assert!(
        st.is_file(),
        "{} is missing: run `make test-deps` (tools/test-deps.sh installs schemathesis)",
        st.display()
    );
    st
}

fn st_run(url: &str, key: Option<&str>) -> (bool, String) {
    let mut c = Command::new(st());
    c.current_dir(tools())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", tools())
        .args(["--config-file", "schemathesis.toml", "run", url, "--checks", "all", "--seed", SEED])
        .args(["--max-examples", EXAMPLES]);
    match key {
        Some(k) => c.args(["-H", &format!("Authorization: Bearer {k}")]),
        None => c.env("ST_EXPECT_UNAUTHORIZED", "1"),
    };
    let out = c.output().expect("run schemathesis");
    (out.status.success(), text(&out))
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_mismatch_with_and_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    store::testing::fixture::write_day(&data, &store::testing::fixture::DaySpec::small(DATE)).unwrap();
    let out = run(cmd().args(["etl", "--migrate", "--date", DATE, "--data-dir"]).arg(&data));
    assert!(out.status.success(), "{}", text(&out));
    let key = api_key(&data, "admin");

    let log = dir.path().join("serve.log");
    let (mut child, addr, lines) = spawn_api(
        cmd()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("STOCK_OBSERVER_JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "info"),
    );
    // Keep draining the log (a full pipe would stall the server) into a file to search.
    let drain = std::thread::spawn(move || {
        let mut all = String::new();
        for l in lines.map_while(Result::ok) {
            all.push_str(&l);
            all.push('\n');
        }
        std::fs::write(&log, &all).unwrap();
        all
    });
    let url = format!("http://{addr}/api/v1/openapi.json");

    let doc: serde_json::Value = serde_json::from_str(&http_body(&addr, "/api/v1/openapi.json")).expect("openapi.json");
    let with_key = st_run(&url, Some(&key));
    let without = st_run(&url, None);
    let _ = child.kill();
    let _ = child.wait();
    let served_log = drain.join().unwrap();

    assert!(with_key.0, "schemathesis with an admin key failed:\n{}", with_key.1);
    assert!(without.0, "schemathesis without a credential failed:\n{}", without.1);
    // Both runs exercised every operation the document names (counted from the document, so
    // a route added later is held to the same bar).
    let operations: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    for (name, (_, out)) in [("with key", &with_key), ("without", &without)] {
        let tested = format!("Tested: {operations}");
        assert!(out.contains(&tested), "{name}: not every operation ({operations}) was tested:\n{out}");
    }
    let secret = key.rsplit('_').next().unwrap();
    assert!(!served_log.contains(secret), "the API key's secret is in the server's log");
    assert!(!served_log.contains(JWT_SECRET), "the JWT secret is in the server's log");
}

//! Broker credentials from the environment, and the access token and approval key the
//! broker issues, appear in no log line, error message, panic output or archive file —
//! neither in clear nor hex-encoded (as wire-level trace logs print buffers) — through a whole
//! live run against the fake KIS server with every log level on.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::*;

/// A KIS-shaped pair (36-character key, 180-character secret): `sim` accepts the pair in
/// KIS_APP_KEY / KIS_APP_SECRET.
const KEY: &str = "PSsecretsTESTappKEY00000000000000000";
const SECRET: &str = concat!(
    "secretsTESTappSECRET",
    "0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij",
    "0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij",
);

/// Every level on, and the wire crates asked for by name: the log filter must hold them
/// back whatever `RUST_LOG` says.
const RUST_LOG_ALL: &str = "trace,tungstenite=trace,tokio_tungstenite=trace,hyper=trace,hyper_util=trace,\
                            h2=trace,reqwest=trace,rustls=trace,tokio_postgres=trace";

/// The forms a secret could be written in: clear, and hex of its bytes in either case.
fn forms(secret: &str) -> [String; 3] {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    [secret.to_string(), hex.clone(), hex.to_uppercase()]
}

/// The secrets (by name) found in `text` in any of their [`forms`].
fn found_in(text: &str, secrets: &[(&str, String)]) -> Vec<String> {
    secrets
        .iter()
        .filter(|(_, s)| forms(s).iter().any(|f| text.contains(f.as_str())))
        .map(|(name, _)| name.to_string())
        .collect()
}

fn leaks_under(dir: &Path, secrets: &[(&str, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(leaks_under(&p, secrets));
        } else if let Ok(bytes) = std::fs::read(&p) {
            for name in found_in(&String::from_utf8_lossy(&bytes), secrets) {
                out.push(format!("{name} in {}", p.display()));
            }
        }
    }
    out
}

/// A TCP relay on loopback in front of `upstream` that keeps a copy of every answer, so the
/// test learns the token and approval key the fake issued to the recorder.
fn tap(upstream: &str) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
    let copy = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else { continue };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out, copy) = (server, client, copy.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    copy.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// The string value of `"field":"…"` in the relayed answers.
fn issued(seen: &[u8], field: &str) -> Option<String> {
    let text = String::from_utf8_lossy(seen);
    let start = text.find(&format!("\"{field}\":\""))? + field.len() + 4;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_string())
}

#[test]
fn kis_key_and_secret_never_leak() {
    assert_eq!((KEY.len(), SECRET.len()), (36, 180));
    let mut sim = cmd()
        .args(["sim", "--speed", "1"])
        .env("KIS_APP_KEY", KEY)
        .env("KIS_APP_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    let kis = lines.next().unwrap().unwrap();
    let words: Vec<&str> = kis.split_whitespace().collect();
    let (rest, ws, master) = (words[2], words[4], words[7]);

    let (rest, seen) = tap(rest);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cmd()
        .args(["collect", "--duration", "4s", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", RUST_LOG_ALL)
        .env("KIS_APP_KEY", KEY)
        .env("KIS_APP_SECRET", SECRET)
        .env("STOCK_OBSERVER__SOURCE", "live")
        .env("STOCK_OBSERVER__PROVIDERS__KIS__REST_BASE", &rest)
        .env("STOCK_OBSERVER__PROVIDERS__KIS__WS_BASE", ws)
        .env("STOCK_OBSERVER__PROVIDERS__KIS__MASTER_BASE", master)
        .env("STOCK_OBSERVER__PROVIDERS__KIS__TOKEN_CACHE", data.join("state/kis_token.json")));
    let _ = sim.kill();
    let _ = sim.wait();
    // The sim says it took the pair from the environment, without printing it (it prints
    // only a pair it made up itself).
    let sim_out: Vec<String> = std::iter::once(kis.clone()).chain(lines.map_while(Result::ok)).collect();
    assert!(sim_out.iter().any(|l| l.contains("KIS_APP_KEY")), "{sim_out:?}");
    assert!(sim_out.iter().all(|l| !l.contains(KEY) && !l.contains(SECRET)), "{sim_out:?}");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // The run really used the credentials: start-up obtained a token (cached) and an
    // approval key. (Whether it also subscribed depends on the wall clock: the stream only
    // connects around Track B's window on trading days.)
    assert!(data.join("state/kis_token.json").is_file(), "no token was obtained:\n{t}");
    let raw = lines_under(&data.join("raw/kis"));
    let subscribed = raw.iter().any(|l| l["kind"] == "sent" && l["frame"].as_str().unwrap_or("").contains("H0STCNT0"));
    eprintln!("subscribed during the run: {subscribed}");
    let seen = seen.lock().unwrap().clone();
    let token = issued(&seen, "access_token").expect("the recorder obtained no access token");
    let approval = issued(&seen, "approval_key").expect("the recorder obtained no approval key");
    let secrets = [
        ("app key", KEY.to_string()),
        ("app secret", SECRET.to_string()),
        ("access token", token),
        ("approval key", approval),
    ];
    assert_eq!(found_in(&t, &secrets), Vec::<String>::new(), "a secret leaked into the output");
    assert_eq!(leaks_under(&data, &secrets), Vec::<String>::new(), "a secret leaked into these files");

    // A wrong secret is refused with an error that does not echo it either.
    let wrong = "wrong-secret-value-123";
    let out = run(cmd()
        .args(["collect", "--duration", "2s", "--data-dir"])
        .arg(dir.path().join("d2"))
        .env("KIS_APP_KEY", KEY)
        .env("KIS_APP_SECRET", wrong)
        .env("STOCK_OBSERVER__SOURCE", "live")
        .env("STOCK_OBSERVER__PROVIDERS__KIS__REST_BASE", "http://127.0.0.1:9")
        .env("STOCK_OBSERVER__PROVIDERS__KIS__WS_BASE", "ws://127.0.0.1:9")
        .env("STOCK_OBSERVER__PROVIDERS__KIS__MASTER_BASE", "http://127.0.0.1:9/"));
    let t = text(&out);
    assert!(!t.contains(wrong) && !t.contains(KEY), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn sim_without_keys_prints_the_made_up_pair_it_accepts() {
    let mut sim = cmd()
        .args(["sim", "--speed", "1"])
        .env_remove("KIS_APP_KEY")
        .env_remove("KIS_APP_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(sim.stdout.take().unwrap()).lines().take(3).map(Result::unwrap).collect();
    let _ = sim.kill();
    let _ = sim.wait();
    let value = |label: &str| {
        let line = lines.iter().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label:?} in {lines:?}"));
        line[label.len()..].trim().to_string()
    };
    let (key, secret) = (value("KIS   app key"), value("KIS   app secret"));
    // KIS's shapes, which clients check (python-kis: 36 and 180).
    assert_eq!((key.len(), secret.len()), (36, 180), "{lines:?}");
    assert!(key.starts_with("PS") && key.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(secret.bytes().all(|b| b.is_ascii_graphic()));
}

#[test]
fn a_password_in_the_store_url_is_refused_everywhere_and_shown_urls_are_rebuilt() {
    let pw = "hunter2-store-secret";
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("postgres://obs:{pw}@127.0.0.1:1/db"),
        format!("postgres://obs@127.0.0.1:1/db?password={pw}"),
        format!("postgresql://127.0.0.1:1/db?user=obs&pass%77ord={pw}"),
    ] {
        // As a setting: `config` refuses it at validation.
        let out = run(cmd().arg("config").env("STOCK_OBSERVER__STORE__URL", &url));
        let t = text(&out);
        assert!(!out.status.success() && t.contains("STOCK_OBSERVER__STORE__PASSWORD"), "{url}: {t}");
        assert!(!t.contains(pw), "{t}");
        // As `db … --url`: the same validation, before any connection.
        let out = run(cmd().args(["db", "status", "--data-dir"]).arg(dir.path()).args(["--url", &url]));
        let t = text(&out);
        assert!(!out.status.success() && t.contains("STOCK_OBSERVER__STORE__PASSWORD"), "{url}: {t}");
        assert!(t.contains("--url") && !t.contains(pw), "{t}");
    }
    // What `config` prints is rebuilt from the parsed URL, with the sslmode in force.
    let out = run(cmd()
        .arg("config")
        .env("STOCK_OBSERVER__STORE__URL", "postgresql://obs@db.example.com:6543/market?connect_timeout=3"));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("\"url\": \"postgres://obs@db.example.com:6543/market?sslmode=require\""), "{t}");
}

#[test]
fn wire_trace_logs_never_carry_a_registration_frame() {
    // The simulated exchange opens the market at once, so the KIS stream connects and registers
    // through the same tungstenite and reqwest code as a live run, whatever the wall clock.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cmd()
        .args(["collect", "--duration", "5s", "--speed", "10", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", RUST_LOG_ALL)
        .env("STOCK_OBSERVER__SOURCE", "sim")
        .env("KIS_APP_KEY", KEY)
        .env("KIS_APP_SECRET", SECRET));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let raw = lines_under(&data.join("raw/kis"));
    let sent = raw.iter().filter(|l| l["kind"] == "sent").count();
    assert!(sent > 0, "the stream never registered, so nothing was tested:\n{t}");
    // The archived registration frames carry the approval key masked.
    let mut registrations = 0;
    for l in raw.iter().filter(|l| l["kind"] == "sent") {
        let frame: serde_json::Value = serde_json::from_str(l["frame"].as_str().unwrap()).unwrap();
        if let Some(key) = frame["header"].get("approval_key") {
            assert_eq!(key, "***", "{l}");
            registrations += 1;
        }
    }
    assert!(registrations > 0, "no registration frame was archived:\n{t}");
    // Any registration frame carries the approval key (the fake's is made up per run, so the
    // frame is looked for by its field name, in clear and hex, as tungstenite logs payloads).
    let secrets = [
        ("a registration frame (approval_key)", "\"approval_key\"".to_string()),
        ("app key", KEY.to_string()),
        ("app secret", SECRET.to_string()),
    ];
    assert_eq!(found_in(&t, &secrets), Vec::<String>::new(), "found in the log output");
    let files: Vec<(&str, String)> = vec![("app key", KEY.to_string()), ("app secret", SECRET.to_string())];
    assert_eq!(leaks_under(&data, &files), Vec::<String>::new(), "a credential leaked into these files");
}

#[test]
fn kis_plain_ws_warns_what_it_exposes_and_other_plain_endpoints_are_refused() {
    // Live with KIS's default (published, plain ws://) realtime endpoint: a warning at start-up.
    // REST goes to a closed loopback port, so the run ends at the credential check.
    let dir = tempfile::tempdir().unwrap();
    let out = run(cmd()
        .args(["collect", "--duration", "2s", "--data-dir"])
        .arg(dir.path())
        .env("KIS_APP_KEY", KEY)
        .env("KIS_APP_SECRET", SECRET)
        .env("STOCK_OBSERVER__SOURCE", "live")
        .env("STOCK_OBSERVER__PROVIDERS__KIS__REST_BASE", "http://127.0.0.1:9")
        .env("STOCK_OBSERVER__PROVIDERS__KIS__MASTER_BASE", "http://127.0.0.1:9/"));
    let t = text(&out);
    assert!(
        t.contains("plain ws:// (ws://ops.koreainvestment.com:21000/tryitout)") && t.contains("approval key"),
        "{t}"
    );
    assert!(!t.contains(KEY) && !t.contains(SECRET), "{t}");

    // Any other plain-text endpoint off loopback is refused at validation, naming the key.
    for (var, value, key) in [
        ("STOCK_OBSERVER__PROVIDERS__KIS__WS_BASE", "ws://relay.example.com:21000", "providers.kis.ws_base"),
        (
            "STOCK_OBSERVER__PROVIDERS__KIS__REST_BASE",
            "http://openapi.koreainvestment.com:9443",
            "providers.kis.rest_base",
        ),
        ("STOCK_OBSERVER__PROVIDERS__UPBIT__WS_BASE", "ws://api.upbit.com/websocket/v1", "providers.upbit.ws_base"),
    ] {
        let out = run(cmd().arg("config").env(var, value));
        let t = text(&out);
        assert!(!out.status.success() && t.contains(key) && t.contains(var), "{var}={value}: {t}");
    }
}

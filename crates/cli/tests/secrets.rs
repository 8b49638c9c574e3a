//! Broker credentials from the environment appear in no log line, error message, panic
//! output or archive file, through a whole live run against the fake KIS server.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use common::*;

/// A KIS-shaped pair (36-character key, 180-character secret): `sim` accepts the pair in
/// KIS_APP_KEY / KIS_APP_SECRET.
const KEY: &str = "PSsecretsTESTappKEY00000000000000000";
const SECRET: &str = concat!(
    "secretsTESTappSECRET",
    "0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij",
    "0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij0123456789abcdefghij",
);

fn leaks_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(leaks_under(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            let text = String::from_utf8_lossy(&bytes);
            if text.contains(KEY) || text.contains(SECRET) {
                out.push(p.display().to_string());
            }
        }
    }
    out
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

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(cmd()
        .args(["collect", "--duration", "4s", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "debug")
        .env("KIS_APP_KEY", KEY)
        .env("KIS_APP_SECRET", SECRET)
        .env("STOCK_OBSERVER__SOURCE", "live")
        .env("STOCK_OBSERVER__PROVIDERS__KIS__REST_BASE", rest)
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
    assert!(!t.contains(KEY) && !t.contains(SECRET), "a credential leaked into the output:\n{t}");
    assert_eq!(leaks_under(&data), Vec::<String>::new(), "a credential leaked into these files");

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

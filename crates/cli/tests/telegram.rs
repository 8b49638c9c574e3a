//! A whole `collect` telling someone: a scripted 6-minute stream outage against the fake
//! Telegram Bot API gives the CRITICAL chat exactly one outage alert and one recovery, in
//! that order; the exit summary's alert figures are what the outbox on disk holds and what
//! the fake received; the bot token is in no output, archive file or database row.

mod common;

use std::path::Path;
use std::process::Stdio;

use alerts::telegram::fake::FakeBotApi;
use common::*;

const TOKEN: &str = "7000003:AAcliTokenThatMustNeverBeWritten";
const CRIT: i64 = -1_001_000_000_001;
const WARN: i64 = 5151;

/// The embedded configuration with two chats and the fake as the Bot API.
fn config_with_chats(dir: &Path, api_base: &str) -> std::path::PathBuf {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/observer.yaml")).unwrap();
    let chats = format!(
        "chats: [{{chat_id: {CRIT}, min_severity: CRITICAL, description: pager}}, {{chat_id: {WARN}, min_severity: WARN}}]"
    );
    let text = base.replacen("chats: []", &chats, 1).replacen(
        "api_base: https://api.telegram.org",
        &format!("api_base: {api_base}"),
        1,
    );
    assert!(text.contains(&chats) && text.contains(api_base));
    let path = dir.join("observer.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn bytes_contain(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_minute_outage_is_one_alert_and_one_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fake = FakeBotApi::start(TOKEN).await.unwrap();
    let config = config_with_chats(dir.path(), &fake.base_url());
    let mut c = cmd();
    c.args(["collect", "--speed", "60", "--start", "2026-01-14T10:00", "--until", "10:09"])
        .args(["--fault", "ws_disconnect@10:01:00+6m"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || run(&mut c)).await.unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("alerts: Telegram to 2 chat(s)"), "{all}");

    let delivered = fake.delivered();
    let pager: Vec<&str> = delivered.iter().filter(|m| m.chat_id == CRIT).map(|m| m.shown.as_str()).collect();
    assert_eq!(pager.len(), 2, "one outage alert and one recovery: {pager:#?}");
    // Since the last data before the hole (just before 10:01), alerted within a check of 5 min.
    assert!(pager[0].starts_with("KIS stream down\nno KIS stream data since 2026-01-14T10:0"), "{}", pager[0]);
    assert!(pager[0].contains(" KST (5.0 min)") || pager[0].contains(" KST (5.1 min)"), "{}", pager[0]);
    assert!(pager[1].starts_with("RESOLVED: KIS stream down\nKIS stream back"), "{}", pager[1]);
    let ops: Vec<&str> = delivered.iter().filter(|m| m.chat_id == WARN).map(|m| m.shown.as_str()).collect();
    assert_eq!(ops.iter().filter(|m| m.contains("KIS stream down")).count(), 2, "{ops:#?}");
    assert_eq!(ops.iter().filter(|m| m.starts_with("Anomaly day 20260114: reconnect_failing")).count(), 1, "{ops:#?}");

    // The summary's figures are the outbox's and the fake's.
    let store = store::Store::open(&store::StoreConfig::default(), &data).await.unwrap();
    let counts = store.outbox_counts().await.unwrap();
    let sent = counts.sent;
    assert_eq!(sent as usize, delivered.len(), "{counts:?}");
    assert_eq!((counts.pending, counts.failed), (0, 0), "everything due was sent before exit: {counts:?}");
    let line = all.lines().find(|l| l.trim_start().starts_with("alerts:") && l.contains("raised")).unwrap();
    assert!(line.contains(&format!("{} outbox rows written", sent)), "{line}");
    assert!(line.contains(&format!("{} sent, 0 failed", sent)), "{line}");

    assert!(!all.contains(TOKEN) && !all.contains("AAcliToken"), "token in the output");
    for f in files_under(&data) {
        assert!(!bytes_contain(&f, b"AAcliToken"), "token in {}", f.display());
    }
}

/// The central coordinator is a long-running command too: an edge it cannot reach is a
/// CRITICAL "backup failed (pull)" alert, sent by its own worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_alerts_on_a_failed_pull() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBotApi::start(TOKEN).await.unwrap();
    let conf = dir.path().join("coordinator.yaml");
    // A port nothing listens on: the listing fails at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    std::fs::write(
        &conf,
        format!(
            "name: central\ndir: {}\nlookback_days: 3\npull_after: 30m\nretries: 0\nretry_interval: 1s\ntimeout: 2s\nedges:\n  - name: edge-1\n    url: http://{closed}\n    key_env: EDGE1_KEY\n    backup_at: \"21:00\"\n",
            dir.path().join("central").display()
        ),
    )
    .unwrap();
    let child = cmd()
        .args(["coordinator", "--config"])
        .arg(&conf)
        .env("EDGE1_KEY", "k")
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("STOCK_OBSERVER__ALERTS__TELEGRAM__API_BASE", fake.base_url())
        .env("STOCK_OBSERVER__ALERTS__TELEGRAM__CHATS", format!("[{{chat_id={CRIT},min_severity=\"CRITICAL\"}}]"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fake.delivered().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let all = text(&out);
    let got: Vec<String> = fake.delivered().iter().map(|m| m.shown.clone()).collect();
    assert_eq!(got.len(), 1, "{got:#?}\n{all}");
    assert!(got[0].starts_with("Backup of ") && got[0].contains("failed (pull)\nedge edge-1: "), "{}", got[0]);
    assert!(all.contains("alerts: 2 raised, 1 sent, 0 failed, 0 dropped"), "{all}");
    assert!(!all.contains(TOKEN));
}

/// A failed `etl` is an alert in the outbox of the database it loads, for a running
/// collector's worker to send.
#[tokio::test]
async fn a_failed_etl_queues_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = dir.path().join("db.sqlite");
    let mut c = cmd();
    c.args(["etl", "--migrate", "--date", "20250101", "--url", &format!("sqlite://{}", db.display()), "--data-dir"])
        .arg(&data)
        .env("STOCK_OBSERVER__ALERTS__TELEGRAM__CHATS", format!("[{{chat_id={WARN},min_severity=\"WARN\"}}]"));
    let out = tokio::task::spawn_blocking(move || run(&mut c)).await.unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("alert queued in the outbox for 1 chat message(s)"), "{all}");
    let cfg = store::StoreConfig { url: Some(format!("sqlite://{}", db.display())), ..Default::default() };
    let store = store::Store::open(&cfg, dir.path()).await.unwrap();
    let rows = store.outbox_rows().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].chat_id, rows[0].title.as_str(), rows[0].status.as_str()),
        (WARN, "ETL of 20250101 failed", "PENDING")
    );
}

/// `sim --telegram` serves the fake Bot API for trying alerts without Telegram, and prints
/// what the chat would show.
#[tokio::test]
async fn sim_serves_a_fake_bot_api_that_prints_each_message() {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = cmd()
        .args(["sim", "--telegram", &format!("127.0.0.1:{port}")])
        .env_remove("TELEGRAM_BOT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("sim printed the fake's URL").unwrap();
        if let Some(rest) = line.strip_prefix("fake Telegram Bot API: ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    let api = alerts::telegram::api::BotApi::new(&url, "sim:token".into(), std::time::Duration::from_secs(5)).unwrap();
    let text = alerts::telegram::format::render("KIS stream down", "no data since 10:01 (5.0 min)");
    assert_eq!(api.send_message(42, &text, Some("MarkdownV2")).await, alerts::telegram::api::SendOutcome::Sent);
    let printed = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.starts_with("no data since");
            got.push(line);
            if done {
                break;
            }
        }
        got
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let at = printed.iter().position(|l| l == "telegram → chat 42 [200]").expect("the message is printed");
    assert_eq!(printed[at + 1..at + 3], ["KIS stream down", "no data since 10:01 (5.0 min)"]);
}

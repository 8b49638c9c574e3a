//! The outbox and the Telegram worker against the fake Bot API on loopback, on a test clock
//! the test steps by hand: 429 waits as asked, 403 fails at once, 5xx backs off on the seed's
//! schedule and then fails with a self-alert, one key is one message, long alerts split,
//! chats are paced, the token is nowhere, and a database down for the whole outage loses
//! no alert.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use model::settings::Interval;
use model::{Clock, UtcTime};
use so_alerts::config::OutboxConfig;
use so_alerts::outbox::{self, AlertStats, AlertTx};
use so_alerts::telegram::api::BotApi;
use so_alerts::telegram::fake::{FakeBotApi, Reply};
use so_alerts::worker::{SELF_ALERT_TITLE, Worker};
use so_alerts::{Alert, Severity};
use store::outbox::Chat;
use store::{Backend, Store, StoreConfig};

const TOKEN: &str = "7000002:AAsecretTokenNeverShown";
const OPS: i64 = 4242;
const BACKUP_OPS: i64 = 4343;

fn t0() -> UtcTime {
    UtcTime::parse("2026-01-14T01:00:00.000Z").unwrap()
}

fn secs(s: f64) -> UtcTime {
    t0().plus_millis((s * 1000.0) as i64)
}

fn cfg() -> OutboxConfig {
    let m = |n: u64| Interval::from_millis(n * 60_000);
    OutboxConfig {
        memory_queue: 100,
        db_retry: Interval::from_millis(100),
        poll_interval: Interval::from_millis(1000),
        claim_batch: 50,
        lease: Interval::from_millis(120_000),
        backoff: vec![m(1), m(2), m(5), m(15), m(30)],
        max_failures: 5,
        per_chat_interval: Interval::from_millis(1000),
        group_per_minute: 20,
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    fake: FakeBotApi,
    worker: Worker,
    tx: AlertTx,
    rx: Option<outbox::AlertRx>,
    stats: Arc<AlertStats>,
}

async fn sqlite_store(dir: &Path, chats: &[Chat]) -> Arc<Store> {
    let store = Store::open(&StoreConfig::default(), dir).await.unwrap();
    store.migrate().await.unwrap();
    store.sync_chats(chats).await.unwrap();
    Arc::new(store)
}

async fn rig(chats: &[Chat]) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path(), chats).await;
    let fake = FakeBotApi::start(TOKEN).await.unwrap();
    let api = BotApi::new(&fake.base_url(), TOKEN.to_string(), Duration::from_secs(5)).unwrap();
    let (tx, rx, stats) = outbox::channel(&cfg());
    let worker = Worker::new(store.clone(), api, cfg(), tx.clone(), stats.clone());
    Rig { _dir: dir, store, fake, worker, tx, rx: Some(rx), stats }
}

fn chat(id: i64, min: Severity) -> Chat {
    Chat { chat_id: id, min_severity: min, description: None }
}

fn alert(key: &str, message: &str, at: UtcTime) -> Alert {
    Alert::new(Severity::Critical, key, "KIS stream down", message, at)
}

impl Rig {
    async fn raise(&self, a: Alert) {
        outbox::enqueue(&self.store, &a).await.unwrap();
    }

    /// Self-alerts the worker raised, written to the outbox as the collector's task would.
    async fn drain_raised(&mut self) -> usize {
        let (_tx, rx) = (self.tx.clone(), self.rx.take().unwrap());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let task =
            tokio::spawn(outbox::deliver(self.store.clone(), rx, self.stats.clone(), cfg(), Clock::real(), stop));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        self.stats.snapshot().rows_enqueued as usize
    }
}

#[tokio::test]
async fn a_429_waits_retry_after_on_the_test_clock_without_counting_a_failure() {
    let mut r = rig(&[chat(OPS, Severity::Warn)]).await;
    r.fake.script([Reply::TooManyRequests { retry_after: 7 }]);
    r.raise(alert("outage:kis:1", "no data", t0())).await;

    let first = r.worker.run_once(t0()).await.unwrap();
    assert_eq!(first.rate_limited, 1);
    for s in [0.0, 1.0, 6.999] {
        let round = r.worker.run_once(secs(s)).await.unwrap();
        assert_eq!(round.sent + round.rate_limited, 0, "nothing is tried before retry_after passed ({s} s)");
    }
    assert_eq!(r.fake.received().len(), 1);
    assert_eq!(r.worker.run_once(secs(7.0)).await.unwrap().sent, 1);
    let rows = r.store.outbox_rows().await.unwrap();
    assert_eq!(rows[0].status, "SENT");
    assert_eq!(rows[0].sent_at.as_deref(), Some("2026-01-14T01:00:07.000Z"), "the next try came 7 s later");
    assert_eq!(rows[0].fail_count, 0, "a 429 is not a failure");
    assert_eq!(r.fake.delivered().len(), 1);
}

#[tokio::test]
async fn a_403_fails_after_one_attempt_and_the_other_chat_hears_of_it() {
    let mut r = rig(&[chat(OPS, Severity::Warn), chat(BACKUP_OPS, Severity::Critical)]).await;
    r.fake.block_chat(OPS);
    r.raise(alert("outage:kis:1", "no data", t0())).await;
    let round = r.worker.run_once(t0()).await.unwrap();
    assert_eq!((round.sent, round.failed), (1, 1));
    let rows = r.store.outbox_rows().await.unwrap();
    let to_ops = rows.iter().find(|row| row.chat_id == OPS).unwrap();
    assert_eq!((to_ops.status.as_str(), to_ops.fail_count), ("FAILED", 1));
    assert!(to_ops.last_error.as_deref().unwrap().starts_with("403"), "{to_ops:?}");
    for s in [60.0, 3600.0] {
        r.worker.run_once(secs(s)).await.unwrap();
    }
    assert_eq!(r.fake.received().iter().filter(|m| m.chat_id == OPS).count(), 1, "never retried");

    // The self-alert goes to the chat that still works, not to the one that refuses.
    assert_eq!(r.drain_raised().await, 1);
    r.worker.run_once(secs(3601.0)).await.unwrap();
    let delivered = r.fake.delivered();
    let last = delivered.last().unwrap();
    assert_eq!(last.chat_id, BACKUP_OPS);
    assert!(last.shown.starts_with(SELF_ALERT_TITLE), "{}", last.shown);
    assert!(last.shown.contains(&format!("to chat {OPS} failed: 403")), "{}", last.shown);
}

#[tokio::test]
async fn server_errors_back_off_1_2_5_15_min_then_fail_with_a_self_alert_in_the_log_only() {
    let mut r = rig(&[chat(OPS, Severity::Warn)]).await;
    r.fake.set_always(Some(Reply::Status(502)));
    r.raise(alert("outage:kis:1", "no data", t0())).await;
    // Attempts are due at 0, 1, 3, 8 and 23 minutes; a look a millisecond early finds nothing.
    let mut tried = Vec::new();
    for due_min in [0.0, 1.0, 3.0, 8.0, 23.0] {
        if due_min > 0.0 {
            r.worker.run_once(secs(due_min * 60.0 - 0.001)).await.unwrap();
            assert_eq!(r.fake.received().len(), tried.len(), "tried early at {due_min} min");
        }
        r.worker.run_once(secs(due_min * 60.0)).await.unwrap();
        tried.push(due_min);
        assert_eq!(r.fake.received().len(), tried.len());
    }
    let row = &r.store.outbox_rows().await.unwrap()[0];
    assert_eq!((row.status.as_str(), row.fail_count), ("FAILED", 5));
    r.worker.run_once(secs(3.0 * 3600.0)).await.unwrap();
    assert_eq!(r.fake.received().len(), 5, "a FAILED row is never tried again");
    assert_eq!(r.stats.snapshot().failed, 1);
    // With no other chat the self-alert has only the log: it is raised, and writes no row.
    assert_eq!(r.stats.snapshot().raised, 1);
    assert_eq!(r.drain_raised().await, 0);
}

#[tokio::test]
async fn one_key_is_one_message_and_long_alerts_are_split() {
    let mut r = rig(&[chat(OPS, Severity::Warn)]).await;
    r.raise(alert("outage:kis:1", "no data", t0())).await;
    r.raise(alert("outage:kis:1", "no data (again)", secs(30.0))).await;
    let alphabet = ['가', 'a', '.', '!'];
    let long: String = (0..5000).map(|i| if i % 100 == 99 { '\n' } else { alphabet[i % 4] }).collect();
    r.raise(Alert::new(Severity::Warn, "etl:20260114", "ETL report", long.clone(), t0())).await;
    for s in 0..5 {
        r.worker.run_once(secs(s as f64)).await.unwrap();
    }
    let got = r.fake.delivered();
    assert_eq!(got.len(), 3, "one outage message, and the report in two");
    assert_eq!(got[0].shown, "KIS stream down\nno data");
    let parts: Vec<&str> = got[1..].iter().map(|m| m.shown.as_str()).collect();
    assert!(parts.iter().all(|p| p.chars().count() <= 4096));
    assert!(parts[0].starts_with("ETL report (1/2)\n") && parts[1].starts_with("ETL report (2/2)\n"));
    let body: String = parts.iter().map(|p| p.split_once('\n').unwrap().1).collect();
    assert_eq!(body, long, "the parts add up to the message");
}

#[tokio::test]
async fn markdown_specials_arrive_as_written_and_the_token_is_nowhere() {
    let mut r = rig(&[chat(OPS, Severity::Info)]).await;
    let specials = r"_*[]()~`>#+-=|{}.!\";
    r.raise(Alert::new(Severity::Info, "k", format!("title {specials}"), format!("body {specials}"), t0())).await;
    r.worker.run_once(t0()).await.unwrap();
    r.fake.script([Reply::Status(500)]);
    r.raise(Alert::new(Severity::Info, "k2", "second", "x", t0())).await;
    r.worker.run_once(secs(1.0)).await.unwrap();
    let got = r.fake.delivered();
    assert_eq!(got[0].shown, format!("title {specials}\nbody {specials}"));
    let rows = r.store.outbox_rows().await.unwrap();
    assert_eq!(rows[1].fail_count, 1);
    let everything = format!("{rows:?} {:?}", r.stats.snapshot());
    assert!(!everything.contains(TOKEN) && !everything.contains("AAsecret"), "{everything}");
}

#[tokio::test]
async fn chats_get_one_message_a_second_and_groups_twenty_a_minute() {
    const GROUP: i64 = -100_777;
    let mut r = rig(&[chat(OPS, Severity::Warn), chat(GROUP, Severity::Warn)]).await;
    for i in 0..25 {
        r.raise(alert(&format!("k{i}"), "x", t0())).await;
    }
    let mut s = 0.0;
    while s <= 120.0 {
        r.worker.run_once(secs(s)).await.unwrap();
        s += 0.25;
    }
    let got = r.fake.delivered();
    for id in [OPS, GROUP] {
        let times: Vec<_> = got.iter().filter(|m| m.chat_id == id).map(|m| m.at).collect();
        assert_eq!(times.len(), 25, "chat {id}");
    }
    let rows = r.store.outbox_rows().await.unwrap();
    let sent = |id: i64| -> Vec<i64> {
        let mut v: Vec<i64> = rows
            .iter()
            .filter(|row| row.chat_id == id)
            .map(|row| UtcTime::parse(row.sent_at.as_deref().unwrap()).unwrap().millis_since(t0()))
            .collect();
        v.sort();
        v
    };
    let ops = sent(OPS);
    assert!(ops.windows(2).all(|w| w[1] - w[0] >= 1000), "≤ 1 message/s per chat: {ops:?}");
    let group = sent(GROUP);
    for (i, at) in group.iter().enumerate() {
        let in_minute = group[..=i].iter().filter(|t| *at - **t < 60_000).count();
        assert!(in_minute <= 20, "≤ 20 messages/min per group: {group:?}");
    }
    assert!(group[20] >= 60_000, "the 21st waits for the minute: {group:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_for_the_whole_outage_loses_no_alert() {
    let pg = store::testing::PgServer::start().unwrap();
    let url = pg.create_db("alerts").unwrap();
    let store = Store::open(&StoreConfig { url: Some(url), ..StoreConfig::default() }, Path::new("/nonexistent"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.sync_chats(&[chat(OPS, Severity::Warn)]).await.unwrap();
    let store = Arc::new(store);
    let fake = FakeBotApi::start(TOKEN).await.unwrap();
    let (tx, rx, stats) = outbox::channel(&cfg());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let delivery = tokio::spawn(outbox::deliver(store.clone(), rx, stats.clone(), cfg(), Clock::real(), stop));

    pg.stop().unwrap();
    tx.raise(alert("outage:kis:1", "KIS down", t0()));
    tx.raise(alert("outage:kis:1:resolved", "KIS back", secs(400.0)));
    tx.raise(Alert::new(
        Severity::Warn,
        "anomaly:20260114:reconnect_failing",
        "Anomaly day",
        "reconnect failing",
        secs(300.0),
    ));
    let waited = wait_for(|| stats.snapshot().db_errors > 0).await;
    assert!(waited, "the outbox was tried while the database was down");
    assert_eq!(stats.snapshot().held, 3, "all three wait in memory");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats.snapshot().held, 3);

    pg.restart().unwrap();
    assert!(wait_for(|| stats.snapshot().rows_enqueued == 3).await, "{:?}", stats.snapshot());
    assert_eq!(stats.snapshot().dropped, 0);
    let api = BotApi::new(&fake.base_url(), TOKEN.to_string(), Duration::from_secs(5)).unwrap();
    let mut worker = Worker::new(store.clone(), api, cfg(), tx.clone(), stats.clone());
    for s in 0..3 {
        worker.run_once(secs(1000.0 + s as f64)).await.unwrap();
    }
    let shown: Vec<String> = fake.delivered().iter().map(|m| m.shown.clone()).collect();
    assert_eq!(shown, ["KIS stream down\nKIS down", "KIS stream down\nKIS back", "Anomaly day\nreconnect failing"]);
    stop_tx.send(true).unwrap();
    delivery.await.unwrap();
}

async fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

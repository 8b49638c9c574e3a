//! The notification outbox on both backends: the seed's `enqueue_notification()` dedupes,
//! the claim leases rows so two workers never take the same one (PostgreSQL's `SKIP LOCKED`
//! under real concurrency), settling records the attempt, and chats follow the config.

mod common;

use model::UtcTime;
use so_store::outbox::{Chat, NewNotification, Settle, Severity};
use so_store::{Backend, Store};

fn t(s: &str) -> UtcTime {
    UtcTime::parse(s).unwrap()
}

fn note(chat: i64, key: Option<&str>, at: &str) -> NewNotification {
    NewNotification {
        chat_id: chat,
        severity: Severity::Warn,
        title: "KIS stream down".into(),
        message: "no data for 5 min".into(),
        dedupe_key: key.map(str::to_string),
        created_at: t(at),
    }
}

async fn outbox_behaviour(store: &Store) {
    store.migrate().await.unwrap();
    store
        .sync_chats(&[
            Chat { chat_id: -100_123, min_severity: Severity::Warn, description: Some("ops group".into()) },
            Chat { chat_id: 42, min_severity: Severity::Critical, description: None },
        ])
        .await
        .unwrap();
    store.sync_chats(&[Chat { chat_id: 42, min_severity: Severity::Info, description: None }]).await.unwrap();
    assert_eq!(
        store.chats().await.unwrap(),
        vec![Chat { chat_id: 42, min_severity: Severity::Info, description: None }],
        "a chat no longer configured is disabled, a changed one updated"
    );

    let first = store.enqueue(note(42, Some("outage:kis:1"), "2026-01-14T00:00:00.000Z")).await.unwrap();
    assert!(first.is_some());
    assert_eq!(store.enqueue(note(42, Some("outage:kis:1"), "2026-01-14T00:00:01.000Z")).await.unwrap(), None);
    let plain_a = store.enqueue(note(42, None, "2026-01-14T00:00:02.000Z")).await.unwrap();
    let plain_b = store.enqueue(note(42, None, "2026-01-14T00:00:02.000Z")).await.unwrap();
    assert!(plain_a.is_some() && plain_b.is_some() && plain_a != plain_b, "rows without a key never dedupe");
    let too_long = store.enqueue(note(42, Some(&"k".repeat(121)), "2026-01-14T00:00:00.000Z")).await;
    assert!(too_long.unwrap_err().to_string().contains("dedupe_key longer than 120"));

    // Claim leases: the rows come due again only after the lease.
    let now = t("2026-01-14T00:01:00.000Z");
    let lease = t("2026-01-14T00:02:00.000Z");
    let claimed = store.claim(now, lease, 2).await.unwrap();
    assert_eq!(claimed.iter().map(|c| Some(c.id)).collect::<Vec<_>>(), vec![first, plain_a]);
    assert_eq!(claimed[0].title, "KIS stream down");
    let rest = store.claim(now, lease, 10).await.unwrap();
    assert_eq!(rest.iter().map(|c| Some(c.id)).collect::<Vec<_>>(), vec![plain_b], "leased rows are not claimed twice");
    assert!(store.claim(t("2026-01-14T00:01:59.999Z"), lease, 10).await.unwrap().is_empty());
    let again = store.claim(lease, t("2026-01-14T00:03:00.000Z"), 10).await.unwrap();
    assert_eq!(again.len(), 3, "an expired lease (a worker died mid-send) makes the rows due again");

    let [a, b, c] = [first.unwrap(), plain_a.unwrap(), plain_b.unwrap()];
    store.settle(a, Settle::Sent { at: lease }).await.unwrap();
    store
        .settle(b, Settle::Retry { send_after: t("2026-01-14T00:10:00.000Z"), failed: true, error: "502".into() })
        .await
        .unwrap();
    store
        .settle(c, Settle::Failed { error: "403 Forbidden: bot was blocked by the user".into(), failed: true })
        .await
        .unwrap();
    let rows = store.outbox_rows().await.unwrap();
    assert_eq!(rows[0].status, "SENT");
    assert_eq!(rows[0].sent_at.as_deref(), Some("2026-01-14T00:02:00.000Z"));
    assert_eq!(rows[0].created_at, "2026-01-14T00:00:00.000Z", "created_at is the caller's clock");
    assert_eq!((rows[1].status.as_str(), rows[1].fail_count), ("PENDING", 1));
    assert_eq!(rows[1].send_after.as_deref(), Some("2026-01-14T00:10:00.000Z"));
    assert_eq!(
        (rows[2].status.as_str(), rows[2].last_error.as_deref()),
        ("FAILED", Some("403 Forbidden: bot was blocked by the user"))
    );
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.sent, counts.failed), (1, 1, 1));

    // A migrated group takes its pending rows with it.
    store.migrate_chat(42, -1_001_234_567_890_123).await.unwrap();
    assert_eq!(store.chats().await.unwrap()[0].chat_id, -1_001_234_567_890_123);
    let rows = store.outbox_rows().await.unwrap();
    assert_eq!(rows[1].chat_id, -1_001_234_567_890_123);
    assert_eq!(rows[0].chat_id, 42, "sent rows keep the id they were sent to");
}

#[tokio::test]
async fn sqlite_outbox() {
    let dir = tempfile::tempdir().unwrap();
    outbox_behaviour(&common::open_sqlite(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outbox_and_skip_locked_claims() {
    let pg = common::pg();
    let store = common::open_pg(&pg, "outbox").await;
    outbox_behaviour(&store).await;

    // The seed's function is there for other writers (the trading service) too.
    let url = pg.url_db("outbox");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let id: i64 = client
        .query_one("SELECT enqueue_notification(7, 'CRITICAL', 'disk', '91 %', 'disk:20260114')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(id > 0);
    let dup: i64 = client
        .query_one("SELECT enqueue_notification(7, 'CRITICAL', 'disk', '91 %', 'disk:20260114')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dup, 0, "the seed's contract: 0 for a duplicate");

    // Two workers claiming at once take disjoint rows.
    for i in 0..40 {
        store.enqueue(note(9, Some(&format!("k{i}")), "2026-01-14T00:00:00.000Z")).await.unwrap();
    }
    let now = t("2026-01-15T00:00:00.000Z");
    let lease = t("2026-01-15T00:05:00.000Z");
    let (x, y) = tokio::join!(store.claim(now, lease, 25), store.claim(now, lease, 25));
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut ids: Vec<i64> = x.iter().chain(&y).map(|c| c.id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no row claimed by both workers");
    assert_eq!(n, 42, "every due row claimed once: 40 new, the seed function's one, and the retried one");
}

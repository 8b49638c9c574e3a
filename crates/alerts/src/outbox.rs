//! From an alert to outbox rows. Raising never waits: an alert goes into a bounded channel,
//! a task writes it to `notification_outbox` (one row per chat that wants its severity,
//! split to fit a message), and while the database cannot take it, alerts wait in a bounded
//! queue in memory and are written when it can. Only an alert beyond both bounds is lost,
//! and it is counted and logged.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use model::Clock;
use store::Store;
use store::outbox::{DEDUPE_KEY_MAX, NewNotification, Severity};

use crate::alert::Alert;
use crate::config::OutboxConfig;
use crate::telegram::format::{MAX_TEXT_CHARS, split};

/// Counters a person reads (exit summary, `/metrics`), each counting what happened.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Alerts raised by any source.
    pub raised: AtomicU64,
    /// Alerts lost: the channel or the in-memory queue was full.
    pub dropped: AtomicU64,
    /// Alerts waiting in memory for the database now.
    pub held: AtomicU64,
    /// Outbox rows written, and alerts whose key was already raised or in the outbox (one
    /// incident, one message).
    pub rows_enqueued: AtomicU64,
    pub deduplicated: AtomicU64,
    /// Failed attempts to write to the outbox.
    pub db_errors: AtomicU64,
    /// Messages the Bot API accepted; attempts it refused for good or that failed too often;
    /// attempts to retry later (5xx, network); 429 pauses.
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub rate_limited: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlertCounts {
    pub raised: u64,
    pub dropped: u64,
    pub held: u64,
    pub rows_enqueued: u64,
    pub deduplicated: u64,
    pub db_errors: u64,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub rate_limited: u64,
}

impl AlertStats {
    /// The counters as `/metrics` families.
    pub fn expose(&self, e: &mut api::metrics::Exposition) {
        let a = self.snapshot();
        e.counter("stock_observer_alerts_raised_total", "Alerts raised by any source (each is also in the log).")
            .value(a.raised);
        e.counter(
            "stock_observer_alerts_dropped_total",
            "Alerts lost because the alert queue or the in-memory queue was full.",
        )
        .value(a.dropped);
        e.gauge("stock_observer_alerts_held", "Alerts waiting in memory for the outbox database.").value(a.held);
        e.counter(
            "stock_observer_alert_outbox_rows_total",
            "notification_outbox rows written (one per chat and message part).",
        )
        .value(a.rows_enqueued);
        e.counter(
            "stock_observer_alert_outbox_errors_total",
            "Failed attempts to write to or read the outbox database.",
        )
        .value(a.db_errors);
        e.counter("stock_observer_alert_messages_sent_total", "Messages the Telegram Bot API accepted.").value(a.sent);
        e.counter(
            "stock_observer_alert_messages_failed_total",
            "Messages marked FAILED: refused for good (400/403/404) or failed max_failures times.",
        )
        .value(a.failed);
        e.counter(
            "stock_observer_alert_retries_total",
            "Attempts that failed with a 5xx or network error and wait to retry.",
        )
        .value(a.retried);
        e.counter(
            "stock_observer_alert_rate_limited_total",
            "429 answers: the chat waits retry_after, not counted as failures.",
        )
        .value(a.rate_limited);
    }

    pub fn snapshot(&self) -> AlertCounts {
        AlertCounts {
            raised: self.raised.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            held: self.held.load(Relaxed),
            rows_enqueued: self.rows_enqueued.load(Relaxed),
            deduplicated: self.deduplicated.load(Relaxed),
            db_errors: self.db_errors.load(Relaxed),
            sent: self.sent.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
        }
    }
}

/// Keys remembered in process, so a repeat is not even logged again; past this many the
/// memory starts over and the outbox's unique index still holds the line.
const KEYS_REMEMBERED: usize = 10_000;

/// Where sources raise alerts. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct AlertTx {
    tx: mpsc::Sender<Alert>,
    stats: Arc<AlertStats>,
    seen: Arc<Mutex<HashSet<String>>>,
}

pub struct AlertRx(mpsc::Receiver<Alert>);

impl AlertRx {
    /// The next raised alert, if one waits (for a caller that is not the outbox task).
    pub fn try_recv(&mut self) -> Option<Alert> {
        self.0.try_recv().ok()
    }
}

/// A channel as deep as the in-memory queue: together they hold twice `memory_queue`.
pub fn channel(cfg: &OutboxConfig) -> (AlertTx, AlertRx, Arc<AlertStats>) {
    let (tx, rx) = mpsc::channel(cfg.memory_queue.max(1));
    let stats = Arc::new(AlertStats::default());
    (AlertTx { tx, stats: stats.clone(), seen: Arc::default() }, AlertRx(rx), stats)
}

impl AlertTx {
    /// Logs the alert (the log is the channel of last resort) and hands it to the outbox.
    pub fn raise(&self, alert: Alert) {
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() >= KEYS_REMEMBERED {
                seen.clear();
            }
            if !seen.insert(alert.key.clone()) {
                self.stats.deduplicated.fetch_add(1, Relaxed);
                return;
            }
        }
        self.stats.raised.fetch_add(1, Relaxed);
        // A resolution is news, not trouble, whatever the incident's severity.
        let level = if alert.key.ends_with(":resolved") { Severity::Info } else { alert.severity };
        match level {
            Severity::Critical => tracing::error!(key = %alert.key, "ALERT {}: {}", alert.title, alert.message),
            Severity::Warn => tracing::warn!(key = %alert.key, "ALERT {}: {}", alert.title, alert.message),
            Severity::Info => tracing::info!(key = %alert.key, "ALERT {}: {}", alert.title, alert.message),
        }
        if let Err(e) = self.tx.try_send(alert) {
            self.stats.dropped.fetch_add(1, Relaxed);
            let a = match e {
                mpsc::error::TrySendError::Full(a) | mpsc::error::TrySendError::Closed(a) => a,
            };
            tracing::error!(key = %a.key, "alert dropped: the alert queue is full or closed");
        }
    }
}

/// The dedupe key of one row: the alert's key, the chat, and the part of a split message;
/// a key too long for the column keeps its start and a digest of the whole.
fn row_key(key: &str, chat: i64, part: usize, parts: usize) -> String {
    let suffix = if parts > 1 { format!(":{chat}:{}/{parts}", part + 1) } else { format!(":{chat}") };
    let full = format!("{key}{suffix}");
    if full.chars().count() <= DEDUPE_KEY_MAX {
        return full;
    }
    let digest = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
    let room = DEDUPE_KEY_MAX - suffix.chars().count() - digest.len() - 1;
    format!("{}~{digest}{suffix}", key.chars().take(room).collect::<String>())
}

/// The rows of one alert: for each chat that wants it, the message in parts that fit.
pub async fn enqueue(store: &Store, alert: &Alert) -> Result<(u64, u64), store::StoreError> {
    let (mut written, mut duplicate) = (0, 0);
    // Room for the title, its part number and the line break between them.
    let room = MAX_TEXT_CHARS.saturating_sub(alert.title.chars().count() + 12).max(1);
    let mut parts = split(&alert.message, room);
    if parts.is_empty() {
        parts.push(String::new());
    }
    for chat in store.chats().await? {
        if chat.min_severity > alert.severity || Some(chat.chat_id) == alert.skip_chat {
            continue;
        }
        for (i, part) in parts.iter().enumerate() {
            let title = if parts.len() > 1 {
                format!("{} ({}/{})", alert.title, i + 1, parts.len())
            } else {
                alert.title.clone()
            };
            let row = NewNotification {
                chat_id: chat.chat_id,
                severity: alert.severity,
                title,
                message: part.clone(),
                dedupe_key: Some(row_key(&alert.key, chat.chat_id, i, parts.len())),
                created_at: alert.at,
            };
            match store.enqueue(row).await? {
                Some(_) => written += 1,
                None => duplicate += 1,
            }
        }
    }
    Ok((written, duplicate))
}

/// Writes raised alerts to the outbox until `stop`, holding them in memory while the
/// database fails. At stop, one last attempt; what still cannot be written is logged.
pub async fn deliver(
    store: Arc<Store>,
    rx: AlertRx,
    stats: Arc<AlertStats>,
    cfg: OutboxConfig,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let mut rx = rx.0;
    let mut held: VecDeque<Alert> = VecDeque::new();
    let mut failing = false;
    loop {
        let retry = clock.wall_duration(cfg.db_retry.get());
        let stopping = tokio::select! {
            a = rx.recv() => match a {
                Some(a) => { hold(&mut held, a, &stats, cfg.memory_queue); false }
                None => true,
            },
            _ = tokio::time::sleep(retry), if !held.is_empty() => false,
            _ = model::stopped(&mut stop) => true,
        };
        while let Ok(a) = rx.try_recv() {
            hold(&mut held, a, &stats, cfg.memory_queue);
        }
        while let Some(a) = held.front() {
            match enqueue(&store, a).await {
                Ok((w, d)) => {
                    stats.rows_enqueued.fetch_add(w, Relaxed);
                    if w == 0 && d > 0 {
                        stats.deduplicated.fetch_add(1, Relaxed);
                    }
                    held.pop_front();
                    if failing {
                        failing = false;
                        tracing::info!("the outbox takes alerts again");
                    }
                }
                Err(e) => {
                    stats.db_errors.fetch_add(1, Relaxed);
                    if !failing {
                        failing = true;
                        tracing::warn!(
                            "alerts wait in memory (up to {}): the outbox refused one: {e}",
                            cfg.memory_queue
                        );
                    }
                    break;
                }
            }
        }
        stats.held.store(held.len() as u64, Relaxed);
        if stopping {
            for a in &held {
                tracing::error!(key = %a.key, "alert not written to the outbox before shutdown: {}: {}", a.title, a.message);
            }
            return;
        }
    }
}

fn hold(held: &mut VecDeque<Alert>, a: Alert, stats: &AlertStats, cap: usize) {
    if held.len() >= cap {
        // The newest alerts say most about now; the oldest goes.
        if let Some(old) = held.pop_front() {
            stats.dropped.fetch_add(1, Relaxed);
            tracing::error!(key = %old.key, "alert dropped: {cap} alerts already wait for the database");
        }
    }
    held.push_back(a);
    stats.held.store(held.len() as u64, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_fit_the_column_and_stay_distinct() {
        assert_eq!(row_key("outage:kis:1", 42, 0, 1), "outage:kis:1:42");
        assert_eq!(row_key("outage:kis:1", 42, 1, 2), "outage:kis:1:42:2/2");
        let long = "x".repeat(200);
        let (a, b) = (row_key(&long, -1_001_234_567_890, 0, 3), row_key(&format!("{long}y"), -1_001_234_567_890, 0, 3));
        assert!(a.chars().count() <= DEDUPE_KEY_MAX && b.chars().count() <= DEDUPE_KEY_MAX);
        assert_ne!(a, b);
        assert!(a.ends_with(":-1001234567890:1/3"));
    }
}

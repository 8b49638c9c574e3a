//! The Telegram worker: claims due outbox rows, sends each with `sendMessage`, and records
//! what became of it (seed 003 §6). 429 waits as long as Telegram asks without counting a
//! failure; 5xx and network errors back off 1 → 2 → 5 → 15 → 30 min; 400/403/404 and too many
//! failures make the row FAILED and raise a self-alert (to the other chats, and the log).
//! Each chat gets at most one message per `per_chat_interval`, each group at most
//! `group_per_minute`. All times are the collector's clock, so a test steps them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::watch;

use model::{Clock, UtcTime};
use store::outbox::{Claimed, Settle, Severity};
use store::{Store, StoreError};

use crate::alert::Alert;
use crate::config::OutboxConfig;
use crate::outbox::{AlertStats, AlertTx};
use crate::telegram::api::{BotApi, SendOutcome};
use crate::telegram::format::render;

/// The title of the alert that says alerts are not getting through; never itself the
/// subject of another, so a dead Bot API cannot make alerts breed.
pub const SELF_ALERT_TITLE: &str = "Alerts are not being delivered";

const PARSE_MODE: &str = "MarkdownV2";
const MINUTE_MS: i64 = 60_000;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: u32,
    pub retried: u32,
    pub rate_limited: u32,
    pub failed: u32,
    /// Rows put back because their chat's rate limit had not yet passed.
    pub deferred: u32,
}

/// Per-chat rate limits, as the Bot FAQ gives them.
#[derive(Debug)]
struct Pacing {
    per_chat_ms: i64,
    group_per_minute: usize,
    last: HashMap<i64, UtcTime>,
    paused_until: HashMap<i64, UtcTime>,
    group_sends: HashMap<i64, VecDeque<UtcTime>>,
}

impl Pacing {
    fn next_allowed(&self, chat: i64) -> Option<UtcTime> {
        let after_last = self.last.get(&chat).map(|t| t.plus_millis(self.per_chat_ms));
        let paused = self.paused_until.get(&chat).copied();
        let group = self
            .group_sends
            .get(&chat)
            .filter(|w| w.len() >= self.group_per_minute)
            .and_then(|w| w.front())
            .map(|t| t.plus_millis(MINUTE_MS));
        [after_last, paused, group].into_iter().flatten().max()
    }

    fn sent(&mut self, chat: i64, at: UtcTime) {
        self.last.insert(chat, at);
        if chat < 0 {
            let w = self.group_sends.entry(chat).or_default();
            w.push_back(at);
            while w.front().is_some_and(|t| at.millis_since(*t) >= MINUTE_MS) {
                w.pop_front();
            }
        }
    }
}

pub struct Worker {
    store: Arc<Store>,
    api: BotApi,
    cfg: OutboxConfig,
    alerts: AlertTx,
    stats: Arc<AlertStats>,
    pacing: Pacing,
}

impl Worker {
    pub fn new(store: Arc<Store>, api: BotApi, cfg: OutboxConfig, alerts: AlertTx, stats: Arc<AlertStats>) -> Worker {
        let pacing = Pacing {
            per_chat_ms: cfg.per_chat_interval.as_millis() as i64,
            group_per_minute: cfg.group_per_minute as usize,
            last: HashMap::new(),
            paused_until: HashMap::new(),
            group_sends: HashMap::new(),
        };
        Worker { store, api, cfg, alerts, stats, pacing }
    }

    /// Claims the rows due at `now` and tries each once.
    pub async fn run_once(&mut self, now: UtcTime) -> Result<Round, StoreError> {
        let mut round = Round::default();
        let lease = now.plus(self.cfg.lease.get());
        for row in self.store.claim(now, lease, self.cfg.claim_batch).await? {
            if let Some(at) = self.pacing.next_allowed(row.chat_id).filter(|at| *at > now) {
                self.store.settle(row.id, Settle::Defer { send_after: at }).await?;
                round.deferred += 1;
                continue;
            }
            let text = render(&row.title, &row.message);
            let outcome = self.api.send_message(row.chat_id, &text, Some(PARSE_MODE)).await;
            self.settle(&row, outcome, now, &mut round).await?;
        }
        Ok(round)
    }

    async fn settle(
        &mut self,
        row: &Claimed,
        outcome: SendOutcome,
        now: UtcTime,
        round: &mut Round,
    ) -> Result<(), StoreError> {
        let how = match outcome {
            SendOutcome::Sent => {
                self.pacing.sent(row.chat_id, now);
                self.stats.sent.fetch_add(1, Relaxed);
                round.sent += 1;
                Settle::Sent { at: now }
            }
            SendOutcome::RetryAfter { seconds } => {
                let until = now.plus(Duration::from_secs(seconds));
                self.pacing.paused_until.insert(row.chat_id, until);
                self.stats.rate_limited.fetch_add(1, Relaxed);
                round.rate_limited += 1;
                Settle::Retry {
                    send_after: until,
                    failed: false,
                    error: format!("429 Too Many Requests: retry after {seconds} s"),
                }
            }
            SendOutcome::Migrated { to_chat_id } => {
                tracing::warn!(
                    from = row.chat_id,
                    to = to_chat_id,
                    "Telegram group became a supergroup: chat id updated"
                );
                self.store.migrate_chat(row.chat_id, to_chat_id).await?;
                round.retried += 1;
                Settle::Defer { send_after: now }
            }
            SendOutcome::Rejected { code, description } => {
                let error = format!("{code} {description}");
                self.give_up(row, &error, now, round);
                Settle::Failed { error, failed: true }
            }
            SendOutcome::Transient { reason } => {
                let failures = row.fail_count + 1;
                if failures >= self.cfg.max_failures {
                    let error = format!("{reason} (failure {failures} of {})", self.cfg.max_failures);
                    self.give_up(row, &error, now, round);
                    Settle::Failed { error, failed: true }
                } else {
                    let i = (failures as usize - 1).min(self.cfg.backoff.len() - 1);
                    self.stats.retried.fetch_add(1, Relaxed);
                    round.retried += 1;
                    Settle::Retry { send_after: now.plus(self.cfg.backoff[i].get()), failed: true, error: reason }
                }
            }
        };
        self.store.settle(row.id, how).await
    }

    fn give_up(&self, row: &Claimed, error: &str, now: UtcTime, round: &mut Round) {
        self.stats.failed.fetch_add(1, Relaxed);
        round.failed += 1;
        tracing::error!(id = row.id, chat = row.chat_id, "alert FAILED, not delivered: {}: {error}", row.title);
        if row.title.starts_with(SELF_ALERT_TITLE) {
            return;
        }
        let mut alert = Alert::new(
            Severity::Critical,
            format!("undelivered:{}", row.id),
            SELF_ALERT_TITLE,
            format!("Alert #{} ({}) to chat {} failed: {error}", row.id, row.title, row.chat_id),
            now,
        );
        alert.skip_chat = Some(row.chat_id);
        self.alerts.raise(alert);
    }

    /// Rounds every `poll_interval` until `stop`.
    pub async fn run(mut self, clock: Clock, mut stop: watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            match self.run_once(clock.now()).await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("the alert worker cannot read the outbox (alerts wait there): {e}");
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(clock.wall_duration(self.cfg.poll_interval.get())) => {}
                _ = model::stopped(&mut stop) => return,
            }
        }
    }
}

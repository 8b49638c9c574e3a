//! The notification outbox (seed 003 §4.3 and §6) in the observer's database: who is told
//! (`telegram_chats`), what waits to be sent (`notification_outbox`), and the worker's
//! claim → send → settle cycle. Every time comes from the caller's clock, never the
//! database's `now()`, so a test clock drives retries and a sim run's times are its own.

use serde::{Deserialize, Serialize};

use model::UtcTime;

use crate::error::StoreError;

/// `alert_severity`: how loud an alert is. Ordered, so a chat's `min_severity` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    #[serde(alias = "info")]
    Info,
    #[serde(alias = "warn")]
    Warn,
    #[serde(alias = "critical")]
    Critical,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Critical => "CRITICAL",
        }
    }

    pub fn parse(s: &str) -> Result<Severity, StoreError> {
        match s {
            "INFO" => Ok(Severity::Info),
            "WARN" => Ok(Severity::Warn),
            "CRITICAL" => Ok(Severity::Critical),
            other => {
                Err(StoreError::Decode { column: "severity", why: format!("{other:?} is not INFO, WARN or CRITICAL") })
            }
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row of `telegram_chats` as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    pub chat_id: i64,
    pub min_severity: Severity,
    #[serde(default)]
    pub description: Option<String>,
}

/// What `enqueue_notification()` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub chat_id: i64,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    /// One incident, one row: a second enqueue with the same key is a no-op.
    pub dedupe_key: Option<String>,
    pub created_at: UtcTime,
}

/// The longest `dedupe_key` the column takes (`VARCHAR(120)`).
pub const DEDUPE_KEY_MAX: usize = 120;

/// A row the worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: i64,
    pub chat_id: i64,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub fail_count: u32,
}

/// How an attempt ended, as the row records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Sent {
        at: UtcTime,
    },
    /// Try again at `send_after`; `failed` counts it in `fail_count` (a 429 does not).
    Retry {
        send_after: UtcTime,
        failed: bool,
        error: String,
    },
    /// Not tried now (the chat's rate limit): due again at `send_after`, nothing counted.
    Defer {
        send_after: UtcTime,
    },
    /// Never retried: the API refused it for good, or it failed too often.
    Failed {
        error: String,
        failed: bool,
    },
}

/// A whole outbox row, for reports and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub chat_id: i64,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub dedupe_key: Option<String>,
    pub created_at: String,
    pub send_after: Option<String>,
    pub sent_at: Option<String>,
    pub fail_count: u32,
    pub status: String,
    pub last_error: Option<String>,
}

/// Rows by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
}

impl OutboxCounts {
    /// Adds `n` rows of `status` as `SELECT status, count(*) … GROUP BY status` gives them;
    /// a status the schema does not name counts as failed, never as sent.
    pub(crate) fn add(&mut self, status: &str, n: i64) {
        let n = n.max(0) as u64;
        match status {
            "PENDING" => self.pending += n,
            "SENT" => self.sent += n,
            _ => self.failed += n,
        }
    }
}

pub(crate) fn check_key(n: &NewNotification) -> Result<(), StoreError> {
    match &n.dedupe_key {
        Some(k) if k.chars().count() > DEDUPE_KEY_MAX => {
            Err(StoreError::Invalid(format!("dedupe_key longer than {DEDUPE_KEY_MAX} characters: {k:?}")))
        }
        _ => Ok(()),
    }
}

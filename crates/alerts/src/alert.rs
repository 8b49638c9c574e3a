//! An alert: what happened, how loud, and the key that makes one incident one message.

use model::UtcTime;
use store::outbox::Severity;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub severity: Severity,
    pub title: String,
    pub message: String,
    /// One incident, one message: a second alert with this key is not sent again. An
    /// incident's "resolved" alert has its own key (`…:resolved`).
    pub key: String,
    pub at: UtcTime,
    /// Not to this chat (a self-alert about a chat that refuses messages).
    pub skip_chat: Option<i64>,
}

impl Alert {
    pub fn new(
        severity: Severity,
        key: impl Into<String>,
        title: impl Into<String>,
        message: impl Into<String>,
        at: UtcTime,
    ) -> Alert {
        Alert { severity, title: title.into(), message: message.into(), key: key.into(), at, skip_chat: None }
    }

    /// The "resolved" message of the incident `key` was raised for: as loud as the alert,
    /// so whoever was told of the incident is told it ended.
    pub fn resolved(
        severity: Severity,
        key: &str,
        title: impl Into<String>,
        message: impl Into<String>,
        at: UtcTime,
    ) -> Alert {
        Alert::new(severity, format!("{key}:resolved"), format!("RESOLVED: {}", title.into()), message, at)
    }
}

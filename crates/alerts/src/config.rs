//! The `alerts:` section: where alerts go, how the outbox retries, and what trips each rule.

use serde::{Deserialize, Serialize};

use model::settings::{Checker, Interval, Validate};
use store::outbox::Chat;

/// Where the bot token comes from; nowhere else (seed 003 §10).
pub const TOKEN_ENV: &str = "TELEGRAM_BOT_TOKEN";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Whether `collect` raises alerts at all (they are always in the log when on).
    pub enabled: bool,
    pub telegram: TelegramConfig,
    pub outbox: OutboxConfig,
    pub rules: RulesConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The Bot API; tests and the sim point it at the fake on loopback.
    pub api_base: String,
    /// Who is told, each with the least severity they want.
    pub chats: Vec<Chat>,
    /// One `sendMessage` may take this long before it counts as a network failure.
    pub request_timeout: Interval,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Alerts held in memory while the database cannot take them; beyond it they are
    /// dropped and counted.
    pub memory_queue: usize,
    /// How often held alerts are offered to the database again.
    pub db_retry: Interval,
    /// How often the worker looks for due rows.
    pub poll_interval: Interval,
    /// Rows claimed per look.
    pub claim_batch: u32,
    /// A claimed row comes due again after this if its worker died mid-send.
    pub lease: Interval,
    /// Waits after the 1st, 2nd, … failed attempt (seed 003 §6: 1 → 2 → 5 → 15 → 30 min);
    /// past the list the last wait repeats.
    pub backoff: Vec<Interval>,
    /// Failed attempts (5xx, network) after which a row is FAILED and a self-alert raised.
    pub max_failures: u32,
    /// Least time between two messages to one chat (Bot FAQ: about 1/s).
    pub per_chat_interval: Interval,
    /// Messages per minute to one group (negative chat id; Bot FAQ: 20).
    pub group_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// How often the monitor reads the collector's state (market clock).
    pub check_interval: Interval,
    /// A stream down this long is an outage alert (CRITICAL), then one "resolved".
    pub outage_after: Interval,
    /// Archive file system use above this is an alert (WARN), then one "resolved" below it.
    pub disk_percent: f64,
    /// Archive writes failing this long is an alert (CRITICAL).
    pub archive_failing_after: Interval,
    /// An episode of repeated occurrences (the database sink losing rows) is resolved after
    /// this long without a new one, so a burst is one message, not one per look.
    pub quiet_after: Interval,
    /// Seoul time of the daily summary (after the KRX close).
    pub summary_at: jiff::civil::Time,
}

impl Validate for AlertsConfig {
    fn validate(&self, c: &mut Checker) {
        c.section("telegram", |c| {
            c.check(
                self.telegram.api_base.starts_with("http://") || self.telegram.api_base.starts_with("https://"),
                "api_base",
                format_args!("{:?} must be an http(s) URL", self.telegram.api_base),
            );
            let mut ids: Vec<i64> = self.telegram.chats.iter().map(|ch| ch.chat_id).collect();
            ids.sort_unstable();
            let n = ids.len();
            ids.dedup();
            c.check(ids.len() == n, "chats", "lists a chat_id twice");
            c.check(!ids.contains(&0), "chats", "chat_id 0 is not a chat");
        });
        c.section("outbox", |c| {
            let o = &self.outbox;
            c.range("memory_queue", o.memory_queue, 1, 1_000_000);
            c.range("claim_batch", o.claim_batch, 1, 1000);
            c.range("max_failures", o.max_failures, 1, 100);
            c.range("group_per_minute", o.group_per_minute, 1, 1000);
            c.check(!o.backoff.is_empty(), "backoff", "needs at least one wait");
            c.check(
                o.lease > o.poll_interval,
                "lease",
                format_args!("{} must be longer than poll_interval ({})", o.lease, o.poll_interval),
            );
        });
        c.section("rules", |c| {
            c.check(
                self.rules.disk_percent > 0.0 && self.rules.disk_percent < 100.0,
                "disk_percent",
                format_args!("{} must be between 0 and 100", self.rules.disk_percent),
            );
            c.check(
                self.rules.check_interval < self.rules.outage_after,
                "check_interval",
                format_args!(
                    "{} must be shorter than outage_after ({})",
                    self.rules.check_interval, self.rules.outage_after
                ),
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Yaml};

    use super::*;

    fn problems(cfg: &AlertsConfig) -> Vec<String> {
        let mut c = Checker::default();
        c.section("alerts", |c| cfg.validate(c));
        c.problems.iter().map(ToString::to_string).collect()
    }

    fn embedded() -> AlertsConfig {
        Figment::from(Yaml::string(include_str!("../../../configs/observer.yaml"))).extract_inner("alerts").unwrap()
    }

    #[test]
    fn the_defaults_pass_and_each_bad_value_is_named_by_its_key() {
        let good = embedded();
        assert!(problems(&good).is_empty(), "{:?}", problems(&good));
        assert_eq!(good.outbox.backoff.iter().map(|b| b.as_millis() / 60_000).collect::<Vec<_>>(), [1, 2, 5, 15, 30]);

        let mut bad = good.clone();
        bad.telegram.api_base = "api.telegram.org".into();
        let chat = Chat { chat_id: 7, min_severity: store::outbox::Severity::Warn, description: None };
        bad.telegram.chats = vec![chat.clone(), chat];
        bad.outbox.lease = bad.outbox.poll_interval;
        bad.outbox.backoff.clear();
        bad.rules.disk_percent = 100.0;
        let got = problems(&bad).join("\n");
        for key in [
            "alerts.telegram.api_base",
            "alerts.telegram.chats",
            "alerts.outbox.lease",
            "alerts.outbox.backoff",
            "alerts.rules.disk_percent",
        ] {
            assert!(got.contains(key), "{key} not named in:\n{got}");
        }
    }
}

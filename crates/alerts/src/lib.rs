//! Someone is told (seed 003 §4.3 and §6): alert sources turn what the collector sees into
//! alerts with a severity and a dedupe key, the outbox keeps them in the observer's database
//! (`notification_outbox`), and the Telegram worker delivers them with retries, backoff and
//! the Bot API's rate limits. Recording never waits for any of it.

#![forbid(unsafe_code)]

pub mod alert;
pub mod config;
pub mod outbox;
pub mod sources;
pub mod telegram;
pub mod worker;

pub use alert::Alert;
pub use config::{AlertsConfig, TOKEN_ENV};
pub use outbox::{AlertCounts, AlertStats, AlertTx};
pub use store::outbox::Severity;

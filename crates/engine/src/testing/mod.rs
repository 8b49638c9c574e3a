//! Test support (feature `testing`, and the crate's own unit tests): a scripted in-process
//! provider, so engine behaviour — reconnect, watchdog, degrade mode and REST polling,
//! mitigation, slot churn, gap markers — is tested without sockets or fake servers, on a
//! virtual clock, with exact instants.
//!
//! # Virtual time
//!
//! Run the engine under `#[tokio::test(start_paused = true)]` with
//! [`model::Clock::on_tokio_time`]: tokio's clock then moves only when every task waits,
//! straight to the next timer, so an hour of market takes the milliseconds its work takes
//! and every recorded instant is exact. Everything the engine waits for is the clock, a
//! tokio channel, or `spawn_blocking` (the universe file, opening and closing the archive),
//! which holds the clock still while it runs.
//!
//! The one exception is the archive sink's writer thread: a task that waited for it (a full
//! archive queue, `pipeline.archive_capacity`) would let the clock jump while the thread
//! writes, and Track B would sample down. Give the queue room for every line the test
//! writes, and check afterwards that it had it ([`queue_never_filled`]): then no task ever
//! waited for the thread, whatever it was doing while time moved.

pub mod scripted;

pub use scripted::{Asked, Script, ScriptedProvider};

use crate::stats::StatsSnapshot;

/// Whether the archive queue can never have been full: fewer lines were published over the
/// whole run than it holds, so no write waited for the writer thread (and no Track B sample
/// was dropped for room).
pub fn queue_never_filled(stats: &StatsSnapshot, archive_capacity: usize) -> bool {
    (stats.lines_published as usize) < archive_capacity && stats.scalp_sampled_down == 0
}

//! The collection engine: observer core, universe, tracks and the archive sink, wired by
//! `Collector`. Data flows one way (provider frame → observer → sinks); only subscription
//! changes flow back to the provider.

pub mod activity;
pub mod anomaly;
pub mod book;
pub mod collector;
pub mod config;
pub mod day_roll;
pub mod evidence;
pub mod health;
pub mod housekeeping;
pub mod live;
pub mod mitigation;
pub mod observe;
pub mod observer;
pub mod pipeline;
pub mod poll;
pub mod reconnect;
pub mod replay;
pub mod router;
pub mod schedule;
pub mod selector;
pub mod sink;
pub mod slot_watch;
pub mod slots;
pub mod stats;
pub mod tap;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod track_a;
pub mod track_b;
pub mod triggers;
pub mod watchdog;

pub use collector::{CollectError, Collector, LifecycleHook, Summary};
pub use config::EngineConfig;
pub use live::{Live, Manual};
pub use stats::{Stats, StatsSnapshot};

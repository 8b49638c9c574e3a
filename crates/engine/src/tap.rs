//! A tap on accepted records, for sinks beside the archive (the live database sink, later
//! the bus). A tap must never block: the archive is the record and does not wait for it.

use model::{MarketEvent, Record, ScalpSample};

pub trait Tap: Send + Sync {
    /// A record that passed the observer core (ticks, quotes, snapshots).
    fn market_event(&self, rec: &Record<MarketEvent>);
    /// A Track B sample that was archived.
    fn sample(&self, rec: &Record<ScalpSample>);
}
